"""Liquids on a torch device (reservoir.spiking.device): same results on the CPU whatever the flag; the same
tests run on CUDA when this host has it (skipped with the reason otherwise)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

torch = pytest.importorskip("torch")

if TYPE_CHECKING:
    from torch import Tensor

from reservoir.spiking.device import resolve_device  # noqa: E402
from reservoir.spiking.liquid import build_liquid  # noqa: E402
from reservoir.spiking.longrun import LongRun, classify_liquid  # noqa: E402
from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir  # noqa: E402
from reservoir.spiking.simulate import (  # noqa: E402
    Plasticity,
    initialise_weights,
    simulate_fixed,
    simulate_plastic,
)
from reservoir.tasks import ClassificationTask  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA on this host (torch.cuda.is_available() is False)")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


def _probs(batch: int, n_in: int, p: float, seed: int) -> Tensor:
    rng = np.random.default_rng(seed)
    out: Tensor = torch.from_numpy(rng.uniform(0.0, p, (batch, n_in)).astype(np.float32))
    return out


def _close_counts(got: Tensor, ref: Tensor, device: str) -> None:
    """Bit-identical on the CPU; on CUDA (other summation order, fused kernels) within 1 % of the spikes."""
    assert got.device.type == "cpu" and got.shape == ref.shape
    if device == "cpu":
        assert torch.equal(got, ref)
    else:
        assert float((got - ref).abs().sum()) <= 0.01 * float(ref.sum()) + 1.0


def test_resolve_device_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    for bad in ("gpu", "cuda:x", "cpu:0", "", "tpu"):
        with pytest.raises(ValueError, match="device must be one of cpu, cuda, auto"):
            resolve_device(bad)


@pytest.mark.skipif(HAS_CUDA, reason="this host has CUDA")
def test_cuda_without_cuda_is_one_clear_line() -> None:
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA is not available on this host") as err:
            resolve_device(name)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="CUDA is not available"):
        LiquidConfig(kind="nalsm", device="cuda")  # before any work
    with pytest.raises(ValueError, match="CUDA is not available"):
        LiquidConfig.from_options("lsm", 100, {"device": "cuda"})


def test_device_is_a_config_option() -> None:
    cfg = LiquidConfig.from_options("nalsm", 100, {"device": "cpu"})
    assert cfg.device == "cpu" and LiquidConfig().device == "auto"
    assert cfg == replace(cfg, device="auto")  # the device does not make another liquid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["event", "csr", "dense"])
def test_fixed_liquid_on_device_equals_cpu(device: str, backend: str) -> None:
    liq = build_liquid(125, 12, seed=3)
    p = _probs(9, 12, 0.4, 3)
    kw = {"record": 4, "backend": backend}
    ref = simulate_fixed(liq, p, 60, torch.Generator().manual_seed(5), **kw)  # type: ignore[arg-type]
    got = simulate_fixed(liq, p, 60, torch.Generator().manual_seed(5), device=device, **kw)  # type: ignore[arg-type]
    assert ref.counts.sum() > 0, "the liquid must spike for the comparison to mean anything"
    _close_counts(got.counts, ref.counts, device)
    assert got.input_spikes == ref.input_spikes  # drawn on the CPU whatever the device
    assert got.raster is not None and ref.raster is not None and got.raster.device.type == "cpu"
    if device == "cpu":
        assert torch.equal(got.raster, ref.raster)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("astro", [True, False])
def test_plastic_liquid_on_device_equals_cpu(device: str, astro: bool) -> None:
    liq = build_liquid(125, 12, seed=4)
    p = _probs(40, 12, 0.4, 4)  # 40 > SUB_BATCH: more than one sub-batch
    plast = Plasticity(astro=astro)
    w0 = torch.from_numpy(liq.w0)
    a0 = torch.full((40,), 0.2)
    ref = simulate_plastic(
        liq, p, 50, torch.Generator().manual_seed(1), plast, w_start=w0, a_start=a0, record=3
    )
    got = simulate_plastic(
        liq, p, 50, torch.Generator().manual_seed(1), plast, w_start=w0, a_start=a0, record=3, device=device
    )
    assert torch.equal(a0, torch.full((40,), 0.2)), "a_start must not be changed in place"
    _close_counts(got.counts, ref.counts, device)
    assert got.weights is not None and ref.weights is not None and got.astro is not None
    assert got.weights.device.type == "cpu" and got.astro.device.type == "cpu"
    assert got.input_spikes == ref.input_spikes
    assert not torch.equal(ref.weights, w0[:, None].expand_as(ref.weights)), "plasticity must act"
    if device == "cpu":
        assert torch.equal(got.weights, ref.weights) and torch.equal(got.astro, ref.astro)
        assert got.raster is not None and ref.raster is not None and torch.equal(got.raster, ref.raster)


@pytest.mark.parametrize("device", DEVICES)
def test_stage1_torch_method_on_device_equals_numpy_loop(device: str) -> None:
    liq = build_liquid(125, 40, seed=6)
    p = _probs(15, 40, 1.0, 6)
    ref = initialise_weights(liq, p, torch.Generator().manual_seed(2), Plasticity(), steps_per_sample=20)
    got = initialise_weights(
        liq,
        p,
        torch.Generator().manual_seed(2),
        Plasticity(),
        steps_per_sample=20,
        method="torch",
        device=device,
    )
    assert got.device.type == "cpu" and not torch.equal(ref, torch.from_numpy(liq.w0))
    if device == "cpu":
        assert torch.equal(got, ref)
    else:
        assert float((got - ref).abs().max()) < 1e-3


def test_cpu_only_methods_refuse_another_device() -> None:
    liq = build_liquid(64, 8, seed=0)
    p = _probs(2, 8, 0.3, 0)
    meta = torch.device("meta")  # any non-CPU device: refused before any work
    with pytest.raises(ValueError, match="CPU only"):
        initialise_weights(liq, p, torch.Generator(), Plasticity(), method="event", device=meta)
    with pytest.raises(ValueError, match="CPU only"):
        simulate_plastic(
            liq,
            p,
            5,
            torch.Generator(),
            Plasticity(),
            w_start=torch.from_numpy(liq.w0),
            method="dense",
            device=meta,
        )


def _xy(n: int, n_in: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, n_in))


@pytest.mark.parametrize("kind", ["lsm", "nalsm"])
def test_reservoir_features_do_not_depend_on_the_flag_on_cpu(kind: str) -> None:
    X = _xy(20, 10, 0)
    base = {"presentation_ms": 60, "batch_size": 8, "n_init": 6, "bf_samples": 0}
    feats = []
    for device in ("cpu", "auto") if not HAS_CUDA else ("cpu",):
        cfg = LiquidConfig.from_options(kind, 100, {**base, "device": device})
        res = LiquidReservoir(10, cfg, seed=1)
        feats.append(res.fit_transform(X))
        assert res.info()["device"] == "cpu"
    ref = LiquidReservoir(10, LiquidConfig.from_options(kind, 100, base), seed=1)  # no flag at all
    if not HAS_CUDA:
        feats.append(ref.fit_transform(X))
    assert feats[0].sum() > 0
    for f in feats[1:]:
        np.testing.assert_array_equal(f, feats[0])


@pytest.mark.parametrize("device", DEVICES)
def test_reservoir_on_device(device: str) -> None:
    X = _xy(20, 10, 1)
    base = {"presentation_ms": 60, "batch_size": 8, "n_init": 4, "bf_samples": 0}
    ref = LiquidReservoir(10, LiquidConfig.from_options("nalsm", 100, {**base, "device": "cpu"}), 2)
    got = LiquidReservoir(10, LiquidConfig.from_options("nalsm", 100, {**base, "device": device}), 2)
    f_ref, f_got = ref.fit_transform(X), got.fit_transform(X)
    assert got.info()["device"] == str(resolve_device(device))
    _close_counts(torch.from_numpy(f_got), torch.from_numpy(f_ref), device)


def _toy_task(seed: int, n_train: int, n_test: int) -> ClassificationTask:
    """A two-class task of 6 uniform features, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return ClassificationTask(
        "toy",
        rng.uniform(0, 1, (n_train, 6)),
        rng.integers(0, 2, n_train),
        rng.uniform(0, 1, (n_test, 6)),
        rng.integers(0, 2, n_test),
    )


