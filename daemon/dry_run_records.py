"""A dry run (:mod:`daemon.dry_run`) as JSON-ready records, one per write: ASIC frames decoded like
``asicrc decode`` (:mod:`daemon.capture_decode`) and bitaxe-raw control requests decoded into I2C
transactions and GPIO levels, each with its raw bytes (``asicrc run --dry-run``).
"""

from __future__ import annotations

from typing import Any

from daemon.capture_decode import iter_records
from daemon.dry_run import DryRun
from drivers import bitaxe_raw_codec as br
from drivers.parts import ds4432u, emc2101, ina260, tps546

#: I2C parts by 7-bit address (drivers/parts).
PARTS = {tps546.ADDR: "TPS546", emc2101.ADDR: "EMC2101", ds4432u.ADDR: "DS4432U", ina260.ADDR: "INA260"}


def control_fields(packet: bytes) -> dict[str, Any]:
    """Fields of one bitaxe-raw request (``[len LE][id][bus][page][cmd][data]``), ``op`` first."""
    if len(packet) < 6:
        return {"op": "short", "data": packet.hex()}
    rid, page, cmd, data = packet[2], packet[4], packet[5], packet[6:]
    out: dict[str, Any] = {"id": rid}
    if page == br.PAGE_I2C and cmd in (br.I2C_WRITE, br.I2C_READ, br.I2C_WRITE_READ) and data:
        addr = data[0]
        out |= {"addr": addr, "part": PARTS.get(addr, "?")}
        if cmd == br.I2C_WRITE:
            out |= {"op": "i2c_write", "bytes": data[1:].hex()}
        elif cmd == br.I2C_READ:
            out |= {"op": "i2c_read", "n": data[-1]}
        else:
            out |= {"op": "i2c_write_read", "bytes": data[1:-1].hex(), "n": data[-1]}
    elif page == br.PAGE_I2C and cmd == br.I2C_SET_FREQ and len(data) == 4:
        out |= {"op": "i2c_frequency", "hz": int.from_bytes(data, "little")}
    elif page == br.PAGE_GPIO:
        out |= {"op": "gpio", "pin": cmd, "level": data[0] if data else None}
    elif page == br.PAGE_ADC:
        out |= {"op": "adc", "cmd": cmd}
    else:
        out |= {"op": "unknown", "page": page, "cmd": cmd, "data": data.hex()}
    return {"op": out.pop("op"), **out}


def records(run: DryRun) -> list[dict[str, Any]]:
    """One JSON-ready record per write or baud change of ``run`` (``stage``: bring_up | first_point)."""
    out: list[dict[str, Any]] = []
    for i, s in enumerate(run.sent):
        base: dict[str, Any] = {
            "board": run.board.name,
            "stage": "bring_up" if i < run.bring_up_writes else "first_point",
            "port": s.port,
            "t_s": round(s.t_s, 6),
        }
        if s.baud is not None:
            out.append(base | {"kind": "baud", "baud": s.baud})
        elif s.port == "control":
            out.append(base | {"kind": "control", **control_fields(s.data), "raw": s.data.hex()})
        else:
            frames = list(iter_records(s.data, chips=run.board.chips))
            if not frames:
                out.append(base | {"kind": "bytes", "raw": s.data.hex()})
            for fr in frames:
                out.append(base | {"kind": "frame", "raw": fr["raw"], "frame": fr})
    return out
