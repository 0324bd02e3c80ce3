"""Deletion and insertion curves: an additive model's exact curves, ties, scores.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError
from saliency_widgets.metrics._curve import removal_order

try:
    from .models import linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import linear_model, smooth_cnn

try:
    from .metric_helpers import F64, max_err, objective, one_pixel_model, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, max_err, objective, one_pixel_model, rand


C_ADD, H_ADD, W_ADD = 2, 5, 5
ADDITIVE = linear_model(C_ADD, H_ADD, W_ADD, 2, bias=False, seed=11)
X_ADD = rand(1, C_ADD, H_ADD, W_ADD, seed=12)
W_ADD_MAP = ADDITIVE[1].weight[0].detach().view(1, C_ADD, H_ADD, W_ADD)
CONTRIB = W_ADD_MAP * X_ADD  # w ⊙ x: the exact per-feature contributions
HW = H_ADD * W_ADD


def additive_auc(metric: str, values: torch.Tensor, steps: int = HW) -> float:
    r = sw.evaluate(ADDITIVE, X_ADD, values, target=0, metric=metric, baseline=0.0, steps=steps)
    return float(r.scores[0])


BEST = {m: additive_auc(m, CONTRIB) for m in ("deletion", "insertion")}
WORST = {m: additive_auc(m, -CONTRIB) for m in ("deletion", "insertion")}


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(perm=st.permutations(list(range(HW))), steps=st.sampled_from([HW, 7, 3]))
def test_additive_model_w_times_x_ordering_is_optimal(perm, steps):
    order = torch.tensor(perm, dtype=F64).view(1, 1, H_ADD, W_ADD)  # any ordering of pixels
    best = {m: additive_auc(m, CONTRIB, steps) for m in ("deletion", "insertion")}
    worst = {m: additive_auc(m, -CONTRIB, steps) for m in ("deletion", "insertion")}
    d = additive_auc("deletion", order, steps)
    i = additive_auc("insertion", order, steps)
    tol = 1e-12
    assert best["deletion"] <= d + tol, f"deletion: w⊙x {best['deletion']} > random {d}"
    assert worst["deletion"] >= d - tol, f"deletion: −w⊙x {worst['deletion']} < random {d}"
    assert best["insertion"] >= i - tol, f"insertion: w⊙x {best['insertion']} < random {i}"
    assert worst["insertion"] <= i + tol, f"insertion: −w⊙x {worst['insertion']} > random {i}"


def test_additive_model_best_and_worst_differ():
    assert BEST["deletion"] < WORST["deletion"] - 0.1
    assert BEST["insertion"] > WORST["insertion"] + 0.1
    # deletion and insertion with the same ordering are complementary: D(k) + I(k) = f(x) + f(0)
    fx = float(objective(ADDITIVE, X_ADD, [0])[0])
    for s in (CONTRIB, -CONTRIB):
        d = sw.evaluate(ADDITIVE, X_ADD, s, target=0, metric="deletion", baseline=0.0, steps=HW)
        i = sw.evaluate(ADDITIVE, X_ADD, s, target=0, metric="insertion", baseline=0.0, steps=HW)
        assert max_err(d.curve + i.curve, torch.full_like(d.curve, fx)) <= 1e-12


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_curve_auc_endpoints_and_steps(metric):
    model = smooth_cnn(c=3, k=4, act="tanh", seed=2)
    x = rand(2, 3, 7, 6, seed=3)
    base = rand(1, 3, 7, 6, seed=4, scale=0.5)
    attr = sw.attribute(model, x, method="gradient")
    f_x = objective(model, x, attr.target)
    f_b = objective(model, base.expand_as(x), attr.target)
    first, last = (f_b, f_x) if metric == "insertion" else (f_x, f_b)
    ends = None
    for steps in (1, 4, 9):
        r = sw.evaluate(model, x, attr, metric=metric, baseline=base, steps=steps)
        assert r.curve.shape == (2, steps + 1) and r.curve_x.shape == (steps + 1,)
        assert r.curve_x[0] == 0 and r.curve_x[-1] == 1
        auc = np.trapezoid(r.curve.numpy(), r.curve_x.numpy(), axis=1)
        assert np.abs(auc - r.scores.numpy()).max() <= 1e-12, "AUC != np.trapezoid (tol 1e-12)"
        assert max_err(r.curve[:, 0], first) <= 1e-12, f"{metric} curve[0] (tol 1e-12)"
        assert max_err(r.curve[:, -1], last) <= 1e-12, f"{metric} curve[-1] (tol 1e-12)"
        if ends is not None:
            assert torch.equal(r.curve[:, [0, -1]], ends), "steps changed the endpoints"
        ends = r.curve[:, [0, -1]]
    # steps moves the interior points: 2 steps' points are 4 steps' even points (the same pixel
    # counts), while the AUC changes with the extra interior points
    a = sw.evaluate(model, x, attr, metric=metric, baseline=base, steps=2)
    b = sw.evaluate(model, x, attr, metric=metric, baseline=base, steps=4)
    assert torch.equal(a.curve, b.curve[:, ::2]), "the same pixel counts must give the same points"
    assert not torch.equal(a.scores, b.scores), "more steps must change the AUC (interior points)"


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_curve_contrast_and_probability(metric):
    model = smooth_cnn(c=3, k=4, act="softplus", seed=6)
    x = rand(2, 3, 6, 6, seed=7)
    attr = sw.attribute(model, x, method="gradient")
    t = list(attr.target)
    for score in ("objective", "probability"):
        r = sw.evaluate(model, x, attr.values, target=t, contrast=t, metric=metric,
                        baseline=0.0, steps=5, score=score)
        assert bool((r.curve == 0).all()) and bool((r.scores == 0).all()), \
            f"self-contrast ({score}): curves must be exactly 0"
    other = [(v + 1) % 4 for v in t]
    p = sw.evaluate(model, x, attr.values, target=t, contrast=other, metric=metric,
                    baseline=0.0, steps=5, score="probability")
    assert bool(((p.curve >= -1) & (p.curve <= 1)).all()), "probability curve outside [−1, 1]"
    with torch.no_grad():
        prob = torch.softmax(model(x), 1)
    ref = prob.gather(1, torch.tensor(t)[:, None])[:, 0] - \
        prob.gather(1, torch.tensor(other)[:, None])[:, 0]
    end = 0 if metric == "deletion" else -1
    assert max_err(p.curve[:, end], ref) <= 1e-12, "probability curve at x (tol 1e-12)"
    o = sw.evaluate(model, x, attr.values, target=t, contrast=other, metric=metric,
                    baseline=0.0, steps=5)
    assert max_err(o.curve[:, end], objective(model, x, t, other)) <= 1e-12, \
        "contrastive objective curve at x (tol 1e-12)"
    q = sw.evaluate(model, x, attr.values, target=t, metric=metric, baseline=0.0, steps=5,
                    score="probability")
    assert bool(((q.curve >= 0) & (q.curve <= 1)).all()), "probability without contrast ∈ [0, 1]"
    with pytest.raises(SaliencyError, match="score"):
        sw.evaluate(model, x, attr, metric=metric, score="logit")
    with pytest.raises(SaliencyError, match="steps"):
        sw.evaluate(model, x, attr, metric=metric, steps=0)


def test_deletion_actually_modifies_the_input():
    # guards against the RISE reference code's in-place-edit-on-a-copy bug (a flat curve)
    model = one_pixel_model(1, 2)
    x = torch.ones(1, 1, 4, 4, dtype=F64)
    values = torch.zeros(1, 1, 4, 4, dtype=F64)
    values[0, 0, 1, 2] = 1.0
    r = sw.evaluate(model, x, values, target=0, metric="deletion", baseline=0.0, steps=16)
    assert r.curve[0].tolist() == [1.0] + [0.0] * 16, r.curve


def test_removal_order_breaks_ties_by_a_seeded_permutation():
    g = torch.Generator().manual_seed(8)
    maps = (torch.randn(3, 2, 6, 7, generator=g, dtype=F64)).round().clamp(min=0)  # many ties
    order = removal_order(maps, "sum", tie_seed=0)
    m = sw.reduce_channels(maps, "sum").flatten(1)
    assert order.shape == (3, 42) and order.dtype == torch.int64
    assert bool((order.sort(1).values == torch.arange(42)).all()), "not a permutation"
    assert bool((m.gather(1, order).diff(dim=1) <= 0).all()), "not most relevant first"
    # within a tie the order is the seeded permutation's, the same for every example
    perm = torch.randperm(42, generator=torch.Generator().manual_seed(0)).tolist()
    for b in range(3):
        for v in m[b].unique():
            tied = [p for p in order[b].tolist() if m[b, p] == v]
            assert tied == sorted(tied, key=perm.index), "ties not in the seeded order"
    assert torch.equal(removal_order(maps[1:2], "sum", 0), order[1:2]), "batch-dependent"
    assert not torch.equal(removal_order(maps, "sum", 1), order), "tie_seed has no effect"
    tie_free = torch.randn(2, 1, 6, 7, generator=g, dtype=F64)
    assert torch.equal(removal_order(tie_free, "sum", 0), removal_order(tie_free, "sum", 5))
    positional = torch.argsort(-m, dim=1, stable=True)
    assert not torch.equal(order, positional), "ties must not be broken by position"


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_curve_follows_the_recorded_pixel_order(metric):
    # additive model, zero substrate, one pixel per step: point k of the curve is f of the
    # input with exactly the first k pixels of removal_order moved (a tie-heavy map, so the
    # order is mostly the seeded tie order)
    values = CONTRIB.clamp(min=0).sum(1, keepdim=True).round()  # ≥ 0, many tied zeros
    for tie_seed in (0, 3):
        r = sw.evaluate(ADDITIVE, X_ADD, values, target=0, metric=metric, baseline=0.0,
                        steps=HW, tie_seed=tie_seed)
        assert r.params["tie_seed"] == tie_seed
        order = removal_order(values, r.params["reduction"], r.params["tie_seed"])[0]
        moved = torch.zeros(HW, dtype=torch.bool)
        expected = []
        for k in range(HW + 1):
            keep = ~moved if metric == "deletion" else moved
            xk = X_ADD * keep.view(1, 1, H_ADD, W_ADD)
            expected.append(float(objective(ADDITIVE, xk, [0])[0]))
            if k < HW:
                moved[order[k]] = True
        assert max_err(r.curve[0], torch.tensor(expected, dtype=F64)) <= 1e-12, \
            f"{metric}: the curve does not follow removal_order (tie_seed {tie_seed})"
    with pytest.raises(SaliencyError, match="tie_seed"):
        sw.evaluate(ADDITIVE, X_ADD, values, target=0, metric=metric, tie_seed=-1)
