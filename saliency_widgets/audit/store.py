"""The audit's files: a manifest, one SQLite table, ``.npy`` shards, and the commit rule.

Layout of ``out`` (open and documented; nothing needs this package to read it)::

    manifest.json              what was audited, how (every argument that changes results),
                               with a hash of the model's state_dict and of the first batch
    audit.sqlite               table ``examples``: one row per example (see ``columns``);
                               table ``meta``: ``complete`` = 1 once every row is in
    shards/b0000012.thumbs.npy uint8 (n, h, w, 3): the images as the model saw them
    shards/b0000012.<method>.npy
                               float16 (n, h, w): the channel-summed map, area-resized, divided
                               by its largest magnitude (column ``scale:<method>``)
    ranks/rank1.sqlite         (torchrun only) rank 1's rows until rank 0 merges them
    ranks/rank1-of-2.done      (torchrun only) rank 1 finished its batches of a 2-rank run

Batch ``k`` holds examples ``k·b … k·b+b−1``; row ``i`` of shard ``k`` is example ``k·b + i``.

The commit rule: a batch's shards are written to temporary files, fsynced and renamed, and only
then are its rows inserted, in one transaction. The rows are the commit marker: a batch is done
exactly when its rows are in a table, and then its shards are complete. A kill at any moment
loses at most the batches in flight; shards without rows are recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import threading
import queue
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import SaliencyError

FORMAT = "saliency_widgets.audit"
VERSION = 1
MANIFEST = "manifest.json"
DB = "audit.sqlite"
SHARDS = "shards"
RANKS = "ranks"
TOP_K = 5

# The column types of ``examples``; "group" keeps whatever type the user's group labels have.
BASE_COLUMNS = (("idx", "INTEGER PRIMARY KEY"), ("batch", "INTEGER NOT NULL"),
                ("label", "INTEGER NOT NULL"), ("pred", "INTEGER NOT NULL"),
                ("confidence", "REAL"), ("loss", "REAL"), ("correct", "INTEGER NOT NULL"),
                ("group", ""), ("target", "INTEGER"), ("contrast", "INTEGER"))
# Indexed once the audit is complete (the explorer sorts and filters by these).
INDEXED = ("batch", "label", "pred", "correct", "group", "loss", "confidence")


def q(name: str) -> str:
    """An SQL identifier, quoted (column names hold ``:``; ``group`` is a keyword)."""
    return '"' + name.replace('"', '""') + '"'


def columns(methods: Sequence[str], metrics: Sequence[str], top_k: int) -> list[tuple[str, str]]:
    """Every column of ``examples``, with its SQL type, in table order."""
    cols = list(BASE_COLUMNS)
    for i in range(1, top_k + 1):
        cols += [(f"top{i}", "INTEGER"), (f"top{i}_prob", "REAL")]
    for m in methods:
        cols += [(f"scale:{m}", "REAL"), (f"entropy:{m}", "REAL")]
        cols += [(f"{metric}:{m}", "REAL") for metric in metrics]
    return cols


def shard_path(out: Path, k: int, what: str) -> Path:
    """``what`` is ``"thumbs"`` or a method name."""
    return Path(out) / SHARDS / f"b{k:07d}.{what}.npy"


def kill_point(where: str, k: int | None = None) -> None:
    """Crash-safety tests: ``SW_AUDIT_KILL_AT=batch:3`` (mid-batch 3), ``commit:3`` (batch 3's
    shards renamed, rows not committed) or ``merge`` (rank 0 mid-merge) SIGKILLs the process."""
    want = os.environ.get("SW_AUDIT_KILL_AT")
    if want and want == (where if k is None else f"{where}:{k}"):
        os.kill(os.getpid(), signal.SIGKILL)


# --- files -------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes | np.ndarray, fsync: bool = True) -> None:
    """Write ``path`` as a whole: a temporary file, fsynced, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        if isinstance(data, np.ndarray):
            np.save(f, data, allow_pickle=False)
        else:
            f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def create_manifest(out: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Write the manifest unless one exists; return the existing one (None if ours was written).

    ``os.link`` creates the name only if it is absent, so concurrent ranks agree on one manifest.
    """
    path = Path(out) / MANIFEST
    if path.exists():
        return read_manifest(out)
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: exclusive create, then write
            with open(path, "x") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(Path(out))
        return None
    except FileExistsError:
        return read_manifest(out)
    finally:
        tmp.unlink(missing_ok=True)


def check_new_folder(out: Path) -> None:
    """Refuse to write an audit into a folder that holds other things (and no audit)."""
    ours = {MANIFEST, DB, DB + "-journal", SHARDS, RANKS}
    other = sorted(p.name for p in Path(out).iterdir()
                   if p.name not in ours and not p.name.startswith(f".{MANIFEST}."))
    if other and not (Path(out) / MANIFEST).exists():
        raise SaliencyError(f"out={str(out)!r} is not empty and holds no audit (it has "
                            f"{', '.join(other[:5])}{', …' if len(other) > 5 else ''}); give "
                            f"a new or empty folder")


def read_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError as err:
        raise SaliencyError(f"{str(out)!r} holds no audit (no {MANIFEST}); run sw.audit(..., "
                            f"out={str(out)!r}) first") from err
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise SaliencyError(f"{path} is not a saliency_widgets audit of format version "
                            f"{VERSION} (format {manifest.get('format')!r}, version "
                            f"{manifest.get('version')!r})")
    return manifest


def sha256_bytes(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


# --- the table ---------------------------------------------------------------------------------
def connect(path: Path, *, readonly: bool = False, durable: bool = True) -> sqlite3.Connection:
    """A connection; writers use the default rollback journal (works on any file system) with
    full fsync, so a committed batch survives a crash (``durable=False``: no fsync, for data
    that can be made again, such as a synthetic audit)."""
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60,
                              check_same_thread=False)
    else:
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
        con.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
    return con


def create_table(con: sqlite3.Connection, cols: Sequence[tuple[str, str]]) -> None:
    body = ", ".join(f"{q(n)} {t}".strip() for n, t in cols)
    con.execute(f"CREATE TABLE IF NOT EXISTS examples ({body})")
    con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")


def done_batches(path: Path) -> set[int]:
    """Batches whose rows are committed in the table at ``path`` (empty if there is none)."""
    if not Path(path).exists():
        return set()
    con = connect(path, readonly=True)
    try:
        have = con.execute("SELECT name FROM sqlite_master WHERE name='examples'").fetchone()
        if have is None:
            return set()
        return {int(k) for (k,) in con.execute("SELECT DISTINCT batch FROM examples")}
    finally:
        con.close()


def is_complete(path: Path) -> bool:
    if not Path(path).exists():
        return False
    con = connect(path, readonly=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key='complete'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet
        return False
    finally:
        con.close()
    return row is not None and row[0] == "1"


def index_names(cols: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(index name, indexed expression)``: the base columns, label×pred, every score column."""
    chosen = [(f"ix_{c}", q(c)) for c in INDEXED]
    chosen.append(("ix_cell", f"{q('label')}, {q('pred')}"))
    scores = [n for n, t in cols if t == "REAL" and ":" in n and not n.startswith("scale:")]
    chosen += [(f"ix_s{i}", q(n)) for i, n in enumerate(scores)]
    return chosen


# --- the writer --------------------------------------------------------------------------------
class BatchOutput:
    """What one batch leaves behind: its rows (table order) and its shards."""

    def __init__(self, k: int, rows: list[tuple], shards: dict[str, np.ndarray]) -> None:
        self.k, self.rows, self.shards = k, rows, shards


class Writer:
    """Commits batches from a background thread, so the model never waits for the disk.

    ``put`` blocks when two batches are already waiting (memory stays bounded); errors of the
    thread are raised by the next ``put`` or by ``close``.
    """

    def __init__(self, out: Path, db: Path, cols: Sequence[tuple[str, str]], *,
                 durable: bool = True) -> None:
        self.out, self.db, self.cols = Path(out), Path(db), list(cols)
        self.durable = durable
        self.error: BaseException | None = None
        self._queue: queue.Queue[BatchOutput | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._loop, name="sw-audit-writer", daemon=True)
        self._thread.start()

    def put(self, item: BatchOutput) -> None:
        self._raise()
        self._queue.put(item)

    def close(self, quiet: bool = False) -> None:
        """Commit what was put, stop the thread; ``quiet`` (after another error) raises nothing."""
        self._queue.put(None)
        self._thread.join()
        if not quiet:
            self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        con = None
        try:
            con = connect(self.db, durable=self.durable)
            create_table(con, self.cols)
            marks = ", ".join("?" * len(self.cols))
            insert = f"INSERT OR REPLACE INTO examples VALUES ({marks})"
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if self.error is not None:
                    continue  # drain: the main thread raises at its next put/close
                for what, array in item.shards.items():
                    write_durably(shard_path(self.out, item.k, what), array, self.durable)
                if self.durable:
                    _fsync_dir(self.out / SHARDS)
                kill_point("commit", item.k)
                con.execute("BEGIN IMMEDIATE")
                con.executemany(insert, item.rows)
                con.execute("COMMIT")
        except BaseException as err:
            self.error = err
            while self._queue.get() is not None:  # let a blocked put() and close() finish
                pass
        finally:
            if con is not None:
                con.close()
