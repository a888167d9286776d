"""Brian2 (cython target) run of a liquid exported by bench_spiking.py; runs inside .venv-brian2.

Same network and constants as reservoir.spiking (LIF tau_v 64 ms, threshold 20, reset 0, refractory 2 ms,
exponential synaptic current tau_u 1 ms, dt 1 ms; Bernoulli inputs = PoissonGroup at p/ms with dt 1 ms).
``batch`` copies of the liquid run side by side in one NeuronGroup (block-diagonal synapses), so the
figure is comparable with the batched torch run. Brian2 clamps V during refractoriness (torch/NALSM keep
integrating): a negligible difference in cost. Prints one JSON line: seconds (excluding code generation),
rate_hz, brian2 version.

    .venv-brian2/bin/python benchmarks/brian2_lif.py NET.npz --steps 100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("net", help="npz with n, n_in, pre, post, w, p (batch, n_in)")
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()

    import brian2 as b2

    d = np.load(args.net)
    n, n_in = int(d["n"]), int(d["n_in"])
    pre, post, w, p = d["pre"], d["post"], d["w"].astype(np.float64), d["p"]
    batch = p.shape[0]
    b2.prefs.codegen.target = "cython"
    b2.defaultclock.dt = 1 * b2.ms
    tau_v, tau_u = 64 * b2.ms, 1 * b2.ms
    eqs = """
    dv/dt = -v / tau_v + i_syn / ms : 1
    di_syn/dt = -i_syn / tau_u : 1
    """
    liquid = b2.NeuronGroup(
        batch * n, eqs, threshold="v >= 20", reset="v = 0", refractory=2 * b2.ms, method="exact"
    )
    inputs = b2.PoissonGroup(batch * n_in, rates=(p.reshape(-1) * 1000.0) * b2.Hz)
    rec = pre < n
    offs_n = (np.arange(batch) * n)[:, None]
    offs_in = (np.arange(batch) * n_in)[:, None]
    s_rec = b2.Synapses(liquid, liquid, "w : 1", on_pre="i_syn_post += w")
    s_rec.connect(i=(pre[rec][None, :] + offs_n).ravel(), j=(post[rec][None, :] + offs_n).ravel())
    s_rec.w = np.tile(w[rec], batch)
    s_in = b2.Synapses(inputs, liquid, "w : 1", on_pre="i_syn_post += w")
    s_in.connect(i=(pre[~rec][None, :] - n + offs_in).ravel(), j=(post[~rec][None, :] + offs_n).ravel())
    s_in.w = np.tile(w[~rec], batch)
    mon = b2.SpikeMonitor(liquid, record=False)
    net = b2.Network(liquid, inputs, s_rec, s_in, mon)
    net.run(1 * b2.ms, namespace={"tau_v": tau_v, "tau_u": tau_u, "ms": b2.ms})  # code generation + compile
    count0 = int(mon.num_spikes)
    t0 = time.perf_counter()
    net.run(args.steps * b2.ms, namespace={"tau_v": tau_v, "tau_u": tau_u, "ms": b2.ms})
    seconds = time.perf_counter() - t0
    rate = (int(mon.num_spikes) - count0) / (batch * n) / (args.steps / 1000.0)
    print(json.dumps({"seconds": seconds, "rate_hz": rate, "brian2": b2.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
