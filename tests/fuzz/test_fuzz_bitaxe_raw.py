"""Fuzz the bitaxe-raw control client over a loopback transport.

1. Random replies: the device end answers one request with fuzzed bytes (garbage, reply-shaped packets with
   any length field and id, simple and message errors, split into random reads) and hangs up, so no example
   waits for a timeout. Only the client's typed errors may escape (:class:`drivers.i2c.I2CError`, which
   ``BitaxeRawError`` is, :class:`drivers.bitaxe_raw.ControlTimeout`,
   :class:`drivers.transport.TransportError`) and a returned payload always has the size asked for.
2. A firmware model: random sequences of requests, each answered as a firmware variant builds it (success,
   simple error or message error; garbage of high bytes in front; random read boundaries). Every success
   returns exactly the device's payload, every error raises ``BitaxeRawError``: never data for an error.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bitaxe_raw import BitaxeRaw, BitaxeRawError, ControlTimeout
from drivers.bitaxe_raw_codec import encode_error, encode_reply
from drivers.i2c import I2CError
from drivers.transport import TransportError, loopback_pair

TYPED = (I2CError, ControlTimeout, TransportError)


@st.composite
def reply_packet(draw: st.DrawFn) -> bytes:
    """Something shaped like a reply: ``[len LE][id][payload]`` with any of the fields off, or an error."""
    rid = draw(st.integers(0, 3) | st.integers(0, 255))
    payload = draw(st.binary(max_size=12) | st.sampled_from([b"\xff\x10", b"\xffBuf", b"\xcb"]))
    n = draw(st.sampled_from([len(payload) + 3, len(payload), 4]) | st.integers(0, 0xFFFF))
    shaped = n.to_bytes(2, "little") + bytes([rid]) + payload
    errors = st.builds(encode_error, st.just(rid), st.integers(0, 255)) | st.builds(
        lambda r, m: encode_error(r, message=m), st.just(rid), st.text("ABCIrro ", min_size=1, max_size=20)
    )
    return draw(st.just(shaped) | errors)


replies = st.lists(st.one_of(reply_packet(), st.binary(max_size=16)), max_size=6)
splits = st.lists(st.integers(1, 8), max_size=6)


async def _scenario(op: int, answer: list[bytes], cuts: list[int], mode: str | None) -> str:
    """One request answered by ``answer`` (split at ``cuts``), then the device hangs up: never a timeout."""
    host, dev = loopback_pair()
    client = BitaxeRaw(host, timeout_s=60.0, convention=mode)  # type: ignore[arg-type]

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
            assert 0 <= await client.read_vdd_counts() <= 0xFFFF
        elif op == 3:
            await client.write(0x24, b"\x01\x80")
        elif op == 4:
            assert len(await client.read(0x24, 4)) == 4
        else:
            await client.set_reset(True)
        return "ok"
    except TYPED as exc:
        assert str(exc)
        return type(exc).__name__
    finally:
        await dev.close()
        await task


@settings(max_examples=300, deadline=None)
@given(
    op=st.integers(0, 5),
    answer=replies,
    cuts=splits,
    mode=st.sampled_from([None, "packet", "payload"]),
)
def test_random_replies_give_only_typed_errors(
    op: int, answer: list[bytes], cuts: list[int], mode: str | None
) -> None:
    outcome = asyncio.run(_scenario(op, answer, cuts, mode))
    if not answer:
        assert outcome == "TransportClosed"


def test_the_harness_can_succeed_and_fail() -> None:
    """A stale-id reply, then the right one split across reads; and a simple error."""
    good = [(5).to_bytes(2, "little") + b"\x07\xab\xcd", (5).to_bytes(2, "little") + b"\x00\x12\x34"]
    assert asyncio.run(_scenario(0, good, [2, 3, 1], None)) == "ok"
    assert asyncio.run(_scenario(0, [b"\x04\x00\x00\x10"], [], None)) == "BitaxeRawError"


# ---- the firmware model ----------------------------------------------------------------------------------

# (kind, size, the payload the firmware answers on success)
OPS = [("read", 1, None), ("read", 2, None), ("read", 4, None), ("write", 1, b"\x02"), ("reset", 1, b"\x00")]
ERROR_TEXTS = ["I2C Read Error", "I2C Write Error", "I2C WriteRead Error", "Buf"]


@st.composite
def exchange(draw: st.DrawFn) -> tuple[int, str, bytes]:
    """(op index, outcome, payload or error text/code bytes)."""
    i = draw(st.integers(0, len(OPS) - 1))
    _, size, fixed = OPS[i]
    outcome = draw(st.sampled_from(["ok", "ok", "message", "simple"]))
    if outcome == "ok":
        return i, outcome, fixed if fixed is not None else draw(st.binary(min_size=size, max_size=size))
    if outcome == "message":
        return i, outcome, draw(st.sampled_from(ERROR_TEXTS)).encode()
    # a simple error with the request's id only where the firmware sends one: a GPIO bridge fault, or a
    # malformed request (here a 2-byte read). Not to a 1- or 4-byte I2C read, where the same bytes are data.
    if size == 1:
        return 4, outcome, bytes([draw(st.sampled_from([0x10, 0x12, 0x13]))])
    return 1, outcome, b"\x11"


def _high(b: bytes) -> bytes:
    """Garbage of bytes 0x80-0xFE: never a request id of this test nor the parse-error id FF."""
    return bytes(0x80 | (x % 0x7F) for x in b)


@settings(max_examples=150, deadline=None)
@given(
    convention=st.sampled_from(["payload", "packet"]),
    script=st.lists(exchange(), min_size=1, max_size=8),
    garbage=st.lists(st.binary(max_size=6).map(_high), min_size=8, max_size=8),
    cuts=st.lists(st.integers(1, 5), min_size=8, max_size=8),
)
def test_a_firmware_model_never_returns_an_error_as_data(
    convention: str, script: list[tuple[int, str, bytes]], garbage: list[bytes], cuts: list[int]
) -> None:
    async def run() -> None:
        host, dev = loopback_pair()
        client = BitaxeRaw(host, timeout_s=60.0)

        async def device() -> None:
            for rid, (_, outcome, body) in enumerate(script):
                await dev.read()
                if outcome == "ok":
                    blob = encode_reply(rid, body, convention)  # type: ignore[arg-type]
                elif outcome == "message":
                    blob = encode_error(rid, message=body.decode())
                else:
                    blob = encode_error(rid, body[0])
                blob = garbage[rid % 8] + blob
                k = cuts[rid % 8]
                for pos in range(0, len(blob), k):
                    await dev.write(blob[pos : pos + k])

        task = asyncio.create_task(device())
        try:
            for i, outcome, body in script:
                kind, size, _ = OPS[i]
                if outcome == "ok":
                    got = await _call(client, kind, size)
                    assert kind != "read" or got == body
                else:
                    try:
                        await _call(client, kind, size)
                    except BitaxeRawError:
                        continue
                    raise AssertionError(f"{outcome} {body!r} to {kind} {size} was taken as success")
        finally:
            await host.close()
            await dev.close()
            await task

    asyncio.run(run())


async def _call(client: BitaxeRaw, kind: str, size: int) -> bytes | None:
    if kind == "read":
        return await client.read(0x4C, size)
    if kind == "write":
        await client.write(0x4C, b"\x01\x02")
    else:
        await client.set_reset(True)
    return None
