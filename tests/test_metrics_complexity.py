"""Sparseness and complexity: closed forms on uniform and one-pixel maps.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

import saliency_widgets as sw

try:
    from .models import linear_model
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import linear_model

try:
    from .metric_helpers import F64, max_err, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, max_err, rand


def test_sparseness_and_complexity_closed_forms():
    model = linear_model(2, 4, 5, 2)
    x = rand(1, 2, 4, 5)
    n = 20
    hot = torch.zeros(1, 2, 4, 5, dtype=F64)
    hot[0, 1, 2, 3] = -3.0
    uniform = torch.full((1, 2, 4, 5), 0.7, dtype=F64)
    sp = lambda v: float(sw.evaluate(model, x, v, target=0,  # noqa: E731
                                     metric="sparseness").scores[0])
    cx = lambda v: float(sw.evaluate(model, x, v, target=0,  # noqa: E731
                                     metric="complexity").scores[0])
    assert abs(sp(hot) - (n - 1) / n) <= 1e-15, f"Gini(one-hot) {sp(hot)} != (n−1)/n"
    assert abs(sp(uniform)) <= 1e-15, f"Gini(uniform) {sp(uniform)} != 0"
    assert cx(hot) == 0.0, f"entropy(one-hot) {cx(hot)} != 0"
    assert abs(cx(uniform) - math.log(n)) <= 1e-12, f"entropy(uniform) {cx(uniform)} != log(HW)"
    # Gini of a known vector: values 1, 2, 3, 4 on four pixels, zeros elsewhere (n = 20)
    v = torch.zeros(1, 1, 4, 5, dtype=F64)
    v[0, 0, 0, :4] = torch.tensor([4.0, -1.0, 3.0, 2.0])
    ref = sum((2 * i - n - 1) * a for i, a in zip(range(17, 21), [1, 2, 3, 4])) / (n * 10)
    assert abs(sp(v) - ref) <= 1e-15
    for metric in ("sparseness", "complexity"):
        with pytest.warns(sw.SaliencyWarning, match="all zeros"):
            r = sw.evaluate(model, x, torch.zeros_like(x), target=0, metric=metric)
        assert math.isnan(float(r.scores[0]))


def test_channel_reduction_runs_in_float64():
    # channels (1e8, v, −1e8) in float32: a float32 sum over channels gives 0 or 8 (the ulp at
    # 1e8), a float64 sum gives v exactly
    model = linear_model(3, 4, 5, 2).float()
    x = torch.rand(1, 3, 4, 5)
    v = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(3)) + 0.5
    big = torch.stack([torch.full_like(v, 1e8), v, torch.full_like(v, -1e8)], 1)
    for metric in ("sparseness", "complexity"):
        ours = sw.evaluate(model, x, big, target=0, metric=metric).scores
        ref = sw.evaluate(model, x, v[:, None].double(), target=0, metric=metric).scores
        err = max_err(ours, ref)
        assert err <= 1e-12, f"{metric}: {ours.tolist()} vs {ref.tolist()} (tol 1e-12)"
