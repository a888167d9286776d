"""The report pages in a real browser (headless Chromium): every image loads, the page renders non-blank.

One page per report type: ``bench --report`` (summary.html) and ``analyze --report`` (index.html) of a real
daemon recording (emulated boards, a 2 x 2 sweep, so the V/f maps include J/TH from the log summaries).
Skipped where Chromium is absent, except in CI (``CI=true``), where Chromium is required
(``make test`` installs it as root).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.cli import main
from tests.system.fast_config import fast_config

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[2]
#: Window of the screenshots (px).
WIDTH, HEIGHT = 1280, 2400
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
#: Appended to a copy of the page: after load, lists every image with its natural width for --dump-dom.
PROBE = (
    "<script>window.addEventListener('load',function(){var o=[];"
    "document.querySelectorAll('img').forEach(function(i){o.push([i.getAttribute('src'),i.naturalWidth,"
    "i.naturalHeight,i.complete])});var p=document.createElement('pre');p.id='imgprobe';"
    "p.textContent=JSON.stringify(o);document.body.appendChild(p)});</script>"
)
SWEEP = """
[[plans]]
name = "vf"
kind = "sweep"
voltage_v = [1.15, 1.2]
freq_mhz = [400.0, 485.0]
ticket_diff = [1.0]
settle_s = 0.1
dwell_s = 0.8
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is required in CI (apt-get install chromium; make test installs it as root)")
    pytest.skip("Chromium not installed (Debian: apt-get install chromium); the report pages are not checked")


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def check_page(page: Path, shot: Path, profile_root: Path) -> list[list[object]]:
    """Screenshot ``page`` into ``shot``, assert it renders; returns [src, naturalWidth, height, complete]."""
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _run_chromium(
        ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], profile_root / "dom"
    ).stdout
    probe.unlink()
    m = re.search(r'<pre id="imgprobe">(.*?)</pre>', dom, re.S)
    assert m, f"the probe did not run; DOM tail: {dom[-500:]}"
    images: list[list[object]] = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    broken = [i for i in images if not (i[3] and int(i[1]) > 0)]  # type: ignore[call-overload]
    assert images and not broken, f"images that did not load: {broken}"
    _run_chromium(
        [f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.as_uri()], profile_root / "shot"
    )
    import matplotlib.pyplot as plt

    px = plt.imread(str(shot))[..., :3]
    assert px.shape[:2] == (HEIGHT, WIDTH)
    grey = px.mean(axis=2)
    assert float(grey.std()) > 0.05, "the screenshot is blank"
    assert float(np.mean(grey < 0.9)) > 0.03, "almost nothing drawn on the page"
    # a readable page: something drawn across the width, not one narrow column
    assert float(np.mean(np.any(grey < 0.9, axis=0))) > 0.4
    return images


def _bench_report(out: Path) -> Path:
    base = ["--seeds", "2", "--n-train", "400", "--n-test", "200", "--report", str(out)]
    assert main(["bench", "narma10", "-r", "esn", "--size", "20", *base]) == 0
    assert (
        main(["bench", "memory-capacity", "-r", "poisson-null", "--rate", "2000", "--size", "12", *base]) == 0
    )
    assert main(["bench", "digits", "-r", "delay-line", "--seeds", "1", "--report", str(out)]) == 0
    return out / "summary.html"


def _sweep_recording(tmp_path: Path) -> Path:
    """A real daemon run: two emulated boards, a 2 x 2 V/f sweep, stopped by SIGTERM once both are done."""
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(fast_config(timing={"silence_timeout_s": 5.0}, http={"enabled": False}) + SWEEP)
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--state-dir", str(state)]
    proc = subprocess.Popen(
        [*cmd, "--simulate", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

    def done(board: str) -> bool:
        try:
            prog = json.loads((state / "plans" / f"vf.{board}.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return bool(prog["done"] >= prog["total"] == 4)

    deadline = time.monotonic() + 60.0
    while not (done("sim0") and done("sim1")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"sweep did not finish: {proc.communicate()[1][-3000:]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    (run,) = sorted(p for p in (state / "recordings").iterdir() if p.is_dir())
    return run


def test_bench_report_renders_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _chromium()
    page = _bench_report(tmp_path / "bench")
    images = check_page(page, tmp_path / "bench.png", tmp_path / "profile")
    srcs = {str(i[0]) for i in images}
    assert {"narma10_esn.png", "memory-capacity_poisson-null.png", "digits_delay-line.png"} <= srcs
    assert all(int(i[1]) >= 500 for i in images)  # type: ignore[call-overload]


def test_analyze_report_renders_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _chromium()
    run = _sweep_recording(tmp_path)
    rep = tmp_path / "analyze"
    assert main(["analyze", str(run), "--by", "point", "--no-mc", "--report", str(rep)]) == 0
    images = check_page(rep / "index.html", tmp_path / "analyze.png", tmp_path / "profile")
    srcs = {str(i[0]) for i in images}
    for board in ("sim0", "sim1"):
        assert {f"heat_{board}_j_per_th.png", f"heat_{board}_cv.png"} <= srcs
    heat = [i for i in images if str(i[0]).startswith("heat_")]
    assert all(int(i[1]) >= 360 for i in heat)  # type: ignore[call-overload]  # not ~240 px any more
