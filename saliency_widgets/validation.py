"""``validate``: every method × every metric on the same input, as a ranked table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ._types import Attribution, MetricResult
from .api import attribute, evaluate
from .errors import SaliencyError
from .registry import METRICS
from .work import Progress, ProgressFn, callback, progress_bar

Selection = Iterable[str] | Mapping[str, Mapping[str, Any]]


def _selection(what: str, spec: Selection) -> dict[str, dict[str, Any]]:
    """Names, or ``{name: params}``, as an ordered ``{name: params}``."""
    if isinstance(spec, str):
        raise SaliencyError(f"{what} must be a list of names or a {{name: params}} dict; "
                            f"got the single string {spec!r} (wrap it in a list)")
    if isinstance(spec, Mapping):
        return {str(k): dict(v or {}) for k, v in spec.items()}
    return {str(name): {} for name in spec}


# Metrics about the map's *scale* (which every other metric ignores): shown, never in a mean rank.
SCALE_METRICS = ("completeness",)
OVER = ("common", "defined")


@dataclass(frozen=True)
class ValidationTable:
    """Per method: each metric's mean and per-example scores, and the method's time.

    ``str(table)`` prints an aligned table: each mean with its bootstrap interval and the
    method's rank on that metric, then the mean rank. ``records()`` gives one plain row per
    (method, metric), ``summary()`` one per method, ``to_pandas()`` either as a DataFrame (needs
    pandas), ``ranking()`` the methods by mean rank (lower is better).

    Mean rank: over the *common* metrics, those defined (not NaN) for every method, so that no
    method is ranked on fewer metrics than another (``over="defined"``: each method over the
    metrics where it is defined; printed too when the two differ). Metrics of the map's scale
    (``SCALE_METRICS``: completeness) are shown but never enter a mean rank.

    Uncertainty: the examples are resampled with replacement ``bootstrap`` times (seeded by
    ``seed``; the same resamples for every method and metric, a paired bootstrap). Each mean and
    each mean rank (ranks recomputed in every resample) gets its percentile interval at
    ``confidence``. Two methods differ significantly when the interval of their paired difference
    excludes 0 (each pair on its own: no correction for multiple comparisons, so with many
    methods expect some differences by chance). With fewer than two examples (or
    ``bootstrap=0``) there are no intervals, and no difference is called significant or not
    (``None``).
    """

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    results: Mapping[tuple[str, str], MetricResult]
    attributions: Mapping[str, Attribution]
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def score(self, method: str, metric: str) -> float:
        return self._means[(method, metric)]

    @cached_property
    def _means(self) -> dict[tuple[str, str], float]:
        return {key: res.mean for key, res in self.results.items()}

    def ranks(self, metric: str) -> dict[str, float]:
        """Rank of each method on ``metric`` (1 = best; ties share the mean rank; NaN unranked)."""
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

    @property
    def ranked_metrics(self) -> tuple[str, ...]:
        """The metrics that may enter a mean rank (all but ``SCALE_METRICS``)."""
        return tuple(m for m in self.metrics if m not in SCALE_METRICS)

    @cached_property
    def common_metrics(self) -> tuple[str, ...]:
        """The ranked metrics defined (not NaN) for every method: the default mean rank's."""
        return tuple(m for m in self.ranked_metrics
                     if not any(math.isnan(self.score(k, m)) for k in self.methods))

    def _over(self, method: str, over: str) -> tuple[str, ...]:
        if over not in OVER:
            raise SaliencyError(f"over={over!r}; use one of {OVER}")
        if over == "common":
            return self.common_metrics
        return tuple(m for m in self.ranked_metrics if not math.isnan(self.score(method, m)))

    def mean_ranks(self, over: str = "common") -> dict[str, float]:
        """Each method's mean rank over the common metrics (or where it is ``"defined"``)."""
        per = {metric: self.ranks(metric) for metric in self.ranked_metrics}
        out = {}
        for m in self.methods:
            rs = [per[k][m] for k in self._over(m, over)]
            out[m] = sum(rs) / len(rs) if rs else float("nan")
        return out

    def ranking(self, over: str = "common") -> list[tuple[str, float]]:
        """``(method, mean rank)``, best first (NaN last); see :meth:`mean_ranks`."""
        return sorted(self.mean_ranks(over).items(), key=lambda kv: (math.isnan(kv[1]), kv[1]))

    # --- bootstrap ----------------------------------------------------------------------------
    @cached_property
    def _boot(self) -> dict[Any, np.ndarray] | None:
        """Resampled means ``(R,)`` per (method, metric) and mean ranks per (over, method)."""
        n = self.results[(self.methods[0], self.metrics[0])].scores.numel()
        if self.bootstrap < 1 or n < 2:
            return None
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randint(0, n, (self.bootstrap, n), generator=g).numpy()
        out: dict[Any, np.ndarray] = {}
        for key, res in self.results.items():
            s = res.scores.double().numpy()[idx]  # (R, n)
            ok = ~np.isnan(s)
            count = ok.sum(1)
            total = np.where(ok, s, 0.0).sum(1)
            out[key] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        ranks = {}
        for metric in self.ranked_metrics:
            sign = -1.0 if self.higher_is_better[metric] else 1.0
            table = np.stack([out[(m, metric)] * sign for m in self.methods], 1)  # (R, M)
            ranks[metric] = rankdata(table, axis=1, nan_policy="omit")
        for over in OVER:
            for i, m in enumerate(self.methods):
                used = self._over(m, over)
                if not used:
                    out[(over, m)] = np.full(self.bootstrap, np.nan)
                    continue
                r = np.stack([ranks[k][:, i] for k in used], 1)
                ok = ~np.isnan(r)
                out[(over, m)] = np.where(ok.any(1), np.where(ok, r, 0).sum(1)
                                          / np.maximum(ok.sum(1), 1), np.nan)
        return out

    def _interval(self, draws: np.ndarray | None) -> tuple[float, float]:
        if draws is not None:
            draws = draws[~np.isnan(draws)]
        if draws is None or draws.size == 0:
            return float("nan"), float("nan")
        a = (1 - self.confidence) / 2
        lo, hi = np.quantile(draws, [a, 1 - a])
        return float(lo), float(hi)

    def interval(self, method: str, metric: str | None = None,
                 over: str = "common") -> tuple[float, float]:
        """Bootstrap interval of ``method``'s mean on ``metric`` (None: of its mean rank)."""
        boot = self._boot
        key = (method, metric) if metric is not None else (over, method)
        return self._interval(None if boot is None else boot[key])

    def significant(self, a: str, b: str, metric: str | None = None,
                    over: str = "common") -> bool | None:
        """Whether methods ``a`` and ``b`` differ on ``metric`` (None: in mean rank): the paired
        bootstrap interval of the difference excludes 0. None when there are no intervals."""
        boot = self._boot
        if boot is None:
            return None
        key = (a, b, metric, over)
        if key not in self._tested:
            ka, kb = ((a, metric), (b, metric)) if metric is not None else ((over, a), (over, b))
            d = boot[ka] - boot[kb]
            d = d[~np.isnan(d)]
            lo, hi = self._interval(d) if d.size else (float("nan"),) * 2
            self._tested[key] = None if d.size == 0 else bool(lo > 0 or hi < 0)
        return self._tested[key]

    @cached_property
    def _tested(self) -> dict[tuple[Any, ...], bool | None]:
        return {}  # memo of significant()

    def _same_as(self, method: str, metric: str | None, over: str = "common") -> list[str]:
        return [o for o in self.methods
                if o != method and self.significant(method, o, metric, over) is False]

    # --- output -------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """One row per (method, metric): mean, its interval, per-example scores, rank, whether
        the metric enters the mean rank, the methods it is not significantly different from,
        and the times."""
        rows = []
        for metric in self.metrics:
            ranks = self.ranks(metric)
            for m in self.methods:
                res = self.results[(m, metric)]
                lo, hi = self.interval(m, metric)
                rows.append({"method": m, "metric": metric, "mean": res.mean,
                             "ci_low": lo, "ci_high": hi,
                             "scores": [float(s) for s in res.scores],
                             "higher_is_better": res.higher_is_better, "rank": ranks[m],
                             "in_mean_rank": metric in self.common_metrics,
                             "same_as": self._same_as(m, metric),
                             "method_seconds": self.attributions[m].seconds,
                             "metric_seconds": res.seconds})
        return rows

    def summary(self) -> list[dict[str, Any]]:
        """One row per method, best first: mean rank over the common metrics with its interval,
        the methods it is not significantly different from, and the mean rank where defined."""
        defined = self.mean_ranks("defined")
        rows = []
        for m, r in self.ranking():
            lo, hi = self.interval(m)
            rows.append({"method": m, "mean_rank": r, "ci_low": lo, "ci_high": hi,
                         "same_as": self._same_as(m, None),
                         "metrics": list(self.common_metrics),
                         "mean_rank_defined": defined[m],
                         "metrics_defined": list(self._over(m, "defined")),
                         "method_seconds": self.attributions[m].seconds})
        return rows

    def to_pandas(self, summary: bool = False):
        """A DataFrame of :meth:`records` (long format) or of :meth:`summary` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("ValidationTable.to_pandas() needs pandas: pip install pandas") \
                from err
        return pd.DataFrame.from_records(self.summary() if summary else self.records())

    def __str__(self) -> str:
        arrows = {m: "↑" if self.higher_is_better[m] else "↓" for m in self.metrics}
        common = self.common_metrics
        order = [m for m, _ in self.ranking()]
        defined = self.mean_ranks("defined")
        if all(math.isnan(v) for _, v in self.ranking()):
            order = [m for m, _ in self.ranking("defined")]
        both = any(self._over(m, "defined") != common for m in self.methods)
        boot = self._boot is not None

        def num(v: float) -> str:
            return "nan" if math.isnan(v) else f"{v:.4g}"

        def interval(lo: float, hi: float) -> str:
            return "" if math.isnan(lo) else f" [{lo:.3g}, {hi:.3g}]"

        def mark(method: str, above: str | None, metric: str | None) -> str:
            return "≈" if above is not None and self.significant(method, above, metric) is False \
                else ""

        head = ["method", "time s"] + [
            f"{m} {arrows[m]}" + ("" if m in common else " (not ranked)")
            for m in self.metrics] + ["mean rank"] + (["mean rank (defined)"] if both else [])
        ranks = {metric: self.ranks(metric) for metric in self.metrics}
        above = {metric: self._above(ranks[metric]) for metric in self.metrics}
        mean_rank = dict(self.ranking())
        body = []
        for i, m in enumerate(order):
            cells = [m, f"{self.attributions[m].seconds:.2f}"]
            for metric in self.metrics:
                v, r = self.score(m, metric), ranks[metric][m]
                lo, hi = self.interval(m, metric)
                tie = mark(m, above[metric][m], metric)
                cells.append("nan" if math.isnan(v) else f"{v:.4g}{interval(lo, hi)} ({r:g}{tie})")
            mr = mean_rank[m]
            lo, hi = self.interval(m)
            cells.append("nan" if math.isnan(mr) else
                         f"{mr:.2f}{interval(lo, hi)} {mark(m, order[i - 1] if i else None, None)}"
                         .rstrip())
            if both:
                cells.append(num(defined[m]))
            body.append(cells)
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        lines = [line(head), line(["-" * w for w in widths])] + [line(r) for r in body]
        return "\n".join(lines + [""] + self._notes(common, both, boot))

    def _above(self, ranks: Mapping[str, float]) -> dict[str, str | None]:
        """Each method's neighbour ranked just better on one metric (None for the best)."""
        ordered = sorted((r, i, m) for i, (m, r) in enumerate(ranks.items()) if not math.isnan(r))
        out: dict[str, str | None] = dict.fromkeys(ranks)
        for (_, _, prev), (_, _, m) in zip(ordered, ordered[1:]):
            out[m] = prev
        return out

    def _notes(self, common: tuple[str, ...], both: bool, boot: bool) -> list[str]:
        left = [f"{m} (it measures the map's scale)" for m in self.metrics if m in SCALE_METRICS]
        for metric in self.ranked_metrics:
            if metric not in common:
                nan = [k for k in self.methods if math.isnan(self.score(k, metric))]
                left.append(f"{metric} (undefined for {', '.join(nan)})")
        notes = [f"mean rank: over {', '.join(common) if common else 'no metric'} (defined for "
                 f"every method)" + (f"; left out: {'; '.join(left)}" if left else "") + "."]
        if both:
            notes.append("mean rank (defined): each method over the ranked metrics where it is "
                         "defined.")
        n = self.results[(self.methods[0], self.metrics[0])].scores.numel()
        if boot:
            notes.append(f"[lo, hi]: {self.confidence:.0%} bootstrap interval over the {n} "
                         f"examples ({self.bootstrap} resamples, seed {self.seed}); ≈: not "
                         f"significantly different from the method ranked just above (paired "
                         f"bootstrap).")
        else:
            notes.append(f"no intervals: {n} example(s) and {self.bootstrap} resamples (a "
                         f"bootstrap needs at least 2 examples), so no rank difference is "
                         f"tested.")
        return notes

    def _repr_html_(self) -> str:
        from html import escape
        return f"<pre>{escape(str(self))}</pre>"


