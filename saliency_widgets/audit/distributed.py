"""Scale-out under ``torchrun``: ranks, completion markers, and rank 0's idempotent merge.

Launched under torchrun (``RANK`` / ``WORLD_SIZE`` in the environment), each rank takes the
batches ``k`` with ``k mod world_size = rank`` that no table holds yet, writes its shards (which
no other rank writes) and its rows to ``ranks/rank<r>.sqlite``, and then the marker
``ranks/rank<r>-of-<world>.done``. A marker says "every batch of rank r in a run of this size is
committed", which stays true forever (rows are never deleted), so a marker left by an earlier
run never misleads. Rank 0 waits for every marker, then copies all rank tables into
``audit.sqlite`` in one transaction that also builds the indexes and sets ``complete``: a crash
mid-merge rolls it back, and running the merge again gives the same table (rows are keyed by the
example index). No process group is needed; results do not depend on the world size, so a
crashed run can be resumed with another one (or in a single process).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from ..errors import SaliencyError
from .store import (DB, RANKS, connect, create_table, done_batches, index_names, is_complete,
                    kill_point, q)

POLL_S = 0.2


def world() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; ``(0, 1)`` outside it."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError as err:
        raise SaliencyError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE="
                            f"{os.environ.get('WORLD_SIZE')!r} are not integers") from err
    if size < 1 or not 0 <= rank < size:
        raise SaliencyError(f"RANK={rank} is not in range for WORLD_SIZE={size}")
    return rank, size


def rank_db(out: Path, rank: int) -> Path:
    return Path(out) / RANKS / f"rank{rank}.sqlite"


def marker(out: Path, rank: int, size: int) -> Path:
    return Path(out) / RANKS / f"rank{rank}-of-{size}.done"


def rank_dbs(out: Path) -> list[Path]:
    folder = Path(out) / RANKS
    if not folder.is_dir():
        return []
    return sorted(folder.glob("rank*.sqlite"), key=lambda p: int(p.stem[4:]))


def committed(out: Path) -> set[int]:
    """Every batch whose rows are committed, in the main table or in any rank's."""
    done = done_batches(Path(out) / DB)
    for path in rank_dbs(out):
        done |= done_batches(path)
    return done


def mark_done(out: Path, rank: int, size: int) -> None:
    path = marker(out, rank, size)
    with open(path, "w") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        f.flush()
        os.fsync(f.fileno())


def wait_for_markers(out: Path, size: int) -> None:
    """Rank 0: until every other rank has marked its batches done (torchrun tears the group
    down if a rank dies, so this never waits for a dead rank)."""
    others = [marker(out, r, size) for r in range(1, size)]
    while not all(p.exists() for p in others):
        time.sleep(POLL_S)


def wait_for_merge(out: Path) -> None:
    """Ranks ≠ 0: until rank 0 has merged (so every rank returns the complete audit)."""
    while not is_complete(Path(out) / DB):
        time.sleep(POLL_S)


def merge(out: Path, cols: Sequence[tuple[str, str]], length: int, batches: int, *,
          durable: bool = True) -> None:
    """Copy every rank's rows into the main table, index it and mark it complete, atomically.

    Idempotent: rows are replaced by example index, indexes are created if missing. Raises if
    the rows still miss batches (then nothing is marked complete).
    """
    con = connect(Path(out) / DB, durable=durable)
    try:
        create_table(con, cols)
        names = [n for n, _ in cols]
        marks = ", ".join("?" * len(names))
        insert = f"INSERT OR REPLACE INTO examples VALUES ({marks})"
        select = f"SELECT {', '.join(q(n) for n in names)} FROM examples"
        con.execute("BEGIN IMMEDIATE")
        try:
            for i, path in enumerate(rank_dbs(out)):
                src = connect(path, readonly=True)
                try:
                    cur = src.execute(select)
                    while rows := cur.fetchmany(8192):
                        con.executemany(insert, rows)
                except Exception as err:  # a rank table without rows yet (crashed early)
                    if "no such table" not in str(err):
                        raise
                finally:
                    src.close()
                if i == 0:
                    kill_point("merge")
            (count,) = con.execute("SELECT COUNT(*) FROM examples").fetchone()
            if count != length:
                have = {k for (k,) in con.execute("SELECT DISTINCT batch FROM examples")}
                missing = sorted(set(range(batches)) - have)
                raise SaliencyError(f"the audit in {str(out)!r} misses {length - count} examples "
                                    f"(batches {missing[:10]}{'…' if len(missing) > 10 else ''});"
                                    f" run the same sw.audit(...) call again to compute them")
            for name, expr in index_names(cols):
                con.execute(f"CREATE INDEX IF NOT EXISTS {q(name)} ON examples ({expr})")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
