"""``sw.validate``: every method × every metric, ranks and bootstrap intervals.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings

import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import smooth_cnn

try:
    from .metric_helpers import F64, METRICS, one_pixel_model, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, METRICS, one_pixel_model, rand


def test_validate_table_ranks_and_records():
    model = one_pixel_model(3, 4)
    x = rand(2, 1, 8, 8, seed=5).abs() + 0.5
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 3, 4] = True
    # the gradient of a one-pixel model is one-hot: maximally sparse (↑) and simple (↓);
    # 3×3 occlusion spreads the same evidence over 9 pixels
    table = sw.validate(model, x, target=0, masks=masks,
                        methods={"occlusion": {"window": 3, "stride": 1}, "gradient": {}},
                        metrics=["complexity", "sparseness", "pointing_game"])
    assert table.methods == ("occlusion", "gradient")
    assert table.metrics == ("complexity", "sparseness", "pointing_game")
    assert set(table.results) == {(m, k) for m in table.methods for k in table.metrics}
    assert table.higher_is_better == {"complexity": False, "sparseness": True,
                                      "pointing_game": True}
    assert table.score("gradient", "complexity") == 0.0
    assert table.score("occlusion", "complexity") > 1.0
    assert table.score("gradient", "sparseness") > table.score("occlusion", "sparseness")
    assert table.ranks("complexity") == {"gradient": 1.0, "occlusion": 2.0}
    assert table.ranks("sparseness") == {"gradient": 1.0, "occlusion": 2.0}
    assert table.ranks("pointing_game") == {"gradient": 1.5, "occlusion": 1.5}  # both hit: tie
    assert table.common_metrics == table.metrics
    assert table.ranking() == [("gradient", (1 + 1 + 1.5) / 3), ("occlusion", (2 + 2 + 1.5) / 3)]
    assert table.ranking("defined") == table.ranking()
    rows = table.records()
    assert len(rows) == 6
    assert {(r["method"], r["metric"]) for r in rows} == set(table.results)
    for r in rows:
        res = table.results[(r["method"], r["metric"])]
        assert r["mean"] == res.mean and r["scores"] == res.scores.tolist()
        assert r["higher_is_better"] == METRICS[r["metric"]]["higher_is_better"]
        assert r["method_seconds"] >= 0 and r["metric_seconds"] >= 0
        assert r["ci_low"] <= r["mean"] <= r["ci_high"] and r["in_mean_rank"]
    hits = [r for r in rows if r["metric"] == "pointing_game"]
    assert all(r["same_as"] == [o for o in table.methods if o != r["method"]] for r in hits), \
        "two methods that both always hit cannot differ significantly"
    summary = table.summary()
    assert [r["method"] for r in summary] == ["gradient", "occlusion"]
    assert summary[0]["metrics"] == list(table.metrics)
    text = str(table)
    assert "gradient" in text and "occlusion" in text and "complexity ↓" in text \
        and "sparseness ↑" in text and "bootstrap" in text
    lines = text.splitlines()
    assert lines[2].startswith("gradient") and lines[3].startswith("occlusion"), text
    assert "<pre>" in table._repr_html_()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            table.to_pandas()
    else:
        df = table.to_pandas()
        assert len(df) == 6 and {"method", "metric", "mean", "rank", "ci_low", "ci_high",
                                 "same_as", "in_mean_rank"} <= set(df.columns)
        assert list(table.to_pandas(summary=True)["method"]) == ["gradient", "occlusion"]
    with pytest.raises(SaliencyError, match="bootstrap"):
        sw.validate(model, x, target=0, methods=["gradient"], metrics=["sparseness"],
                    bootstrap=-1)
    with pytest.raises(SaliencyError, match="confidence"):
        sw.validate(model, x, target=0, methods=["gradient"], metrics=["sparseness"],
                    confidence=95)


def test_validate_nan_is_unranked_and_errors():
    model = smooth_cnn(c=1, k=2)
    x = rand(1, 1, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        table = sw.validate(model, x, methods={"integrated_gradients": {"steps": 8},
                                               "gradient": {}},
                            metrics=["completeness", "sparseness"])
    assert math.isnan(table.score("gradient", "completeness"))
    ranks = table.ranks("completeness")
    assert ranks["integrated_gradients"] == 1.0 and math.isnan(ranks["gradient"])
    assert table.common_metrics == ("sparseness",)
    assert [m for m, _ in table.ranking()] == [m for m, _ in table.ranking("defined")]
    text = str(table)
    assert "nan" in text and "no intervals: 1 example" in text
    with pytest.raises(SaliencyError, match="list"):
        sw.validate(model, x, methods="gradient", metrics=["sparseness"])
    with pytest.raises(SaliencyError, match="at least one"):
        sw.validate(model, x, methods=[], metrics=["sparseness"])


def _table(scores: dict[tuple[str, str], list[float]], higher: dict[str, bool],
           **kw) -> sw.ValidationTable:
    """A table from given per-example scores (no model needed)."""
    methods = tuple(dict.fromkeys(m for m, _ in scores))
    metrics = tuple(dict.fromkeys(k for _, k in scores))
    results = {key: sw.MetricResult(metric=key[1], scores=torch.tensor(v, dtype=F64),
                                    higher_is_better=higher[key[1]])
               for key, v in scores.items()}
    attrs = {m: sw.Attribution(values=torch.zeros(1), method=m, target=(0,), contrast=None)
             for m in methods}
    return sw.ValidationTable(methods=methods, metrics=metrics, results=results,
                              attributions=attrs, higher_is_better=higher, **kw)


def test_mean_rank_is_over_the_common_metrics_and_leaves_completeness_out():
    nan = float("nan")
    higher = {"sparseness": True, "relevance_mass": True, "completeness": False}
    t = _table({("a", "sparseness"): [0.9, 0.8], ("a", "relevance_mass"): [nan, nan],
                ("a", "completeness"): [0.5, 0.5],
                ("b", "sparseness"): [0.5, 0.4], ("b", "relevance_mass"): [0.1, 0.2],
                ("b", "completeness"): [0.0, 0.0],
                ("c", "sparseness"): [0.1, 0.2], ("c", "relevance_mass"): [0.9, 0.9],
                ("c", "completeness"): [0.1, 0.1]}, higher)
    # completeness would put b first; relevance_mass is undefined for a (a ranked on fewer
    # metrics than the others if it counted): only sparseness is common
    assert t.ranked_metrics == ("sparseness", "relevance_mass")
    assert t.common_metrics == ("sparseness",)
    assert t.ranking() == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert t.ranking("defined") == [("a", 1.0), ("b", 2.0), ("c", 2.0)]  # c: (3 + 1) / 2
    assert t.ranks("completeness") == {"b": 1.0, "c": 2.0, "a": 3.0}  # shown, not averaged
    text = str(t)
    assert "left out: completeness (it measures the map's scale); relevance_mass (undefined " \
           "for a)" in text and "mean rank (defined)" in text
    assert [r["in_mean_rank"] for r in t.records() if r["method"] == "a"] == [True, False, False]
    with pytest.raises(SaliencyError, match="over"):
        t.ranking("all")


def test_bootstrap_intervals_and_significance():
    g = torch.Generator().manual_seed(0)
    n = 400
    noise = torch.randn(n, generator=g, dtype=F64)
    higher = {"sparseness": True}
    t = _table({("good", "sparseness"): (noise + 1.0).tolist(),
                ("same", "sparseness"): (noise + 1.0 + 1e-3).tolist(),
                ("bad", "sparseness"): (noise * 0.5).tolist()}, higher, seed=3)
    # the percentile interval of a mean of n N(0, 1) scores: mean ± 1.96/√n (± MC error)
    lo, hi = t.interval("good", "sparseness")
    m = float(noise.mean()) + 1.0
    assert abs((hi - lo) / 2 - 1.96 / math.sqrt(n)) <= 0.015, (lo, hi)
    assert lo < m < hi and abs((lo + hi) / 2 - m) <= 0.01
    # a paired bootstrap: a constant shift of 1e-3 on the same examples is significant, the
    # other differences too; the mean ranks follow
    assert t.significant("same", "good", "sparseness") is True
    assert t.significant("good", "bad", "sparseness") is True
    assert t.significant("good", "good", "sparseness") is False
    assert t.ranking()[0][0] == "same"
    # seeded: the same seed gives the same intervals, another seed others
    again = _table({k: r.scores.tolist() for k, r in t.results.items()}, higher, seed=3)
    other = _table({k: r.scores.tolist() for k, r in t.results.items()}, higher, seed=4)
    assert again.interval("good", "sparseness") == (lo, hi)
    assert other.interval("good", "sparseness") != (lo, hi)
    # equal scores on every example: never significant, zero-width interval
    tie = _table({("a", "sparseness"): [0.5, 0.7, 0.9], ("b", "sparseness"): [0.5, 0.7, 0.9]},
                 higher)
    assert tie.significant("a", "b", "sparseness") is False and tie.significant("a", "b") is False
    assert "(1.5≈)" in str(tie)
    # one example (or bootstrap=0): no intervals, nothing tested, and the table says so
    for one in (_table({("a", "sparseness"): [0.5], ("b", "sparseness"): [0.7]}, higher),
                _table({("a", "sparseness"): [0.5, 0.6], ("b", "sparseness"): [0.7, 0.8]},
                       higher, bootstrap=0)):
        assert all(math.isnan(v) for v in one.interval("a", "sparseness"))
        assert one.significant("a", "b", "sparseness") is None
        assert one.records()[0]["same_as"] == [] and "no intervals" in str(one)


@contextlib.contextmanager
def scaled_method(name: str, base: str, c: float):
    """Register ``name``: method ``base`` × ``c`` (re-explanations included), for one test."""
    from saliency_widgets.registry import METHODS
    spec = METHODS.get(base)

    @functools.wraps(spec.fn)  # keeps the base's signature, hence its parameters
    def fn(ctx, x, **params):
        return spec.fn(ctx, x, **params) * c

    METHODS.add(dataclasses.replace(spec, name=name, fn=fn))
    try:
        yield name
    finally:
        METHODS._specs.pop(name)  # no public unregister: tests only


def test_validate_ranks_do_not_depend_on_a_maps_scale():
    # multiplying one method's map and its re-explanations by c ∈ {1e-3, 1e3} changes no rank:
    # infidelity is normalized by default and completeness (the scale itself) is not ranked
    model = smooth_cnn(c=3, k=3, width=6, act="softplus", seed=2)
    x = rand(4, 3, 8, 8, seed=3).abs().clamp(max=1)
    norm = ((0.5,) * 3, (0.25,) * 3)
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 1:5] = True
    metrics = {"infidelity": {"samples": 8}, "max_sensitivity": {"samples": 2},
               "deletion": {"steps": 8}, "insertion": {"steps": 8}, "sparseness": {},
               "complexity": {}, "pointing_game": {}, "relevance_mass": {},
               "relevance_rank": {}, "completeness": {}}
    tables = {}
    for c in (1.0, 1e-3, 1e3):
        with scaled_method("scaled_ig", "integrated_gradients", c):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sw.SaliencyWarning)
                tables[c] = sw.validate(model, x, target=[0, 1, 2, 0], masks=masks,
                                        normalization=norm, metrics=metrics,
                                        methods={"gradient": {}, "grad_cam": {},
                                                 "kernel_shap": {"grid": 2, "samples": 16},
                                                 "scaled_ig": {"steps": 8}})
    ref = tables[1.0]
    assert ref.common_metrics == tuple(k for k in metrics if k != "completeness"), \
        "every metric but completeness must be defined for every method here"
    for c in (1e-3, 1e3):
        t = tables[c]
        for metric in ref.ranked_metrics:
            assert t.ranks(metric) == ref.ranks(metric), f"×{c}: {metric} ranks changed"
        same = [(r["metric"], r["same_as"]) for r in t.records() if r["in_mean_rank"]]
        assert same == [(r["metric"], r["same_as"]) for r in ref.records() if r["in_mean_rank"]]
        assert [m for m, _ in t.ranking()] == [m for m, _ in ref.ranking()], f"×{c}"
        assert t.ranks("completeness") != ref.ranks("completeness"), \
            "completeness must see the scale (that is why it is not ranked)"
    # …while infidelity without normalize is ranked by the scale
    raw = {c: sw.evaluate(model, x, tables[c].attributions["scaled_ig"], metric="infidelity",
                          samples=8, normalize=False).mean for c in (1e-3, 1e3)}
    assert raw[1e3] > 1e3 * raw[1e-3]
