"""The explorer (``sw.explore``): a whole audit, page by page, with the single-image widget below.

The browser receives only what is on screen: one page of rows (small JSON) with their
thumbnails and maps as two binary buffers, the confusion matrix, and the mean maps / clusters
when they are asked for. Paging, sorting and filtering are SQLite queries over the audit's
table (``Audit.query``) and memory-mapped reads of its shards, on the kernel thread (they take
milliseconds); mean maps and SpRAy clusters stream every map of the audit, so they run in a
background worker with progress and cancel.

The detail view is one :class:`SaliencyWidget`, made with the explorer (marimo cannot create a
widget model from a message handler) and pointed at the clicked example with ``set_image``:
target = the prediction; for an error, contrast = the true class.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import anywidget
import numpy as np
import traitlets as t
from ipywidgets import widget_serialization
from torch import nn

from ..audit import Audit
from ..audit.data import Source
from ..errors import SaliencyError
from .assets import bundle, colormap_lut
from .display import DisplayOnce, shown
from .jobs import Job, Worker
from .labels import resolve_labels
from .payload import to_payload
from .sync import LockedSync
from .widget import SaliencyWidget

FILTER_KEYS = ("correct", "label", "pred", "group", "cell")
BY = ("label", "pred", "group", "cell")


class ExplorerWidget(DisplayOnce, LockedSync, anywidget.AnyWidget):
    """A gallery of an audit's examples with their maps, the confusion matrix, mean maps,
    SpRAy clusters, and the single-image widget on the example clicked. Open with
    :func:`explore`. The traits under "The explorer" in the README are a stable contract."""

    _esm = property(lambda self: bundle("explorer.js"))
    _css = property(lambda self: bundle("explorer.css"))

    # -- data, Python → JS ---------------------------------------------------------------------
    classes = t.List(t.Unicode()).tag(sync=True)
    groups = t.List(t.Any()).tag(sync=True)
    audit_methods = t.List(t.Unicode()).tag(sync=True)
    columns = t.List(t.Unicode()).tag(sync=True)
    """The numeric columns one can sort by."""
    total = t.Int(0).tag(sync=True)
    """Examples that pass the filter."""
    page_rows = t.List(t.Dict()).tag(sync=True)
    """The page's rows: idx, label, pred, correct, group, confidence, loss, the sort value."""
    page_images = t.Any(None, allow_none=True).tag(sync=True)
    """uint8 ``(n, h, w, 3)``: the page's thumbnails (the pixels the model saw)."""
    page_maps = t.Any(None, allow_none=True).tag(sync=True)
    """float32 ``(n, h, w)``: the page's maps of ``method``, each divided by its peak |value|."""
    confusion = t.Dict().tag(sync=True)
    """int32 ``(K, K)``: rows are true classes, columns predictions."""
    mean_maps = t.Dict().tag(sync=True)
    """``{"by", "method", "titles", "counts", "maps": float32 (G, h, w), "disparity"}``."""
    clusters = t.Dict().tag(sync=True)
    """``{"label", "k", "sizes", "maps": float32 (k, h, w), "suggested_k"}`` of SpRAy."""
    lut = t.Dict().tag(sync=True)
    """uint8 ``(256, 4)``: the colormap of the thumbnails' maps."""
    detail = t.Instance(SaliencyWidget, allow_none=True).tag(sync=True, **widget_serialization)
    status = t.Enum(("idle", "computing", "error"), "idle").tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    # -- selection, JS ↔ Python ----------------------------------------------------------------
    method = t.Unicode().tag(sync=True)
    sort_by = t.Unicode("idx").tag(sync=True)
    descending = t.Bool(False).tag(sync=True)
    filter = t.Dict().tag(sync=True)
    """Keys ``correct`` (``"correct"`` / ``"wrong"``), ``label``, ``pred``, ``group``, ``cell``
    (``[true, pred]``); a missing key or None means any."""
    page = t.Int(0, min=0).tag(sync=True)
    page_size = t.Int(24, min=1, max=500).tag(sync=True)
    selected = t.Int(None, allow_none=True).tag(sync=True)
    """The data-set index shown in the detail view, or None."""
    mean_by = t.Enum(BY, "label").tag(sync=True)
    cluster_label = t.Int(None, allow_none=True).tag(sync=True)
    cluster_k = t.Int(2, min=2, max=12).tag(sync=True)

    def __init__(self, audit: Audit, data: Any = None, *, model: nn.Module | None = None,
                 labels: Any = None, method: str | None = None, page_size: int = 24,
                 **show_options: Any) -> None:
        if not isinstance(audit, Audit):
            raise SaliencyError(f"explore() takes an audit (sw.audit(...) or sw.load_audit(path)),"
                                f" got {type(audit).__name__}")
        if not audit.methods:
            raise SaliencyError("this audit has no methods, so there are no maps to explore")
        if method is not None and method not in audit.methods:
            raise SaliencyError(f"method {method!r} is not in this audit; it has "
                                f"{', '.join(audit.methods)}")
        if (model is None) != (data is None):
            raise SaliencyError("the detail view needs both model= and data= (the data set the "
                                "audit read): pass both, or neither for the gallery alone")
        self._audit = audit
        self._source = Source(data) if data is not None else None
        if self._source is not None and self._source.length != len(audit):
            raise SaliencyError(f"data has {self._source.length} examples but the audit "
                                f"{len(audit)}; pass the data set the audit read")
        self._names = resolve_labels(labels, int(audit.manifest["classes"]))
        self._ready = False
        self._outstanding: set[Any] = set()
        lock = threading.RLock()
        detail = None
        if model is not None and self._source is not None:
            norm = audit.manifest["identity"].get("normalization")
            mean, std = (norm if norm else (None, None))
            detail = SaliencyWidget(model, self._source.example(0), labels=self._names,
                                    methods=(method or audit.methods[0],), mean=mean, std=std,
                                    **show_options)
        super().__init__(sync_lock=lock)
        self._worker = Worker(name="saliency-explorer", on_failure=self._background_failed)
        with self.hold_sync():
            self.classes = self._names
            self.groups = [g for g in audit.values("group") if g is not None]
            self.audit_methods = list(audit.methods)
            self.columns = list(audit.numeric_columns())
            self.confusion = to_payload(audit.confusion().astype(np.int32))
            self.lut = to_payload(colormap_lut("RdBu_r"))
            self.method = method or audit.methods[0]
            self.page_size = page_size
            self.detail = detail
        self._ready = True
        self._load_page()
        self._schedule_mean_maps()

    # -- public Python API ---------------------------------------------------------------------
    @property
    def audit(self) -> Audit:
        return self._audit

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until the mean maps and clusters asked for are computed (and the detail view's
        maps); return False on timeout."""
        ok = self._worker.wait(timeout)
        return ok and (self.detail is None or self.detail.wait(timeout))

    def close(self) -> None:
        worker = self.__dict__.get("_worker")
        if worker is not None:
            worker.close()
        detail = self.__dict__.get("_trait_values", {}).get("detail")
        if detail is not None:
            detail.close()
        super().close()

    # -- validation ----------------------------------------------------------------------------
    @t.validate("method")
    def _valid_method(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if value not in self._audit.methods:
            raise t.TraitError(f"method {value!r} is not in this audit; it has "
                               f"{', '.join(self._audit.methods)}")
        return value

    @t.validate("sort_by")
    def _valid_sort(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        columns = self._audit.numeric_columns()
        if value not in columns:
            raise t.TraitError(f"cannot sort by {value!r}; sortable columns: "
                               f"{', '.join(columns)}")
        return value

    @t.validate("filter")
    def _valid_filter(self, proposal: dict[str, Any]) -> dict[str, Any]:
        value = {k: v for k, v in proposal["value"].items() if v is not None and v != ""}
        unknown = set(value) - set(FILTER_KEYS)
        if unknown:
            raise t.TraitError(f"unknown filter key(s) {sorted(unknown)}; use {FILTER_KEYS}")
        if "correct" in value and value["correct"] not in ("correct", "wrong", True, False):
            raise t.TraitError(f"filter correct={value['correct']!r}: use 'correct' or 'wrong'")
        return value

    @t.validate("selected")
    def _valid_selected(self, proposal: dict[str, Any]) -> int | None:
        i: int | None = proposal["value"]
        if i is not None and not 0 <= i < len(self._audit):
            raise t.TraitError(f"selected {i} is out of range for an audit of {len(self._audit)}")
        return i

    # -- reactions -----------------------------------------------------------------------------
    @t.observe("method", "sort_by", "descending", "filter", "page_size")
    def _on_view(self, change: dict[str, Any]) -> None:
        if not self._ready:
            return
        if change["name"] != "method" and self.page != 0:
            self.page = 0  # a new order or filter starts at its first page (this reloads)
            return
        self._load_page()
        if change["name"] == "method":
            self._schedule_mean_maps()

    @t.observe("page")
    def _on_page(self, change: dict[str, Any]) -> None:
        if self._ready:
            self._load_page()

    @t.observe("mean_by", "cluster_label", "cluster_k")
    def _on_aggregate(self, change: dict[str, Any]) -> None:
        if self._ready:
            self._schedule_mean_maps()

    @t.observe("selected")
    def _on_selected(self, change: dict[str, Any]) -> None:
        i = change["new"]
        if not self._ready or i is None or self.detail is None or self._source is None:
            return
        (row,) = self._audit.rows([i])
        wrong = not row["correct"]
        self.detail.set_image(self._source.example(i), target=int(row["pred"]),
                              contrast=int(row["label"]) if wrong else None)

    def _query_filter(self) -> dict[str, Any]:
        f = dict(self.filter)
        if f.get("correct") in ("correct", "wrong"):
            f["correct"] = f["correct"] == "correct"
        if "cell" in f:
            f["cell"] = tuple(int(v) for v in f["cell"])
        return f

    def _load_page(self) -> None:
        """Read one page: its rows, thumbnails and maps (milliseconds: indexed SQLite + mmap)."""
        try:
            f = self._query_filter()
            total = self._audit.count(f)
            last = max(0, (total - 1) // self.page_size)
            if self.page > last:
                self.page = last  # reloads
                return
            idx, rows = self._audit.query(self.sort_by, self.descending, f, self.page,
                                          self.page_size)
            rows_idx = idx.tolist()
            images = self._audit.thumbnails(rows_idx) if rows_idx else None
            maps = self._audit.maps(self.method, rows_idx, scaled=False) if rows_idx else None
        except SaliencyError as err:
            with self.hold_sync():
                self.status, self.error = "error", str(err)
            return
        keep = ("idx", "label", "pred", "correct", "group", "confidence", "loss")
        with self.hold_sync():
            self.total = total
            self.page_rows = [{**{k: _plain(r.get(k)) for k in keep},
                               "value": _plain(r.get(self.sort_by))} for r in rows]
            self.page_images = None if images is None else to_payload(np.ascontiguousarray(images))
            self.page_maps = None if maps is None else to_payload(maps.astype(np.float32))
            if self.status == "error":
                self.status, self.error = "idle", ""

    # -- background: mean maps and clusters ----------------------------------------------------
    def _schedule_mean_maps(self) -> None:
        method, by, label, k = self.method, self.mean_by, self.cluster_label, self.cluster_k
        jobs = [Job(key=("mean", method, by), run=self._mean_maps_job(method, by),
                    on_done=self._done, on_error=self._failed, on_cancelled=self._cancelled)]
        if label is not None:
            jobs.append(Job(key=("clusters", method, label, k),
                            run=self._clusters_job(method, label, k), on_done=self._done,
                            on_error=self._failed, on_cancelled=self._cancelled))
        with self.hold_sync():
            self._outstanding = {job.key for job in jobs}
            self.status, self.message = "computing", "computing mean maps"
        self._worker.schedule(jobs)

    def _mean_maps_job(self, method: str, by: str) -> Callable[..., dict[str, Any]]:
        def run(progress: Callable[[int, int], None], cancel: threading.Event) -> dict[str, Any]:
            mm = self._audit.mean_map(method, by=by)
            titles = [self._key_title(by, key) for key in mm.keys]
            out: dict[str, Any] = {"by": by, "method": method, "titles": titles,
                                   "counts": [int(c) for c in mm.count],
                                   "maps": to_payload(np.nan_to_num(mm.mean).astype(np.float32)),
                                   "disparity": None}
            if by == "group" and len(mm.keys) == 2 and all(c > 0 for c in mm.count):
                d = self._audit.disparity(method, mm.keys[0], mm.keys[1])
                out["disparity"] = {"groups": [str(g) for g in d.groups], "value": d.value,
                                    "p_value": d.p_value}
            return out
        return run

    def _clusters_job(self, method: str, label: int, k: int) -> Callable[..., dict[str, Any]]:
        def run(progress: Callable[[int, int], None], cancel: threading.Event) -> dict[str, Any]:
            c = self._audit.clusters(method, label, k)
            return {"label": label, "label_name": self._names[label], "k": k,
                    "sizes": [int(s) for s in c.sizes], "suggested_k": int(c.suggested_k),
                    "maps": to_payload(c.mean.astype(np.float32))}
        return run

    def _done(self, key: Any, result: dict[str, Any]) -> None:
        with self.hold_sync():
            if key[0] == "mean":
                self.mean_maps = result
            else:
                self.clusters = result
            self._settle(key)

    def _settle(self, key: Any) -> None:
        self._outstanding.discard(key)
        if not self._outstanding and self.status == "computing":
            self.status, self.message = "idle", ""

    def _failed(self, key: Any, err: BaseException) -> None:
        with self.hold_sync():
            self._outstanding.discard(key)
            self.status, self.message = "error", ""
            self.error = f"{key[0]}: {err}"

    def _cancelled(self, key: Any) -> None:
        with self.hold_sync():
            self._settle(key)

    def _background_failed(self, err: BaseException) -> None:
        with self.hold_sync():
            self.status, self.error = "error", f"internal error: {type(err).__name__}: {err}"

    def _key_title(self, by: str, key: Any) -> str:
        if by == "cell":
            true, pred = key
            return f"{self._names[true]} → {self._names[pred]}"
        if by in ("label", "pred"):
            return self._names[int(key)]
        return str(key)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        v = float(value)
        return None if v != v else v
    if isinstance(value, float) and value != value:
        return None
    return value


def explore(audit: Audit, data: Any = None, *, model: nn.Module | None = None,
            **options: Any) -> ExplorerWidget:
    """Display and return an :class:`ExplorerWidget` over ``audit``.

    ``data`` (the data set the audit read) and ``model`` enable the detail view: clicking a
    thumbnail opens that example in the single-image widget (target = the prediction; for an
    error, contrast = the true class). Other options: ``labels``, ``method``, ``page_size``, and
    the single-image widget's options (``methods`` excepted).
    """
    return shown(ExplorerWidget(audit, data, model=model, **options))