_PART = 1000  # progress units per call (one attribute or one evaluate): a fixed total


def _part(progress: ProgressFn | None, k: int, parts: int) -> ProgressFn | None:
    """Progress of call ``k`` of ``parts``, mapped onto the whole run's fixed scale."""
    if progress is None:
        return None
    return lambda done, total: progress(k * _PART + _PART * done // max(1, total),
                                        parts * _PART)


def _done(progress: ProgressFn | None, k: int, parts: int) -> int:
    """Report call ``k`` finished (also one that reported nothing, e.g. a map-only metric)."""
    if progress is not None:
        progress((k + 1) * _PART, parts * _PART)
    return k + 1


@progress_bar
def validate(model: nn.Module, x: torch.Tensor, *, methods: Selection, metrics: Selection,
             target: Any = None, contrast: Any = None, masks: torch.Tensor | None = None,
             normalization: Any = None, seed: int = 0, batch_size: int | None = None,
             bootstrap: int = 1000, confidence: float = 0.95,
             progress: Progress = None) -> ValidationTable:
    """Explain ``x`` with every method and score each map with every metric.

    ``methods`` / ``metrics``: names, or ``{name: params}`` dicts. Contrastive objectives apply
    to every method and metric. Localization metrics need ``masks``. ``bootstrap`` resamples of
    the examples (seeded by ``seed``) give each mean and mean rank its ``confidence`` interval
    (see :class:`ValidationTable`); ``bootstrap=0`` turns them off. ``progress`` counts the
    whole run (a callable(done, total), or True for a ``tqdm.auto`` bar).
    """
    chosen = _selection("methods", methods)
    scored = _selection("metrics", metrics)
    if not chosen or not scored:
        raise SaliencyError("validate needs at least one method and one metric")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise SaliencyError(f"bootstrap must be an int ≥ 0 (resamples; 0 turns intervals off), "
                            f"got {bootstrap!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0 < confidence < 1:
        raise SaliencyError(f"confidence must be a number in (0, 1), e.g. 0.95, got "
                            f"{confidence!r}")
    specs = {name: METRICS.get(name) for name in scored}
    attributions: dict[str, Attribution] = {}
    results: dict[tuple[str, str], MetricResult] = {}
    parts = len(chosen) * (1 + len(scored))
    calls, report = 0, callback(progress)
    for name, params in chosen.items():
        attr = attribute(model, x, target, method=name, contrast=contrast, seed=seed,
                         normalization=normalization, batch_size=batch_size,
                         progress=_part(report, calls, parts), **params)
        calls = _done(report, calls, parts)
        attributions[name] = attr
        for metric, mparams in scored.items():
            results[(name, metric)] = evaluate(model, x, attr, metric=metric, seed=seed,
                                               masks=masks, batch_size=batch_size,
                                               progress=_part(report, calls, parts),
                                               **mparams)
            calls = _done(report, calls, parts)
    return ValidationTable(methods=tuple(chosen), metrics=tuple(scored), results=results,
                           attributions=attributions,
                           higher_is_better={m: bool(s.higher_is_better)
                                             for m, s in specs.items()},
                           bootstrap=bootstrap, confidence=float(confidence), seed=seed)
