"""Fuzz the bitaxe-raw control client with random replies over a loopback transport.

The device end answers each request with fuzzed bytes (random garbage, or a reply-shaped packet with a random
length field, id and payload, split into random reads) and then hangs up, so no example waits for a timeout.
Only the client's typed errors may escape: :class:`drivers.i2c.I2CError` (``BitaxeRawError`` included),
:class:`drivers.bitaxe_raw.ControlTimeout` and :class:`drivers.transport.TransportError`; a returned payload
always has the size the request asked for.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bitaxe_raw import BitaxeRaw, ControlTimeout
from drivers.i2c import I2CError
from drivers.transport import TransportError, loopback_pair

TYPED = (I2CError, ControlTimeout, TransportError)


@st.composite
def reply_packet(draw: st.DrawFn) -> bytes:
    """Something shaped like a reply: ``[len LE][id][payload]`` with any of the fields off."""
    payload = draw(st.binary(max_size=12) | st.sampled_from([b"\xff\x10", b"\xff\x11", b"\xff\x99"]))
    n = draw(st.sampled_from([len(payload) + 3, len(payload)]) | st.integers(0, 0xFFFF))
    rid = draw(st.integers(0, 3) | st.integers(0, 255))
    return n.to_bytes(2, "little") + bytes([rid]) + payload


replies = st.lists(st.one_of(reply_packet(), st.binary(max_size=16)), max_size=6)
splits = st.lists(st.integers(1, 8), max_size=6)


async def _scenario(op: int, answer: list[bytes], cuts: list[int], mode: str) -> str:
    """One request answered by ``answer`` (split at ``cuts``), then the device hangs up: never a timeout."""
    host, dev = loopback_pair()
    client = BitaxeRaw(host, timeout_s=60.0, length_mode=mode)  # type: ignore[arg-type]

    async def device() -> None:
        await dev.read()
        blob = b"".join(answer)
        pos = 0
        for k in [*cuts, len(blob)]:  # random read boundaries
            if pos < len(blob):
                await dev.write(blob[pos : pos + k])
                pos += k
        await dev.close()

    task = asyncio.create_task(device())
    try:
        if op == 0:
            assert len(await client.read(0x24, 2)) == 2
        elif op == 1:
            assert len(await client.write_read(0x4C, b"\x00", 1)) == 1
        elif op == 2:
            assert 0 <= await client.read_vdd_mv() <= 0xFFFF
        elif op == 3:
            await client.write(0x24, b"\x01\x80")
        else:
            await client.set_reset(True)
        return "ok"
    except TYPED as exc:
        assert str(exc)
        return type(exc).__name__
    finally:
        await dev.close()
        await task


@settings(max_examples=300)
@given(
    op=st.integers(0, 4),
    answer=replies,
    cuts=splits,
    mode=st.sampled_from(["auto", "packet", "payload"]),
)
def test_random_replies_give_only_typed_errors(
    op: int, answer: list[bytes], cuts: list[int], mode: str
) -> None:
    outcome = asyncio.run(_scenario(op, answer, cuts, mode))
    if not answer:
        assert outcome == "TransportClosed"


def test_a_good_reply_after_garbage_and_a_stale_id_is_returned() -> None:
    """The fuzz harness can succeed: stale-id reply, then the right one, split across reads."""
    good = [(5).to_bytes(2, "little") + b"\x07\xab\xcd", (5).to_bytes(2, "little") + b"\x00\x12\x34"]
    assert asyncio.run(_scenario(0, good, [2, 3, 1], "auto")) == "ok"
    assert asyncio.run(_scenario(0, [b"\x05\x00\x00\xff\x10"], [], "auto")) == "BitaxeRawError"
