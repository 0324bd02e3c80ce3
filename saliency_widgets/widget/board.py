"""The panels' state: which panel shows what, from its pinned result, the cache, or a job.

One :class:`Board` per widget holds a panel model per method, the byte-bounded cache, and the
keys that failed or were cancelled. ``lay_out`` takes the planned keys of the selected methods,
updates each panel model and returns the work still missing; the widget schedules it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from .cache import ByteLRU
from .jobs import Job
from .panel import Entry, Panel, PanelKey


@dataclass
class Planned:
    """A selected method and its plan: a key and engine arguments, or why there is none."""

    method: str
    key: PanelKey | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class Layout:
    """What ``lay_out`` decided: the panels in order, the keys to compute, a status summary."""

    panels: list[Panel]
    missing: list[Planned]
    status: str        # "computing", "error" or "idle"
    error: str         # one line per failed panel
    message: str       # "computing Grad-CAM, Occlusion" or ""


class Board:
    """Panel models (one per registered method, made up front), cache, failures and cancels."""

    def __init__(self, methods: Sequence[tuple[str, str]], cache_bytes: int,
                 lock: threading.RLock) -> None:
        self.slots = {name: Panel(name, label, sync_lock=lock) for name, label in methods}
        self.cache: ByteLRU[Entry] = ByteLRU(cache_bytes, lambda e: e.nbytes)
        self.errors: dict[Hashable, str] = {}
        self.cancelled: set[Hashable] = set()

    def label(self, method: str) -> str:
        return self.slots[method].label

    def lay_out(self, planned: Sequence[Planned], objective: Callable[[PanelKey], str]) -> Layout:
        """Show each planned panel from its pinned result or the cache, or mark it as failed,
        cancelled or computing; hide the others (their maps leave the browser)."""
        panels, missing = [], []
        for p in planned:
            panel = self.slots[p.method]
            panels.append(panel)
            if p.key is None:
                panel.show(None, "error", "", error=p.error)
                continue
            words = objective(p.key)
            entry = panel.pinned(p.key) or self.cache.get(p.key)
            if entry is not None:
                panel.show(p.key, "ready", words, entry=entry)
            elif p.key in self.errors:
                panel.show(p.key, "error", words, error=self.errors[p.key])
            elif p.key in self.cancelled:
                panel.show(p.key, "cancelled", words)
            else:
                panel.show(p.key, "computing", words)
                missing.append(p)
        chosen = {p.method for p in planned}
        for name, panel in self.slots.items():
            if name not in chosen:
                panel.hide()
        computing = [p for p in panels if p.state == "computing"]
        failed = [p for p in panels if p.state == "error"]
        return Layout(panels=panels, missing=missing,
                      status="computing" if computing else "error" if failed else "idle",
                      error="\n".join(f"{p.label}: {p.error}" for p in failed),
                      message=(f"computing {', '.join(p.label for p in computing)}"
                               if computing else ""))

    def done(self, key: PanelKey, entry: Entry) -> None:
        """A computed result: cached if it fits, and pinned on its panel in any case."""
        self.cache.put(key, entry)
        self.slots[key.method].result = (key, entry)

    def forget(self, methods: set[str] | None = None) -> None:
        """Clear failures and cancels (of ``methods``, or all): they are asked for afresh."""
        for key in [*self.errors, *self.cancelled]:
            if methods is None or key.method in methods:  # type: ignore[attr-defined]
                self.errors.pop(key, None)
                self.cancelled.discard(key)

    def close(self) -> None:
        for panel in self.slots.values():
            panel.close()


class Extra:
    """A feature that adds work after the maps (metric badges, curves, attacks, …).

    The widget asks every extra, at each refresh and after the maps' own jobs, which jobs it
    wants now (``jobs(layout)``; the ready panels are ``[p for p in layout.panels if p.entry]``).
    The worker runs the maps first, then the extras' jobs in the order given; a new selection
    replaces the whole list, so an extra asks only for what is still missing for what is shown.
    Its job callbacks write its traits under the widget's lock and call ``refresh()``. While an
    extra wants jobs the status says "computing"; a map that becomes missing pre-empts a running
    extra job (it is asked for again afterwards).
    """

    def show(self, layout: Layout) -> None:
        """Write this feature's traits for the panels laid out (called at every refresh, under
        the widget's lock, before ``jobs``)."""

    def jobs(self, layout: Layout) -> list[Job]:
        return []