def test_feature_cache_is_shared_across_devices(tmp_path: Path) -> None:
    tk = _toy_task(0, 24, 10)
    opts = {"presentation_ms": 40, "batch_size": 8, "bf_samples": 0}
    run = LongRun(cache=tmp_path)
    first = classify_liquid(tk, "lsm", 64, 1, {**opts, "device": "cpu"}, run)
    again = classify_liquid(tk, "lsm", 64, 1, {**opts, "device": "auto"}, run)
    assert again.summary["resumed_seeds"] == [0] and again.summary["value"] == first.summary["value"]


def test_w_init_and_input_gain() -> None:
    X = _xy(16, 10, 2)
    base = {"presentation_ms": 60, "batch_size": 8, "bf_samples": 0}
    plain = LiquidReservoir(10, LiquidConfig.from_options("lsm", 100, base), 0)
    plain.fit(X)
    strong = LiquidReservoir(10, LiquidConfig.from_options("lsm", 100, {**base, "w_init": 2.5}), 0)
    strong.fit(X)
    assert plain.w_init_ is not None and strong.w_init_ is not None
    np.testing.assert_array_equal(strong.w_init_.numpy(), 2.5 * plain.w_init_.numpy())
    gained = LiquidReservoir(10, LiquidConfig.from_options("lsm", 100, {**base, "input_gain": 0.5}), 0)
    gained.fit(X)
    assert plain.scale_ is not None and gained.scale_ == pytest.approx(2.0 * plain.scale_)
    plain.transform(X)
    gained.transform(X)
    assert gained.info()["input_rate_hz"] < 0.6 * plain.info()["input_rate_hz"]
    assert LiquidConfig(w_init=3.0).stage1_options() == {"w_init": 3.0}
    assert LiquidConfig().stage1_options() == {}
    # the plastic kinds start at the bound unless told otherwise; +-1 is recorded as "no option" (older runs)
    for kind in ("nalsm", "lsm-stdp"):
        assert (
            LiquidConfig(kind).stage1_options()
            == {"w_init": 3.0}
            == LiquidConfig(kind, w_init=3).stage1_options()
        )
        assert LiquidConfig(kind, w_init=1.0).stage1_options() == {}
    for bad in ({"w_init": 0.0}, {"w_init": 4.0}, {"input_gain": 0.0}, {"input_gain": float("inf")}):
        with pytest.raises(ValueError):
            LiquidConfig.from_options("nalsm", 100, bad)


