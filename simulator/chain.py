"""The emulated chain: bytes in, timed reply bytes out, driven by simulated time (no I/O).

``feed(host_bytes, t)`` hands host bytes to the chain at simulated time ``t`` (s); ``advance(t)``
returns every reply emitted up to ``t`` as ``(emit_time_s, reply_bytes)``. Nonces are a per-chip point
process integrated exactly with piecewise-constant rates (rates change only at physics grid points and at
host commands), so a run is a function of the seed and the host's command times, not of how often
``advance`` is called.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

import numpy as np

from drivers.frames import CommandFrame, decode
from drivers.registers import JOB_HEADER, Cmd
from simulator.chip import REG_FAST_UART, ChipState
from simulator.emission import Arrivals, NonceRecord, ReplyMaker
from simulator.mining import DEFAULT_DIFFICULTY_SCALE, Job, encode_reply, uart_baud
from simulator.physics import SMALL_CORES, ChainPhysics, PhysicsParams, error_fractions
from simulator.plant import Plants, PlantSpec

#: Physics grid (s): temperature, voltage slew, error model and planted knobs update at this step.
PHYSICS_STEP_S = 0.01
#: Delay from the end of a host command to the chip's reply (s); UART turnaround, assumption.
CMD_REPLY_LATENCY_S = 20e-6
#: Chips per chain accepted (docs/protocol.md: chains of 1..128 chips).
MAX_CHIPS = 128
_TWO32 = float(1 << 32)


@dataclass(frozen=True, slots=True)
class Knobs:
    """Planted structure, all OFF by default (default output: a homogeneous Poisson process per chip)."""

    #: Non-paralysable dead time after each nonce, per chip (s).
    dead_time_s: float = 0.0
    #: Slow rate drift: std-dev of an Ornstein-Uhlenbeck walk of the log rate (0 = off) ...
    drift_amplitude: float = 0.0
    #: ... and its correlation time (s).
    drift_period_s: float = 60.0
    #: Periodic rate modulation: relative amplitude of ``1 + A sin(2 pi t / P)`` (0 = off) ...
    modulation_amplitude: float = 0.0
    #: ... and its period (s); keep it >> the physics step (10 ms).
    modulation_period_s: float = 10.0
    #: Serial correlation of each chip's successive intervals (0 = off): the EAR(1) process of Gaver and
    #: Lewis (1980), ``e_n = rho * e_(n-1)`` plus, with probability ``1 - rho``, a fresh unit exponential, in
    #: rate-integrated time. Intervals stay exponential with lag-k autocorrelation ``rho**k``.
    serial_correlation: float = 0.0


@dataclass
class ChainStats:
    """Counters since start."""

    nonces: int = 0
    invalid: int = 0
    replies: int = 0
    commands: int = 0
    jobs: int = 0
    resets: int = 0
    brownouts: int = 0


class ChainCore:
    """N chips (1..128) behind one UART. Times are simulated seconds from 0."""

    def __init__(
        self,
        chips: int = 1,
        seed: int = 0,
        params: PhysicsParams | None = None,
        knobs: Knobs | None = None,
        difficulty_scale: float = DEFAULT_DIFFICULTY_SCALE,
        firehose_rate: float | None = None,
        physics_step_s: float = PHYSICS_STEP_S,
        record_nonces: bool = False,
        firehose_needs_job: bool = False,
        plants: tuple[PlantSpec, ...] = (),
        truth_only: bool = False,
    ) -> None:
        if not 1 <= chips <= MAX_CHIPS:
            raise ValueError(f"chips must be 1..{MAX_CHIPS}, got {chips}")
        if difficulty_scale <= 0:
            raise ValueError(f"difficulty_scale must be > 0, got {difficulty_scale}")
        self.n = chips
        self.seed = seed
        self.params = params or PhysicsParams()
        self.knobs = knobs or Knobs()
        self.difficulty_scale = difficulty_scale
        self.firehose_rate = firehose_rate
        #: Firehose only from chips that hold a job (as real chips: nothing before bring-up sends work), so
        #: a saturating firehose cannot starve the bring-up exchange on a slow link.
        self.firehose_needs_job = firehose_needs_job
        self.step_s = physics_step_s
        self.chips = [ChipState(i) for i in range(chips)]
        self.physics = ChainPhysics(self.params, chips, seed)
        self.physics.settle(self._freqs())
        #: Planted input-dependent dynamics (simulator/plant.py), none by default.
        self.plants = Plants(plants, chips)
        self.stats = ChainStats()
        self.record_nonces = record_nonces or truth_only
        #: Record nonces as ground truth only: no share search, no reply bytes (simulator/slots.py).
        self.truth_only = truth_only
        self.nonce_log: list[NonceRecord] = []
        self._rngs = [random.Random(f"asicrc-sim:{seed}:{i}") for i in range(chips)]
        self._replies = ReplyMaker(self._rngs, difficulty_scale)
        self._np_rng = np.random.default_rng([seed, 0xD21F])
        self._arrivals = Arrivals(self._rngs, self.knobs.dead_time_s, self.knobs.serial_correlation)
        self._rate = np.zeros(chips)
        self._p_invalid = np.zeros(chips)
        self._drift = np.zeros(chips)
        self._hashes = np.zeros(chips)
        self._freq = np.zeros(chips)
        self._tdiff = np.ones(chips)
        self._eligible = np.zeros(chips, dtype=bool)
        self._live = np.ones(chips, dtype=bool)
        self._t = 0.0
        self._next_grid = physics_step_s
        self._out: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._inbuf = bytearray()
        self._addr_cursor: int | None = None
        self._reset_held = False
        self._browned = False
        self._sync_chips()

    # ---- public state ---------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Simulated time (s) the chain has been advanced to."""
        return self._t

    @property
    def baud(self) -> float:
        """Line rate of the chain's UART (baud), from chip 0's fast-UART register."""
        return uart_baud(self.chips[0].regs[REG_FAST_UART])

    @property
    def in_reset(self) -> bool:
        """True while the reset line is held or the supply is below the brown-out floor."""
        return self._reset_held or self._browned

    def rates(self) -> list[float]:
        """Current nonce rate per chip (1/s)."""
        return [float(r) for r in self._rate]

    def expected_rate(self, chip: int) -> float:
        """Physical rate (1/s) without errors or knobs: ``f * 894 / (ticket difficulty * 2^32)``."""
        c = self.chips[chip]
        return c.freq_hz * SMALL_CORES / (c.ticket_diff * _TWO32)

    # ---- host side ------------------------------------------------------------------------------------
    def feed(self, data: bytes, t: float) -> None:
        """Host bytes arriving at simulated time ``t`` (s); whole frames take effect at ``t``."""
        self._run_to(t)
        if self.in_reset:
            self._inbuf.clear()
            return
        buf = self._inbuf
        buf += data
        pos = 0
        while pos < len(buf):
            frame, used = decode(buf, pos)
            if used == 0:
                break
            if frame is not None:
                raw = bytes(buf[pos : pos + used])
                if raw[:2] == b"\x55\xaa":
                    if raw[2] == JOB_HEADER:
                        self._on_job(Job.from_frame(raw))
                    elif isinstance(frame, CommandFrame):
                        self._on_command(frame, t)
            pos += used
        del buf[:pos]

    def advance(self, t: float) -> list[tuple[float, bytes]]:
        """Run to ``t`` (s); return the replies emitted at or before ``t``, in emission order."""
        self._run_to(t)
        out: list[tuple[float, bytes]] = []
        heap = self._out
        while heap and heap[0][0] <= t:
            te, _, data = heapq.heappop(heap)
            out.append((te, data))
        return out

    def next_event_time(self) -> float:
        """Earliest time (s) a reply may be emitted, assuming rates hold until the next physics grid point."""
        best = self._out[0][0] if self._out else math.inf
        best = min(best, self._arrivals.next_time(self._rate, self._t))
        return min(best, self._next_grid) if math.isfinite(best) else self._next_grid

    def advance_physics(self, t: float) -> None:
        """Run the model to ``t`` (s) without taking replies (they stay queued for :meth:`advance`)."""
        self._run_to(t)

    def active_freqs(self) -> np.ndarray:
        """Hash clock per chip (Hz), zero while the chain is in reset."""
        return np.zeros(self.n) if self.in_reset else self._freq

    # ---- board side -----------------------------------------------------------------------------------
    def set_reset_line(self, high: bool, t: float) -> None:
        """ASIC reset GPIO: low holds every chip in reset (silent, back to reset state); high releases."""
        self._run_to(t)
        if not high:
            self._reset_all()
        self._reset_held = not high
        self._sync_chips()

    def set_voltage(self, volts: float, t: float) -> None:
        """New regulator setpoint (V); the output slews at ``slew_v_per_s``."""
        self._run_to(t)
        self.physics.v_target = volts

    def set_power(self, on: bool, t: float) -> None:
        """Regulator output on/off (off slews to 0 V and browns the chain out)."""
        self._run_to(t)
        self.physics.powered = on

    def set_fan(self, duty: float, t: float) -> None:
        """Fan duty (0-1)."""
        self._run_to(t)
        self.physics.fan_duty = min(max(duty, 0.0), 1.0)

    # ---- faults ----------------------------------------------------------------------------------------
    def stick_chip(self, chip: int, stuck: bool, t: float) -> None:
        """A hung chip: no nonces and no register replies until reset (or ``stuck=False``)."""
        self._run_to(t)
        self.chips[chip].stuck = stuck
        self._sync_chips()

    def reset_chip(self, chip: int | None, t: float) -> None:
        """Spontaneous reset of one chip (or all with None): reset registers, address 0, no job."""
        self._run_to(t)
        targets = range(self.n) if chip is None else [chip]
        for i in targets:
            self.chips[i].reset()
            self._hashes[i] = 0.0
        self.stats.resets += 1
        self._sync_chips()

    def overheat(self, temp_c: float, chip: int | None, t: float) -> None:
        """Force chip temperature(s) to ``temp_c`` (C); they relax back with the thermal time constant."""
        self._run_to(t)
        if chip is None:
            self.physics.temp_c[:] = temp_c
        else:
            self.physics.temp_c[chip] = temp_c
        self._sync_chips()

    # ---- internals -------------------------------------------------------------------------------------
    def _freqs(self) -> np.ndarray:
        return np.array([c.freq_hz for c in self.chips])

    def _sync_chips(self) -> None:
        """Refresh the per-chip arrays from the chip objects (after any register, job or fault change)."""
        chips = self.chips
        self._freq = self._freqs()
        self._tdiff = np.array([float(c.ticket_diff) for c in chips])
        self._live = np.array([not c.stuck for c in chips])
        self._eligible = self._live & np.array([c.job is not None for c in chips])
        self._update_rates()

    def _emit(self, t: float, data: bytes) -> None:
        self._seq += 1
        self.stats.replies += 1
        heapq.heappush(self._out, (t, self._seq, data))

    def _reset_all(self) -> None:
        for c in self.chips:
            c.reset()
        self._addr_cursor = None
        self._inbuf.clear()
        self._hashes[:] = 0.0
        self.stats.resets += 1
        self._sync_chips()

    def _targets(self, frame: CommandFrame) -> list[ChipState]:
        live = [c for c in self.chips if not c.stuck]
        if frame.broadcast:
            return live
        return [c for c in live if c.address == frame.chip_addr]

    def _on_job(self, job: Job) -> None:
        self.stats.jobs += 1
        for c in self.chips:
            if not c.stuck:
                c.job = job
                c.jobs_seen += 1
        self._sync_chips()

    def _on_command(self, frame: CommandFrame, t: float) -> None:
        self.stats.commands += 1
        if frame.cmd == Cmd.CHAIN_INACTIVE:
            for c in self.chips:
                c.inactive = True
            self._addr_cursor = 0
        elif frame.cmd == Cmd.SET_ADDRESS:
            if self._addr_cursor is not None and self._addr_cursor < self.n:
                chip = self.chips[self._addr_cursor]
                chip.address = frame.chip_addr
                self._addr_cursor += 1
        elif frame.cmd == Cmd.WRITE_REGISTER:
            assert frame.value is not None
            for c in self._targets(frame):
                effect = c.write(frame.reg, frame.value)
                if effect == "pll":
                    self._arrivals.hold(c.index, t + self.params.pll_relock_s)
            self._sync_chips()
        elif frame.cmd == Cmd.READ_REGISTER:
            te = t + CMD_REPLY_LATENCY_S
            for c in self._targets(frame):
                c.hashes_done = float(self._hashes[c.index])
                value = c.read(frame.reg)
                data = encode_reply(value.to_bytes(4, "big"), c.address, frame.reg, 0, False, c.reply_len)
                self._emit(te, data)

    def _run_to(self, t: float) -> None:
        while self._t < t:
            seg_end = min(t, self._next_grid)
            self._consume(self._t, seg_end)
            self._t = seg_end
            if seg_end >= self._next_grid:
                self._grid_step()

    def _grid_step(self) -> None:
        dt = self.step_s
        freqs = self._freq
        self._hashes += np.where(self._rate > 0, freqs * SMALL_CORES * dt, 0.0)
        active = np.where(self.in_reset, 0.0, freqs)
        self.physics.step(dt, active)
        if self.plants:
            self.plants.step(dt, active, self.physics)
        browned = self.physics.browned_out
        if browned and not self._browned:
            self._reset_all()
            self.stats.brownouts += 1
        self._browned = browned
        k = self.knobs
        if k.drift_amplitude > 0:
            a = dt / k.drift_period_s
            noise = self._np_rng.standard_normal(self.n)
            self._drift += -self._drift * a + k.drift_amplitude * math.sqrt(2 * a) * noise
        self._next_grid += dt
        self._update_rates()

    def _update_rates(self) -> None:
        """Recompute every chip's nonce rate (1/s) and invalid fraction from the current state."""
        n = self.n
        if self.in_reset:
            self._rate = np.zeros(n)
            return
        if self.firehose_rate is not None:
            mask = self._eligible if self.firehose_needs_job else self._live
            self._rate = np.where(mask, self.firehose_rate / n, 0.0)
            self._p_invalid = np.zeros(n)
            return
        freqs = self._freq
        tdiff = self._tdiff
        p_inv, mult = error_fractions(self.params, freqs, self.physics.limits_hz())
        rate = freqs * SMALL_CORES / (tdiff * _TWO32) * mult
        k = self.knobs
        if k.modulation_amplitude > 0:
            phase = 2 * math.pi * self._t / k.modulation_period_s
            rate = rate * max(0.0, 1.0 + k.modulation_amplitude * math.sin(phase))
        if k.drift_amplitude > 0:
            rate = rate * np.exp(self._drift)
        if self.plants:
            rate, p_inv = self.plants.apply(rate, p_inv)
        self._rate = np.where(self._eligible, rate, 0.0)
        self._p_invalid = p_inv

    def _consume(self, t0: float, t1: float) -> None:
        """Integrate the hazards over ``[t0, t1)`` at constant rates, emitting every nonce in it."""
        self._arrivals.consume(self._rate, t0, t1, self._nonce)

    def _nonce(self, i: int, t: float) -> None:
        chip = self.chips[i]
        rng = self._rngs[i]
        job = chip.job
        job_id = job.job_id if job is not None else 0
        small = rng.getrandbits(3)
        if self.firehose_rate is not None:
            self._emit(t, self._replies.firehose(chip, job_id, small))
            self.stats.nonces += 1
            return
        if job is None:
            return
        valid = rng.random() >= self._p_invalid[i]
        if self.truth_only:
            self.stats.nonces += 1
            self.stats.invalid += not valid
            self.nonce_log.append(NonceRecord(t, i, (rng.randrange(112) << 25) | rng.getrandbits(25), valid))
            return
        nonce, reply = self._replies.share(chip, job, valid, small)
        if not valid:
            chip.nonce_errors += 1
            self.stats.invalid += 1
        self.stats.nonces += 1
        if self.record_nonces:
            self.nonce_log.append(NonceRecord(t, i, nonce, valid))
        self._emit(t, reply)
