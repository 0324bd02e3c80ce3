"""Metric badges: every shown map scored by the selected metrics, ranked among the shown methods,
beside what a random and an edge map score on the same metric.

A badge is ``sw.evaluate`` with the metric's defaults and the widget's seed (deletion and
insertion through ``removal_curve``, which is ``sw.evaluate`` plus the pixel order it used, kept
for the scrubbable chart). Results go to the board's byte-bounded cache, keyed by the panel's key
(method, parameters, layer, target, contrast, weights), the masks' hash, the metric and its
parameters, and the ones shown are pinned. Metrics of the map alone (complexity, localization)
come first: they need no model call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ...api import evaluate, evaluate_trivial, removal_curve
from ..image import _display
from ..jobs import Job
from ..panel import Entry, Panel, PanelKey
from ..params import freeze, jsonable
from ..payload import to_payload
from .keys import MetricKey, TrivialKey, mask_hash
from .run import trust_job
from .words import param_text

MAP_ONLY_FAMILIES = ("complexity", "localization")
CURVE_METRICS = ("deletion", "insertion")
TRIVIAL = ("random", "edge")


@dataclass(frozen=True)
class Score:
    """One metric's value (NaN when undefined) and, for deletion/insertion, its chart data."""

    value: float
    params: dict[str, Any]
    curve: dict[str, Any] | None = None  # numpy: y, counts, and for maps ranks and substrate
    nbytes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        arrays = [] if self.curve is None else [v for v in self.curve.values()
                                                 if isinstance(v, np.ndarray)]
        object.__setattr__(self, "nbytes", 256 + sum(a.nbytes for a in arrays))


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def ready_panels(panels: Iterable[Panel]) -> list[tuple[Panel, PanelKey, Entry]]:
    """The panels showing a computed map, with the key and entry of that map."""
    out = []
    for p in panels:
        if p.state == "ready" and p.entry is not None and p.result is not None \
                and p.result[1] is p.entry:
            out.append((p, p.result[0], p.entry))
    return out


