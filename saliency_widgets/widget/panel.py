"""One panel per registered method: a small synced model of its own.

A panel is a child widget model (an anywidget model, never displayed itself); the main widget's
``panels`` list references the selected ones. When a job finishes, only that panel's traits
change, so only its maps travel (each finished job used to re-send every panel: about 8 MB per
panel at 1024²). A saved notebook keeps every panel model's state, so the saved widget and its
nbconvert HTML still show every panel. The panel also pins the latest result computed for it
(``result``), outside the byte-bounded cache: a result larger than the cache, or evicted by
another panel's, still shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from .._types import Attribution
from .payload import to_payload
from .sync import LockedSync


@dataclass(frozen=True)
class PanelKey:
    """Everything a panel's maps depend on; the cache key. ``model`` is the weights'
    fingerprint and the refresh epoch, so a changed model never serves an old map."""

    method: str
    params: tuple[Any, ...]
    layer: Any  # a module name, None (automatic), or a tuple of names (LayerCAM)
    target: int
    contrast: int | None
    model: tuple[int, int]

    @property
    def id(self) -> str:
        """A short stable id: the browser re-decodes a panel's maps only when it changes."""
        import hashlib

        return f"{self.method}:{hashlib.sha1(repr(self).encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Entry:
    """A computed panel: the engine's record and the two maps the browser draws."""

    attribution: Attribution
    signed: np.ndarray               # (H, W) float32, channels summed
    absolute: np.ndarray | None      # (H, W) Σ|channel|; None for one-channel maps
    note: str = ""                   # why the map is blank, in words ("" when it is not)
    nbytes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        values = self.attribution.values
        size = values.element_size() * values.numel() + self.signed.nbytes
        object.__setattr__(self, "nbytes",
                           size + (self.absolute.nbytes if self.absolute is not None else 0))


class Panel(LockedSync, anywidget.AnyWidget):
    """The synced state of one panel (see ``js/src/model.ts`` ``Panel``).

    An anywidget model with nothing to render: the main widget's front end draws it. (A plain
    ipywidgets model would lose its binary maps in a saved notebook: JupyterLab copies such a
    model's state through JSON, while anywidget keeps binary values binary.)
    """

    _esm = "export default {};"

    id = t.Unicode("").tag(sync=True)
    method = t.Unicode("").tag(sync=True)
    label = t.Unicode("").tag(sync=True)
    objective = t.Unicode("").tag(sync=True)
    """What the panel explains: "tabby" or "tabby rather than tiger cat"."""
    title = t.Unicode("").tag(sync=True)
    state = t.Enum(("computing", "ready", "error", "cancelled"), "computing").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    note = t.Unicode("").tag(sync=True)
    """Set when the map is blank (all zero or constant): what happened and what to try."""
    seconds = t.Float(None, allow_none=True).tag(sync=True)
    target = t.Int(None, allow_none=True).tag(sync=True)
    contrast = t.Int(None, allow_none=True).tag(sync=True)
    # payloads {view, dtype, shape} or None (t.Any: the maps come and go with the state)
    signed = t.Any(None, allow_none=True).tag(sync=True)
    absolute = t.Any(None, allow_none=True).tag(sync=True)
    attack = t.Any(None, allow_none=True).tag(sync=True)
    """The attack on this map (``attack.py``): a dict with its state, and when ready both maps,
    the attacked picture, the amplified perturbation and the shift; None when none was asked for."""
    # the trust views (widget/trust/): metric badges, deletion/insertion curves with their pixel
    # order, the randomization cascade's maps and curve
    badges = t.List(t.Dict()).tag(sync=True)
    curves = t.Any(None, allow_none=True).tag(sync=True)
    sanity = t.Any(None, allow_none=True).tag(sync=True)

    def __init__(self, method: str, label: str, *, sync_lock: threading.RLock) -> None:
        super().__init__(sync_lock=sync_lock, method=method, label=label, title=label)
        self.result: tuple[PanelKey, Entry] | None = None
        """The latest result computed for this panel (pinned: kept outside the cache)."""
        self.entry: Entry | None = None
        """The entry whose maps are shown now (None unless the state is ``ready``)."""
        self.unseen = False

    def hide(self) -> None:
        """The method was deselected: send no maps (the pinned result stays in Python)."""
        if self.entry is not None:
            with self.hold_sync():
                self.signed = self.absolute = None
                self.entry = None
                self.state = "computing"

    def pinned(self, key: PanelKey) -> Entry | None:
        """The pinned result if it is the one ``key`` asks for."""
        return self.result[1] if self.result is not None and self.result[0] == key else None

    def show(self, key: PanelKey | None, state: str, objective: str, *,
             entry: Entry | None = None, error: str = "") -> None:
        """Update the synced state in one message; the maps are sent only when they change."""
        # A message sent from the worker thread between two cells reaches Lab, but a notebook
        # runner (nbclient, nbconvert --execute) listens only to the cell that runs: wait()
        # sends such a panel's state once more from the cell that waits.
        self.unseen = threading.current_thread() is not threading.main_thread()
        with self.hold_sync():
            if entry is not self.entry:
                self.signed = None if entry is None else to_payload(entry.signed)
                self.absolute = (None if entry is None or entry.absolute is None
                                 else to_payload(entry.absolute))
                self.entry = entry
            if key is not None and entry is not None:
                self.result = (key, entry)
            self.id = f"{self.method}:{state}" if key is None else key.id
            self.state = state
            self.error = error
            self.note = entry.note if entry is not None else ""
            self.objective = objective
            self.title = f"{self.label} · {objective}" if objective else self.label
            self.seconds = None if entry is None else float(entry.attribution.seconds)
            self.target = None if key is None else key.target
            self.contrast = None if key is None else key.contrast
