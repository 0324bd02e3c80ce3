"""The Jupyter widget: traits (the contract with ``js/``) and orchestration, no maths.

State comes in three kinds (see DESIGN.md, "Widget data flow"):

* data, Python → JS: ``image``, ``panels`` (maps as binary payloads), ``colormaps`` (lookup
  tables made by matplotlib), ``methods``, ``labels``, ``predictions``;
* selection, JS ↔ Python, which changes the maths: ``methods_selected``, ``params``, ``target``,
  ``contrast_mode`` / ``contrast``. Only these start computations, in a background worker;
* display, JS ↔ Python, applied in JS without a round trip: ``colormap``, ``opacity``, ``sign``,
  ``clip_percentile``, ``threshold``. Zoom, pan and hover live in JS only.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import pathlib
import threading
import time
from typing import Any, Callable, Hashable, Sequence

import anywidget
import numpy as np
import torch
import traitlets as t
from torch import nn

from .._types import Attribution
from ..api import attribute, check_params, list_methods
from ..errors import SaliencyError
from ..model.copy import explainable
from ..model.explainee import OutputSelector, select_output
from ..registry import METHODS
from ..render.heatmap import SIGNS, display_map
from .assets import COLORMAPS, bundle, colormap_lut, known_colormap
from .cache import ByteLRU
from .image import Prepared, prepare
from .jobs import Job, Worker
from .labels import resolve_labels
from .params import coerce, entry_nbytes, freeze, jsonable, key_id, layer_choices
from .payload import to_payload

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class SaliencyWidget(anywidget.AnyWidget):
    """Heatmaps of several attribution methods over one image, side by side, zoom linked.

    Open it with :func:`show`. Traits listed under "Testing contract" in the README are stable.
    """

    _esm = property(lambda self: bundle("widget.js"))
    _css = property(lambda self: bundle("widget.css"))

    # -- data, Python → JS ---------------------------------------------------------------------
    image = t.Dict().tag(sync=True)
    """uint8 ``(H, W, 3)`` payload: the pixels the model saw, normalization undone."""
    panels = t.List(t.Dict()).tag(sync=True)
    """One dict per selected method: title, state, timing, and the maps as float32 payloads."""
    colormaps = t.Dict().tag(sync=True)
    """``{"names": [...], "lut": uint8 (N, 256, 4) payload}``: every colormap JS can apply."""
    methods = t.List(t.Dict()).tag(sync=True)
    """The registry (``list_methods()``) plus each CAM method's ``layer`` choices."""
    labels = t.List(t.Unicode()).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)
    """Top-k ``{"index", "label", "prob"}`` for the image."""
    progress = t.Float(0.0).tag(sync=True)
    message = t.Unicode("").tag(sync=True)

    # -- selection, JS ↔ Python (starts computations) ------------------------------------------
    methods_selected = t.List(t.Unicode()).tag(sync=True)
    params = t.Dict().tag(sync=True)
    """``{method: {param: value}}``: the user's parameter values (defaults are not repeated)."""
    target = t.Int(0).tag(sync=True)
    contrast = t.Int(None, allow_none=True).tag(sync=True)
    contrast_mode = t.Enum(("none", "runner_up", "class"), "none").tag(sync=True)

    # -- display, JS ↔ Python (never starts a computation) -------------------------------------
    colormap = t.Unicode("RdBu_r").tag(sync=True)
    opacity = t.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    sign = t.Enum(SIGNS, "signed").tag(sync=True)
    clip_percentile = t.Float(99.5, min=50.0, max=100.0).tag(sync=True)
    threshold = t.Float(100.0, min=0.0, max=100.0).tag(sync=True)
    """Show only the top ``threshold`` % of pixels (100: all)."""

    # -- status, Python → JS ---------------------------------------------------------------------
    status = t.Enum(("idle", "computing", "error"), "idle").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, model: nn.Module, image: Any, *, preprocess: Callable[[Any], Any] | None = None,
                 labels: Any = None, methods: Sequence[str] = ("gradient", "grad_cam"),
                 mean: Any = None, std: Any = None, target: int | None = None,
                 contrast: int | str | None = None, top_k: int = 5,
                 cache_bytes: int = 512 * 2**20, output: OutputSelector = None,
                 seed: int = 0, **display: Any) -> None:
        if not isinstance(model, nn.Module):
            raise SaliencyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(methods, str):
            methods = (methods,)
        unknown = set(display) - {"colormap", "opacity", "sign", "clip_percentile", "threshold"}
        if unknown:
            raise SaliencyError(f"sw.show got an unknown argument {sorted(unknown)[0]!r}; display "
                                f"options are colormap, opacity, sign, clip_percentile, threshold")
        if isinstance(contrast, str) and contrast not in ("runner_up", "runner-up"):
            raise SaliencyError(f"contrast={contrast!r} is not understood; use None, a class "
                                f"index or 'runner_up'")
        self._model = model
        self._output = output
        self._seed = seed
        self._prepared: Prepared = prepare(model, image, preprocess, mean, std)
        self._logits = self._predict()
        num_classes = int(self._logits.numel())
        self._names = resolve_labels(labels, num_classes)
        self._lock = threading.RLock()
        self._worker = Worker()
        self._cache: ByteLRU[tuple[Attribution, np.ndarray, np.ndarray | None]] = ByteLRU(
            cache_bytes, entry_nbytes)
        self._errors: dict[Hashable, str] = {}
        self._cancelled: set[Hashable] = set()
        self._resolving = False
        self._ready = False
        self._last_progress = 0.0
        self._suppress_display_at: int | None = None
        super().__init__()
        probs = torch.softmax(self._logits.double(), 0)
        k = max(1, min(int(top_k), num_classes))
        top = torch.topk(probs, k)
        with self.hold_sync():
            self.labels = self._names
            self.methods = self._describe_methods()
            self.predictions = [{"index": int(i), "label": self._names[int(i)], "prob": float(p)}
                                for p, i in zip(top.values.tolist(), top.indices.tolist())]
            self.image = to_payload(self._prepared.display)
            self.colormaps = self._colormaps(COLORMAPS)
            for key, value in display.items():
                setattr(self, key, value)
            self.target = int(top.indices[0]) if target is None else target
            if isinstance(contrast, str):
                self.contrast_mode = "runner_up"
                self.contrast = self._runner_up()
            elif contrast is not None:
                self.contrast_mode = "class"
                self.contrast = contrast
            self.methods_selected = list(methods)
        self._ready = True
        self.on_msg(self._on_custom_msg)
        self._refresh(schedule=True)

    # -- public Python API -------------------------------------------------------------------
    @property
    def model_input(self) -> torch.Tensor:
        """``(1, C, H, W)``: the tensor every shown map explains (on the model's device)."""
        return self._prepared.x

    @property
    def display_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8: the picture shown under the maps (the model's input, un-normalized)."""
        return self._prepared.display

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` detected from the preprocess or given; passed to the engine."""
        return self._prepared.normalization

    @property
    def attributions(self) -> list[Attribution]:
        """The :class:`Attribution` records of the panels shown now (computed ones only)."""
        out = []
        for method in self.methods_selected:
            try:
                key, _ = self._plan(method)
            except SaliencyError:
                continue
            entry = self._cache.get(key)
            if entry is not None:
                out.append(entry[0])
        return out

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every wanted map is computed (or failed); return False on timeout."""
        return self._worker.wait(timeout)

    def cancel(self) -> None:
        """Stop the running computation and drop the queued ones (their panels say so)."""
        with self._lock:
            self._cancelled.update(self._worker.cancel())
        self._refresh(schedule=False)

    def retry(self) -> None:
        """Compute again the panels that were cancelled or failed."""
        with self._lock:
            self._cancelled.clear()
            self._errors.clear()
        self._refresh(schedule=True)

    def to_figure(self):
        """Return a matplotlib Figure of the current panels, as the widget shows them."""
        from .export import panels_figure

        return panels_figure(self)

    def save_png(self, path: str | pathlib.Path, dpi: int = 150) -> pathlib.Path:
        """Write :meth:`to_figure` to ``path`` as PNG and return the path."""
        import matplotlib.pyplot as plt

        fig = self.to_figure()
        try:
            fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
        finally:
            plt.close(fig)
        return pathlib.Path(path)

    def close(self) -> None:
        """Stop the worker and close the widget's views."""
        worker = self.__dict__.get("_worker")  # absent when __init__ raised early
        if worker is not None:
            worker.close()
        super().close()

    def _ipython_display_(self) -> None:
        # sw.show() displays the widget and returns it; when that call ends a cell, IPython would
        # display the returned widget a second time. Skip exactly that one display.
        from IPython import get_ipython
        from IPython.display import display

        ip = get_ipython()
        count = getattr(ip, "execution_count", None)
        if self._suppress_display_at is not None and self._suppress_display_at == count:
            self._suppress_display_at = None
            return
        data = self._repr_mimebundle_()
        if isinstance(data, tuple):
            display(data[0], metadata=data[1], raw=True)
        elif data:
            display(data, raw=True)

    # -- validation ----------------------------------------------------------------------------
    def _check_class(self, value: int | None, what: str) -> None:
        n = len(self._names)
        if value is not None and not 0 <= value < n:
            raise t.TraitError(f"{what} {value} is out of range for a model with {n} classes "
                               f"(valid 0–{n - 1})")

    @t.validate("target")
    def _valid_target(self, proposal: dict[str, Any]) -> int:
        self._check_class(proposal["value"], "target")
        return proposal["value"]

    @t.validate("contrast")
    def _valid_contrast(self, proposal: dict[str, Any]) -> int | None:
        self._check_class(proposal["value"], "contrast")
        return proposal["value"]

    @t.validate("methods_selected")
    def _valid_methods(self, proposal: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for name in proposal["value"]:
            if name not in METHODS:
                try:
                    METHODS.get(name)  # raises with a "did you mean"
                except SaliencyError as err:
                    raise t.TraitError(str(err)) from None
            if name not in out:
                out.append(name)
        return out

    @t.validate("colormap")
    def _valid_colormap(self, proposal: dict[str, Any]) -> str:
        name = proposal["value"]
        if not known_colormap(name):
            import matplotlib

            close = difflib.get_close_matches(name, list(matplotlib.colormaps), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise t.TraitError(f"unknown matplotlib colormap {name!r}{hint}")
        return name

    @t.validate("params")
    def _valid_params(self, proposal: dict[str, Any]) -> dict[str, Any]:
        value = proposal["value"]
        for method, given in value.items():
            if method not in METHODS or not isinstance(given, dict):
                raise t.TraitError(f"params must map method names to dicts of parameters, got "
                                   f"{method!r}: {given!r}")
        return value

    @t.observe("colormap")
    def _on_colormap(self, change: dict[str, Any]) -> None:
        if change["new"] not in self.colormaps.get("names", ()):
            self.colormaps = self._colormaps([*self.colormaps["names"], change["new"]])

    # -- selection → computations ------------------------------------------------------------
    @t.observe("methods_selected", "params", "target", "contrast", "contrast_mode")
    def _on_selection(self, change: dict[str, Any]) -> None:
        if not self._ready:
            return
        name, new = change["name"], change["new"]
        if name == "contrast_mode" and not self._resolving:
            self._set_contrast(None if new == "none" else
                               self._runner_up() if new == "runner_up" else self.contrast)
        elif name == "contrast" and not self._resolving:
            mode = "none" if new is None else "class"
            if self.contrast_mode != mode:
                self._resolving = True
                try:
                    self.contrast_mode = mode
                finally:
                    self._resolving = False
        elif name == "target" and self.contrast_mode == "runner_up":
            self._set_contrast(self._runner_up())
        elif name == "methods_selected":
            dropped = set(change["old"] or ()) - set(new)
            with self._lock:  # toggling a method off and on again asks for it afresh
                for key in [*self._errors, *self._cancelled]:
                    if key[0] in dropped:
                        self._errors.pop(key, None)
                        self._cancelled.discard(key)
        self._refresh(schedule=True)

    def _set_contrast(self, value: int | None) -> None:
        self._resolving = True
        try:
            self.contrast = value
        finally:
            self._resolving = False

    def _runner_up(self) -> int:
        """The best class other than the target (re-resolved whenever the target changes)."""
        logits = self._logits.clone()
        if logits.numel() < 2:
            raise SaliencyError("a runner-up contrast needs a model with at least 2 classes")
        logits[self.target] = float("-inf")
        return int(logits.argmax())

    def _effective_contrast(self) -> int | None:
        return None if self.contrast_mode == "none" else self.contrast

    def _plan(self, method: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The cache key of ``method`` under the current selection, and its engine arguments."""
        spec = METHODS.get(method)
        given = dict(self.params.get(method, {}))
        layer = given.pop("layer", None) or None
        typed = {k: coerce(spec.defaults, method, k, v) for k, v in given.items()}
        full = check_params(spec, typed)  # fills defaults: equal settings share a cache key
        contrast = self._effective_contrast()
        key = (method, freeze(full), layer, int(self.target), contrast)
        kwargs = {"method": method, "target": int(self.target), "contrast": contrast,
                  "layer": layer, **typed}
        return key, kwargs

    def _refresh(self, schedule: bool) -> None:
        """Rebuild the panels from the selection and the cache; queue what is missing."""
        if not self._ready:
            return
        with self._lock:
            panels: list[dict[str, Any]] = []
            jobs: list[Job] = []
            for method in self.methods_selected:
                try:
                    key, kwargs = self._plan(method)
                except SaliencyError as err:
                    panels.append(self._panel(method, None, "error", error=str(err)))
                    continue
                entry = self._cache.get(key)
                if entry is not None:
                    panels.append(self._panel(method, key, "ready", entry=entry))
                elif key in self._errors:
                    panels.append(self._panel(method, key, "error", error=self._errors[key]))
                elif key in self._cancelled:
                    panels.append(self._panel(method, key, "cancelled"))
                else:
                    panels.append(self._panel(method, key, "computing"))
                    jobs.append(self._job(key, kwargs))
            if schedule:
                self._worker.schedule(jobs)
            computing = [p for p in panels if p["state"] == "computing"]
            failed = [p for p in panels if p["state"] == "error"]
            with self.hold_sync():
                self.panels = panels
                self.error = "\n".join(f"{p['label']}: {p['error']}" for p in failed)
                self.status = "computing" if computing else "error" if failed else "idle"
                if not computing:
                    self.progress = 0.0
                    self.message = ""
                else:
                    self.message = f"computing {', '.join(p['label'] for p in computing)}"

    def _job(self, key: tuple[Any, ...], kwargs: dict[str, Any]) -> Job:
        model, x, norm = self._model, self._prepared.x, self._prepared.normalization
        seed, output = self._seed, self._output

        def run(progress: Callable[[int, int], None], cancel: threading.Event) -> Any:
            attr = attribute(model, x, seed=seed, normalization=norm, output=output,
                             progress=progress, cancel=cancel, **kwargs)
            values = attr.values.detach().to("cpu")
            attr = dataclasses.replace(attr, values=values)  # cache on the CPU, not the GPU
            signed = display_map(values, "signed")[0]
            absolute = display_map(values, "absolute")[0] if values.shape[1] > 1 else None
            return attr, signed, absolute

        return Job(key=key, run=run, on_done=self._job_done, on_error=self._job_failed,
                   on_cancelled=self._job_cancelled, on_progress=self._job_progress)

    # -- worker callbacks (worker thread) ------------------------------------------------------
    def _job_done(self, key: Hashable, entry: Any) -> None:
        self._cache.put(key, entry)
        self._refresh(schedule=False)

    def _job_failed(self, key: Hashable, err: BaseException) -> None:
        log.error("saliency widget: %s failed", key[0], exc_info=err)
        with self._lock:
            self._errors[key] = f"{type(err).__name__}: {err}"
        self._refresh(schedule=False)

    def _job_cancelled(self, key: Hashable) -> None:
        self._refresh(schedule=False)

    def _job_progress(self, key: Hashable, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.1 and done < total:
            return
        self._last_progress = now
        label = METHODS.get(key[0]).label
        with self._lock, self.hold_sync():
            self.progress = done / total if total else 0.0
            self.message = f"computing {label}: {done}/{total}"

    def _on_custom_msg(self, _: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "cancel":
            self.cancel()
        elif kind == "retry":
            self.retry()

    # -- building trait values ---------------------------------------------------------------
    def _predict(self) -> torch.Tensor:
        """The logits of the image, from the engine's private copy of the model (eval mode)."""
        with torch.no_grad(), explainable(self._model) as net:
            out = select_output(net(self._prepared.x), self._output)
        if out.dim() != 2 or out.shape[0] != 1:
            raise SaliencyError(f"the model returned logits of shape {tuple(out.shape)}; the "
                                f"widget needs (1, num_classes) for one image")
        return out[0].detach().to("cpu", torch.float64)

    def _describe_methods(self) -> list[dict[str, Any]]:
        layers = layer_choices(self._model)
        out = []
        for desc in list_methods():
            desc = jsonable(desc)
            if desc.get("uses_layer"):
                desc["params"] = {**desc["params"], "layer": None}
                desc["choices"] = {**desc["choices"], "layer": layers}
            out.append(desc)
        return out

    def _colormaps(self, names: Sequence[str]) -> dict[str, Any]:
        names = list(dict.fromkeys(names))
        return {"names": names, "lut": to_payload(np.stack([colormap_lut(n) for n in names]))}

    def _objective(self, key: tuple[Any, ...] | None) -> str:
        """What a panel explains, in words: "tabby" or "tabby rather than tiger cat"."""
        if key is None:
            return ""
        target, contrast = key[3], key[4]
        what = self._names[target]
        return what if contrast is None else f"{what} rather than {self._names[contrast]}"

    def _panel(self, method: str, key: tuple[Any, ...] | None, state: str, *,
               entry: tuple[Attribution, np.ndarray, np.ndarray | None] | None = None,
               error: str = "") -> dict[str, Any]:
        label = METHODS.get(method).label
        objective = self._objective(key)
        panel: dict[str, Any] = {
            "id": f"{method}:{state}" if key is None else key_id(key),
            "method": method, "label": label, "objective": objective,
            "title": f"{label} · {objective}" if objective else label, "state": state,
            "error": error, "seconds": None, "target": None if key is None else key[3],
            "contrast": None if key is None else key[4], "signed": None, "absolute": None}
        if entry is not None:
            attr, signed, absolute = entry
            panel["seconds"] = float(attr.seconds)
            panel["signed"] = to_payload(signed)
            panel["absolute"] = None if absolute is None else to_payload(absolute)
        return panel


def show(model: nn.Module, image: Any, *, preprocess: Callable[[Any], Any] | None = None,
         labels: Any = None, methods: Sequence[str] = ("gradient", "grad_cam"),
         mean: Any = None, std: Any = None, **options: Any) -> SaliencyWidget:
    """Display and return a :class:`SaliencyWidget` explaining ``model`` on ``image``.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits; never modified. Maps are computed where it lives (CPU or
        CUDA), in a background thread: the notebook stays responsive.
    image : PIL image, ``(H, W, 3)`` uint8 array, or ``(3, H, W)`` / ``(1, 3, H, W)`` float tensor
        Without ``preprocess``, uint8/PIL input becomes [0, 1] floats (like ``ToTensor``) and a
        float tensor is taken as the model's input.
    preprocess : callable, optional
        E.g. torchvision transforms or ``weights.transforms()``. The widget shows the pixels the
        model saw (after resize/crop), with the normalization found in ``preprocess`` undone.
    labels : list of names, torchvision weights enum, or None (class indices)
    methods : names from ``sw.list_methods()`` shown first
    mean, std : the model's input normalization, when ``preprocess`` does not reveal it
    **options
        ``target``, ``contrast`` (an index or ``"runner_up"``), ``top_k``, ``cache_bytes``,
        ``output`` (which model output holds the logits), ``seed``, and the display options
        ``colormap``, ``opacity``, ``sign``, ``clip_percentile``, ``threshold``.
    """
    widget = SaliencyWidget(model, image, preprocess=preprocess, labels=labels, methods=methods,
                            mean=mean, std=std, **options)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return widget
    ip = get_ipython()
    if ip is not None and getattr(ip, "kernel", None) is not None:
        display(widget)
        widget._suppress_display_at = getattr(ip, "execution_count", None)
    return widget
