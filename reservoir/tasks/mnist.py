"""``--data mnist:DIR``: the four MNIST-layout IDX files of a directory as a classification task."""

from __future__ import annotations

from pathlib import Path

from reservoir.tasks.base import ClassificationTask, TaskDataError

#: ``--data`` prefix naming a directory of MNIST / Fashion-MNIST IDX files.
MNIST_PREFIX = "mnist:"


def is_mnist(data: str | None) -> bool:
    """``data`` names an IDX directory (``mnist:DIR``) rather than a file."""
    return bool(data) and str(data).startswith(MNIST_PREFIX)


def mnist_task(data: str, n_train: int | None = None, n_test: int | None = None) -> ClassificationTask:
    """``mnist:DIR`` -> the MNIST-layout IDX files of DIR as a task (first n_train / n_test samples)."""
    from reservoir.spiking.idx import load_mnist_dir  # NumPy only, no torch

    directory = data[len(MNIST_PREFIX) :]
    if not directory:
        raise TaskDataError("--data mnist:DIR needs a directory holding the four MNIST IDX files")
    path = Path(directory).expanduser()
    try:
        X_train, y_train, X_test, y_test = load_mnist_dir(path)
    except TaskDataError as exc:
        raise TaskDataError(f"--data {data}: {exc}") from exc
    for name, n in (("--n-train", n_train), ("--n-test", n_test)):
        if n is not None and n < 1:
            raise TaskDataError(f"{name} must be >= 1, got {n}")
    X_train, y_train = X_train[:n_train], y_train[:n_train]
    X_test, y_test = X_test[:n_test], y_test[:n_test]
    info = {"source": str(path), "input_max": 255.0}  # pixels / 255 for the liquids (docs/spiking.md)
    return ClassificationTask(f"mnist:{path.name}", X_train, y_train, X_test, y_test, info=info)
