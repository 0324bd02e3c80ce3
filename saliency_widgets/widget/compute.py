"""The work of one panel, run in the worker thread: the engine's map, its display forms, a note.

A cell may train the model while a map is computed. The engine explains a structural copy that
shares the weights (and their version counters), so an optimizer step in the middle of a backward
pass raises autograd's in-place error, and a step between two chunks would mix two models. So the
job reads the weights' fingerprint before and after, and a run whose weights moved, or that hit
that error, is discarded and run again (at most twice more): a map is never shown mixed.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

from ..api import attribute, fingerprint
from ..errors import SaliencyError
from ..render.heatmap import display_map
from .image import Prepared
from .notes import blank_note
from .panel import Entry

TRIES = 3


def _moved_mid_pass(err: RuntimeError) -> bool:
    """autograd's error for a tensor written in place after the forward pass saved it."""
    return "modified by an inplace operation" in str(err)


def explain_job(model: Any, prepared: Prepared, kwargs: dict[str, Any], *, seed: int,
                output: Any, label: str) -> Callable[[Callable[[int, int], None], threading.Event],
                                                     tuple[int, Entry]]:
    """Return ``run(progress, cancel) -> (weights fingerprint, Entry)`` for the worker."""

    def run(progress: Callable[[int, int], None], cancel: threading.Event) -> tuple[int, Entry]:
        for _ in range(TRIES):
            before = fingerprint(model)
            try:
                attr = attribute(model, prepared.x, seed=seed, normalization=prepared.normalization,
                                 output=output, progress=progress, cancel=cancel, **kwargs)
            except RuntimeError as err:
                if _moved_mid_pass(err):
                    continue
                raise
            if fingerprint(model) == before:
                return before, _entry(attr, label)
        raise SaliencyError(f"the model's weights changed during each of {TRIES} tries to compute "
                            f"this map (a cell is training it?); the panel will be computed again "
                            f"on the next change, or call w.refresh() once training stops")

    return run


def _entry(attr: Any, label: str) -> Entry:
    values = attr.values.detach().to("cpu")
    attr = dataclasses.replace(attr, values=values)  # cache on the CPU, not the GPU
    signed = display_map(values, "signed")[0]
    absolute = display_map(values, "absolute")[0] if values.shape[1] > 1 else None
    return Entry(attribution=attr, signed=signed, absolute=absolute,
                 note=blank_note(attr, signed, label))
