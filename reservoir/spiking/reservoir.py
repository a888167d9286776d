"""Liquid reservoirs for classification: ``lsm`` (fixed), ``lsm-stdp`` (STDP), ``nalsm`` (STDP + astrocyte).

Each sample is presented for ``presentation_ms`` as per-ms Bernoulli input spikes; the features are the
liquid's spike counts. The plastic kinds follow the NALSM schedule: stage 1 initialises the weights on
``n_init`` random training samples (``init_ms`` each, no decay, weights carried over); stage 2 restarts every
presentation from those weights with plasticity (eta, w_astro, b_astro, A) decaying x``decay`` per ms.
``lsm-stdp`` runs the same schedule with the astrocyte off (depression rate = eta).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from reservoir.progress import note
from reservoir.spiking import functional as F
from reservoir.spiking.device import resolve_device
from reservoir.spiking.liquid import Liquid, build_liquid
from reservoir.spiking.simulate import (
    INIT_SAMPLE_MS,
    PLASTICITY_DECAY,
    PRESENTATION_MS,
    Plasticity,
    SimResult,
    branching_factor,
    encoding_scale,
    initialise_weights,
    simulate_fixed,
    simulate_plastic,
    spike_probabilities,
)

F64 = NDArray[np.float64]

KINDS = ("lsm", "lsm-stdp", "nalsm")
DEFAULT_SIZE = 1000  # docs/methods.md: NALSM1000 / LSM1000
DEFAULT_BATCH = 250  # samples simulated at once (NALSM uses 250 for 1000-neuron liquids)
DEFAULT_N_INIT = (
    500  # stage-1 samples; on MNIST the bench uses the paper's 50000 (spiking.longrun.MNIST_N_INIT)
)
# Where stage 1 of lsm-stdp and nalsm starts: every weight magnitude at the bound (as in NALSM's code).
PLASTIC_W_START = 3.0
DEFAULT_BF_SAMPLES = 20  # samples per call whose rasters feed the branching factor (NALSM records 20/batch)


@dataclass(frozen=True)
class LiquidConfig:
    """Run options (durations in ms). ``w_astro`` None = 0.015 up to 1000 neurons, 0.0075 above.

    ``w_init``: magnitude of every initial weight (liquid and input; signs kept); None = the kind's default
    (:attr:`start_magnitude`): the liquid's +-1 for ``lsm``, the weight bound 3 for the plastic kinds, where
    stage 1 starts as in NALSM's own code (docs/spiking.md, "MNIST: where NALSM stands").
    ``input_gain``: multiplies the per-ms input spike probabilities (clipped at 1; 1 = the paper's encoding).
    ``device``: torch device of the simulation, cpu, cuda[:K] or auto (docs/spiking.md, "Devices"); it never
    changes the results on the CPU.
    """

    kind: str = "lsm"
    size: int = DEFAULT_SIZE
    presentation_ms: int = PRESENTATION_MS
    batch_size: int = DEFAULT_BATCH
    n_init: int = DEFAULT_N_INIT
    init_ms: int = INIT_SAMPLE_MS
    decay: float = PLASTICITY_DECAY
    eta_plus: float = F.ETA_PLUS
    w_astro: float | None = None
    bf_samples: int = DEFAULT_BF_SAMPLES
    backend: str = "event"  # fixed-weight simulation: "event" (fastest), "csr" (reference) or "dense"
    w_init: float | None = None
    input_gain: float = 1.0
    device: str = field(default="auto", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("size", "presentation_ms", "batch_size", "init_ms"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_init < 0 or self.bf_samples < 0:
            raise ValueError("n_init and bf_samples must be >= 0")
        if self.backend not in ("event", "csr", "dense"):
            raise ValueError(f"backend must be 'event', 'csr' or 'dense', got {self.backend!r}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")
        if not (self.input_gain > 0.0 and math.isfinite(self.input_gain)):
            raise ValueError(f"input_gain must be > 0, got {self.input_gain!r}")
        if self.w_init is not None and not (0.0 < self.w_init <= 3.0):
            raise ValueError(f"w_init must be in (0, 3] (the weight bounds), got {self.w_init!r}")
        resolve_device(self.device)  # a name this host cannot run fails here, before any work

    def stage1_options(self) -> dict[str, float]:
        """The options beyond the plasticity rates that change stage 1, where not at their default
        (checkpoints record them)."""
        out: dict[str, float] = {}
        if self.start_magnitude != 1.0:
            out["w_init"] = self.start_magnitude
        if self.input_gain != 1.0:
            out["input_gain"] = float(self.input_gain)
        return out

    @property
    def start_magnitude(self) -> float:
        """Magnitude of every initial weight: ``w_init``, else 3 (:data:`PLASTIC_W_START`) for the plastic
        kinds and 1 (the liquid's own +-1) for ``lsm``."""
        if self.w_init is not None:
            return float(self.w_init)
        return PLASTIC_W_START if self.plastic else 1.0

    @property
    def plastic(self) -> bool:
        """True for lsm-stdp and nalsm."""
        return self.kind != "lsm"

    def plasticity(self) -> Plasticity:
        """STDP/astrocyte settings for this kind and size."""
        w_astro = self.w_astro
        if w_astro is None:
            w_astro = F.W_ASTRO_1000 if self.size <= 1000 else F.W_ASTRO_8000
        return Plasticity(eta_plus=self.eta_plus, astro=self.kind == "nalsm", w_astro=w_astro)

    @classmethod
    def from_options(cls, kind: str, size: int | None, options: dict[str, Any]) -> LiquidConfig:
        """Build from free-form options (CLI ``spec.options``), converting types; unknown keys are errors."""
        known = {f.name for f in fields(cls)} - {"kind", "size"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown {kind} option(s) {sorted(unknown)}; allowed: {sorted(known)}")
        base = cls(kind=kind, size=size or DEFAULT_SIZE)
        conv: dict[str, Any] = {}
        for k, v in options.items():
            cur = getattr(base, k)
            if k in ("w_astro", "w_init"):
                conv[k] = None if v is None else float(v)
            elif isinstance(cur, (bool, str)):
                conv[k] = type(cur)(v)
            elif isinstance(cur, int):
                conv[k] = int(v)
            else:
                conv[k] = float(v)
        return replace(base, **conv)


class LiquidReservoir:
    """A spiking liquid as a sample reservoir: ``fit_transform(X_train)``, ``transform(X)``, ``info()``.

    X: (n_samples, n_inputs) non-negative intensities (the bench scales features to [0, 1]); features:
    (n_samples, size) spike counts (float64). The same seed gives the same liquid and the same spikes.
    """

    def __init__(self, n_inputs: int, config: LiquidConfig = LiquidConfig(), seed: int = 0) -> None:
        self.n_inputs = n_inputs
        self.config = config
        self.seed = seed
        self.state_dim = config.size
        self.liquid_: Liquid | None = None
        self.scale_: float | None = None
        self.w_init_: torch.Tensor | None = None
        self._calls = 0
        self._info: dict[str, Any] = {}

    def _generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + stream)

    def fit_transform(self, X: F64) -> F64:
        """Build the liquid, fix the input scale on X, run stage 1 (plastic kinds), return X's features."""
        return self.fit(X).transform(X)

    def fit(self, X: F64) -> LiquidReservoir:
        """Build the liquid, fix the input scale on X and run stage 1 (plastic kinds); no features."""
        X = self._check(X)
        t0 = time.perf_counter()
        dev = resolve_device(self.config.device)
        self.liquid_ = build_liquid(self.config.size, self.n_inputs, self.seed)
        self.scale_ = encoding_scale(X) / self.config.input_gain
        self._calls = 0
        start = self._start_liquid(self.liquid_)
        if self.config.plastic:
            gen = self._generator(0)
            rng = np.random.default_rng(self.seed + 7)
            n_init = self.config.n_init
            picks = rng.integers(0, X.shape[0], size=n_init) if X.shape[0] else np.zeros(0, dtype=np.int64)
            p = torch.from_numpy(spike_probabilities(X[picks], self.scale_))
            self.w_init_ = initialise_weights(
                start,
                p,
                gen,
                self.config.plasticity(),
                steps_per_sample=self.config.init_ms,
                method="event" if dev.type == "cpu" else "torch",  # the NumPy loop is CPU only
                device=dev,
            )
        else:
            self.w_init_ = torch.from_numpy(start.w0.copy())
        self._info["init_seconds"] = time.perf_counter() - t0
        return self

    def _start_liquid(self, liquid: Liquid) -> Liquid:
        """``liquid`` with the initial weight magnitudes of ``config.start_magnitude`` (itself at 1)."""
        magnitude = self.config.start_magnitude
        if magnitude == 1.0:
            return liquid
        return replace(liquid, w0=(np.sign(liquid.w0) * magnitude).astype(liquid.w0.dtype))

    def restore(self, w_init: NDArray[np.float32], scale: float) -> LiquidReservoir:
        """Set the state :meth:`fit` leaves (weights ``w_init_``, input ``scale_``), e.g. from a checkpoint of
        :mod:`reservoir.spiking.checkpoint`: :meth:`transform` then gives what it gives after :meth:`fit`."""
        self.liquid_ = build_liquid(self.config.size, self.n_inputs, self.seed)
        if w_init.shape != self.liquid_.w0.shape:
            raise ValueError(f"weights of shape {w_init.shape}, this liquid has {self.liquid_.w0.shape}")
        self.w_init_ = torch.from_numpy(np.array(w_init, dtype=self.liquid_.w0.dtype))
        self.scale_ = float(scale)
        self._calls = 0
        self._info["init_seconds"] = 0.0
        return self

    def transform(self, X: F64) -> F64:
        """Spike-count features (n_samples, size); fixed after fit_transform."""
        if self.liquid_ is None or self.scale_ is None or self.w_init_ is None:
            raise RuntimeError("call fit_transform first")
        X = self._check(X)
        self._calls += 1
        gen = self._generator(self._calls)
        cfg = self.config
        p_all = torch.from_numpy(spike_probabilities(X, self.scale_))
        out = np.zeros((X.shape[0], cfg.size), dtype=np.float64)
        bf = math.nan
        t0 = time.perf_counter()
        in_spikes = 0.0
        for start in range(0, X.shape[0], cfg.batch_size):
            note(f"{cfg.kind}: samples {start}/{X.shape[0]}")
            p = p_all[start : start + cfg.batch_size]
            record = cfg.bf_samples if start == 0 else 0
            res = self._simulate(p, gen, record)
            out[start : start + p.shape[0]] = res.counts.numpy()
            in_spikes += res.input_spikes
            if res.raster is not None:
                bf = branching_factor(res.raster, self.liquid_)
        seconds = time.perf_counter() - t0
        n = max(X.shape[0], 1)
        self._info.update(
            branching_factor=bf,
            mean_rate_hz=float(out.mean()) * 1000.0 / cfg.presentation_ms if X.shape[0] else math.nan,
            input_rate_hz=in_spikes / n / self.n_inputs * 1000.0 / cfg.presentation_ms,
            simulate_seconds=seconds,
            neuron_steps_per_second=X.shape[0] * cfg.size * cfg.presentation_ms / max(seconds, 1e-9),
        )
        return out

    def _simulate(self, p: torch.Tensor, gen: torch.Generator, record: int) -> SimResult:
        assert self.liquid_ is not None and self.w_init_ is not None
        cfg = self.config
        dev = resolve_device(cfg.device)
        if not cfg.plastic:
            return simulate_fixed(
                self.liquid_,
                p,
                cfg.presentation_ms,
                gen,
                weights=self.w_init_,
                record=record,
                backend=cfg.backend,
                device=dev,
            )
        return simulate_plastic(
            self.liquid_,
            p,
            cfg.presentation_ms,
            gen,
            cfg.plasticity(),
            w_start=self.w_init_,
            decay=cfg.decay,
            record=record,
            device=dev,
        )

    def _check(self, X: F64) -> F64:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"expected X of shape (n, {self.n_inputs}), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or inf")
        return X

    def info(self) -> dict[str, Any]:
        """Run facts for the report: kind, size, synapses, branching factor, rates (Hz), timings (s)."""
        d: dict[str, Any] = {"kind": self.config.kind, "config": asdict(self.config)}
        d["device"] = str(resolve_device(self.config.device))
        if self.liquid_ is not None:
            d["n_synapses"] = self.liquid_.n_syn
            d["n_recurrent_synapses"] = int(self.liquid_.recurrent.sum())
        d.update(self._info)
        return d


def softmax_readout(c: float = 1e3, max_iter: int = 2000) -> Any:
    """The paper's readout: softmax (multinomial logistic regression) on L1-normalised spike counts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    return make_pipeline(Normalizer(norm="l1"), StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
