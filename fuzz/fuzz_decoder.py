"""atheris target: both frame decoders (scalar and vectorised) on arbitrary bytes in arbitrary chunks.

Crash conditions: any exception; the two decoders disagreeing on frames or CRC counts.
Run: ``.venv/bin/python fuzz/fuzz_decoder.py -max_total_time=600`` (see fuzz/README.md).
"""

from __future__ import annotations

import itertools
import sys

import _common  # noqa: F401 - sys.path
import atheris

with atheris.instrument_imports():
    from drivers.decoder import FrameDecoder
    from drivers.reply_batch import ReplyBatchDecoder


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reply_len = 11 if fdp.ConsumeBool() else 9
    cuts = sorted({fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8))})
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    points = [0, *(c for c in cuts if 0 < c < len(stream)), len(stream)]
    scalar, vec = FrameDecoder(reply_len), ReplyBatchDecoder(reply_len)
    want: list[object] = []
    for a, b in itertools.pairwise(points):
        want += scalar.feed(stream[a:b])
    got = vec.feed(stream).frames()
    if got != want:
        raise AssertionError(f"decoders disagree on {stream.hex()}")
    if vec.crc_errors != scalar.stats.bad_frames:
        raise AssertionError("crc counters disagree")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
