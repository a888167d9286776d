"""Board supervisor pieces in-process: reply batches -> event columns, the gate, writes to the board, health.

No real sleeps: loopback transports, injected clocks and sleeps.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import BoardConfig, SafetyLimits, TimingConfig
from daemon.events import Pipeline
from daemon.link_health import HealthError
from daemon.safety import Mode, Output, Setpoint, Source, Telemetry
from daemon.setpoint_writer import writable_freq
from daemon.state import BoardState
from daemon.supervisor import BoardSupervisor
from drivers import chipmath
from drivers.chain import REG_PLL0, Chain
from drivers.frames import CommandFrame, NonceReply, decode
from drivers.registers import Cmd
from drivers.transport import LoopbackTransport, loopback_pair
from simulator.chain import ChainCore

LIM = SafetyLimits(freq_step_rate_mhz_s=1000.0)
BOARD = BoardConfig(name="b0", kind="gamma", data_port="/dev/null", chips=2, safety=LIM)


@dataclass
class FakeClock:
    t_ns: int = 1_000_000_000

    def __call__(self) -> int:
        return self.t_ns


@dataclass
class FakeControl:
    """Records what the board's regulator, fan and reset line were told."""

    voltages: list[float] = field(default_factory=list)
    fans: list[float] = field(default_factory=list)
    resets: list[bool] = field(default_factory=list)
    telemetry: Telemetry = field(default_factory=Telemetry)

    @property
    def reset_line(self) -> FakeControl:
        return self

    @property
    def has_reset(self) -> bool:
        return True

    async def set_reset(self, asserted: bool) -> None:
        self.resets.append(asserted)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_core_voltage(self, volts: float) -> None:
        self.voltages.append(volts)

    async def set_fan(self, pct: float) -> None:
        self.fans.append(pct)

    async def read_telemetry(self) -> Telemetry:
        return self.telemetry


def make_sup(
    clock: FakeClock | None = None, valid_scale: float = 1e-30, **kw: object
) -> tuple[BoardSupervisor, Pipeline, FakeControl]:
    clock = clock or FakeClock()
    pipe = Pipeline(clock=clock)
    ctl = FakeControl()
    sup = BoardSupervisor(
        BOARD,
        TimingConfig(**kw),  # type: ignore[arg-type]
        pipe,
        BoardState("b0", chips=2),
        lambda: LoopbackTransport(),
        control=ctl,
        clock=clock,
        valid_scale=valid_scale,
    )
    return sup, pipe, ctl


def test_writable_freq_never_above_the_request_nor_below_the_floor() -> None:
    for f in (50.0, 62.3, 400.0, 485.0, 487.9, 575.0):
        w = writable_freq(f, 50.0)
        assert w <= f + 1e-9 and w >= 50.0 - 1e-9
        assert chipmath.pll_for_frequency(w).freq_mhz == pytest.approx(w)


async def test_replies_become_event_columns_with_read_times_and_structure() -> None:
    sup, pipe, _ = make_sup()
    sub = pipe.subscribe("t", 16, logs=False)
    host, _dev = loopback_pair(baud=1_000_000)
    job = sup.jobs.next_job()  # job id 0
    sup.applied = Setpoint(1.2, 485.0, 1.0)
    sup.point = 3
    # nonce bits: core 5 (bits 31-25), chip bits 0x80 -> chip 1 of 2 (bits 24-17)
    n1 = (5 << 25) | (0x80 << 17) | 0x1234
    r1 = NonceReply(n1, 0, job.job_id | 3, 0x0001).encode()
    r2 = NonceReply(0x00000007, 0, 0x40 | 1, 0).encode()  # job id 0x40 was never sent: share 0, invalid
    host.inject(r1 + r2, t_host_ns=5_000_000_000)
    host.inject(r1[:4], t_host_ns=5_100_000_000)  # half a frame: completed by the next read
    host.inject(r1[4:], t_host_ns=5_200_000_000)
    task = asyncio.create_task(sup.stream(host))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sup.events.publish()
    batch = sub.get_nowait()
    assert batch is not None and batch.num_rows == 3
    c = batch.to_pydict()
    wire_11 = 11 * 10 * 1000  # ns for 11 bytes at 1 Mbaud
    assert c["t_host_ns"] == [5_000_000_000, 5_000_000_000, 5_200_000_000]
    assert c["t_ns"] == c["t_host_ns"]  # the raw read time; the correction is a separate column
    assert c["t_wire_ns"] == [5_000_000_000 - wire_11, 5_000_000_000, 5_200_000_000]
    assert c["read_pos"] == [0, 1, 0] and c["read_nonces"] == [2, 2, 1]
    assert c["read_id"][0] == c["read_id"][1] != c["read_id"][2]
    assert c["core"][0] == 5 and c["chip"][0] == 1 and c["small_core"][0] == 3
    assert c["job_id"] == [0, 0x40, 0]
    assert c["version_bits"][0] == 1
    assert c["valid"] == [True, False, True]
    assert c["share_diff"][1] == 0.0 and c["share_diff"][0] > 0.0
    assert c["freq_mhz"] == [485.0] * 3 and c["point"] == [3] * 3
    assert c["board"] == ["b0"] * 3
    assert sup.counters.nonces == 3 and sup.counters.published_rows == 3


