"""Discovery over injected port lists and stable-path maps; USB reset with injected pyusb stand-ins."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.discovery import (
    BITAXE_RAW,
    CP210X,
    FTDI,
    Candidate,
    UsbResetError,
    ftdi_latency_ms,
    interface_number,
    list_candidates,
    stable_paths,
    usb_reset,
)


@dataclass
class Port:
    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    location: str | None = None
    description: str = "n/a"


def test_no_devices_is_empty() -> None:
    assert list_candidates([], stable={}) == []
    assert list_candidates([Port("/dev/ttyS0")], stable={}) == []
    assert list_candidates([Port("/dev/ttyUSB9", 0x1234, 0x5678)], stable={}) == []


def test_bitaxe_raw_pair_control_is_first_interface() -> None:
    ports = [
        Port("/dev/ttyACM1", 0xC0DE, 0xCAFE, "ABC", "1-1.2:1.2", "bitaxe data"),
        Port("/dev/ttyACM0", 0xC0DE, 0xCAFE, "ABC", "1-1.2:1.0", "bitaxe ctrl"),
        Port("/dev/ttyUSB0", 0x0403, 0x6015, "FT1", "1-1.3:1.0", "FT231X"),
        Port("/dev/ttyUSB1", 0x10C4, 0xEA60, None, "1-1.4:1.0", "CP2102"),
    ]
    stable = {"/dev/ttyACM0": "/dev/serial/by-id/usb-bitaxe_ABC-if00", "/dev/ttyUSB0": "/dev/serial/by-id/ft"}
    got = list_candidates(ports, stable=stable, sysfs="/nonexistent")
    assert got == [
        Candidate(
            BITAXE_RAW,
            0xC0DE,
            0xCAFE,
            "ABC",
            "/dev/ttyACM1",
            "/dev/serial/by-id/usb-bitaxe_ABC-if00",
            "bitaxe ctrl",
            "1-1.2:1.0",
        ),
        Candidate(CP210X, 0x10C4, 0xEA60, None, "/dev/ttyUSB1", None, "CP2102", "1-1.4:1.0"),
        Candidate(FTDI, 0x0403, 0x6015, "FT1", "/dev/serial/by-id/ft", None, "FT231X", "1-1.3:1.0"),
    ]
    assert got[0].usb_id == "c0de:cafe"


def test_two_bitaxes_without_serials_group_by_usb_location() -> None:
    ports = [
        Port("/dev/ttyACM0", 0xC0DE, 0xCAFE, None, "1-1:1.0"),
        Port("/dev/ttyACM1", 0xC0DE, 0xCAFE, None, "1-1:1.2"),
        Port("/dev/ttyACM2", 0xC0DE, 0xCAFE, None, "1-2:1.0"),
        Port("/dev/ttyACM3", 0xC0DE, 0xCAFE, None, "1-2:1.2"),
    ]
    got = list_candidates(ports, stable={})
    assert [(c.control, c.data) for c in got] == [
        ("/dev/ttyACM0", "/dev/ttyACM1"),
        ("/dev/ttyACM2", "/dev/ttyACM3"),
    ]


def test_incomplete_bitaxe_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    got = list_candidates([Port("/dev/ttyACM0", 0xC0DE, 0xCAFE, "X", "1-1:1.0")], stable={})
    assert got == []
    assert "expected 2 serial ports, found 1" in caplog.text


def test_interface_number() -> None:
    assert interface_number(Port("a", location="1-1.2:1.2")) == 2
    assert interface_number(Port("a", location=None)) == 0
    assert interface_number(Port("a", location="1-1:x.y")) == 0


def test_stable_paths_from_a_directory(tmp_path: Path) -> None:
    dev = tmp_path / "ttyACM0"
    dev.write_bytes(b"")
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-bitaxe-if00").symlink_to(dev)
    links = stable_paths(str(by_id))
    assert links == {os.path.realpath(dev): str(by_id / "usb-bitaxe-if00")}
    assert stable_paths(str(tmp_path / "missing")) == {}
    got = list_candidates([Port(str(dev), 0x0403, 0x6001, "F", "1-1:1.0")], stable=links)
    assert got[0].data == str(by_id / "usb-bitaxe-if00")


def test_real_system_listing_does_not_raise() -> None:
    assert isinstance(list_candidates(), list)


class FakeUsbDevice:
    def __init__(self, serial: str | None, fail: Exception | None = None) -> None:
        self.serial = serial
        self.fail = fail
        self.resets = 0

    def reset(self) -> None:
        if self.fail is not None:
            raise self.fail
        self.resets += 1


def test_usb_reset_picks_by_serial() -> None:
    devs = [FakeUsbDevice("A"), FakeUsbDevice("B")]

    def find(vid: int, pid: int) -> list[FakeUsbDevice]:
        assert (vid, pid) == (0xC0DE, 0xCAFE)
        return devs

    assert usb_reset(0xC0DE, 0xCAFE, "B", find=find, serial_of=lambda d: d.serial) == 1
    assert [d.resets for d in devs] == [0, 1]
    assert usb_reset(0xC0DE, 0xCAFE, find=find, serial_of=lambda d: d.serial) == 2


def test_usb_reset_errors_are_clear() -> None:
    with pytest.raises(UsbResetError, match="no USB device c0de:cafe serial Z found"):
        usb_reset(0xC0DE, 0xCAFE, "Z", find=lambda v, p: [FakeUsbDevice("A")], serial_of=lambda d: d.serial)
    denied = FakeUsbDevice("A", PermissionError(errno.EACCES, "Access denied"))
    with pytest.raises(UsbResetError, match=r"permission denied.*udev rule or run as root"):
        usb_reset(0x0403, 0x6001, find=lambda v, p: [denied])
    broken = FakeUsbDevice("A", OSError(errno.EIO, "I/O error"))
    with pytest.raises(UsbResetError, match="failed"):
        usb_reset(0x0403, 0x6001, find=lambda v, p: [broken])

    def no_backend(vid: int, pid: int) -> list[object]:
        raise UsbResetError("no libusb backend found: install libusb-1.0")

    with pytest.raises(UsbResetError, match="libusb"):
        usb_reset(1, 2, find=no_backend)


def test_usb_reset_with_real_pyusb_finds_nothing_or_reports_backend() -> None:
    # On a machine without the device this must be a clear UsbResetError, never a crash.
    with pytest.raises(UsbResetError, match=r"no USB device|libusb"):
        usb_reset(0xC0DE, 0xCAFF)


def test_ftdi_latency_timer_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB3").mkdir()
    (tmp_path / "ttyUSB3" / "latency_timer").write_text("16\n")
    assert ftdi_latency_ms("/dev/ttyUSB3", str(tmp_path)) == 16
    assert ftdi_latency_ms("/dev/ttyUSB4", str(tmp_path)) is None
    got = list_candidates(
        [Port("/dev/ttyUSB3", 0x0403, 0x6001, "F", "1-1:1.0")], stable={}, sysfs=str(tmp_path)
    )
    assert got[0].latency_timer_ms == 16