class Badges:
    """The badge and curve state of every panel (see the module docstring)."""

    def __init__(self, host: Any, metrics: dict[str, dict[str, Any]]) -> None:
        self.host = host
        self.info = metrics                # name → sw.list_metrics() entry
        self.pinned: dict[Any, Score] = {}
        self._curves_sent: dict[str, Any] = {}

    # -- keys ----------------------------------------------------------------------------------
    def map_only(self, metric: str) -> bool:
        return self.info[metric]["family"] in MAP_ONLY_FAMILIES

    def _masks(self, metric: str) -> str:
        return self.host._trust_mask_hash if self.info[metric]["family"] == "localization" else ""

    def metric_key(self, panel: PanelKey, metric: str) -> MetricKey:
        label = f"{self.info[metric]['label']} of {self.host._board.label(panel.method)}"
        return MetricKey(panel=panel, metric=metric, params=freeze(self.info[metric]["params"]),
                         masks=self._masks(metric), seed=self.host._seed, label=label)

    def trivial_key(self, kind: str, panel: PanelKey, metric: str) -> TrivialKey:
        return TrivialKey(kind=kind, metric=metric, params=freeze(self.info[metric]["params"]),
                          target=panel.target, contrast=panel.contrast, model=panel.model,
                          masks=self._masks(metric), seed=self.host._seed,
                          label=f"{self.info[metric]['label']} of a {kind} map")

    def get(self, key: Any) -> Score | None:
        return self.pinned.get(key) or self.host._board.cache.get(key)

    def store(self, key: Any, score: Score) -> None:
        self.host._board.cache.put(key, score)
        self.pinned[key] = score

    def _state(self, key: Any) -> tuple[str, str]:
        board = self.host._board
        if key in board.errors:
            return "error", board.errors[key]
        if key in board.cancelled:
            return "cancelled", ""
        return "computing", ""

    # -- traits --------------------------------------------------------------------------------
    def show(self, panels: list[Panel]) -> dict[str, dict[str, float]]:
        """Write each panel's ``badges`` and ``curves``; return ``metric_results``."""
        host = self.host
        selected = [m for m in host.metrics_selected if m in self.info]
        ready = ready_panels(panels)
        keep: dict[Any, Score] = {}
        scores: dict[str, dict[str, Score | None]] = {}
        for _, pkey, _ in ready:
            row = scores.setdefault(pkey.method, {})
            for m in selected:
                for key in [self.metric_key(pkey, m)] + [self.trivial_key(k, pkey, m)
                                                         for k in TRIVIAL]:
                    s = self.get(key)
                    if s is not None:
                        keep[key] = s
                row[m] = keep.get(self.metric_key(pkey, m))
        self.pinned = keep
        results = {method: {m: (s.value if s is not None else math.nan)
                            for m, s in row.items() if s is not None}
                   for method, row in scores.items()}
        ranks = {m: self._ranks(m, {method: row.get(m) for method, row in scores.items()})
                 for m in selected}
        shown = {p.method for p, _, _ in ready}
        for p, pkey, _ in ready:
            badges = [self._badge(pkey, m, scores[pkey.method][m], ranks[m]) for m in selected]
            if p.badges != badges:
                p.badges = badges
            self._show_curves(p, pkey, selected)
        for name, p in host._board.slots.items():
            if name not in shown:
                if p.badges:
                    p.badges = []
                if p.curves is not None:
                    p.curves = None
                self._curves_sent.pop(name, None)
        return results

    def _ranks(self, metric: str, row: dict[str, Score | None]) -> dict[str, tuple[int, int]]:
        """method → (rank, of): 1 is best; tied values share the better rank."""
        finite = {k: s.value for k, s in row.items() if s is not None and math.isfinite(s.value)}
        sign = -1.0 if self.info[metric]["higher_is_better"] else 1.0
        return {k: (1 + sum(sign * w < sign * v for w in finite.values()), len(finite))
                for k, v in finite.items()}

    def _badge(self, pkey: PanelKey, metric: str, score: Score | None,
               ranks: dict[str, tuple[int, int]]) -> dict[str, Any]:
        info = self.info[metric]
        key = self.metric_key(pkey, metric)
        state, error = ("ready", "") if score is not None else self._state(key)
        trivial = {kind: self.get(self.trivial_key(kind, pkey, metric)) for kind in TRIVIAL}
        rank, of = ranks.get(pkey.method, (None, len(ranks)))
        return {"metric": metric, "label": info["label"], "family": info["family"],
                "higher_is_better": bool(info["higher_is_better"]), "doc": info["doc"],
                "state": state, "error": error,
                "value": None if score is None else _finite(score.value),
                "undefined": score is not None and not math.isfinite(score.value),
                "rank": rank, "of": of,
                "params": param_text(score.params if score is not None else info["params"]),
                **{kind: (None if s is None else _finite(s.value)) for kind, s in trivial.items()}}

    def _show_curves(self, panel: Panel, pkey: PanelKey, selected: list[str]) -> None:
        parts: dict[str, Score] = {}
        for m in CURVE_METRICS:
            got = self.get(self.metric_key(pkey, m)) if m in selected else None
            if got is not None and got.curve is not None:
                parts[m] = got
        trivial = {(m, k): self.get(self.trivial_key(k, pkey, m)) for m in parts for k in TRIVIAL}
        signature = (tuple((m, id(s)) for m, s in parts.items()),
                     tuple((mk, id(s)) for mk, s in trivial.items()))
        sent = self._curves_sent.get(panel.method)
        if sent == signature:
            return
        self._curves_sent[panel.method] = signature
        if not parts:
            panel.curves = None
            return
        out: dict[str, Any] = {"id": f"{pkey.id}:{'+'.join(parts)}:{len(trivial)}"}
        for m, s in parts.items():
            c = s.curve
            assert c is not None  # parts holds curves only
            if "ranks" not in out:
                out["ranks"] = to_payload(c["ranks"])
                ranks = c["ranks"]
            part = {"y": to_payload(c["y"]), "counts": to_payload(c["counts"]),
                    "substrate": to_payload(c["substrate"]), "insert": bool(c["insert"]),
                    "value": _finite(s.value)}
            if not np.array_equal(c["ranks"], ranks):  # other params: its own pixel order
                part["ranks"] = to_payload(c["ranks"])
            for kind in TRIVIAL:
                t = trivial[(m, kind)]
                if t is not None and t.curve is not None:
                    part[kind] = to_payload(t.curve["y"])
            out[m] = part
        panel.curves = out

    # -- work ----------------------------------------------------------------------------------
    def _wanted(self, key: Any) -> bool:
        board = self.host._board
        return self.get(key) is None and key not in board.errors and key not in board.cancelled

    def jobs(self, panels: list[Panel], quick: bool) -> list[Job]:
        """The missing scores: of the map alone (``quick``) or needing the model, panel by
        panel, then the trivial maps'."""
        selected = [m for m in self.host.metrics_selected
                    if m in self.info and self.map_only(m) == quick]
        ready = ready_panels(panels)
        out = []
        for _, pkey, entry in ready:
            for m in selected:
                key = self.metric_key(pkey, m)
                if self._wanted(key):
                    out.append(self._metric_job(key, entry))
        seen = set()
        for _, pkey, _ in ready:
            for m in selected:
                for kind in TRIVIAL:
                    trivial = self.trivial_key(kind, pkey, m)
                    if trivial not in seen and self._wanted(trivial):
                        seen.add(trivial)
                        out.append(self._trivial_job(trivial))
        return out

    def _common(self, metric: str) -> dict[str, Any]:
        host = self.host
        masks = host._trust_masks if self.info[metric]["family"] == "localization" else None
        return {"seed": host._seed, "output": host._output, "masks": masks}

    def _metric_job(self, key: MetricKey, entry: Entry) -> Job:
        host, attr = self.host, entry.attribution
        model, x, norm = host._model, host._prepared.x, host._prepared.normalization
        common = self._common(key.metric)

        def fn(progress: Any, cancel: Any) -> Score:
            if key.metric in CURVE_METRICS:
                c = removal_curve(model, x, attr, metric=key.metric, progress=progress,
                                  cancel=cancel, seed=common["seed"], output=common["output"])
                assert c.result.curve is not None  # deletion and insertion keep their curve
                curve = {"y": c.result.curve[0].numpy().astype(np.float32),
                         "counts": c.counts.numpy().astype(np.int32),
                         "ranks": c.ranks[0].numpy().astype(np.int32),
                         "substrate": _display(c.substrate[0].cpu(), norm), "insert": c.insert}
                return Score(float(c.result.scores[0]), jsonable(dict(c.result.params)), curve)
            r = evaluate(model, x, attr, metric=key.metric, progress=progress, cancel=cancel,
                         **common)
            return Score(float(r.scores[0]), jsonable(dict(r.params)))

        return trust_job(host, key, key.panel.model[0], fn, self.store)

    def _trivial_job(self, key: TrivialKey) -> Job:
        host = self.host
        model, x, norm = host._model, host._prepared.x, host._prepared.normalization
        common = self._common(key.metric)

        def fn(progress: Any, cancel: Any) -> Score:
            r = evaluate_trivial(model, x, key.kind, metric=key.metric, target=key.target,
                                 contrast=key.contrast, normalization=norm, progress=progress,
                                 cancel=cancel, **common)
            curve: dict[str, Any] | None = None
            if key.metric in CURVE_METRICS and r.curve is not None:
                curve = {"y": r.curve[0].numpy().astype(np.float32)}
            return Score(float(r.scores[0]), jsonable(dict(r.params)), curve)

        return trust_job(host, key, key.model[0], fn, self.store)


__all__ = ["Badges", "CURVE_METRICS", "MAP_ONLY_FAMILIES", "Score", "mask_hash", "ready_panels"]