async def test_windows_count_what_is_published() -> None:
    sup, _, _ = make_sup()
    host, _ = loopback_pair(baud=1_000_000)
    sup.applied = Setpoint(1.2, 485.0, 4.0)
    acc = sup.open_window()
    host.inject(NonceReply(1, 0, 0, 0).encode() * 4)
    task = asyncio.create_task(sup.stream(host))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sup.close_window(acc)
    assert acc.nonces == 4 and acc.invalid == 4  # no job sent: none can be valid


def test_request_goes_through_the_gate_and_is_counted() -> None:
    sup, pipe, _ = make_sup()
    sub = pipe.subscribe("t", 16, events=False)
    d = sup.request(Setpoint(1.5, 900.0, 1.0), 7)
    assert d.outcome == "clamped"
    assert sup.point == 7
    assert sup.state.safety[("clamped", "voltage_above_max")] == 1
    assert sup.state.safety[("clamped", "freq_above_max")] == 1
    d = sup.request(Setpoint(0.0, 400.0, 1.0), 8, Source.COMMAND)
    assert d.outcome == "refused" and sup.point == 7
    kinds = [b.column("kind")[0].as_py() for b in sub.drain()]
    assert kinds == ["safety", "safety"]


async def _chain() -> tuple[Chain, LoopbackTransport]:
    host, dev = loopback_pair(baud=1_000_000)
    return Chain(host), dev


def _pll_writes(dev: LoopbackTransport) -> list[float]:
    out = []
    data = b"".join(b.data for b in _drain(dev))
    pos = 0
    while pos < len(data):
        frame, used = decode(data, pos)
        if used == 0:
            break
        if isinstance(frame, CommandFrame) and frame.cmd == Cmd.WRITE_REGISTER and frame.reg == REG_PLL0:
            assert frame.value is not None
            out.append(chipmath.frequency_from_pll(frame.value))
        pos += used
    return out


def _drain(dev: LoopbackTransport) -> list:  # type: ignore[type-arg]
    out = []
    q = dev._queue
    while not q.empty():
        b = q.get_nowait()
        if b is not None:
            out.append(b)
    return out


async def test_apply_writes_pll_voltage_and_holds_reset_in_overheat() -> None:
    sup, _, ctl = make_sup()
    chain, dev = await _chain()
    sup.applied = Setpoint(1.1, 50.0, 256.0)
    await sup.writer.apply(chain, Output(Setpoint(1.2, 485.0, 256.0), 100.0, False, Mode.NORMAL))
    assert _pll_writes(dev) == [pytest.approx(chain.freq_mhz)]
    assert chain.freq_mhz <= 485.0
    assert ctl.voltages == [1.2]
    assert sup.state.freq_mhz == chain.freq_mhz
    await sup.writer.apply(chain, Output(Setpoint(0.0, 50.0, 256.0), 100.0, True, Mode.OVERHEAT))
    assert _pll_writes(dev) == [pytest.approx(50.0)]  # PLL down before the reset is held
    assert ctl.voltages[-1] == 0.0 and ctl.resets == [True]
    await sup.writer.apply(chain, Output(Setpoint(0.0, 50.0, 256.0), 100.0, True, Mode.OVERHEAT))
    assert ctl.resets == [True]  # no repeats


