"""Crash safety and scale-out of the audit, in real processes.

``tests/audit_job.py`` runs in a subprocess that the ``SW_AUDIT_KILL_AT`` hook SIGKILLs at a
chosen point (mid-batch, between a shard's rename and its rows' commit, mid-merge); the same
call then resumes (in this process) and the result must equal an uninterrupted run bitwise
(same machine, one thread). A two-rank ``torchrun`` run must equal a one-process run. Each
subprocess imports torch (~3 s of CPU), hence these few-second tests: 7 processes in all.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.audit import store

import audit_job

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
JOB = Path(__file__).resolve().parent / "audit_job.py"
BATCHES = math.ceil(audit_job.N / audit_job.BATCH)


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                                          "SW_AUDIT_KILL_AT")}
    # this checkout's package, not whatever the venv's editable install points to
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return e


def run_job(out: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(JOB), str(out)], env=env(**extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def same(a: sw.Audit, b: sw.Audit) -> None:
    """Bitwise-equal audits: every row, map and thumbnail."""
    assert a.complete and b.complete
    assert a.manifest["identity"] == b.manifest["identity"]
    ta, tb = a.table, b.table
    assert len(ta) == len(tb) == audit_job.N
    for ra, rb in zip(ta, tb):
        assert ra.keys() == rb.keys()
        for key in ra:
            va, vb = ra[key], rb[key]
            if isinstance(va, float) and math.isnan(va):
                assert isinstance(vb, float) and math.isnan(vb), (ra["idx"], key)
            else:
                assert va == vb, (ra["idx"], key, va, vb)
    every = np.arange(a.length)
    for method in a.methods:
        assert np.array_equal(a.maps(method, every, scaled=False),
                              b.maps(method, every, scaled=False))
    assert np.array_equal(a.thumbnails(every), b.thumbnails(every))


def rows_by_batch(out: Path) -> dict[int, int]:
    con = sqlite3.connect(out / store.DB)
    try:
        return dict(con.execute("SELECT batch, COUNT(*) FROM examples GROUP BY batch"))
    finally:
        con.close()


@pytest.fixture(autouse=True)
def restore_threads():
    """audit_job.run() sets one thread (as in the subprocesses); give the suite its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> sw.Audit:
    threads = torch.get_num_threads()
    try:
        return audit_job.run(tmp_path_factory.mktemp("reference") / "audit")
    finally:
        torch.set_num_threads(threads)


def resume(out: Path) -> sw.Audit:
    """The same call again, in this process (a fresh process would take seconds to start)."""
    return audit_job.run(out)


def test_killed_mid_batch_resumes_to_the_same_audit(reference, tmp_path):
    out = tmp_path / "audit"
    proc = run_job(out, SW_AUDIT_KILL_AT="batch:3")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    done = rows_by_batch(out)
    assert 3 not in done and set(done) <= {0, 1, 2}  # at most the batches before the kill
    assert not store.is_complete(out / store.DB)
    same(resume(out), reference)


def test_killed_between_rename_and_commit_resumes_to_the_same_audit(reference, tmp_path):
    out = tmp_path / "audit"
    proc = run_job(out, SW_AUDIT_KILL_AT="commit:2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # batch 2's shards are in place, its rows are not: it is not done and must be recomputed
    assert store.shard_path(out, 2, "grad_cam").exists()
    assert store.shard_path(out, 2, "thumbs").exists()
    assert set(rows_by_batch(out)) == {0, 1}
    # spoil the orphaned shard: a resume that trusted it would keep the garbage
    np.save(store.shard_path(out, 2, "grad_cam"), np.full((8, 64, 64), 7, np.float16))
    same(resume(out), reference)


def _ranks(out: Path, size: int, **extra: str) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, str(JOB), str(out)], cwd=ROOT,
                             env=env(RANK=str(r), WORLD_SIZE=str(size), LOCAL_RANK=str(r),
                                     **(extra if r == 0 else {})),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(size)]


def test_killed_mid_merge_resumes_to_the_same_audit(reference, tmp_path):
    out = tmp_path / "audit"
    procs = _ranks(out, 2, SW_AUDIT_KILL_AT="merge")
    try:
        procs[0].wait(timeout=300)
        assert procs[0].returncode == -signal.SIGKILL, procs[0].stderr.read()
        # rank 1 finished its batches and now waits for a merge that will not come
        deadline = time.time() + 60
        while not (out / store.RANKS / "rank1-of-2.done").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert procs[1].poll() is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
    assert not store.is_complete(out / store.DB)
    assert rows_by_batch(out) == {}  # the merge's transaction was rolled back
    # every batch is committed in a rank table, so the rerun (one process now) only merges
    assert store.done_batches(out / "ranks" / "rank0.sqlite") == {0, 2, 4}
    assert store.done_batches(out / "ranks" / "rank1.sqlite") == {1, 3, 5}
    same(resume(out), reference)


def test_two_rank_torchrun_equals_one_process(reference, tmp_path):
    out = tmp_path / "audit"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(JOB), str(out)], env=env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / store.RANKS / "rank0-of-2.done").exists()
    assert (out / store.RANKS / "rank1-of-2.done").exists()
    assert store.done_batches(out / "ranks" / "rank1.sqlite") == set(range(1, BATCHES, 2))
    audit = sw.load_audit(out)
    assert audit.manifest["info"]["world_size"] == 2
    same(audit, reference)
