"""Emulated nonces: real shares at the advertised scale, physical rates, errors, the Poisson null."""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from drivers.frames import JobFrame, NonceReply, decode, write_reg
from simulator.chain import ChainCore, Knobs
from simulator.emission import NonceRecord
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.physics import PhysicsParams
from tests.unit.simulator.test_sim_core import Host

DIFF1 = 0xFFFF * 2**208


def make_job(job_id: int = 8, seed: int = 5) -> JobFrame:
    r = random.Random(seed)
    return JobFrame(
        job_id=job_id,
        prev_block_hash=r.randbytes(32),
        merkle_root=r.randbytes(32),
        version=0x20000000,
        nbits=0x1703A30C,
        ntime=0x6500_0000 + seed,
    )


def host_share_difficulty(job: JobFrame, reply: NonceReply) -> float:
    """docs/protocol.md: rolled version LE || prev || merkle || ntime || nbits || nonce bytes; double
    SHA-256."""
    rolled = job.version | (reply.version_bits << 13)
    header = (
        struct.pack("<I", rolled)
        + job.prev_block_hash
        + job.merkle_root
        + struct.pack("<I", job.ntime)
        + struct.pack("<I", job.nbits)
        + reply.nonce.to_bytes(4, "big")
    )
    value = int.from_bytes(hashlib.sha256(hashlib.sha256(header).digest()).digest(), "little")
    return DIFF1 / value


def mining_chain(
    chips: int = 1,
    ticket_mask: int = 0,
    pll: int = 0x50C20240,
    seed: int = 1,
    **kw: object,
) -> tuple[ChainCore, Host, JobFrame]:
    core = ChainCore(chips=chips, seed=seed, record_nonces=True, **kw)  # type: ignore[arg-type]
    host = Host(core)
    host.bring_up(ticket_mask=ticket_mask, pll=pll)
    job = make_job()
    host.send(job.encode())
    return core, host, job


def nonce_replies(out: list[tuple[float, bytes]]) -> list[NonceReply]:
    replies = []
    for _, raw in out:
        frame, used = decode(raw, 0, len(raw))
        assert used == len(raw)
        if isinstance(frame, NonceReply):
            replies.append(frame)
    return replies


def intervals(log: list[NonceRecord], chip: int = 0) -> np.ndarray:
    return np.diff(np.array([r.t for r in log if r.chip == chip]))