async def test_silence_leads_to_a_probe_then_a_reconnect() -> None:
    clock = FakeClock()

    async def sleep(s: float) -> None:
        clock.t_ns += int(s * 1e9)
        await asyncio.sleep(0)

    sup, _, _ = make_sup(clock, silence_timeout_s=1.0, control_tick_s=0.1)
    sup.sleep = sleep
    chain, dev = await _chain()
    sup.applied = sup.envelope.safe_output().setpoint
    sup.health.last_rx_ns = clock()
    with pytest.raises(HealthError, match="no bytes"):
        await sup._control_loop(chain)
    frames = [decode(b.data, 0)[0] for b in _drain(dev)]
    probes = [f for f in frames if isinstance(f, CommandFrame) and f.cmd == Cmd.READ_REGISTER]
    assert len(probes) == 1


# ---------------------------------------------------------------------------------------------- property

finite = st.floats(min_value=-10.0, max_value=2000.0) | st.sampled_from([math.nan, math.inf, 0.0])
requests = st.tuples(
    st.just("request"), st.builds(Setpoint, finite, finite, st.sampled_from([1.0, 256.0, 0.5]))
)
advances = st.tuples(st.just("advance"), st.floats(0.0, 40.0))
actions = st.one_of(
    requests,
    advances,
    requests,
    advances,
    st.tuples(
        st.just("telemetry"),
        st.builds(Telemetry, st.none() | st.floats(0, 120), st.none() | st.floats(0, 140)),
    ),
    st.tuples(st.just("vin"), st.floats(3.0, 6.0)),
    st.tuples(
        st.just("fault"),
    ),
)


@settings(max_examples=60)
@given(st.lists(actions, min_size=4, max_size=40))
def test_the_chip_and_regulator_only_ever_see_in_envelope_values(seq: list[tuple[object, ...]]) -> None:
    """Drive the gate with arbitrary requests, readings and faults; decode every PLL write the chip received
    and every regulator command: all inside the envelope (voltage 0 = off allowed)."""

    async def run() -> tuple[list[float], list[float], list[float]]:
        clock = FakeClock()
        sup, _, ctl = make_sup(clock)
        chain, dev = await _chain()
        env = sup.envelope
        core = ChainCore(chips=1, seed=0)  # the emulated chip: everything the host wrote goes into it
        host = chain.transport
        assert isinstance(host, LoopbackTransport)
        seen: list[float] = []
        t = 0.0

        async def apply(out: Output) -> None:
            nonlocal t
            k = len(host.written)
            await sup.writer.apply(chain, out)
            for data in host.written[k:]:
                t += 1e-3
                core.feed(data, t)
                seen.append(core.chips[0].freq_hz / 1e6)

        await apply(env.safe_output())
        # start from a board that is running fast, then anything may happen
        sup.request(Setpoint(1.3, 575.0, 1.0), 0)
        for dt_s in (0.0, 10.0):
            clock.t_ns += int(dt_s * 1e9)
            await apply(env.tick())
        for act in seq:
            if act[0] == "request":
                sup.request(act[1], 0)  # type: ignore[arg-type]
            elif act[0] == "telemetry":
                env.observe(act[1])  # type: ignore[arg-type]
            elif act[0] == "vin":
                env.observe(Telemetry(input_voltage_v=float(act[1])))  # type: ignore[arg-type]
            elif act[0] == "fault":
                env.fault("chain_lost")
            else:
                clock.t_ns += int(float(act[1]) * 1e9)  # type: ignore[arg-type]
            await apply(env.tick())
        return _pll_writes(dev), ctl.voltages, seen

    freqs, volts, seen = asyncio.run(run())
    assert all(LIM.freq_min_mhz - 1e-9 <= f <= LIM.freq_max_mhz + 1e-9 for f in seen)
    assert len(seen) >= len(freqs) >= 1  # every PLL write reached the emulated chip
    for f in freqs:
        assert LIM.freq_min_mhz - 1e-9 <= f <= LIM.freq_max_mhz + 1e-9
    for v in volts:
        assert v == 0.0 or LIM.core_voltage_min_v <= v <= LIM.core_voltage_max_v
