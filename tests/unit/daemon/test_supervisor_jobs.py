"""Synthetic jobs: reproducible merkle roots, ESP-Miner job ids, share check per job through the JobTable."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.jobs import JOB_ID_MOD, JOB_ID_STEP, JobSource
from drivers.frames import NonceReply
from drivers.share import share_difficulty


def test_job_ids_step_like_esp_miner_and_roots_are_seeded() -> None:
    a, b = JobSource(seed=5, wall=lambda: 1.7e9), JobSource(seed=5, wall=lambda: 1.7e9)
    ja = [a.next_job() for _ in range(20)]
    jb = [b.next_job() for _ in range(20)]
    assert [j.job_id for j in ja] == [(i * JOB_ID_STEP) % JOB_ID_MOD for i in range(20)]
    assert [j.merkle_root for j in ja] == [j.merkle_root for j in jb]
    assert len({j.merkle_root for j in ja}) == 20
    assert JobSource(seed=6).next_job().merkle_root != ja[0].merkle_root
    assert ja[0].ntime == 1_700_000_000


def test_check_matches_the_scalar_share_difficulty_and_unknown_jobs_are_zero() -> None:
    src = JobSource(seed=1)
    jobs = [src.next_job() for _ in range(3)]
    rng = np.random.default_rng(0)
    nonces = rng.integers(0, 2**32, 30, dtype=np.uint64).astype(np.uint32)
    vbits = rng.integers(0, 2**16, 30).astype(np.uint16)
    ids = np.array([jobs[i % 3].job_id for i in range(29)] + [0x78], dtype=np.uint8)
    got = src.table.difficulties(ids, nonces, vbits)
    for i in range(29):
        job = jobs[i % 3]
        want = share_difficulty(job, NonceReply(int(nonces[i]), 0, job.job_id, int(vbits[i])))
        assert got[i] == pytest.approx(want, rel=1e-12)
    assert got[29] == 0.0
    src.reset()
    assert (src.table.difficulties(ids, nonces, vbits) == 0.0).all()
