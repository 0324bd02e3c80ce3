"""Attacks on the shown maps: ``w.attack(method)`` runs ``sw.attack`` on a panel's map in the
background and shows it beside the panel (original and attacked image and map, the shift, the
perturbation).

The attack explains exactly what the panel shows: the record's method, parameters, layer, seed,
target and contrast. One :class:`Slot` per method holds the latest request; it is bound to the
panel's map (its ``PanelKey``) once that map is ready, and runs as a job of its own after the
maps (an :class:`~.board.Extra`), with progress and cancel. An attack whose map stops being
shown (another target, new weights, the method toggled off) is cancelled, never restarted by
itself: attacks are expensive, so only the user's click or ``w.attack`` starts one. Each panel's
``attack`` trait carries what its view shows; a finished attack sends its arrays once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..api import attack, fingerprint
from ..errors import SaliencyError
from ..render.heatmap import display_map
from .board import Extra, Layout
from .image import Prepared, _display
from .jobs import Job
from .panel import Panel, PanelKey
from .payload import to_payload

# What the widget lets you choose; the rest (model, input, method, its parameters, layer, target,
# contrast, normalization, seed) is the panel's.
OPTIONS = ("kind", "epsilon", "steps", "step_size", "keep", "tolerance", "beta", "defence",
           "top_k")
DEFAULTS: dict[str, Any] = {"kind": "untargeted", "epsilon": 8 / 255, "steps": 10}
KINDS = ("untargeted", "targeted")
KEEPS = ("label", "logits")


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the attack options with the defaults filled in; refuse unknown names in words.

    Values are checked by ``sw.attack`` itself when the attack runs (its error shows in the view);
    the ones the controls send are checked here, so a bad value never reaches the worker.
    """
    if not isinstance(options, Mapping):
        raise SaliencyError(f"attack options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SaliencyError(f"unknown attack option {unknown[0]!r}; the widget sets the model, "
                            f"input, method and objective itself; choose from {', '.join(OPTIONS)}")
    out = {**DEFAULTS, **options}
    if out["kind"] not in KINDS:
        raise SaliencyError(f"attack kind must be one of {KINDS}, got {out['kind']!r}")
    if out.get("keep", "label") not in KEEPS:
        raise SaliencyError(f"attack keep must be one of {KEEPS}, got {out['keep']!r}")
    eps = out["epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise SaliencyError(f"attack epsilon must be in (0, 1] (pixel units, e.g. 8/255), got "
                            f"{eps!r}")
    steps = out["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SaliencyError(f"attack steps must be an int ≥ 1, got {steps!r}")
    return out


@dataclass(frozen=True)
class AttackKey:
    """One attack: on which panel map, with which options (the worker's job key)."""

    method: str
    panel: PanelKey
    options: tuple[tuple[str, Any], ...]
    label: str = field(default="", compare=False, repr=False)  # the status line's words

    @property
    def id(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()[:16]


@dataclass
class Slot:
    """A method's latest attack request and what became of it."""

    options: dict[str, Any]
    key: AttackKey | None = None   # None until the panel's map is ready
    state: str = "waiting"         # waiting (for the map), queued, running, ready, error, cancelled
    progress: float = 0.0
    error: str = ""
    result: Any = None  # the sw.AttackResult, once ready
    arrays: dict[str, Any] = field(default_factory=dict)  # the finished view's payloads
    view: dict[str, Any] | None = None


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None  # NaN cannot travel as JSON


def _maps(values: torch.Tensor) -> dict[str, Any]:
    v = values.detach().to("cpu")[:1]
    return {"signed": to_payload(display_map(v, "signed")[0]),
            "absolute": to_payload(display_map(v, "absolute")[0]) if v.shape[1] > 1 else None}


def view_arrays(result: Any, prepared: Prepared) -> dict[str, Any]:
    """The finished view's data from ``result`` (an ``sw.AttackResult``): the attacked picture,
    both maps, the amplified perturbation and the numbers (beside sign noise of the same size)."""
    norm = prepared.normalization
    x0 = prepared.x.detach().to("cpu", torch.float64)[0]
    xa = result.x.detach().to("cpu", torch.float64)[0]
    if norm is not None:
        std = torch.tensor(norm[1], dtype=torch.float64).reshape(-1, 1, 1)
        delta = (xa - x0) * std  # the perturbation in pixel units ([0, 1] pixels)
    else:
        delta = xa - x0
    linf = float(delta.abs().max())
    # amplified so that the largest change is black or white; mid-grey is "unchanged"
    gain = 0.5 / linf if linf > 0 else 0.0
    summary = {k: _finite(v) for k, v in result.summary().items()}
    summary.update(l2=_finite(result.l2[0]), noise_l2=_finite(result.noise_l2[0]),
                   noise_linf=_finite(result.noise_linf[0]), seconds=float(result.seconds),
                   accepted_steps=int(result.extras["accepted_steps"][0]),
                   logit_change=_finite(result.extras["logit_change"][0]))
    summary["kept"] = bool(result.kept[0])
    summary["noise_kept"] = bool(result.noise_kept[0])
    return {
        "image": to_payload(_display(result.x.detach()[0], norm)),
        "perturbation": to_payload(_display((0.5 + gain * delta).float(), None)),
        "gain": gain, "linf": linf,
        "original": _maps(result.original.values), "attacked": _maps(result.attacked.values),
        "summary": summary,
        "surrogate": bool(result.params["surrogate"]),
        "step_size": float(result.params["step_size"]),
    }


class Attacks(Extra):
    """The widget's attacks: requests, their jobs, and each panel's ``attack`` view."""

    def __init__(self, panels: Mapping[str, Panel], model: Any, prepared: Callable[[], Prepared],
                 output: Any, lock: threading.RLock, warn: Callable[[str], None],
                 refresh: Callable[[], None]) -> None:
        self._panels = panels
        self._model = model
        self._prepared = prepared  # the widget's current input (w.set_image changes it)
        self._output = output
        self._lock = lock
        self._warn = warn
        self._refresh = refresh  # the widget's refresh: its status follows the attacks too
        self.slots: dict[str, Slot] = {}
        self._last_progress = 0.0

    # -- called by the widget (kernel thread), under its lock ----------------------------------
    def request(self, method: str, options: dict[str, Any]) -> None:
        """Ask for an attack on ``method``'s map (it replaces that method's previous one)."""
        self.slots[method] = Slot(options=dict(options))

    def clear(self) -> None:
        """Forget every attack (the picture changed); the next refresh clears the views."""
        self.slots.clear()

    def stop(self, method: str) -> None:
        """Cancel ``method``'s attack (the widget's next refresh drops its job)."""
        slot = self.slots.get(method)
        if slot is not None and slot.state in ("waiting", "queued", "running"):
            slot.state = "cancelled"
            self._show(method)

    def stop_all(self) -> None:
        """Cancel every attack (``w.cancel()``): none is restarted by a later refresh."""
        for method in list(self.slots):
            self.stop(method)

    def results(self, panels: list[Panel]) -> dict[str, Any]:
        """The finished attacks on the maps shown now, by method."""
        out = {}
        for panel in panels:
            slot = self.slots.get(panel.method)
            if slot is not None and slot.result is not None and self._current(panel, slot):
                out[panel.method] = slot.result
        return out

    def jobs(self, layout: Layout) -> list[Job]:
        shown = {p.method: p for p in layout.panels}
        out = []
        for method, slot in self.slots.items():
            panel = shown.get(method)
            now = (panel.result[0] if panel is not None and panel.entry is not None
                   and panel.result is not None else None)
            if slot.key is None and slot.state == "waiting":
                if now is not None:
                    slot.key = AttackKey(method, now, tuple(sorted(slot.options.items())),
                                         label=f"the attack on {self._panels[method].label}")
                    slot.state = "queued"
                elif panel is None or panel.state in ("error", "cancelled"):
                    slot.state = "cancelled"
            if slot.state in ("queued", "running"):
                if slot.key is not None and panel is not None and slot.key.panel == now:
                    out.append(self._job(slot.key, panel))
                else:
                    slot.state = "cancelled"  # its map is not shown any more
        for method in self._panels:
            self._show(method)
        return out

    # -- the job (worker thread) ---------------------------------------------------------------
    def _job(self, key: AttackKey, panel: Panel) -> Job:
        attr = panel.entry.attribution  # type: ignore[union-attr]
        options = dict(key.options)
        model, prepared, output = self._model, self._prepared(), self._output

        def run(progress: Callable[[int, int], None], cancel: threading.Event) -> Any:
            with self._lock:
                slot = self.slots.get(key.method)
                if slot is not None and slot.key == key:
                    slot.state = "running"
                    self._show(key.method)
            before = fingerprint(model)
            result = attack(model, prepared.x, method=attr.method, params=dict(attr.params),
                            layer=attr.layer, target=list(attr.target),
                            contrast=None if attr.contrast is None else list(attr.contrast),
                            normalization=prepared.normalization, seed=attr.seed, output=output,
                            progress=progress, cancel=cancel, **options)
            if fingerprint(model) != before:
                raise SaliencyError("the model's weights changed during the attack (a cell is "
                                    "training it?); attack again once they stay put")
            return result, view_arrays(result, prepared)

        return Job(key=key, run=run, on_done=self._done, on_error=self._failed,
                   on_cancelled=self._cancelled, on_progress=self._progress)

    def _slot(self, key: Any) -> Slot | None:
        slot = self.slots.get(key.method)
        return slot if slot is not None and slot.key == key else None

    def _done(self, key: Any, out: Any) -> None:
        with self._lock:
            slot = self._slot(key)
            if slot is not None and slot.state in ("queued", "running"):  # not if cancelled
                slot.state, (slot.result, slot.arrays) = "ready", out
                self._show(key.method)
        self._refresh()

    def _failed(self, key: Any, err: BaseException) -> None:
        text = str(err) if isinstance(err, SaliencyError) else f"{type(err).__name__}: {err}"
        with self._lock:
            slot = self._slot(key)
            if slot is not None:
                slot.state, slot.error = "error", text
                self._show(key.method)
        self._refresh()
        self._warn(f"saliency widget: the attack on {self._panels[key.method].label} failed: "
                   f"{text}")

    def _cancelled(self, key: Any) -> None:
        # A cancel by the user (the view's button, w.cancel()) or by a map that stopped being
        # shown marks the slot "cancelled" first. A slot still queued or running was pre-empted
        # by a new map (board.Extra): it is asked for again, after the maps.
        with self._lock:
            slot = self._slot(key)
            if slot is None or slot.state not in ("queued", "running"):
                return
            slot.state, slot.progress = "queued", 0.0
            self._show(key.method)
        self._refresh()

    def _progress(self, key: Any, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.1 and done < total:
            return
        self._last_progress = now
        with self._lock:
            slot = self._slot(key)
            if slot is not None and slot.state == "running":
                slot.progress = done / total if total else 0.0
                self._show(key.method)

    # -- what each panel shows -----------------------------------------------------------------
    def _current(self, panel: Panel, slot: Slot) -> bool:
        """Whether the slot belongs to the map the panel shows (or waits for it)."""
        if slot.key is None:
            return slot.state == "waiting" and panel.state != "error"
        return panel.entry is not None and panel.result is not None \
            and panel.result[0] == slot.key.panel

    def _show(self, method: str) -> None:
        panel = self._panels[method]
        slot = self.slots.get(method)
        view: dict[str, Any] | None = None
        if slot is not None and self._current(panel, slot) and not (
                slot.state == "cancelled" and slot.key is None):
            view = self._view(slot)
        if view != panel.attack:
            panel.attack = view

    def _view(self, slot: Slot) -> dict[str, Any]:
        settings = {k: v for k, v in slot.options.items() if v is not None}
        base = {"id": f"{slot.key.id if slot.key else 'waiting'}:{slot.state}",
                "state": slot.state, "settings": settings}
        if slot.state == "running":
            return {**base, "progress": slot.progress}
        if slot.state == "error":
            return {**base, "error": slot.error}
        if slot.state == "ready":
            if slot.view is None or slot.view.get("id") != base["id"]:
                slot.view = {**base, **slot.arrays}  # one object: an unchanged view never resends
            return slot.view
        return base
