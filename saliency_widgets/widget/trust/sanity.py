"""The randomization sanity check in the widget: each shown method's map as the model's blocks are
re-drawn from the top, one more at a time (cascading, on copies, as ``model_randomization`` does),
with the similarity curve, and a verdict in words.

The maps are the ones ``model_randomization`` compared (``api.randomization_maps``), so the map
shown at each depth is its re-explanation and the curve is its ``curve``. All depths travel at
once (a handful of maps); the depth slider is the browser's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...api import randomization_maps
from ...render import display_map
from ..jobs import Job
from ..panel import Entry, Panel, PanelKey
from ..payload import to_payload
from .badges import ready_panels
from .keys import SanityKey
from .run import trust_job
from .words import FLAG_SIMILARITY, sanity_flag, sanity_passed


@dataclass(frozen=True)
class SanityEntry:
    """The cascade of one map: the block(s) re-drawn at each step, the similarity per step, and
    the re-explained maps as the panel draws them."""

    blocks: list[list[str]]
    curve: np.ndarray            # (steps,) similarity to the original map
    signed: np.ndarray           # (steps, H, W) float32
    absolute: np.ndarray | None  # (steps, H, W) Σ|channel|, None for one-channel maps
    score: float
    similarity: str
    nbytes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        size = self.curve.nbytes + self.signed.nbytes
        object.__setattr__(self, "nbytes",
                           size + (0 if self.absolute is None else self.absolute.nbytes))


class Sanity:
    """Per panel: the cascade's maps and curve (``Panel.sanity``) while ``sanity_check`` is on."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.pinned: dict[SanityKey, SanityEntry] = {}
        self._sent: dict[str, str] = {}

    def key(self, pkey: PanelKey) -> SanityKey:
        label = self.host._board.label(pkey.method)
        return SanityKey(panel=pkey, seed=self.host._seed, label=f"sanity check of {label}")

    def get(self, key: SanityKey) -> SanityEntry | None:
        return self.pinned.get(key) or self.host._board.cache.get(key)

    def store(self, key: SanityKey, entry: SanityEntry) -> None:
        self.host._board.cache.put(key, entry)
        self.pinned[key] = entry

    def show(self, panels: list[Panel]) -> None:
        host = self.host
        on = bool(host.sanity_check)
        keep, shown = {}, set()
        board = host._board
        for p, pkey, _ in (ready_panels(panels) if on else []):
            shown.add(p.method)
            key = self.key(pkey)
            entry = self.get(key)
            if entry is not None:
                keep[key] = entry
            state = ("ready" if entry is not None else "error" if key in board.errors else
                     "cancelled" if key in board.cancelled else "computing")
            ident = f"{pkey.id}:{state}"
            if self._sent.get(p.method) != ident:  # the maps travel once per result
                self._sent[p.method] = ident
                p.sanity = (self._payload(p, pkey, entry) if entry is not None else
                            {"id": ident, "state": state, "error": board.errors.get(key, "")})
        self.pinned = keep
        for name, p in board.slots.items():
            if name not in shown and p.sanity is not None:
                p.sanity = None
                self._sent.pop(name, None)

    def _payload(self, panel: Panel, pkey: PanelKey, e: SanityEntry) -> dict[str, Any]:
        final = float(e.curve[-1]) if e.curve.size else math.nan
        label = panel.label
        flag = sanity_flag(label, final, len(e.blocks), e.similarity)
        return {"id": f"{pkey.id}:ready", "state": "ready", "similarity": e.similarity,
                "blocks": [step[-1] for step in e.blocks], "curve": to_payload(e.curve),
                "signed": to_payload(e.signed),
                "absolute": None if e.absolute is None else to_payload(e.absolute),
                "score": e.score if math.isfinite(e.score) else None,
                "final": final if math.isfinite(final) else None, "flag": flag,
                "verdict": flag or sanity_passed(label, final, e.similarity),
                "threshold": FLAG_SIMILARITY}

    def jobs(self, panels: list[Panel]) -> list[Job]:
        if not self.host.sanity_check:
            return []
        board, out = self.host._board, []
        for _, pkey, entry in ready_panels(panels):
            key = self.key(pkey)
            if self.get(key) is None and key not in board.errors and key not in board.cancelled:
                out.append(self._job(key, entry))
        return out

    def _job(self, key: SanityKey, entry: Entry) -> Job:
        host, attr = self.host, entry.attribution
        model, x = host._model, host._prepared.x

        def fn(progress: Any, cancel: Any) -> SanityEntry:
            result, maps = randomization_maps(model, x, attr, seed=host._seed,
                                              output=host._output, progress=progress,
                                              cancel=cancel)
            assert result.curve is not None  # model_randomization keeps its curve
            signed = np.stack([display_map(m[:1], "signed")[0] for m in maps])
            absolute = (np.stack([display_map(m[:1], "absolute")[0] for m in maps])
                        if maps and maps[0].shape[1] > 1 else None)
            return SanityEntry(blocks=[list(b) for b in result.extras["blocks"]],
                               curve=result.curve[0].numpy().astype(np.float64),
                               signed=signed, absolute=absolute,
                               score=float(result.scores[0]),
                               similarity=str(result.params["similarity"]))

        return trust_job(host, key, key.panel.model[0], fn, self.store)
