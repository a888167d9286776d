"""Emulated BM1366 chains and boards: a bytes-in/bytes-out device core with a physical model, on ptys.

Public API: :class:`ChainCore` (no I/O, simulated seconds), :class:`SimulatedBoard` / :class:`BoardConfig`
(served on ptys), :class:`Knobs` (planted structure, off by default), :class:`PhysicsParams`,
:class:`Fault`, and :data:`DEFAULT_DIFFICULTY_SCALE`. See ``docs/emulator.md``.
"""

from simulator.board_spec import BoardConfig
from simulator.chain import ChainCore, Knobs
from simulator.faults import Fault
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.physics import PhysicsParams
from simulator.pty_server import SimulatedBoard

__all__ = [
    "DEFAULT_DIFFICULTY_SCALE",
    "BoardConfig",
    "ChainCore",
    "Fault",
    "Knobs",
    "PhysicsParams",
    "SimulatedBoard",
]
