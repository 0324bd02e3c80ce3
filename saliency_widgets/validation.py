"""``validate``: every method × every metric on the same input, as a ranked table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ._types import Attribution, MetricResult
from .api import attribute, evaluate
from .errors import SaliencyError
from .registry import METRICS

Selection = Iterable[str] | Mapping[str, Mapping[str, Any]]


def _selection(what: str, spec: Selection) -> dict[str, dict[str, Any]]:
    """Names, or ``{name: params}``, as an ordered ``{name: params}``."""
    if isinstance(spec, str):
        raise SaliencyError(f"{what} must be a list of names or a {{name: params}} dict; "
                            f"got the single string {spec!r} (wrap it in a list)")
    if isinstance(spec, Mapping):
        return {str(k): dict(v or {}) for k, v in spec.items()}
    return {str(name): {} for name in spec}


@dataclass(frozen=True)
class ValidationTable:
    """Per method: each metric's mean and per-example scores, and the method's time.

    ``str(table)`` prints an aligned table with the rank of each method per metric; ``records()``
    gives plain rows; ``to_pandas()`` a DataFrame (needs pandas); ``ranking()`` orders methods by
    their mean rank over the metrics (lower is better).
    """

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    results: Mapping[tuple[str, str], MetricResult]
    attributions: Mapping[str, Attribution]
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)

    def score(self, method: str, metric: str) -> float:
        return self.results[(method, metric)].mean

    def ranks(self, metric: str) -> dict[str, float]:
        """Rank of each method on ``metric`` (1 = best; ties share the mean rank; NaN last)."""
        sign = -1.0 if self.higher_is_better[metric] else 1.0
        vals = {m: self.score(m, metric) for m in self.methods}
        ordered = sorted((v * sign, m) for m, v in vals.items() if not math.isnan(v))
        ranks: dict[str, float] = {m: float("nan") for m in self.methods}
        i = 0
        while i < len(ordered):
            j = i
            while j + 1 < len(ordered) and ordered[j + 1][0] == ordered[i][0]:
                j += 1
            for k in range(i, j + 1):
                ranks[ordered[k][1]] = (i + j) / 2 + 1
            i = j + 1
        return ranks

    def ranking(self) -> list[tuple[str, float]]:
        """Methods by mean rank over the metrics where they are defined (best first)."""
        per = [self.ranks(metric) for metric in self.metrics]
        mean_rank = {}
        for m in self.methods:
            rs = [r[m] for r in per if not math.isnan(r[m])]
            mean_rank[m] = sum(rs) / len(rs) if rs else float("nan")
        return sorted(mean_rank.items(), key=lambda kv: (math.isnan(kv[1]), kv[1]))

    def records(self) -> list[dict[str, Any]]:
        """One row per (method, metric): mean, per-example scores, rank, times."""
        rows = []
        for metric in self.metrics:
            ranks = self.ranks(metric)
            for m in self.methods:
                res = self.results[(m, metric)]
                rows.append({"method": m, "metric": metric, "mean": res.mean,
                             "scores": [float(s) for s in res.scores],
                             "higher_is_better": res.higher_is_better, "rank": ranks[m],
                             "method_seconds": self.attributions[m].seconds,
                             "metric_seconds": res.seconds})
        return rows

    def to_pandas(self):
        """A long-format DataFrame of :meth:`records` (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("ValidationTable.to_pandas() needs pandas: pip install pandas") \
                from err
        return pd.DataFrame.from_records(self.records())

    def __str__(self) -> str:
        arrows = {m: "↑" if self.higher_is_better[m] else "↓" for m in self.metrics}
        head = ["method", "time s"] + [f"{m} {arrows[m]}" for m in self.metrics] + ["mean rank"]
        ranks = {metric: self.ranks(metric) for metric in self.metrics}
        mean_rank = dict(self.ranking())
        body = []
        for m, _ in self.ranking():
            cells = [m, f"{self.attributions[m].seconds:.2f}"]
            for metric in self.metrics:
                v, r = self.score(m, metric), ranks[metric][m]
                cells.append("nan" if math.isnan(v) else f"{v:.4g} ({r:g})")
            mr = mean_rank[m]
            cells.append("nan" if math.isnan(mr) else f"{mr:.2f}")
            body.append(cells)
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])

    def _repr_html_(self) -> str:
        from html import escape
        rows = str(self).split("\n")
        return f"<pre>{escape(chr(10).join(rows))}</pre>"


def validate(model: nn.Module, x: torch.Tensor, *, methods: Selection, metrics: Selection,
             target: Any = None, contrast: Any = None, masks: torch.Tensor | None = None,
             normalization: Any = None, seed: int = 0, batch_size: int | None = None
             ) -> ValidationTable:
    """Explain ``x`` with every method and score each map with every metric.

    ``methods`` / ``metrics``: names, or ``{name: params}`` dicts. Contrastive objectives apply
    to every method and metric. Localization metrics need ``masks``.
    """
    chosen = _selection("methods", methods)
    scored = _selection("metrics", metrics)
    if not chosen or not scored:
        raise SaliencyError("validate needs at least one method and one metric")
    specs = {name: METRICS.get(name) for name in scored}
    attributions: dict[str, Attribution] = {}
    results: dict[tuple[str, str], MetricResult] = {}
    for name, params in chosen.items():
        attr = attribute(model, x, target, method=name, contrast=contrast, seed=seed,
                         normalization=normalization, batch_size=batch_size, **params)
        attributions[name] = attr
        for metric, mparams in scored.items():
            results[(name, metric)] = evaluate(model, x, attr, metric=metric, seed=seed,
                                               masks=masks, batch_size=batch_size, **mparams)
    return ValidationTable(methods=tuple(chosen), metrics=tuple(scored), results=results,
                           attributions=attributions,
                           higher_is_better={m: bool(s.higher_is_better)
                                             for m, s in specs.items()})
