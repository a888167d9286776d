"""``asicrc analyze`` on a recording whose events came through a busy reader (read_id, the read time in
t_ns = t_host_ns and the daemon's spacing in t_wire_ns, docs/recording-format.md): the batching is named
from the read structure, and a modulation is still found beyond it (docs/analyze.md, "Structure beyond an
artefact")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.cli import main
from daemon.recorder import Recorder
from reservoir.timing import synth
from tests.unit.held_events import held_point_batch


def _batch(board: str, d: synth.Delivered) -> pa.RecordBatch:
    return held_point_batch(board, d.t_host_ns, d.read_id, point=0, t_wire_ns=d.t_ns)


def test_batched_recording_names_the_batching_and_what_lies_beyond(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(31)
    wire = 110e-6
    flat = synth.link_serialised(synth.poisson(20_000, 100.0, rng), wire)
    wavy = synth.link_serialised(synth.modulated(20_000, 100.0, 0.4, 2.0, rng), wire)
    run = tmp_path / "run"
    rec = Recorder(run, boards=["flat", "wavy"], clock=lambda: 0.0)
    rec.open()
    rec.add(_batch("flat", synth.deliver_reads(flat, 0.002, rng, spacing_ns=110_000)))
    rec.add(_batch("wavy", synth.deliver_reads(wavy, 0.002, rng, spacing_ns=110_000)))
    rec.close()
    for clock in ("wire", "host"):
        assert main(["analyze", str(run), "--json", "--clock", clock]) == 0
        out = {o["stream"]: o for o in json.loads(capsys.readouterr().out)}
        flat_r, wavy_r = out["flat"], out["wavy"]
        assert flat_r["verdict"] == "artifact" and flat_r["kind"].startswith("polling")
        ev = flat_r["artifacts"][0]["evidence"]
        assert ev["intervals_in_read"] > 0 and ev["read_structure_gated"]
        assert flat_r["beyond_artifact"]["structure"] is False
        assert (wavy_r["verdict"], wavy_r["kind"]) == ("non-poisson", "modulation")
        assert "polling" in [a["name"] for a in wavy_r["artifacts"]]
        assert wavy_r["beyond_artifact"]["structure"] is True
