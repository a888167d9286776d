"""Event-driven fixed-weight backend (reservoir.spiking.fast) against the CSR reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from reservoir.spiking import functional as F  # noqa: E402
from reservoir.spiking.fast import EventWeights  # noqa: E402
from reservoir.spiking.liquid import build_liquid, dense_weights  # noqa: E402
from reservoir.spiking.reservoir import LiquidConfig  # noqa: E402
from reservoir.spiking.simulate import SimResult, simulate_fixed  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def both(n: int, batch: int, p: float, steps: int, seed: int, **kw: object) -> tuple[SimResult, SimResult]:
    liq = build_liquid(n, 16, seed=seed)
    probs = torch.from_numpy(np.random.default_rng(seed).uniform(0, p, (batch, 16)).astype(np.float32))
    runs = [
        simulate_fixed(
            liq,
            probs,
            steps,
            torch.Generator().manual_seed(seed),
            backend=b,
            record=batch,
            **kw,  # type: ignore[arg-type]
        )
        for b in ("event", "csr")
    ]
    return runs[0], runs[1]


def assert_identical(a: SimResult, b: SimResult) -> None:
    assert a.raster is not None and b.raster is not None
    assert torch.equal(a.raster, b.raster)
    assert torch.equal(a.counts, b.counts)
    assert a.input_spikes == b.input_spikes


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 9),  # n * batch not a multiple of 8 exercises the padded threshold mask
    p=st.floats(0.05, 0.9),
)
def test_event_backend_is_bit_identical_to_csr(seed: int, batch: int, p: float) -> None:
    a, b = both(125, batch, p, 60, seed)
    assert_identical(a, b)


def test_identical_on_an_active_liquid() -> None:
    a, b = both(1000, 24, 0.6, 80, 3)
    assert_identical(a, b)
    assert a.counts.sum() > 1000  # the comparison covers many spikes and refractory blocks


@pytest.mark.parametrize(
    "params",
    [
        F.LIFParams(t_ref=2.5),
        F.LIFParams(t_ref=0.0),
        F.LIFParams(t_ref=5.0, tau_u=2.0),
        F.LIFParams(v_th=5.0),
    ],
)
def test_identical_for_other_lif_parameters(params: F.LIFParams) -> None:
    a, b = both(125, 6, 0.7, 60, 1, params=params)
    assert_identical(a, b)
    assert a.counts.sum() > 0


def test_refractory_gap_of_a_driven_neuron() -> None:
    # no synaptic input, threshold at rest: every neuron fires as often as refractoriness allows (every 3 ms)
    liq = build_liquid(27, 4, seed=0)
    params = F.LIFParams(v_th=0.0)
    for backend in ("event", "csr"):
        res = simulate_fixed(
            liq,
            torch.zeros((2, 4)),
            30,
            torch.Generator().manual_seed(0),
            weights=torch.zeros(liq.n_syn),
            params=params,
            record=2,
            backend=backend,
        )
        r = res.raster
        assert r is not None
        assert torch.all(r[0::3]) and not torch.any(r[1::3]) and not torch.any(r[2::3]), backend


def test_dyadic_weights_identical_and_float_weights_close() -> None:
    liq = build_liquid(125, 16, seed=7)
    rng = np.random.default_rng(7)
    probs = torch.full((8, 16), 0.5)
    dyadic = torch.from_numpy((rng.integers(-12, 13, liq.n_syn) / 4).astype(np.float32))
    floaty = torch.from_numpy(rng.normal(0.0, 1.5, liq.n_syn).astype(np.float32))
    for w, exact in ((dyadic, True), (floaty, False)):
        runs = [
            simulate_fixed(liq, probs, 60, torch.Generator().manual_seed(7), weights=w, backend=b, record=8)
            for b in ("event", "csr")
        ]
        assert runs[0].counts.sum() > 0
        if exact:
            assert_identical(runs[0], runs[1])
        else:  # summation order differs: a spike may flip only when V lands within rounding of threshold
            differ = (runs[0].counts != runs[1].counts).float().mean()
            assert differ <= 0.01


def test_event_table_reproduces_the_weight_matrix() -> None:
    liq = build_liquid(216, 10, seed=2)
    ew = EventWeights.build(liq)
    n = liq.n
    rec = torch.zeros((n, n))
    rec.index_put_((torch.arange(n)[:, None].expand_as(ew.post), ew.post), ew.w, accumulate=True)
    wt = dense_weights(liq)  # (n + n_in, n): [pre, post]
    assert torch.equal(rec, wt[:n])
    assert torch.equal(ew.w_in, wt[n:].T)


def test_backend_option_validated() -> None:
    assert LiquidConfig(kind="lsm").backend == "event"
    with pytest.raises(ValueError, match="backend"):
        LiquidConfig(kind="lsm", backend="gpu")
    with pytest.raises(ValueError, match="backend"):
        simulate_fixed(build_liquid(27, 4, seed=0), torch.zeros((1, 4)), 1, torch.Generator(), backend="gpu")


def test_threads_pinned_during_the_run_and_restored() -> None:
    liq = build_liquid(27, 4, seed=0)
    p = torch.full((2, 4), 0.5)
    torch.set_num_threads(2)
    seen: list[int] = []
    real = torch.mm

    def spy(*args: object, **kw: object) -> object:
        seen.append(torch.get_num_threads())
        return real(*args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(torch, "mm", spy)
    try:
        a = simulate_fixed(liq, p, 5, torch.Generator().manual_seed(0))
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        b = simulate_fixed(liq, p, 5, torch.Generator().manual_seed(0), threads=None)
        assert set(seen) == {2} and torch.get_num_threads() == 2
    finally:
        mp.undo()
    assert torch.equal(a.counts, b.counts)
