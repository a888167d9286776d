"""Errors shared by the board part drivers."""

from __future__ import annotations


class PowerError(ValueError):
    """A setpoint outside a part's safe range, or an operation the board cannot do."""
