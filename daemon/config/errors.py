"""The one configuration error type."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; ``path`` is the dotted key path (``boards[0].safety.freq_max_mhz``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"config {path}: {message}")
