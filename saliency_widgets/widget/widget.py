"""The Jupyter widget: traits (the contract with ``js/``) and orchestration, no maths.

State comes in three kinds (see DESIGN.md, "Widget data flow"):

* data, Python → JS: ``image``, ``panels`` (one child model per panel, maps as binary payloads),
  ``colormaps`` (lookup tables made by matplotlib), ``methods``, ``labels``, ``predictions``,
  ``limits``;
* selection, JS ↔ Python, which changes the maths: ``methods_selected``, ``params``, ``target``,
  ``contrast_mode`` / ``contrast``. Only these start computations, in a background worker;
* display, JS ↔ Python, applied in JS without a round trip: ``colormap``, ``opacity``, ``sign``,
  ``clip_percentile``, ``threshold``. Zoom, pan and hover live in JS only;
* red-teaming and expert alignment (``attack.py``, ``paint.py``): ``expert_mask`` (JS ↔ Python)
  and ``brush_size``, the maps' ``agreement`` with the mask, ``attack_settings``, and each
  panel's ``attack`` view. Paint mode and the paint tool live in JS only.

Threads: the kernel thread (user code, messages from the browser) and the worker thread (job
callbacks) both write synced traits; every such write takes the widget's one lock (``sync.py``).
"""

from __future__ import annotations

import contextvars
import difflib
import pathlib
import threading
import time
import warnings
from typing import Any, Callable, Hashable, Sequence

import anywidget
import numpy as np
import torch
import traitlets as t
from ipywidgets import widget_serialization
from torch import nn

from .._types import Attribution, Prediction
from ..api import describe_method, fingerprint, list_layers, list_methods, predict
from ..errors import SaliencyError, SaliencyWarning
from ..render import Overlay, display_map, overlay_grid
from ..render.heatmap import SIGNS
from .assets import COLORMAPS, bundle, colormap_lut, known_colormap
from .attack import Attacks, check_options
from .board import Board, Extra, Planned
from .compute import explain_job
from .display import DisplayOnce
from .image import Prepared, prepare
from .jobs import Job, Worker
from .labels import resolve_labels
from .paint import Agreement, check_mask, load_mask, mask_from_json, mask_to_json, save_mask
from .panel import Panel, PanelKey
from .params import describe_value, jsonable, split_params
from .plan import Selection, plan
from .payload import to_payload
from .sync import LockedSync
from .trust import TrustViews
from .trust.mixin import check_masks

_DISPLAY = ("colormap", "opacity", "sign", "clip_percentile", "threshold")


