"""The audit as an object: the table, its queries, the maps and thumbnails, and the aggregates.

Reading never loads the whole audit: queries run in SQLite (indexed once the audit is
complete) and return one page; maps and thumbnails are read from memory-mapped shards, only the
rows asked for. A page of a 50 000-row audit is a few milliseconds.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SaliencyError, SaliencyWarning
from . import store
from .aggregate import Disparity, MeanAccumulator, MeanMaps, permutation_test, unit_mass
from .spray import spectral_clusters

FILTER_KEYS = ("correct", "label", "pred", "group", "cell")
BY = ("label", "pred", "group", "cell")
_OPEN_SHARDS = 128  # memory-mapped shards kept open (each holds a file descriptor)


@dataclass(frozen=True)
class Ranking:
    """Examples in order (``indices``, data-set indices) with the value they were ranked by."""

    method: str
    indices: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Clusters:
    """SpRAy on one class's maps.

    indices : the examples clustered (data-set indices; all-zero maps are left out: ``blank``);
    labels : their cluster, 0 = the largest; sizes; mean : each cluster's mean of
    ``|m| / Σ|m|`` ``(k, h, w)``; eigenvalues : the smallest eigenvalues of the affinity
    graph's normalized Laplacian (ascending); suggested_k : where the largest gap between
    consecutive eigenvalues is (the eigengap heuristic).
    """

    method: str
    by: str
    label: Any
    k: int
    indices: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    mean: np.ndarray
    eigenvalues: np.ndarray
    suggested_k: int
    blank: np.ndarray

    def members(self, cluster: int) -> np.ndarray:
        """The data-set indices in ``cluster``."""
        return self.indices[self.labels == cluster]


def load_audit(path: str | Path) -> Audit:
    """Open the audit stored in ``path`` (written by :func:`saliency_widgets.audit`)."""
    audit = Audit(path)
    if not audit.complete:
        warnings.warn(f"the audit in {str(path)!r} is incomplete ({len(audit)} of "
                      f"{audit.length} examples committed); run the same sw.audit(...) call "
                      f"again to finish it", SaliencyWarning, stacklevel=2)
    return audit


class Audit:
    """A data-set audit on disk (see ``saliency_widgets.audit.store`` for the layout).

    Attributes: ``path``, ``manifest``, ``methods``, ``metrics``, ``classes`` (number of classes),
    ``length`` (examples in the data set), ``batch_size``, ``map_shape``, ``columns``.
    """

    def __init__(self, path: str | Path, *, remove: bool = False) -> None:
        self.path = Path(path)
        self.manifest = store.read_manifest(self.path)
        m = self.manifest
        self.methods: tuple[str, ...] = tuple(m["methods"])
        self.metrics: tuple[str, ...] = tuple(m["metrics"])
        self.classes: int = int(m["classes"])
        self.length: int = int(m["length"])
        self.batch_size: int = int(m["batch_size"])
        self.map_shape: tuple[int, int] = tuple(m["map_shape"])
        self._types = dict(m["columns"])
        self.columns: tuple[str, ...] = tuple(self._types)
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._shards: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._complete = False
        if remove:  # a temporary audit lives as long as this object
            weakref.finalize(self, shutil.rmtree, str(self.path), True)

    # --- the table ----------------------------------------------------------------------------
    def _sql(self, query: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._con is None:
                self._con = store.connect(self.path / store.DB, readonly=True)
            return self._con.execute(query, tuple(args)).fetchall()

    @property
    def complete(self) -> bool:
        """Whether every example is in the table (a finished, merged audit)."""
        if not self._complete:
            self._complete = store.is_complete(self.path / store.DB)
        return self._complete

    def __len__(self) -> int:
        """Examples in the table (``length`` once complete)."""
        if not (self.path / store.DB).exists():
            return 0
        try:
            return int(self._sql("SELECT COUNT(*) FROM examples")[0][0])
        except Exception:  # no table yet
            return 0

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"{len(self)} of {self.length} done"
        return (f"Audit({str(self.path)!r}, {self.length} examples, methods={self.methods}, "
                f"metrics={self.metrics}, {state})")

    def numeric_columns(self) -> tuple[str, ...]:
        """The columns one can sort by."""
        return tuple(n for n, t in self._types.items() if t.split()[:1] in (["INTEGER"], ["REAL"]))

    def _column(self, name: str) -> str:
        name = "idx" if name in ("index", "idx") else name
        if name not in self._types:
            raise SaliencyError(f"unknown column {name!r}; columns: {', '.join(self.columns)}")
        return name

    def _records(self, rows: list[tuple], names: Sequence[str]) -> list[dict[str, Any]]:
        real = [self._types[n] == "REAL" for n in names]
        return [{n: (float("nan") if v is None and r else v) for n, v, r in zip(names, row, real)}
                for row in rows]

    @property
    def table(self) -> list[dict[str, Any]]:
        """Every row as a dict, in data-set order (NaN where a score is undefined)."""
        cols = ", ".join(store.q(c) for c in self.columns)
        return self._records(self._sql(f"SELECT {cols} FROM examples ORDER BY idx"), self.columns)

    def to_pandas(self):
        """The table as a DataFrame indexed by ``idx`` (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("Audit.to_pandas() needs pandas: pip install pandas") from err
        return pd.DataFrame.from_records(self.table, columns=list(self.columns)).set_index("idx")

    def _where(self, filter: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        if not filter:
            return "", []
        if not isinstance(filter, Mapping):
            raise SaliencyError(f"filter must be a dict with keys among {FILTER_KEYS}, got "
                                f"{type(filter).__name__}")
        parts, args = [], []
        for key, value in filter.items():
            if key not in FILTER_KEYS:
                raise SaliencyError(f"unknown filter key {key!r}; use {', '.join(FILTER_KEYS)}")
            if value is None or (isinstance(value, str) and value == ""):
                continue  # "any" (the explorer's empty choice)
            if key == "correct":
                if value in ("correct", "wrong"):
                    value = value == "correct"
                parts.append("correct = ?")
                args.append(int(bool(value)))
            elif key == "cell":
                true, pred = value
                parts.append("label = ? AND pred = ?")
                args += [int(true), int(pred)]
            else:
                many = list(value) if isinstance(value, (list, tuple, set, np.ndarray)) else [value]
                parts.append(f"{store.q(key)} IN ({', '.join('?' * len(many))})")
                args += [v.item() if isinstance(v, np.generic) else v for v in many]
        return (" WHERE " + " AND ".join(parts) if parts else ""), args

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many rows pass ``filter`` (keys: correct, label, pred, group, cell)."""
        where, args = self._where(filter)
        return int(self._sql(f"SELECT COUNT(*) FROM examples{where}", args)[0][0])

    def query(self, sort_by: str = "idx", descending: bool = False,
              filter: Mapping[str, Any] | None = None, page: int = 0, page_size: int = 50
              ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Return ``(indices, rows)`` of one page of the filtered, sorted table.

        ``sort_by``: any numeric column (``idx``/``index``, ``loss``, ``confidence``, a score
        ``"{metric}:{method}"``, ``"entropy:{method}"`` …); NaN scores sort last either way, ties
        by index. ``filter``: ``correct`` (True/False or "correct"/"wrong"), ``label``,
        ``pred``, ``group`` (a value or a list), ``cell`` ((true, pred)); None means any.
        ``page`` is 0-based. The total is :meth:`count`.
        """
        column = self._column(sort_by)
        if column not in self.numeric_columns():
            raise SaliencyError(f"cannot sort by {sort_by!r}: not a numeric column; use one of "
                                f"{', '.join(self.numeric_columns())}")
        for name, v, low in (("page", page, 0), ("page_size", page_size, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SaliencyError(f"{name} must be an int ≥ {low}, got {v!r}")
        where, args = self._where(filter)
        direction = "DESC" if descending else "ASC"
        c = store.q(column)
        order = f"{c} {direction}, idx" if column in ("idx", "label", "pred", "correct", "batch") \
            else f"{c} IS NULL, {c} {direction}, idx"
        cols = ", ".join(store.q(n) for n in self.columns)
        rows = self._sql(f"SELECT {cols} FROM examples{where} ORDER BY {order} LIMIT ? OFFSET ?",
                         args + [page_size, page * page_size])
        records = self._records(rows, self.columns)
        return np.array([r["idx"] for r in records], dtype=np.int64), records

    def rows(self, indices: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """The rows of these data-set indices, in that order."""
        idx = self._indices(indices)
        found = {}
        cols = ", ".join(store.q(n) for n in self.columns)
        for i in range(0, len(idx), 900):  # SQLite's bound-parameter limit
            part = idx[i:i + 900].tolist()
            for rec in self._records(self._sql(
                    f"SELECT {cols} FROM examples WHERE idx IN ({', '.join('?' * len(part))})",
                    part), self.columns):
                found[rec["idx"]] = rec
        missing = [i for i in idx.tolist() if i not in found]
        if missing:
            raise SaliencyError(f"examples {missing[:10]} are not in the audit (yet)")
        return [found[i] for i in idx.tolist()]

    # --- maps and thumbnails ------------------------------------------------------------------
    def _indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= self.length)]
        if len(bad):
            raise SaliencyError(f"index {int(bad[0])} is out of range for an audit of "
                                f"{self.length} examples")
        return idx

    def _shard(self, k: int, what: str) -> np.ndarray:
        with self._lock:
            key = (k, what)
            if key in self._shards:
                self._shards.move_to_end(key)
                return self._shards[key]
            if not self.complete and k not in self._batches():
                raise SaliencyError(f"batch {k} is not committed yet; run the audit to the end")
            array = np.load(store.shard_path(self.path, k, what), mmap_mode="r")
            self._shards[key] = array
            if len(self._shards) > _OPEN_SHARDS:
                self._shards.popitem(last=False)
            return array

    def _batches(self) -> set[int]:
        return {int(k) for (k,) in self._sql("SELECT DISTINCT batch FROM examples")}

    def _gather(self, what: str, idx: np.ndarray) -> np.ndarray:
        b = self.batch_size
        first = self._shard(int(idx[0] // b), what) if len(idx) else None
        shape = first.shape[1:] if first is not None else (
            (*self.map_shape, 3) if what == "thumbs" else self.map_shape)
        dtype = first.dtype if first is not None else (np.uint8 if what == "thumbs"
                                                       else np.float16)
        out = np.empty((len(idx), *shape), dtype=dtype)
        for k in np.unique(idx // b):
            pos = np.flatnonzero(idx // b == k)
            out[pos] = self._shard(int(k), what)[idx[pos] - k * b]
        return out

    def _method(self, method: str) -> str:
        if method not in self.methods:
            raise SaliencyError(f"method {method!r} is not in this audit; it has "
                                f"{', '.join(self.methods) or 'no methods'}")
        return method

    def maps(self, method: str, indices: Sequence[int], *, scaled: bool = True) -> np.ndarray:
        """Return ``(n, h, w)`` maps of these examples: float32 in the method's raw scale, or
        (``scaled=False``) the stored float16 maps divided by their largest magnitude."""
        idx = self._indices(indices)
        unit = self._gather(self._method(method), idx)
        if not scaled:
            return unit
        scale = np.array([r[f"scale:{method}"] for r in self.rows(idx)], dtype=np.float32)
        # (rows() also checks that every index is committed)
        return unit.astype(np.float32) * scale[:, None, None]

    def thumbnails(self, indices: Sequence[int]) -> np.ndarray:
        """Return uint8 ``(n, h, w, 3)``: the images as the model saw them, at ``map_shape``."""
        return self._gather("thumbs", self._indices(indices))

    def _stream(self, method: str, key_sql: str, where: str = "", args: Sequence[Any] = ()
                ) -> Iterator[tuple[np.ndarray, list[Any], np.ndarray]]:
        """Per committed batch: ``(indices, keys, stored unit maps)`` of the rows selected."""
        rows = self._sql(f"SELECT idx, batch, {key_sql} FROM examples{where} ORDER BY idx", args)
        if not rows:
            return
        idx = np.array([r[0] for r in rows], dtype=np.int64)
        ks = np.array([r[1] for r in rows], dtype=np.int64)
        keys = [r[2] if len(r) == 3 else tuple(r[2:]) for r in rows]
        for k in np.unique(ks):
            pos = np.flatnonzero(ks == k)
            shard = np.load(store.shard_path(self.path, int(k), method), mmap_mode="r")
            rows = idx[pos] - k * self.batch_size
            yield idx[pos], [keys[p] for p in pos], np.asarray(shard[rows])

    # --- aggregates ---------------------------------------------------------------------------
    def confusion(self) -> np.ndarray:
        """``(classes, classes)`` int64 counts: row = true class, column = prediction."""
        out = np.zeros((self.classes, self.classes), dtype=np.int64)
        for label, pred, n in self._sql("SELECT label, pred, COUNT(*) FROM examples "
                                        "GROUP BY label, pred"):
            out[label, pred] = n
        return out

    def mean_map(self, method: str, by: str = "label") -> MeanMaps:
        """The mean of ``|m| / Σ|m|`` per class (``label`` or ``pred``), ``group`` or confusion
        ``cell`` ((label, pred) pairs), with its per-pixel spread."""
        self._method(method)
        if by not in BY:
            raise SaliencyError(f"by={by!r} is not understood; use one of {BY}")
        key_sql = "label, pred" if by == "cell" else store.q(by)
        acc = MeanAccumulator(self.map_shape)
        for _, keys, maps in self._stream(method, key_sql):
            acc.add(keys, maps)
        return acc.result(by, method)

    def _unit_mass_of(self, method: str, column: str, value: Any) -> tuple[np.ndarray, np.ndarray,
                                                                           int]:
        """``(indices, p rows, blank count)`` of the examples whose ``column`` is ``value``."""
        idx, parts, blank = [], [], 0
        where = f" WHERE {store.q(column)} IS ?"
        for ids, _, maps in self._stream(method, store.q(column), where, [value]):
            p, empty = unit_mass(maps)
            idx.append(ids[~empty])
            parts.append(p[~empty])
            blank += int(empty.sum())
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, int(np.prod(self.map_shape)))), blank
        return np.concatenate(idx), np.concatenate(parts), blank

    def disparity(self, method: str, group_a: Any, group_b: Any, *, by: str = "group",
                  permutations: int = 1000, seed: int = 0) -> Disparity:
        """How differently two groups' mean maps place attention: ½·L1 between them, in [0, 1],
        with a permutation-test p-value (``by`` = ``"label"`` or ``"pred"`` compares classes).

        The test holds both groups' normalized maps in memory as float64:
        (n_a + n_b) · h · w · 8 bytes.
        """
        self._method(method)
        if by not in ("group", "label", "pred"):
            raise SaliencyError(f"by={by!r}: disparity compares 'group', 'label' or 'pred' values")
        if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
            raise SaliencyError(f"permutations must be an int ≥ 0, got {permutations!r}")
        _, pa, blank_a = self._unit_mass_of(method, by, _plain(group_a))
        _, pb, blank_b = self._unit_mass_of(method, by, _plain(group_b))
        for g, p, blank in ((group_a, pa, blank_a), (group_b, pb, blank_b)):
            if len(p) == 0:
                raise SaliencyError(f"{by} {g!r} has no example with a non-zero {method} map "
                                    f"({blank} all-zero); values present: "
                                    f"{self.values(by)[:20]}")
        value, p_value = permutation_test(pa, pb, permutations, np.random.default_rng(seed))
        return Disparity(method=method, groups=(group_a, group_b), value=value,
                         p_value=p_value, permutations=permutations,
                         count=(len(pa), len(pb)), blank=(blank_a, blank_b))

    def values(self, column: str) -> list[Any]:
        """The distinct values of ``column`` in the table, sorted (e.g. the groups, for a
        filter's choices)."""
        from .aggregate import _sort_key
        c = store.q(self._column(column))
        return sorted((v for (v,) in self._sql(f"SELECT DISTINCT {c} FROM examples")),
                      key=_sort_key)

    def diffuse(self, method: str, n: int | None = None) -> Ranking:
        """Examples ranked by the entropy of their map (most diffuse first; all-zero maps last):
        the ones whose explanation says least about where the model looked, to review or label.
        ``values`` is the entropy of ``|m| / Σ|m|`` over ``log(h·w)``, in [0, 1]."""
        c = store.q(f"entropy:{self._method(method)}")
        limit = "" if n is None else f" LIMIT {int(n)}"
        rows = self._sql(f"SELECT idx, {c} FROM examples ORDER BY {c} IS NULL, {c} DESC, idx"
                         f"{limit}")
        return Ranking(method=method, indices=np.array([r[0] for r in rows], dtype=np.int64),
                       values=np.array([np.nan if r[1] is None else r[1] for r in rows]))

    def clusters(self, method: str, label: Any, k: int = 2, *, by: str = "label",
                 neighbors: int | None = None, size: int = 16, seed: int = 0,
                 eigenvalues: int = 10) -> Clusters:
        """SpRAy (Lapuschkin et al. 2019): spectral clustering of one class's maps.

        The maps of the examples whose ``by`` (``"label"``, ``"pred"`` or ``"group"``) equals
        ``label``, as ``|m| / Σ|m|`` average-pooled to at most ``size``×``size``, are clustered
        into ``k`` groups through a ``neighbors``-nearest-neighbour graph (None: ⌈ln n⌉, at
        least 5: enough to connect the graph, few enough to keep small strategies apart). A
        cluster whose mean map sits on an artefact is a clever Hans, found without group labels;
        ``suggested_k`` (the eigengap) says how many strategies the maps fall into.
        """
        self._method(method)
        if by not in ("label", "pred", "group"):
            raise SaliencyError(f"by={by!r}: clusters take the maps of one 'label', 'pred' or "
                                f"'group' value")
        for name, v, low in (("k", k, 1), ("neighbors", 1 if neighbors is None else neighbors, 1),
                             ("size", size, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SaliencyError(f"{name} must be an int ≥ {low}, got {v!r}")
        idx, p, blank = self._unit_mass_of(method, by, _plain(label))
        if len(idx) < k + 1:
            raise SaliencyError(f"{by} {label!r} has {len(idx)} examples with a non-zero map "
                                f"({blank} all-zero); clustering into k={k} needs more than k")
        if neighbors is None:
            neighbors = max(5, math.ceil(math.log(len(idx))))
        h, w = self.map_shape
        pooled = F.adaptive_avg_pool2d(torch.from_numpy(p.reshape(-1, 1, h, w)),
                                       (min(h, size), min(w, size))).reshape(len(p), -1).numpy()
        labels, vals = spectral_clusters(pooled, k, neighbors=neighbors, seed=seed,
                                         eigenvalues=eigenvalues)
        mean = np.stack([p[labels == j].mean(0) for j in range(k)]).reshape(k, h, w)
        gaps = np.diff(vals)
        return Clusters(method=method, by=by, label=label, k=k, indices=idx, labels=labels,
                        sizes=np.bincount(labels, minlength=k), mean=mean, eigenvalues=vals,
                        suggested_k=int(np.argmax(gaps)) + 1 if len(gaps) else 1,
                        blank=np.array(blank))

    def close(self) -> None:
        """Close the table and the shards (the object can be used again afterwards)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._shards.clear()


def _plain(value: Any) -> Any:
    from .data import plain
    return plain(value)
