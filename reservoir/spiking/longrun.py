"""Classification with a spiking liquid over seeds, made for long runs (docs/spiking.md, "Long runs").

:func:`classify_liquid` gives the result :func:`reservoir.bench.run_bench` gives for ``lsm``, ``lsm-stdp`` and
``nalsm`` on a :class:`ClassificationTask` (same seeds, same features, same ridge readout), and adds:

* the paper's input encoding when the task says its inputs are bounded intensities
  (``task.info["input_max"]``, 255 for MNIST pixels): ``x / input_max`` instead of the bench's per-column
  MinMax scaling, which maps the constant (always black) border pixels to 0.5 and makes the liquid fire ~4x
  more;
* ``n_init`` = :data:`MNIST_N_INIT` (the paper's 50,000 stage-1 samples) when the task is MNIST and no
  ``n_init`` option is given;
* stage-1 checkpoints (``save_liquid`` / ``load_liquid`` directories, one file per kind, size and seed);
* a feature cache (``cache`` directory): each seed's train/test features are written as soon as they exist,
  so a killed run resumes without recomputing finished seeds, and a readout can be refitted (``readout``:
  ``ridge`` as the bench, or ``softmax`` as the paper) without resimulating; the cache directory also keeps
  the stage-1 checkpoints, so a seed killed during stage 2 restarts after stage 1;
* progress notes per seed (the liquids add stage-1 samples and stage-2 batches).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from reservoir.bench import BenchResult, _ci_list, _Std
from reservoir.readout import RidgeClassifierReadout
from reservoir.spiking import checkpoint as ck
from reservoir.tasks import ClassificationTask, MinMaxScaler, accuracy, make_task

if TYPE_CHECKING:
    from reservoir.spiking.reservoir import LiquidReservoir

F64 = NDArray[np.float64]
READOUTS = ("ridge", "softmax")
MNIST_N_INIT = 50_000  # stage-1 samples on MNIST, the paper's (docs/spiking.md)


@dataclass(frozen=True)
class LongRun:
    """Where the files of a long run go (None: not used) and which readout to fit."""

    cache: Path | None = None
    save_liquid: Path | None = None
    load_liquid: Path | None = None
    readout: str = "ridge"

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")


def is_mnist(tk: ClassificationTask) -> bool:
    """True for tasks read by ``--data mnist:DIR`` (their name starts with ``mnist:``)."""
    return tk.name.startswith("mnist:")


def encode(tk: ClassificationTask) -> tuple[F64, F64, str]:
    """(train inputs, test inputs, encoding name): ``x / input_max`` when the task gives ``input_max`` (the
    paper's MNIST encoding, pixels / 255), else the bench's MinMax scaling fitted on the training split."""
    top = tk.info.get("input_max")
    if top is not None:
        top = float(top)
        return (
            np.clip(np.asarray(tk.X_train, dtype=np.float64) / top, 0.0, 1.0),
            np.clip(np.asarray(tk.X_test, dtype=np.float64) / top, 0.0, 1.0),
            f"x/{top:g}",
        )
    scaler = MinMaxScaler.fit(tk.X_train, 0.0, 1.0)
    return scaler.transform(tk.X_train), scaler.transform(tk.X_test), "minmax"


def liquid_options(tk: ClassificationTask, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` plus the MNIST default ``n_init`` (:data:`MNIST_N_INIT`) when the task is MNIST."""
    opts = dict(options or {})
    if is_mnist(tk) and "n_init" not in opts:
        opts["n_init"] = MNIST_N_INIT
    return opts


def _params(res: LiquidReservoir, stage1_data: str) -> dict[str, Any]:
    """What stage 1 depends on: the liquid (kind, size, inputs, seed), its schedule and the training data."""
    c = res.config
    return {
        "kind": c.kind,
        "size": c.size,
        "n_inputs": res.n_inputs,
        "seed": res.seed,
        "n_init": c.n_init if c.plastic else 0,
        "init_ms": c.init_ms if c.plastic else 0,
        "plasticity": asdict(c.plasticity()) if c.plastic else None,
        "train_data": stage1_data,
        **c.stage1_options(),  # w_init / input_gain, only where not at their defaults
    }


def _fit_liquid(
    res: LiquidReservoir, Xtr: F64, params: dict[str, Any], run: LongRun, say: Callable[[str], None]
) -> None:
    """Stage 1 from a checkpoint (load_liquid, or the cache's), else simulated (and saved where asked)."""
    c = res.config
    cached = ck.liquid_path(run.cache, c.kind, c.size, res.seed) if run.cache else None
    if run.load_liquid is not None:
        w, scale = ck.load_liquid(ck.liquid_path(run.load_liquid, c.kind, c.size, res.seed), params)
        res.restore(w, scale)
    elif cached is not None and cached.exists():
        say(f"stage 1 from {cached}")
        res.restore(*ck.load_liquid(cached, params))
    else:
        res.fit(Xtr)
    assert res.w_init_ is not None and res.scale_ is not None
    for directory in (run.save_liquid, run.cache):
        if directory is not None:
            path = ck.liquid_path(directory, c.kind, c.size, res.seed)
            if path != cached or not path.exists():
                ck.save_liquid(path, params, res.w_init_.numpy(), res.scale_)


def _features(
    tk: ClassificationTask,
    Xtr: F64,
    Xte: F64,
    kind: str,
    size: int | None,
    seed: int,
    options: dict[str, Any],
    run: LongRun,
    data: tuple[str, str],
    say: Callable[[str], None],
) -> tuple[F64, F64, dict[str, Any], bool]:
    """(train features, test features, info, from the cache) of one seed."""
    from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir

    res = LiquidReservoir(Xtr.shape[1], LiquidConfig.from_options(kind, size, options), seed)
    params = _params(res, data[0])
    # any device gives the same features; w_init / input_gain only where set (older caches stay valid)
    config = {k: v for k, v in asdict(res.config).items() if k not in ("device", "w_init", "input_gain")}
    config.update(res.config.stage1_options())
    fparams = {**params, "config": config, "test_data": data[1]}
    fpath = ck.features_path(run.cache, res.config.kind, res.config.size, seed) if run.cache else None
    if fpath is not None and fpath.exists():
        Ftr, Fte, info = ck.load_features(fpath, fparams)
        say(f"features from {fpath}")
        return Ftr, Fte, info, True
    _fit_liquid(res, Xtr, params, run, say)
    Ftr = res.transform(Xtr)
    Fte = res.transform(Xte)
    info = res.info()
    if fpath is not None:
        ck.save_features(fpath, fparams, Ftr, Fte, info)
    return Ftr, Fte, info, False


def fit_readout(readout: str, Ftr: F64, y_train: NDArray[Any], Fte: F64) -> tuple[NDArray[Any], Any]:
    """Test predictions and the readout's regularisation: ``ridge`` (the bench's, standardised counts, CV
    alpha) or ``softmax`` (the paper's: softmax on L1-normalised counts)."""
    if readout == "softmax":
        from reservoir.spiking.reservoir import softmax_readout

        clf = softmax_readout().fit(Ftr, y_train)
        return np.asarray(clf.predict(Fte)), None
    std = _Std(Ftr)
    ridge = RidgeClassifierReadout(alpha="cv").fit(std(Ftr), y_train)
    return np.asarray(ridge.predict(std(Fte))), ridge.alpha_


def classify_liquid(
    tk: ClassificationTask,
    kind: str,
    size: int | None = None,
    seeds: int | Sequence[int] = 1,
    options: dict[str, Any] | None = None,
    run: LongRun = LongRun(),
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run liquid ``kind`` on ``tk`` for each seed (see the module docstring); the summary has the keys of
    :func:`reservoir.bench.run_bench`'s plus ``encoding``, ``readout``, ``n_init`` and ``resumed_seeds``;
    ``extra["reservoir_info"]`` holds each seed's ``info()``."""
    from reservoir.spiking.reservoir import LiquidConfig

    t0 = time.perf_counter()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    opts = liquid_options(tk, options)
    cfg = LiquidConfig.from_options(kind, size, opts)  # bad options fail before any work
    Xtr, Xte, encoding = encode(tk)
    data = (ck.digest(Xtr), ck.digest(Xte))
    values: list[float] = []
    alphas: list[Any] = []
    infos: list[dict[str, Any]] = []
    resumed: list[int] = []
    first_pred: NDArray[Any] = np.zeros(0)
    state_dim = 0
    for i, seed in enumerate(seed_list):
        head = f"{tk.name} x {kind}: seed {seed} ({i + 1}/{len(seed_list)})"

        def say(msg: str, head: str = head) -> None:
            if progress:
                progress(f"{head}: {msg}")

        say("simulating")
        Ftr, Fte, info, was_cached = _features(tk, Xtr, Xte, kind, size, seed, opts, run, data, say)
        if was_cached:
            resumed.append(seed)
        say(f"{run.readout} readout")
        pred, alpha = fit_readout(run.readout, Ftr, tk.y_train, Fte)
        values.append(accuracy(pred, tk.y_test))
        alphas.append(alpha)
        infos.append(info)
        state_dim = int(Ftr.shape[1])
        if i == 0:
            first_pred = pred
    summary: dict[str, Any] = {
        "task": tk.name,
        "reservoir": kind,
        "metric": "accuracy",
        "value": float(np.mean(values)),
        "ci95": _ci_list(values, (0.0, 1.0)),
        "seeds": seed_list,
        "per_seed": values,
        "n_train": len(tk.y_train),
        "n_test": len(tk.y_test),
        "washout": 0,
        "state_dim": state_dim,
        "size": size,
        "alpha": alphas,
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "n_classes": tk.n_classes,
        "chance": float(np.max(np.bincount(tk.y_test)) / len(tk.y_test)),
        "encoding": encoding,
        "readout": run.readout,
        "n_init": int(cfg.n_init) if cfg.plastic else None,  # lsm has no stage 1
        "resumed_seeds": resumed,
    }
    return BenchResult(summary, np.asarray(tk.y_test), first_pred, {"reservoir_info": infos})


def long_run(
    args: Any, task: str | ClassificationTask | Any, task_options: dict[str, Any], kinds: Sequence[str]
) -> Callable[[dict[str, Any], Callable[[str], None] | None], BenchResult] | None:
    """For ``asicrc bench``: ``(options, progress) -> result`` of :func:`classify_liquid` when ``args`` (its
    namespace: reservoir, task, size, seeds, cluster, cache, save_liquid, load_liquid, readout) asks a liquid
    of ``kinds`` for a classification task without a cluster; None (run_bench's job) otherwise.
    ValueError when the long-run flags are given where they do not apply."""
    paths = {k: getattr(args, k, None) for k in ("cache", "save_liquid", "load_liquid")}
    readout = getattr(args, "readout", "ridge")
    flags = any(paths.values()) or readout != "ridge"
    tk: Any = None
    if args.reservoir in kinds and args.cluster is None:
        tk = make_task(task, **task_options) if isinstance(task, str) else task
    if not isinstance(tk, ClassificationTask):
        if flags:
            raise ValueError(
                "--cache/--save-liquid/--load-liquid/--readout apply to lsm, lsm-stdp and nalsm on "
                "classification tasks without --cluster"
            )
        return None
    run = LongRun(**{k: Path(v).expanduser() if v else None for k, v in paths.items()}, readout=readout)

    def go(options: dict[str, Any], progress: Callable[[str], None] | None) -> BenchResult:
        return classify_liquid(tk, args.reservoir, args.size, args.seeds, options, run, progress)

    return go