class SaliencyWidget(DisplayOnce, LockedSync, TrustViews, anywidget.AnyWidget):
    """Heatmaps of several attribution methods over one image, side by side, zoom linked.

    Open it with :func:`show`. Traits listed under "Testing contract" in the README are stable.
    """

    _esm = property(lambda self: bundle("widget.js"))
    _css = property(lambda self: bundle("widget.css"))

    # -- data, Python → JS ---------------------------------------------------------------------
    image = t.Dict().tag(sync=True)
    """uint8 ``(H, W, 3)`` payload: the pixels the model saw, normalization undone."""
    panels = t.List(t.Instance(Panel)).tag(sync=True, **widget_serialization)
    """One child model per selected method (title, state, timing, maps as float32 payloads)."""
    colormaps = t.Dict().tag(sync=True)
    """``{"names": [...], "lut": uint8 (N, 256, 4) payload}``: every colormap JS can apply."""
    methods = t.List(t.Dict()).tag(sync=True)
    """The registry (``list_methods()``) plus each CAM method's ``layer`` choices."""
    labels = t.List(t.Unicode()).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)
    """Top-k ``{"index", "label", "prob"}`` for the image, under the current weights."""
    limits = t.Dict().tag(sync=True)
    """``{trait: [min, max]}`` of the numeric display traits: the sliders' ranges."""
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

    # -- red-teaming and expert alignment (attack.py, paint.py) ----------------------------------
    expert_mask = t.Any(None, allow_none=True).tag(sync=True, to_json=mask_to_json,
                                                   from_json=mask_from_json)
    """``(H, W)`` bool array at the model's input size (painted in the browser, or set), or None."""
    brush_size = t.Int(8, min=1, max=128).tag(sync=True)
    """The paint brush's diameter in model-input pixels (the same pixels at any zoom); the box
    tool covers larger regions."""
    agreement = t.Dict().tag(sync=True)
    """``{method: {metric: value}}``: each ready map against ``expert_mask`` (None: undefined)."""
    attack_settings = t.Dict(dict(kind="untargeted", epsilon=8 / 255, steps=10)).tag(sync=True)
    """The options of the attack the panels' attack buttons start (see :meth:`attack`)."""

    def __init__(self, model: nn.Module, image: Any, *,
                 preprocess: Callable[[Any], Any] | None = None, labels: Any = None,
                 methods: Sequence[str] = ("gradient", "grad_cam"),
                 mean: Any = None, std: Any = None, target: int | None = None,
                 contrast: int | str | None = None, top_k: int = 5,
                 cache_bytes: int = 512 * 2**20, output: Any = None,
                 seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
                 references: Any = None, metrics: Sequence[str] | None = None,
                 masks: Any = None, **display: Any) -> None:
        if not isinstance(model, nn.Module):
            raise SaliencyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(methods, str):
            methods = (methods,)
        unknown = set(display) - set(_DISPLAY)
        if unknown:
            raise SaliencyError(f"sw.show got an unknown argument {sorted(unknown)[0]!r}; display "
                                f"options are {', '.join(_DISPLAY)}")
        if isinstance(contrast, str) and contrast not in ("runner_up", "runner-up"):
            raise SaliencyError(f"contrast={contrast!r} is not understood; use None, a class "
                                f"index or 'runner_up'")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise SaliencyError(f"top_k must be a positive int, got {top_k!r}")
        self._model = model
        self._output = output
        self._seed = seed
        self._top_k = top_k
        self._prepare = (preprocess, mean, std)
        self._prepared: Prepared = prepare(model, image, preprocess, mean, std)
        self._epoch = 0
        self._fingerprint: int | None = fingerprint(model)
        self._prediction: Prediction = self._predict()
        num_classes = self._prediction.num_classes
        self._names = resolve_labels(labels, num_classes)
        self._resolving = False
        self._ready = False
        self._last_progress = 0.0
        # The context of the cell that made the widget: in a Jupyter kernel it names that cell,
        # so a warning raised later by the worker thread lands in this cell's output (JupyterLab
        # shows output that arrives after a cell finished). The worker itself runs outside it:
        # its state messages must not be tied to a finished cell (nbclient would drop them).
        self._cell = contextvars.copy_context()
        lock = threading.RLock()
        # One panel model per registered method, made now, while the cell runs: marimo cannot
        # create an anywidget model from a message handler (it needs the cell's context for the
        # model's code), so a toggle must never create one.
        registry = list_methods()
        self._registry = {m["name"]: m for m in registry}
        editable, self._python_params = split_params(self._registry, params or {}, references)
        self._board = Board([(m["name"], m["label"]) for m in registry], cache_bytes, lock)
        self._extras: list[Extra] = []  # features that add work after the maps (board.Extra)
        masks = check_masks(masks, self._prepared.x)  # refused before the comm opens
        super().__init__(sync_lock=lock)
        self._agreement = Agreement(lambda: self.expert_mask, self._set_agreement)
        self._attacks = Attacks(self._board.slots, model, lambda: self._prepared, output, lock,
                                self._warn, lambda: self._refresh())
        self._extras += [self._agreement, self._attacks]
        self._worker = Worker(on_failure=self._internal_error)
        self._init_trust(metrics, masks)  # badges, curves, sanity check, path (trust/)
        with self.hold_sync():
            self.labels = self._names
            self.methods = self._describe_methods()
            self.predictions = self._top_predictions()
            self.image = to_payload(self._prepared.display)
            self.colormaps = self._colormaps(COLORMAPS)
            self.limits = {name: [self.traits()[name].min, self.traits()[name].max]
                           for name in ("opacity", "clip_percentile", "threshold", "brush_size")}
            self.brush_size = min(128, max(1, round(max(self._mask_size) / 16)))
            for key, value in display.items():
                setattr(self, key, value)
            self._set_objective(target, contrast)
            self.params = editable
            self.methods_selected = list(methods)
        self._ready = True
        self.on_msg(self._on_custom_msg)
        self._refresh()

    # -- public Python API -------------------------------------------------------------------
    @property
    def model_input(self) -> torch.Tensor:
        """``(1, C, H, W)``: the tensor every shown map explains (on the model's device)."""
        return self._prepared.x

    @property
    def display_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8: the picture under the maps (the model's input, un-normalized)."""
        return self._prepared.display

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` detected from the preprocess or given; passed to the engine."""
        return self._prepared.normalization

    @property
    def attributions(self) -> list[Attribution]:
        """The :class:`Attribution` records of the panels shown now (computed ones only)."""
        with self._sync_lock:
            return [p.entry.attribution for p in self.panels
                    if p.state == "ready" and p.entry is not None]

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until every wanted map is computed (or failed); return False on timeout.

        When it returns True the traits are final: the worker's last callback has written them,
        and the front end has them (a panel last written by the worker is sent again from here,
        for notebook runners that listen only to the running cell).
        """
        if not self._worker.wait(timeout):
            return False
        with self.hold_sync():
            for panel in self.panels:
                if panel.unseen:
                    panel.unseen = False
                    panel.send_state()
            self.send_state(["panels", "status", "error", "message", "progress",
                             "path_info", "path_frame"])  # the path view's, written by the worker
        return True

    def refresh(self) -> None:
        """Recompute the predictions and every shown map from the model's current weights.

        Changes made through the optimizer, ``load_state_dict`` or other in-place tensor ops are
        noticed on the next selection by themselves; writes through ``.data`` are not (they leave
        no trace on the tensors), so call this after those.
        """
        with self._sync_lock:
            self._epoch += 1
            self._fingerprint = None  # forces a new prediction
            self._board.forget()
        self._refresh()

    def set_image(self, image: Any, *, target: int | None = None,
                  contrast: int | str | None = None) -> None:
        """Explain another image with the same model, methods, parameters and display settings.

        ``image`` is taken as in :func:`show` (same ``preprocess`` / ``mean`` / ``std``).
        ``target`` None means the predicted class; ``contrast`` an index, ``"runner_up"`` or None.
        """
        prepared = prepare(self._model, image, *self._prepare)
        with self._sync_lock:
            self._attacks.clear()  # attacks and a painted mask belong to the last picture
            self._worker.cancel()
            self._prepared = prepared
            self._epoch += 1  # every key changes: maps of the last image are never shown here
            self._board.forget()
            self._prediction = self._predict()
            self._fingerprint = fingerprint(self._model)
            ready, self._ready = self._ready, False  # one refresh at the end, not one per trait
            try:
                with self.hold_sync():
                    self.expert_mask = None
                    self.image = to_payload(prepared.display)
                    self.predictions = self._top_predictions()
                    self._set_objective(target, contrast)
            finally:
                self._ready = ready
        self._refresh()

    def cancel(self) -> None:
        """Stop the running computation and drop the queued ones (their panels say so)."""
        with self._sync_lock:
            self._attacks.stop_all()  # before the worker's callbacks: none is asked for again
            self._board.cancelled.update(self._worker.cancel())
        self._refresh(schedule=False)

    def retry(self) -> None:
        """Compute again the panels that were cancelled or failed."""
        with self._sync_lock:
            self._board.forget()
        self._refresh()

    def to_figure(self) -> Any:
        """Return a matplotlib Figure of the current panels, as the widget shows them."""
        with self._sync_lock:
            shown = [(p.title, p.entry) for p in self.panels if p.state == "ready" and p.entry]
        overlays = [Overlay(f"{title}\n{entry.attribution.seconds:.2f} s",
                            display_map(entry.attribution.values[:1], self.sign)[0],
                            signed=self.sign == "signed") for title, entry in shown]
        return overlay_grid(self.display_image, overlays, colormap=self.colormap,
                            opacity=self.opacity, clip_percentile=self.clip_percentile,
                            threshold=self.threshold)

    @property
    def _mask_size(self) -> tuple[int, int]:
        """``(H, W)`` of the model's input: the size of ``expert_mask`` and of every map."""
        return tuple(self._prepared.x.shape[-2:])  # type: ignore[return-value]

    def save_mask(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write ``expert_mask`` to ``path`` as a 1-bit PNG (it loads back exactly); return it."""
        return save_mask(self.expert_mask, path)

    def load_mask(self, path: str | pathlib.Path) -> np.ndarray:
        """Set ``expert_mask`` from a PNG (nonzero pixels are painted) and return it.

        The PNG must have the model's input size; :meth:`save_mask` writes such files.
        """
        self.expert_mask = load_mask(path, self._mask_size)
        return self.expert_mask

    def attack(self, method: str, **options: Any) -> None:
        """Attack the map of ``method``'s panel with ``sw.attack``, in the background.

        The attack explains exactly what the panel shows (method, parameters, layer, target,
        contrast, seed) and moves the pixels within an L∞ budget while the prediction stays put.
        Its view appears under the panels: the original and attacked image and map side by side,
        how far the map moved beside random noise of the same size, and the perturbation,
        amplified (its scale is stated). ``w.attack_results[method]`` holds the
        :class:`sw.AttackResult`; ``w.wait()`` waits for it; the attack view's cancel button
        or :meth:`cancel` stops it.

        ``options`` override ``attack_settings`` for this attack: ``kind`` (``"untargeted"`` or
        ``"targeted"``), ``epsilon`` (pixel units), ``steps``, ``step_size``, ``keep``,
        ``tolerance``, ``beta``, ``defence``, ``top_k`` (see ``sw.attack``).
        """
        if method not in self.methods_selected:
            raise SaliencyError(f"{method!r} has no panel to attack; shown now: "
                                f"{', '.join(self.methods_selected) or 'none'} (add it to "
                                f"w.methods_selected first)")
        options = check_options({**self.attack_settings, **options})
        with self._sync_lock:
            self._attacks.request(method, options)
        self._refresh()

    @property
    def attack_results(self) -> dict[str, Any]:
        """``{method: sw.AttackResult}`` of the finished attacks on the maps shown now."""
        with self._sync_lock:
            return self._attacks.results(list(self.panels))

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
        """Stop the worker and close the widget's views (and its panel models)."""
        self._ready = False  # a job that finishes now changes nothing
        worker = self.__dict__.get("_worker")  # absent when __init__ raised early
        if worker is not None:
            worker.close()
        board = self.__dict__.get("_board")
        if board is not None:
            board.close()
        super().close()

    # -- validation ----------------------------------------------------------------------------
    def _check_class(self, value: int | None, what: str) -> None:
        n = len(self._names)
        if value is not None and not 0 <= value < n:
            raise t.TraitError(f"{what} {value} is out of range for a model with {n} classes "
                               f"(valid 0–{n - 1})")

    @t.validate("target")
    def _valid_target(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        self._check_class(value, "target")
        return value

    @t.validate("contrast")
    def _valid_contrast(self, proposal: dict[str, Any]) -> int | None:
        value: int | None = proposal["value"]
        self._check_class(value, "contrast")
        return value

    @t.validate("methods_selected")
    def _valid_methods(self, proposal: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for name in proposal["value"]:
            if name not in self._board.slots:
                try:
                    describe_method(name)  # raises with a "did you mean"
                except SaliencyError as err:
                    raise t.TraitError(str(err)) from None
            if name not in out:
                out.append(name)
        return out

    @t.validate("colormap")
    def _valid_colormap(self, proposal: dict[str, Any]) -> str:
        name: str = proposal["value"]
        if not known_colormap(name):
            import matplotlib

            close = difflib.get_close_matches(name, list(matplotlib.colormaps), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise t.TraitError(f"unknown matplotlib colormap {name!r}{hint}")
        return name

    @t.validate("params")
    def _valid_params(self, proposal: dict[str, Any]) -> dict[str, Any]:
        value: dict[str, Any] = proposal["value"]
        for method, given in value.items():
            if method not in self._board.slots or not isinstance(given, dict):
                raise t.TraitError(f"params must map method names to dicts of parameters, got "
                                   f"{method!r}: {given!r}")
        return value

    @t.validate("expert_mask")
    def _valid_mask(self, proposal: dict[str, Any]) -> np.ndarray | None:
        return check_mask(proposal["value"], self._mask_size)

    @t.validate("attack_settings")
    def _valid_attack_settings(self, proposal: dict[str, Any]) -> dict[str, Any]:
        value: dict[str, Any] = proposal["value"]
        try:
            check_options(value)
        except SaliencyError as err:
            raise t.TraitError(str(err)) from None
        return value

    @t.observe("expert_mask")
    def _on_mask(self, change: dict[str, Any]) -> None:
        if self._ready:
            self._agreement.update(list(self.panels))

    def _set_agreement(self, values: dict[str, dict[str, float | None]]) -> None:
        if values != self.agreement:
            self.agreement = values

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
            # toggling a method off and on again asks for it afresh
            self._board.forget(set(change["old"] or ()) - set(new))
        self._refresh()

    def _set_objective(self, target: int | None, contrast: int | str | None) -> None:
        """Target (None: the prediction) and contrast (a class, "runner_up" or None), set while
        the observers are quiet (``_ready`` False: one refresh follows)."""
        self.target = int(self._prediction.top_classes[0, 0]) if target is None else target
        if isinstance(contrast, str):
            self.contrast_mode = "runner_up"
            self.contrast = self._runner_up()
        else:
            self.contrast_mode = "none" if contrast is None else "class"
            self.contrast = contrast

    def _set_contrast(self, value: int | None) -> None:
        self._resolving = True
        try:
            self.contrast = value
        finally:
            self._resolving = False

    def _runner_up(self) -> int:
        """The best class other than the target, under the current weights."""
        return self._prediction.runner_up(int(self.target))[0]

    def _check_model(self) -> int:
        """Re-predict when the weights changed since the last look (a cell trained the model);
        return the weights' fingerprint."""
        now = fingerprint(self._model)
        if now == self._fingerprint:
            return now
        self._prediction = self._predict()
        self._fingerprint = now
        with self.hold_sync():
            self.predictions = self._top_predictions()
            if self.contrast_mode == "runner_up":
                self._set_contrast(self._runner_up())
        return now

    def _refresh(self, schedule: bool = True) -> None:
        """Show every selected panel from its pinned result or the cache; queue what is missing."""
        if not self._ready:
            return
        with self._sync_lock:
            weights = self._check_model()
            given = {m: {**self._python_params.get(m, {}), **p} for m, p in self.params.items()}
            for m, p in self._python_params.items():
                given.setdefault(m, dict(p))
            selection = Selection(params=given, target=int(self.target),
                                  contrast_mode=self.contrast_mode, contrast=self.contrast,
                                  model=(weights, self._epoch))
            planned = []
            for method in self.methods_selected:
                try:
                    key, kwargs = plan(selection, method, self._registry)
                    planned.append(Planned(method, key, kwargs))
                except SaliencyError as err:
                    planned.append(Planned(method, error=str(err)))
            layout = self._board.lay_out(planned, self._objective)
            for extra in self._extras:
                extra.show(layout)
            panels = self._trust_order(layout)  # rank_by
            if schedule:
                jobs = [self._job(p.key, p.kwargs) for p in layout.missing if p.key is not None]
                later = [job for extra in self._extras for job in extra.jobs(layout)]  # after maps
                running = self._worker.running_key
                if jobs and running is not None and not isinstance(running, PanelKey):
                    # a new map goes first: the running extra job stops, and is asked again after
                    later = [job for job in later if job.key != running]
                self._worker.schedule(jobs + later)
            else:  # for the status line: what the trust views still wait for (queued already)
                later = self._trust.jobs(layout)
            status, message = layout.status, layout.message
            if status == "idle" and later:
                status, message = "computing", f"computing {getattr(later[0].key, 'label', '')}"
            with self.hold_sync():
                if self.panels != panels:
                    self.panels = panels
                self.error = layout.error
                self.status = status
                self.message = message
                if status != "computing":
                    self.progress = 0.0

    def _job(self, key: PanelKey, kwargs: dict[str, Any]) -> Job:
        run = explain_job(self._model, self._prepared, kwargs, seed=self._seed,
                          output=self._output, label=self._board.label(key.method))
        return Job(key=key, run=run, on_done=self._job_done, on_error=self._job_failed,
                   on_cancelled=self._job_cancelled, on_progress=self._job_progress)

    # -- worker callbacks (worker thread) ------------------------------------------------------
    def _job_done(self, key: Hashable, result: Any) -> None:
        weights, entry = result
        assert isinstance(key, PanelKey)
        record = entry.attribution
        contrast = None if record.contrast is None else record.contrast[0]
        # The job keys its result by the weights it really explained (retried if they moved).
        done = PanelKey(method=key.method, params=key.params, layer=key.layer,
                        target=record.target[0], contrast=contrast,
                        model=(weights, key.model[1]))
        with self._sync_lock:
            self._board.done(done, entry)  # pinned: shown even if the cache cannot keep it
        self._refresh()

    def _job_failed(self, key: Hashable, err: BaseException) -> None:
        label = self._board.label(key.method)  # type: ignore[attr-defined]
        text = f"{type(err).__name__}: {err}" if not isinstance(err, SaliencyError) else str(err)
        with self._sync_lock:
            self._board.errors[key] = text
        self._refresh(schedule=False)
        self._warn(f"saliency widget: {label} failed: {text}")

    def _job_cancelled(self, key: Hashable) -> None:
        self._refresh(schedule=False)

    def _job_progress(self, key: Hashable, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.1 and done < total:
            return
        self._last_progress = now
        label = self._board.label(key.method)  # type: ignore[attr-defined]
        with self.hold_sync():
            self.progress = done / total if total else 0.0
            self.message = f"computing {label}: {done}/{total}"

    def _internal_error(self, err: BaseException) -> None:
        """A failure in the widget's own code (not in a method): shown and warned, never lost."""
        text = f"internal error: {type(err).__name__}: {err}"
        with self.hold_sync():
            self.error = text
            self.status = "error"
        self._warn(f"saliency widget: {text}")

    def _warn(self, message: str) -> None:
        """A warning in the output of the cell that made the widget (see ``self._cell``)."""
        self._cell.copy().run(warnings.warn, message, SaliencyWarning, 2)

    def _on_custom_msg(self, _: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "cancel":
            self.cancel()
        elif kind == "retry":
            self.retry()
        elif kind in ("attack", "attack_cancel"):
            self._on_attack_msg(kind, content.get("method"))

    def _on_attack_msg(self, kind: str, method: Any) -> None:
        if not isinstance(method, str) or method not in self._board.slots:
            self._warn(f"saliency widget: an attack message named no known method ({method!r})")
            return
        if kind == "attack_cancel":
            with self._sync_lock:
                self._attacks.stop(method)
            self._refresh()  # its job leaves the worker's list: a running attack is cancelled
            return
        try:
            self.attack(method)
        except SaliencyError as err:  # a message handler has no caller to raise to
            self._warn(f"saliency widget: {err}")

    # -- building trait values ---------------------------------------------------------------
    def _predict(self) -> Prediction:
        """The model's prediction for the image (engine's copy of the model, eval mode)."""
        pred = predict(self._model, self._prepared.x, output=self._output, top_k=self._top_k)
        if pred.logits.shape[0] != 1:
            raise SaliencyError(f"the model returned logits of shape {tuple(pred.logits.shape)};"
                                f" the widget needs (1, num_classes) for one image")
        return pred

    def _top_predictions(self) -> list[dict[str, Any]]:
        p = self._prediction
        return [{"index": int(i), "label": self._names[int(i)], "prob": float(v)}
                for i, v in zip(p.top_classes[0].tolist(), p.top_probs[0].tolist())]

    def _describe_methods(self) -> list[dict[str, Any]]:
        """The registry for the editor: the model's layers as the choices of every ``layer``
        parameter (a wrapper such as SmoothGrad gets one for a base that reads a layer), and,
        for what only Python can set, how to set it here or what was set."""
        layers = list_layers(self._model)
        out = []
        for desc in self._registry.values():
            desc = jsonable(desc)
            if desc.get("wraps") and "layer" not in desc["parameters"]:
                desc["parameters"]["layer"] = {
                    "default": None, "type": "layer", "nullable": True, "choices": None,
                    "also": None, "bounds": None, "editable": True, "call": True,
                    "note": "the base method's layer (when the base reads one)"}
                desc["params"]["layer"] = None
            for name, p in desc["parameters"].items():
                if p["type"] == "layer":
                    p["choices"] = layers
                    desc["choices"] = {**desc["choices"], name: layers}
                if not p["editable"]:
                    given = self._python_params.get(desc["name"], {}).get(name)
                    p["note"] = (f"set from Python: {describe_value(given)}" if given is not None
                                 else f"Python only: sw.show(..., params={{{desc['name']!r}: "
                                      f"{{{name!r}: …}}}})" + (
                                          f" or sw.show(..., {name}=…)" if name == "references"
                                          else ""))
            out.append(desc)
        return out

    def _colormaps(self, names: Sequence[str]) -> dict[str, Any]:
        names = list(dict.fromkeys(names))
        return {"names": names, "lut": to_payload(np.stack([colormap_lut(n) for n in names]))}

    def _objective(self, key: PanelKey) -> str:
        """What a panel explains, in words: "tabby" or "tabby rather than tiger cat"."""
        what = self._names[key.target]
        return what if key.contrast is None else f"{what} rather than {self._names[key.contrast]}"