@pytest.mark.parametrize(("mask", "tdiff"), [(0, 1), (0x000000FC, 64)])
def test_host_share_check_accepts_emulated_nonces(mask: int, tdiff: int) -> None:
    core, host, job = mining_chain(chips=4, ticket_mask=mask)
    duration = 2.0 if tdiff == 1 else 25.0
    replies = nonce_replies(core.advance(host.t + duration))
    assert len(replies) > 100
    need = tdiff * DEFAULT_DIFFICULTY_SCALE
    accepted = sum(host_share_difficulty(job, r) >= need for r in replies)
    assert accepted / len(replies) >= 0.99
    for r in replies:
        assert r.job_id == job.job_id
        assert 0 <= (r.nonce >> 25) & 0x7F < 112  # ESP-Miner core reading
        assert ((r.nonce >> 17) & 0xFF) // (256 // 4) in range(4)  # ESP-Miner chip reading
        assert r.version_bits & ~0xFFFF == 0
    chips_seen = {((r.nonce >> 17) & 0xFF) // 64 for r in replies}
    assert chips_seen == {0, 1, 2, 3}
    assert len({r.small_core for r in replies}) == 8
    assert len({r.version_bits for r in replies}) > 50


def test_invalid_nonces_fail_the_host_check() -> None:
    # Overclocked: half of the nonces are invalid; every one the core marks invalid must fail the check.
    core, host, job = mining_chain(pll=0x50900150)  # 25 * 144 / 6 = 600 MHz, past the limit
    out = core.advance(host.t + 20.0)
    replies = nonce_replies(out)
    marks = [r.valid for r in core.nonce_log]
    assert len(replies) == len(marks) > 20
    need = DEFAULT_DIFFICULTY_SCALE
    for r, ok in zip(replies, marks):
        assert (host_share_difficulty(job, r) >= need) == ok


def _rate_and_invalid(pll: int, mask: int, duration: float, volts: float = 1.2) -> tuple[float, float, float]:
    core, host, _ = mining_chain(ticket_mask=mask, pll=pll)
    core.set_voltage(volts, host.t)
    t0 = host.t
    core.advance(t0 + duration)
    n = len(core.nonce_log)
    invalid = sum(not r.valid for r in core.nonce_log) / max(n, 1)
    return n / duration, core.expected_rate(0), invalid


@pytest.mark.parametrize(
    ("pll", "mask", "duration"),
    [
        (0x50C20240, 0, 10.0),
        (0x40A00241, 0, 20.0),
        (0x50C20240, 0x000000C0, 40.0),
        (0x40A00241, 0x000000E0, 80.0),
    ],
)
def test_rate_follows_frequency_and_ticket_difficulty(pll: int, mask: int, duration: float) -> None:
    rate, expected, invalid = _rate_and_invalid(pll, mask, duration)
    n_expected = expected * duration
    assert abs(rate * duration - n_expected) < 4 * np.sqrt(n_expected)  # Poisson, 4 sigma
    assert invalid < 0.01


def test_rate_collapses_and_invalid_rise_past_the_stability_limit() -> None:
    stable_rate, stable_exp, stable_inv = _rate_and_invalid(0x50C20240, 0, 10.0)  # 485 MHz
    hot_rate, hot_exp, hot_inv = _rate_and_invalid(0x40AC0220, 0, 10.0)  # 25*172/6 = 716.7 MHz
    assert stable_inv < 0.01 and stable_rate / stable_exp > 0.9
    assert hot_inv > 0.3
    assert hot_rate / hot_exp < 0.5
    # More voltage moves the limit up: the same clock at 1.3 V is healthier.
    _, _, inv_13 = _rate_and_invalid(0x40AC0220, 0, 10.0, volts=1.3)
    assert inv_13 < hot_inv


def test_temperature_follows_power_with_the_model_time_constant() -> None:
    params = replace(PhysicsParams(), c_th_jk=0.5)  # tau ~ 1.5 s so the test is short
    core = ChainCore(chips=1, seed=0, params=params)
    host = Host(core)
    t_start = float(core.physics.temp_c[0])
    host.bring_up()  # 485 MHz from here on
    tau = core.physics.tau_s()
    t_final = float(core.physics.steady_state_c(core.active_freqs())[0])
    t0 = host.t
    core.advance(t0 + tau)
    at_tau = float(core.physics.temp_c[0])
    core.advance(t0 + 10 * tau)
    settled = float(core.physics.temp_c[0])
    assert t_final > t_start + 20
    frac = (at_tau - t_start) / (settled - t_start)
    assert frac == pytest.approx(1 - np.exp(-1), abs=0.06)  # leakage makes it slightly non-exponential
    assert 50.0 <= settled <= 65.0  # ESP-Miner-like at 485 MHz / 1.2 V with the default fan


def test_default_output_is_poisson() -> None:
    core, host, _ = mining_chain(chips=2)
    core.advance(host.t + 30.0)
    for chip in (0, 1):
        gaps = intervals(core.nonce_log, chip)
        n = len(gaps)
        assert n > 2000
        cv = gaps.std(ddof=1) / gaps.mean()
        assert abs(cv - 1) < 3 / np.sqrt(n)  # CV null sd ~ 1/sqrt(n)
        res = stats.goodness_of_fit(
            stats.expon, gaps, known_params={"loc": 0}, statistic="ks", n_mc_samples=199, rng=1
        )
        assert res.pvalue > 0.01
        times = np.array([r.t for r in core.nonce_log if r.chip == chip])
        counts = np.histogram(times, bins=np.arange(times[0], times[-1], 0.1))[0]
        fano = counts.var(ddof=1) / counts.mean()
        assert abs(fano - 1) < 4 * np.sqrt(2 / (len(counts) - 1))  # Fano null sd ~ sqrt(2 / (k - 1))


def test_planted_dead_time_is_detectable() -> None:
    core, host, _ = mining_chain(knobs=Knobs(dead_time_s=0.005))
    core.advance(host.t + 20.0)
    gaps = intervals(core.nonce_log)
    assert gaps.min() >= 0.005
    assert gaps.std() / gaps.mean() < 0.8


def test_planted_modulation_is_detectable() -> None:
    core, host, _ = mining_chain(knobs=Knobs(modulation_amplitude=0.5, modulation_period_s=1.0))
    core.advance(host.t + 30.0)
    phase = np.array([r.t % 1.0 for r in core.nonce_log])
    counts = np.histogram(phase, bins=10, range=(0, 1))[0]
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue < 1e-6
    peak = (np.argmax(counts) + 0.5) / 10
    assert 0.1 < peak < 0.45  # sin peaks at a quarter period


def test_planted_drift_is_detectable() -> None:
    core, host, _ = mining_chain(knobs=Knobs(drift_amplitude=0.5, drift_period_s=3.0))
    core.advance(host.t + 60.0)
    times = np.array([r.t for r in core.nonce_log])
    counts = np.histogram(times, bins=np.arange(times[0], times[-1], 1.0))[0]
    assert counts.var(ddof=1) / counts.mean() > 3.0  # Fano >> 1 at 1 s windows


def test_planted_serial_correlation_keeps_exponential_intervals() -> None:
    """EAR(1) at rho 0.4: lag-1 autocorrelation ~0.4, lag 5 ~0.01, CV still ~1 (exponential marginal)."""
    core, host, _ = mining_chain(knobs=Knobs(serial_correlation=0.4))
    core.advance(host.t + 60.0)
    gaps = intervals(core.nonce_log)
    n = len(gaps)
    assert n > 3000
    z = (gaps - gaps.mean()) / gaps.std()
    acf = [float(np.mean(z[:-k] * z[k:])) for k in (1, 5)]
    assert abs(acf[0] - 0.4) < 5 / np.sqrt(n) and abs(acf[1]) < 5 / np.sqrt(n)
    assert abs(gaps.std() / gaps.mean() - 1) < 0.1


def test_knobs_off_leave_the_default_stream_unchanged() -> None:
    a, ha, _ = mining_chain(seed=3)
    b, hb, _ = mining_chain(seed=3, knobs=Knobs(serial_correlation=0.0))
    a.advance(ha.t + 5.0)
    b.advance(hb.t + 5.0)
    assert [r.t for r in a.nonce_log] == [r.t for r in b.nonce_log]


def test_pll_change_has_relock_dead_time() -> None:
    core, host, _ = mining_chain()
    core.advance(host.t + 1.0)
    t_write = host.t + 1.0
    core.feed(write_reg(0x08, 0x40A00241).encode(), t_write)
    core.advance(t_write + 1.0)
    after = [r.t for r in core.nonce_log if r.t > t_write]
    assert after and min(after) >= t_write + core.params.pll_relock_s


def test_brownout_resets_and_silences_the_chain() -> None:
    core, host, _ = mining_chain(chips=2)
    core.set_voltage(0.8, host.t)
    host.t += 0.1
    core.advance(host.t)  # nonces emitted before the brown-out
    assert host.send(bytes.fromhex("55 AA 52 05 00 00 0A")) == []
    assert core.stats.brownouts == 1
    core.set_voltage(1.2, host.t)
    host.t += 0.1
    core.advance(host.t)
    raw = host.send(bytes.fromhex("55 AA 52 05 00 00 0A"))
    assert len(raw) == 2 and all(len(r) == 9 for r in raw)  # back in reset state


def test_firehose_is_fast_and_not_share_valid() -> None:
    core = ChainCore(chips=4, seed=0, firehose_rate=20000.0)
    out = core.advance(1.0)
    assert abs(len(out) - 20000) < 4 * np.sqrt(20000)
    replies = nonce_replies(out)
    assert len(replies) == len(out)
    job = make_job(job_id=0)
    valid = sum(host_share_difficulty(job, r) >= 256 * DEFAULT_DIFFICULTY_SCALE for r in replies[:2000])
    assert valid < 100  # random nonces: not shares


def test_firehose_after_job_is_silent_until_bring_up_sends_work() -> None:
    core = ChainCore(chips=4, seed=0, firehose_rate=20000.0, firehose_needs_job=True)
    host = Host(core)
    host.t = 0.5
    assert core.advance(host.t) == []  # no job yet: the bring-up exchange has the link to itself
    host.bring_up(ticket_mask=0, pll=0x50C20240)
    host.send(make_job().encode())
    out = core.advance(host.t + 1.0)
    assert abs(len(nonce_replies(out)) - 20000) < 4 * np.sqrt(20000)


def test_same_seed_same_output_regardless_of_advance_granularity() -> None:
    def run(step: float) -> list[tuple[float, bytes]]:
        core, host, _ = mining_chain(chips=3, seed=9)
        out: list[tuple[float, bytes]] = []
        t = host.t
        while t < host.t + 3.0:
            t += step
            out += core.advance(t)
        return out

    a, b = run(0.0037), run(0.25)
    assert [d for _, d in a] == [d for _, d in b]
    assert np.allclose([t for t, _ in a], [t for t, _ in b], atol=1e-9)
    c = nonce_replies(mining_chain(chips=3, seed=10)[0].advance(3.0))
    assert [r.nonce for r in c] != [r.nonce for r in nonce_replies(a)]


@pytest.mark.slow
def test_long_run_poisson_null_and_shares_at_difficulty_256() -> None:
    """Slow tier: 8 chips at ticket difficulty 256 for 20 simulated minutes (the fast variants run above)."""
    core, host, job = mining_chain(chips=8, ticket_mask=0x000000FF, seed=21)
    out = core.advance(host.t + 1200.0)
    replies = nonce_replies(out)
    assert len(replies) > 3000
    need = 256 * DEFAULT_DIFFICULTY_SCALE
    assert sum(host_share_difficulty(job, r) >= need for r in replies) / len(replies) >= 0.99
    for chip in range(8):
        times = np.array([r.t for r in core.nonce_log if r.chip == chip])
        gaps = np.diff(times)
        assert abs(gaps.std(ddof=1) / gaps.mean() - 1) < 4 / np.sqrt(len(gaps))
        for window in (1.0, 10.0, 60.0):
            counts = np.histogram(times, bins=np.arange(times[0], times[-1], window))[0]
            fano = counts.var(ddof=1) / counts.mean()
            assert abs(fano - 1) < 4 * np.sqrt(2 / (len(counts) - 1))
