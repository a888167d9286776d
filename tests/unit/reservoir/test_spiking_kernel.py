"""The numba plastic kernel (spiking.plastic_kernel) against the torch event loop and the dense reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("numba", reason="numba not installed (the neuro extra): the kernel falls back to torch")

from reservoir.spiking import functional as F  # noqa: E402
from reservoir.spiking import plastic_kernel  # noqa: E402
from reservoir.spiking.liquid import build_liquid  # noqa: E402
from reservoir.spiking.plastic import PlasticRates, PlasticTables, draw_input_spikes, run_plastic  # noqa: E402
from reservoir.spiking.simulate import Plasticity, SimResult, initialise_weights, simulate_plastic  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run3(
    n: int, batch: int, p: float, steps: int, seed: int, plast: Plasticity, **kw: object
) -> dict[str, SimResult]:
    """The same run by the numba kernel, the torch event loop and the dense reference."""
    liq = build_liquid(n, 16, seed=seed)
    probs = torch.from_numpy(np.random.default_rng(seed).uniform(0, p, (batch, 16)).astype(np.float32))
    return {
        m: simulate_plastic(
            liq,
            probs,
            steps,
            torch.Generator().manual_seed(seed),
            plast,
            w_start=torch.from_numpy(liq.w0),
            method=m,
            record=batch,
            **kw,  # type: ignore[arg-type]
        )
        for m in ("numba", "torch", "dense")
    }


def assert_identical(a: SimResult, b: SimResult) -> None:
    assert a.raster is not None and b.raster is not None and torch.equal(a.raster, b.raster)
    assert torch.equal(a.counts, b.counts)
    assert a.weights is not None and b.weights is not None and torch.equal(a.weights, b.weights)
    assert a.astro is not None and b.astro is not None and torch.equal(a.astro, b.astro)
    assert a.input_spikes == b.input_spikes


def assert_close_to_dense(a: SimResult, d: SimResult) -> None:
    """Same spikes; weights within float32 rounding (summation order, see spiking/plastic.py)."""
    assert a.raster is not None and d.raster is not None and torch.equal(a.raster, d.raster)
    assert a.weights is not None and d.weights is not None
    torch.testing.assert_close(a.weights, d.weights, atol=1e-5, rtol=0)
    assert a.astro is not None and d.astro is not None and torch.equal(a.astro, d.astro)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 6),
    p=st.floats(0.1, 0.9),
    astro=st.booleans(),
    decay=st.sampled_from([1.0, 0.99]),
)
def test_kernel_is_bit_identical_to_torch_and_close_to_dense(
    seed: int, batch: int, p: float, astro: bool, decay: float
) -> None:
    r = run3(64, batch, p, 60, seed, Plasticity(astro=astro), decay=decay)
    assert_identical(r["numba"], r["torch"])
    assert_close_to_dense(r["numba"], r["dense"])


def test_kernel_on_an_active_liquid() -> None:
    r = run3(343, 8, 1.0, 100, 3, Plasticity())
    assert_identical(r["numba"], r["torch"])
    assert_close_to_dense(r["numba"], r["dense"])
    assert r["numba"].counts.sum() > 1000  # many spikes, many weight changes


@pytest.mark.parametrize("params", [F.LIFParams(t_ref=2.5, tau_u=2.0), F.LIFParams(t_ref=0.0)])
def test_kernel_other_lif_parameters(params: F.LIFParams) -> None:
    r = run3(64, 3, 0.6, 50, 1, Plasticity(), params=params)
    assert_identical(r["numba"], r["torch"])
    assert_close_to_dense(r["numba"], r["dense"])
    assert r["numba"].counts.sum() > 0


def test_kernel_starts_from_per_sample_weights_and_a() -> None:
    liq = build_liquid(64, 16, seed=6)
    batch = 4
    rng = np.random.default_rng(6)
    w = torch.from_numpy(
        np.clip(liq.w0[:, None] * rng.uniform(0.5, 1.5, (1, batch)), -3, 3).astype(np.float32)
    )
    a0 = torch.tensor([0.05, 0.1, 0.15, 0.3])
    probs = torch.full((batch, 16), 0.5)
    out = [
        simulate_plastic(
            liq, probs, 40, torch.Generator().manual_seed(6), Plasticity(), w_start=w, a_start=a0, method=m
        )
        for m in ("numba", "torch")
    ]
    assert torch.equal(out[0].counts, out[1].counts) and out[0].counts.sum() > 0
    assert out[0].weights is not None and out[1].weights is not None
    assert torch.equal(out[0].weights, out[1].weights)
    assert out[0].astro is not None and out[1].astro is not None and torch.equal(out[0].astro, out[1].astro)
    assert torch.equal(a0, torch.tensor([0.05, 0.1, 0.15, 0.3]))  # the caller's A is not modified


def test_run_plastic_leaves_the_same_rates_and_padding() -> None:
    liq = build_liquid(125, 16, seed=2)
    tab = PlasticTables.build(liq)
    batch = 3
    spikes = draw_input_spikes(torch.full((16, batch), 0.7), 60, torch.Generator().manual_seed(0))
    out = {}
    for backend in ("numba", "torch"):
        w_l, w_i = tab.to_padded(torch.from_numpy(liq.w0), batch)
        rates = PlasticRates(F.ETA_PLUS, F.W_ASTRO_1000, F.B_ASTRO, torch.full((batch,), F.A0))
        raster = torch.zeros((60, liq.n, 2), dtype=torch.bool)
        counts = run_plastic(
            tab,
            spikes,
            w_l,
            w_i,
            rates,
            astro=True,
            tau_astro=F.TAU_ASTRO_MS,
            decay=0.99,
            params=F.DEFAULT_LIF,
            raster=raster,
            backend=backend,
        )
        out[backend] = (counts, w_l, w_i, rates, raster)
    (c1, wl1, wi1, r1, ras1), (c2, wl2, wi2, r2, ras2) = out["numba"], out["torch"]
    assert torch.equal(c1, c2) and c1.sum() > 0
    assert torch.equal(ras1, ras2) and torch.equal(ras1.sum(0).T.float(), c1[:2])
    assert torch.equal(wl1, wl2) and torch.equal(wi1, wi2)  # padding and dummy rows included
    assert (r1.eta, r1.w_astro, r1.b_astro) == (r2.eta, r2.w_astro, r2.b_astro)
    assert r1.eta < F.ETA_PLUS
    assert torch.equal(r1.a, r2.a)


@pytest.mark.parametrize(
    ("plast", "params"),
    [
        (Plasticity(), F.DEFAULT_LIF),
        (Plasticity(astro=False), F.DEFAULT_LIF),
        (Plasticity(), F.LIFParams(tau_u=2.0, t_ref=2.5)),  # the float64 emulation of torch's FMA
    ],
)
def test_stage1_kernel_is_bit_identical_to_numpy_and_torch(plast: Plasticity, params: F.LIFParams) -> None:
    liq = build_liquid(125, 16, seed=4)
    probs = torch.from_numpy(np.random.default_rng(4).uniform(0.5, 1.0, (12, 16)).astype(np.float32))
    w = {
        m: initialise_weights(
            liq, probs, torch.Generator().manual_seed(9), plast, params=params, method=m, steps_per_sample=50
        )
        for m in ("numba", "numpy", "torch", "dense")
    }
    assert (w["numba"] != torch.from_numpy(liq.w0)).sum() > 150  # stage 1 moved many weights
    assert torch.equal(w["numba"], w["numpy"])
    assert torch.equal(w["numba"], w["torch"])
    torch.testing.assert_close(w["numba"], w["dense"], atol=1e-5, rtol=0)


def test_stage1_kernel_across_draw_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    from reservoir.spiking import stage1

    liq = build_liquid(64, 16, seed=1)
    probs = torch.full((7, 16), 0.4)
    a = initialise_weights(liq, probs, torch.Generator().manual_seed(1), Plasticity(), method="numba")
    monkeypatch.setattr(stage1, "SAMPLES_PER_DRAW", 3)
    b = initialise_weights(liq, probs, torch.Generator().manual_seed(1), Plasticity(), method="numba")
    c = initialise_weights(liq, probs, torch.Generator().manual_seed(1), Plasticity(), method="numpy")
    assert torch.equal(a, b) and torch.equal(a, c)


def test_backend_choice_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    liq = build_liquid(64, 16, seed=3)
    probs = torch.full((2, 16), 0.5)

    def run(method: str) -> SimResult:
        return simulate_plastic(
            liq,
            probs,
            30,
            torch.Generator().manual_seed(3),
            Plasticity(),
            w_start=torch.from_numpy(liq.w0),
            method=method,
        )

    auto, forced = run("event"), run("numba")
    assert (
        auto.weights is not None and forced.weights is not None and torch.equal(auto.weights, forced.weights)
    )
    with pytest.raises(ValueError, match="method"):
        run("cuda")
    # without numba: "event" falls back to the torch loop (same results), "numba" is a clear error
    monkeypatch.setattr(plastic_kernel, "AVAILABLE", False)
    fallback = run("event")
    assert fallback.weights is not None and torch.equal(fallback.weights, forced.weights)
    with pytest.raises(RuntimeError, match="numba"):
        run("numba")
    with pytest.raises(RuntimeError, match="numba"):
        initialise_weights(liq, probs, torch.Generator(), Plasticity(), method="numba")
    w = initialise_weights(liq, probs, torch.Generator().manual_seed(0), Plasticity())  # NumPy loop
    monkeypatch.setattr(plastic_kernel, "AVAILABLE", True)
    assert torch.equal(w, initialise_weights(liq, probs, torch.Generator().manual_seed(0), Plasticity()))
