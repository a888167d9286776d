"""Event-driven plasticity (spiking.plastic, spiking.stage1) against the dense reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

if TYPE_CHECKING:
    from torch import Tensor

from reservoir.spiking import functional as F  # noqa: E402
from reservoir.spiking import plastic as P  # noqa: E402
from reservoir.spiking.liquid import build_liquid  # noqa: E402
from reservoir.spiking.plastic import PlasticRates, PlasticTables, run_plastic  # noqa: E402
from reservoir.spiking.simulate import Plasticity, SimResult, initialise_weights, simulate_plastic  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def runs(
    n: int, batch: int, p: float, steps: int, seed: int, plast: Plasticity, **kw: object
) -> tuple[SimResult, SimResult, Tensor]:
    liq = build_liquid(n, 16, seed=seed)
    probs = torch.from_numpy(np.random.default_rng(seed).uniform(0, p, (batch, 16)).astype(np.float32))
    w0 = torch.from_numpy(liq.w0)
    a, b = (
        simulate_plastic(
            liq,
            probs,
            steps,
            torch.Generator().manual_seed(seed),
            plast,
            w_start=w0,
            method=m,
            record=batch,
            **kw,  # type: ignore[arg-type]
        )
        for m in ("event", "dense")
    )
    return a, b, w0


def assert_agree(a: SimResult, b: SimResult, w0: Tensor) -> None:
    assert a.raster is not None and b.raster is not None
    assert torch.equal(a.raster, b.raster)
    assert torch.equal(a.counts, b.counts)
    assert a.input_spikes == b.input_spikes
    assert a.weights is not None and b.weights is not None and a.astro is not None and b.astro is not None
    # same spikes; the weights differ only by float32 rounding (summation order, see plastic.py)
    torch.testing.assert_close(a.weights, b.weights, atol=1e-5, rtol=0)
    assert torch.equal(a.astro, b.astro)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 6),
    p=st.floats(0.1, 0.9),
    astro=st.booleans(),
    decay=st.sampled_from([1.0, 0.99]),
)
def test_event_plasticity_matches_dense(seed: int, batch: int, p: float, astro: bool, decay: float) -> None:
    a, b, w0 = runs(64, batch, p, 60, seed, Plasticity(astro=astro), decay=decay)
    assert_agree(a, b, w0)


def test_event_plasticity_on_an_active_liquid() -> None:
    a, b, w0 = runs(343, 8, 1.0, 100, 3, Plasticity())
    assert_agree(a, b, w0)
    assert a.counts.sum() > 1000  # many spikes, many weight changes
    assert a.weights is not None
    assert (a.weights != w0[:, None]).float().mean() > 0.05


@pytest.mark.parametrize("params", [F.LIFParams(t_ref=2.5, tau_u=2.0), F.LIFParams(t_ref=0.0)])
def test_event_plasticity_other_lif_parameters(params: F.LIFParams) -> None:
    a, b, w0 = runs(64, 3, 0.6, 50, 1, Plasticity(), params=params)
    assert_agree(a, b, w0)
    assert a.counts.sum() > 0


def test_padded_layout_round_trip_and_padding_stays_zero() -> None:
    liq = build_liquid(125, 16, seed=2)
    tab = PlasticTables.build(liq)
    batch = 3
    w = torch.from_numpy(np.random.default_rng(2).normal(0, 1, (liq.n_syn, batch)).astype(np.float32))
    w_l, w_i = tab.to_padded(w, batch)
    assert torch.equal(tab.to_original(w_l, w_i, batch), w)
    w_l, w_i = tab.to_padded(torch.from_numpy(liq.w0), batch)
    rates = PlasticRates(F.ETA_PLUS, F.W_ASTRO_1000, F.B_ASTRO, torch.full((batch,), F.A0))
    spikes = P.draw_input_spikes(torch.full((16, batch), 0.7), 60, torch.Generator().manual_seed(0))
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
        raster=None,
    )
    assert counts.sum() > 0
    for part, blocks in ((tab.liq, w_l), (tab.inp, w_i)):
        pad = torch.ones(part.block, dtype=torch.bool)
        pad[part.pos] = False
        assert torch.all(blocks.view(batch, part.block)[:, pad] == 0)  # padding and dummy row untouched
    w_end = tab.to_original(w_l, w_i, batch)
    lo, hi = torch.from_numpy(liq.lower_bounds()), torch.from_numpy(liq.upper_bounds())
    assert torch.all(w_end >= lo[:, None]) and torch.all(w_end <= hi[:, None])


def test_input_draws_in_chunks_consume_the_generator_like_one_per_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _, _ = runs(64, 4, 0.5, 40, 5, Plasticity())
    monkeypatch.setattr(P, "RAND_CHUNK_FLOATS", 16 * 4 * 3)  # 3 steps per torch.rand call
    b, _, _ = runs(64, 4, 0.5, 40, 5, Plasticity())
    assert torch.equal(a.counts, b.counts) and a.weights is not None and b.weights is not None
    assert torch.equal(a.weights, b.weights)


@pytest.mark.parametrize(
    ("plast", "params"),
    [
        (Plasticity(), F.DEFAULT_LIF),
        (Plasticity(astro=False), F.DEFAULT_LIF),
        (Plasticity(), F.LIFParams(tau_u=2.0, t_ref=2.5)),  # exercises the float64 emulation of torch's FMA
    ],
)
def test_stage1_numpy_is_bit_identical_to_torch_and_close_to_dense(
    plast: Plasticity, params: F.LIFParams
) -> None:
    liq = build_liquid(125, 16, seed=4)
    probs = torch.from_numpy(np.random.default_rng(4).uniform(0.5, 1.0, (12, 16)).astype(np.float32))
    gen = torch.Generator
    w = {
        m: initialise_weights(
            liq, probs, gen().manual_seed(9), plast, params=params, method=m, steps_per_sample=50
        )
        for m in ("event", "torch", "dense")
    }
    w0 = torch.from_numpy(liq.w0)
    assert (w["event"] != w0).sum() > 150  # stage 1 moved many weights
    assert torch.equal(w["event"], w["torch"])
    torch.testing.assert_close(w["event"], w["dense"], atol=1e-5, rtol=0)


def test_stage1_draws_samples_in_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    from reservoir.spiking import stage1

    liq = build_liquid(64, 16, seed=1)
    probs = torch.full((7, 16), 0.4)
    a = initialise_weights(liq, probs, torch.Generator().manual_seed(1), Plasticity())
    monkeypatch.setattr(stage1, "SAMPLES_PER_DRAW", 3)
    b = initialise_weights(liq, probs, torch.Generator().manual_seed(1), Plasticity())
    assert torch.equal(a, b)


def test_methods_validated() -> None:
    liq = build_liquid(27, 4, seed=0)
    p = torch.zeros((1, 4))
    with pytest.raises(ValueError, match="method"):
        initialise_weights(liq, p, torch.Generator(), Plasticity(), method="gpu")
    with pytest.raises(ValueError, match="method"):
        simulate_plastic(
            liq, p, 1, torch.Generator(), Plasticity(), w_start=torch.zeros(liq.n_syn), method="x"
        )


def test_sub_batches_give_the_same_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from reservoir.spiking import simulate

    a, _, _ = runs(64, 5, 0.7, 40, 8, Plasticity())
    monkeypatch.setattr(simulate, "SUB_BATCH", 2)  # 2 + 2 + 1 samples
    b, _, _ = runs(64, 5, 0.7, 40, 8, Plasticity())
    assert a.raster is not None and b.raster is not None and torch.equal(a.raster, b.raster)
    assert a.weights is not None and b.weights is not None and torch.equal(a.weights, b.weights)
    assert a.astro is not None and b.astro is not None and torch.equal(a.astro, b.astro)
    assert torch.equal(a.counts, b.counts) and a.counts.sum() > 0