def test_stage1_starts_from_w_init() -> None:
    X = _xy(8, 10, 3)
    base = {"presentation_ms": 30, "batch_size": 8, "bf_samples": 0, "n_init": 3, "init_ms": 10}
    a = LiquidReservoir(10, LiquidConfig.from_options("nalsm", 100, {**base, "w_init": 1.0}), 0)
    b = LiquidReservoir(10, LiquidConfig.from_options("nalsm", 100, {**base, "w_init": 3.0}), 0)
    default = LiquidReservoir(10, LiquidConfig.from_options("nalsm", 100, base), 0)
    for res in (a, b, default):
        res.fit(X)
    assert a.w_init_ is not None and b.w_init_ is not None and default.w_init_ is not None
    assert float(b.w_init_.abs().mean()) > float(a.w_init_.abs().mean()) + 0.5  # starts at the bound
    np.testing.assert_array_equal(default.w_init_.numpy(), b.w_init_.numpy())  # which is the default


def test_memory_estimate_counts_the_real_tensors() -> None:
    from reservoir.spiking.fast import EventWeights
    from reservoir.spiking.memory import FIXED_STATE_BYTES, features_bytes, liquid_memory
    from reservoir.spiking.plastic import SUB_BATCH, PlasticTables

    liq = build_liquid(125, 20, seed=0)
    fixed = liquid_memory(liq, 10, plastic=False, steps=50, record=4)
    ew = EventWeights.build(liq)
    assert fixed["tables"] == 2 * ew.post.numel() * 8 + ew.w.numel() * 4 + ew.w_in.numel() * 4
    assert fixed["state"] == 125 * 10 * FIXED_STATE_BYTES and fixed["raster"] == 50 * 125 * 4
    assert fixed["total"] == sum(v for k, v in fixed.items() if k != "total")
    tab = PlasticTables.build(liq)
    b = SUB_BATCH
    w_l, w_i = tab.to_padded(torch.from_numpy(liq.w0), b)
    plastic = liquid_memory(liq, 3 * b, plastic=True, steps=50, record=0)
    assert plastic["sub_batch_weights"] == (w_l.numel() + w_i.numel()) * 4
    assert plastic["weights_out"] == liq.n_syn * 3 * b * 4 and plastic["input_spikes"] == 50 * 20 * 3 * b
    assert plastic["raster"] == 0
    assert liquid_memory(liq, 5, plastic=True)["sub_batch_weights"] * b == plastic["sub_batch_weights"] * 5
    assert features_bytes(70_000, 1000) == 560_000_000


