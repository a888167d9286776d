"""Find candidate boards on USB serial ports, and reset a hung USB device.

Known devices (docs/protocol.md "Boards and transports"): ``c0de:cafe`` bitaxe-raw (two CDC-ACM ports: the
first
interface is the control channel, the second the ASIC UART), FTDI ``0403:6001``/``0403:6015`` and CP210x
``10c4:ea60``/``10c4:ea70`` UART bridges. Paths are the stable ``/dev/serial/by-id`` links when present.
No device present is a normal, empty answer.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

BY_ID_DIR = "/dev/serial/by-id"
#: sysfs directory of USB serial devices; FTDI ports expose ``<tty>/latency_timer`` (ms) there.
USB_SERIAL_SYSFS = "/sys/bus/usb-serial/devices"
BITAXE_RAW = "bitaxe-raw"
FTDI = "ftdi"
CP210X = "cp210x"

#: (vid, pid) -> bridge kind.
KNOWN_DEVICES: dict[tuple[int, int], str] = {
    (0xC0DE, 0xCAFE): BITAXE_RAW,
    (0x0403, 0x6001): FTDI,
    (0x0403, 0x6015): FTDI,
    (0x10C4, 0xEA60): CP210X,
    (0x10C4, 0xEA70): CP210X,
}


class PortLike(Protocol):
    """The fields of pyserial's ``ListPortInfo`` that discovery reads."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    location: str | None
    description: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One board-like USB device: ``data`` is the ASIC UART path, ``control`` the bitaxe-raw channel."""

    kind: str
    vid: int
    pid: int
    serial_number: str | None
    data: str
    control: str | None
    description: str
    location: str | None
    #: FTDI latency timer (ms; default 16): received bytes wait up to this long, quantising timestamps.
    latency_timer_ms: int | None = None

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


def stable_paths(by_id_dir: str = BY_ID_DIR) -> dict[str, str]:
    """``{real device path: /dev/serial/by-id link}``; empty when the directory does not exist."""
    out: dict[str, str] = {}
    try:
        names = sorted(os.listdir(by_id_dir))
    except OSError:
        return out
    for name in names:
        link = os.path.join(by_id_dir, name)
        out.setdefault(os.path.realpath(link), link)
    return out


def ftdi_latency_ms(device: str, sysfs: str = USB_SERIAL_SYSFS) -> int | None:
    """The FTDI latency timer of ``device`` (ms) from sysfs, or None when it cannot be read."""
    tty = os.path.basename(os.path.realpath(device))
    try:
        with open(os.path.join(sysfs, tty, "latency_timer"), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def interface_number(port: PortLike) -> int:
    """USB interface number from a pyserial location like ``1-1.2:1.0`` (the digits after the last dot)."""
    loc = port.location or ""
    if ":" in loc:
        tail = loc.rsplit(":", 1)[1]
        try:
            return int(tail.rsplit(".", 1)[-1])
        except ValueError:
            pass
    return 0


def _system_ports() -> list[PortLike]:
    from serial.tools import list_ports

    return list(list_ports.comports())


def list_candidates(
    ports: Iterable[PortLike] | None = None,
    stable: Mapping[str, str] | None = None,
    sysfs: str = USB_SERIAL_SYSFS,
) -> list[Candidate]:
    """Candidate boards among ``ports`` (default: pyserial's listing), stable paths from ``stable``.

    FTDI candidates carry their latency timer (read from ``sysfs``) so callers can report it.
    """
    all_ports = list(_system_ports() if ports is None else ports)
    links = stable_paths() if stable is None else stable

    def path(p: PortLike) -> str:
        return links.get(os.path.realpath(p.device), links.get(p.device, p.device))

    out: list[Candidate] = []
    groups: dict[tuple[str | None, str], list[PortLike]] = {}
    for p in all_ports:
        if p.vid is None or p.pid is None:
            continue
        kind = KNOWN_DEVICES.get((p.vid, p.pid))
        if kind is None:
            continue
        if kind == BITAXE_RAW:
            # One USB device = one serial number (or one bus location) with two interfaces.
            device_loc = (p.location or "").rsplit(":", 1)[0]
            groups.setdefault((p.serial_number, device_loc if p.serial_number is None else ""), []).append(p)
            continue
        latency = ftdi_latency_ms(p.device, sysfs) if kind == FTDI else None
        if latency is not None and latency > 1:
            log.info(
                "%s: FTDI latency timer %d ms quantises host timestamps (set it to 1)", p.device, latency
            )
        out.append(
            Candidate(kind, p.vid, p.pid, p.serial_number, path(p), None, p.description, p.location, latency)
        )
    for members in groups.values():
        members.sort(key=lambda p: (interface_number(p), p.device))
        if len(members) != 2:
            log.warning(
                "bitaxe-raw %s: expected 2 serial ports, found %d (%s); skipped",
                members[0].serial_number,
                len(members),
                ", ".join(m.device for m in members),
            )
            continue
        control, data = members
        assert control.vid is not None and control.pid is not None
        out.append(
            Candidate(
                BITAXE_RAW,
                control.vid,
                control.pid,
                control.serial_number,
                path(data),
                path(control),
                control.description,
                control.location,
            )
        )
    out.sort(key=lambda c: (c.kind, c.serial_number or "", c.data))
    return out


class UsbResetError(RuntimeError):
    """A USB reset could not be done; the message says why and what to do."""


def _default_find(vid: int, pid: int) -> list[Any]:
    try:
        import usb.core
    except ImportError as exc:  # pragma: no cover - pyusb is a dependency
        raise UsbResetError("pyusb is not installed (pip install pyusb)") from exc
    try:
        return list(usb.core.find(find_all=True, idVendor=vid, idProduct=pid))
    except usb.core.NoBackendError as exc:
        raise UsbResetError("no libusb backend found: install libusb-1.0 (apt install libusb-1.0-0)") from exc


def _serial_of(dev: Any) -> str | None:
    import usb.util

    if not getattr(dev, "iSerialNumber", 0):
        return None
    return str(usb.util.get_string(dev, dev.iSerialNumber))


def usb_reset(
    vid: int,
    pid: int,
    serial: str | None = None,
    *,
    find: Callable[[int, int], list[Any]] = _default_find,
    serial_of: Callable[[Any], str | None] = _serial_of,
) -> int:
    """USB-reset every matching device (one when ``serial`` is given); returns how many were reset.

    Raises :class:`UsbResetError` naming the cause: pyusb or libusb missing, permission denied (udev rule or
    root needed), or no such device.
    """
    try:
        devices = find(vid, pid)
        if serial is not None:
            devices = [d for d in devices if serial_of(d) == serial]
        if not devices:
            what = f"{vid:04x}:{pid:04x}" + (f" serial {serial}" if serial else "")
            raise UsbResetError(f"no USB device {what} found")
        for dev in devices:
            dev.reset()
        return len(devices)
    except UsbResetError:
        raise
    except Exception as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EACCES, errno.EPERM):
            raise UsbResetError(
                f"permission denied resetting {vid:04x}:{pid:04x}: install the udev rule or run as root"
            ) from exc
        raise UsbResetError(f"USB reset of {vid:04x}:{pid:04x} failed: {exc}") from exc
