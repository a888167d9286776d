"""The emulated board as the host sees it: what defines one (:class:`BoardConfig`) and the facts a host needs
to drive it (:data:`EMULATED_BOARD`).

The daemon consumes both in one place, ``daemon/sim_boards.py`` (docs/architecture.md §1): it builds its
bring-up timing, the modulation safety limits and the share-check scale from here, so no emulator fact is
repeated in the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.bitaxe_raw import DEFAULT_FIRMWARE
from simulator.chain import Knobs
from simulator.link import FTDI_LATENCY_S
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.physics import PhysicsParams
from simulator.plant import PlantSpec


@dataclass
class BoardConfig:
    """Everything that defines one emulated board (all reproducible from ``seed``)."""

    chips: int = 1
    seed: int = 0
    speed: float = 1.0
    link: str = "ideal"
    board_kind: str = "gamma"
    #: bitaxe-raw firmware variant answering the control port (simulator.bitaxe_raw.FIRMWARES).
    raw_firmware: str = DEFAULT_FIRMWARE
    difficulty_scale: float = DEFAULT_DIFFICULTY_SCALE
    firehose_rate: float | None = None
    #: Firehose only from chips holding a job, i.e. after the host's bring-up (ChainCore.firehose_needs_job).
    firehose_needs_job: bool = False
    knobs: Knobs = field(default_factory=Knobs)
    params: PhysicsParams = field(default_factory=PhysicsParams)
    ftdi_latency_s: float = FTDI_LATENCY_S
    record_truth: bool = False
    truth_path: str | None = None
    link_dir: str | None = None
    name: str = "board0"
    #: Garble bytes both ways while the host's pty speed (as set by e.g. pyserial) differs from the chain's
    #: baud by more than 5 %, like a real UART. Off by default: a pty opened raw reports 38400 baud.
    check_baud: bool = False
    #: Planted input-dependent dynamics (simulator/plant.py), none by default.
    plants: tuple[PlantSpec, ...] = ()


@dataclass(frozen=True)
class EmulatedBoardFacts:
    """Facts about the emulated board that a host driving it needs (units in the names)."""

    #: Board design emulated: TPS546 regulator + EMC2101 fan/temperature, like a Bitaxe Gamma.
    kind: str = "gamma"
    #: Chain bring-up waits (s) the emulator tolerates: it answers at once, so they can be short (the
    #: fields of ``drivers.chain.ChainTiming``).
    reset_hold_s: float = 0.01
    reset_settle_s: float = 0.01
    enum_gap_s: float = 0.2
    ramp_step_delay_s: float = 0.01
    baud_switch_delay_s: float = 0.01
    #: Frequency step rate the emulated PLL follows without harm (MHz/s): a step per slot is the point of a
    #: modulation experiment; on hardware the configured limits apply unchanged.
    freq_step_rate_mhz_s: float = 100_000.0
    #: Cool-down after an overheat before the emulated board may be driven again (s).
    cool_down_s: float = 5.0
    #: PMBus READ_VIN register and I2C address of the emulated TPS546 (docs/protocol.md).
    read_vin_register: int = 0x88
    tps546_address: int = 0x24
    #: Input voltage below which the emulated chain loses its state (chips back to reset), V.
    chain_lost_below_v: float = 4.5

    def chain_timing(self) -> dict[str, float]:
        """The bring-up waits as keyword arguments of ``drivers.chain.ChainTiming`` (s)."""
        return {
            "reset_hold_s": self.reset_hold_s,
            "reset_settle_s": self.reset_settle_s,
            "enum_gap_s": self.enum_gap_s,
            "ramp_step_delay_s": self.ramp_step_delay_s,
            "baud_switch_delay_s": self.baud_switch_delay_s,
        }

    @staticmethod
    def valid_scale(config: BoardConfig) -> float:
        """A nonce of ``config``'s board is valid when its share difficulty >= ticket difficulty * this."""
        return float(config.difficulty_scale)


#: The emulated board's facts (one instance: the emulator has one design).
EMULATED_BOARD = EmulatedBoardFacts()