def test_stage1_checkpoints_record_w_init_and_input_gain(tmp_path: Path) -> None:
    from reservoir.spiking.checkpoint import CheckpointError

    tk = _toy_task(1, 12, 6)
    opts = {"presentation_ms": 30, "batch_size": 8, "bf_samples": 0, "n_init": 2, "init_ms": 5}
    classify_liquid(tk, "nalsm", 64, 1, {**opts, "w_init": 3.0}, LongRun(save_liquid=tmp_path))
    with pytest.raises(CheckpointError, match="w_init"):
        classify_liquid(tk, "nalsm", 64, 1, {**opts, "w_init": 1.0}, LongRun(load_liquid=tmp_path))
    # the default start is the bound: the checkpoint written with an explicit 3 serves it
    by_default = classify_liquid(tk, "nalsm", 64, 1, opts, LongRun(load_liquid=tmp_path))
    with pytest.raises(CheckpointError, match="input_gain"):
        classify_liquid(
            tk, "nalsm", 64, 1, {**opts, "w_init": 3.0, "input_gain": 2.0}, LongRun(load_liquid=tmp_path)
        )
    again = classify_liquid(tk, "nalsm", 64, 1, {**opts, "w_init": 3.0}, LongRun(load_liquid=tmp_path))
    assert 0.0 <= again.summary["value"] <= 1.0
    assert by_default.summary["value"] == again.summary["value"]


def test_tables_move_with_their_nested_parts() -> None:
    from reservoir.spiking import device as D
    from reservoir.spiking.plastic import PlasticTables

    tab = PlasticTables.build(build_liquid(64, 8, seed=0))
    assert D.on_device(tab, torch.device("cpu")) is tab  # built on the CPU: nothing to move
    moved = D._moved(tab, torch.device("cpu"))  # the path another device takes, run on the CPU
    assert moved is not tab and moved.liq is not tab.liq
    assert torch.equal(moved.in_pos_l, tab.in_pos_l) and torch.equal(moved.inp.post, tab.inp.post)
    assert moved.liq.k == tab.liq.k and moved.n_syn == tab.n_syn
