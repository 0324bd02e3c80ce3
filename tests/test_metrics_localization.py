"""Localization metrics (pointing game, relevance mass, relevance rank) on one-pixel models.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import Lambda
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda

try:
    from .metric_helpers import F64, max_err, one_pixel_model, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, max_err, one_pixel_model, rand


I0, J0, SIDE = 5, 6, 12


def one_pixel_attribution():
    model = one_pixel_model(I0, J0)
    x = rand(1, 1, SIDE, SIDE, seed=1).abs() + 0.5
    attr = sw.attribute(model, x, target=0, method="gradient")
    flat = attr.values[0, 0].flatten().argmax()
    assert divmod(int(flat), SIDE) == (I0, J0), "the gradient's maximum must be (i0, j0)"
    return model, x, attr


def mask_at(*pixels: tuple[int, int]) -> torch.Tensor:
    m = torch.zeros(1, SIDE, SIDE, dtype=torch.bool)
    for i, j in pixels:
        m[0, i, j] = True
    return m


def test_pointing_game_one_pixel_model_and_tolerance():
    model, x, attr = one_pixel_attribution()
    pg = lambda m, tol: float(sw.evaluate(model, x, attr, metric="pointing_game",  # noqa: E731
                                          masks=m, tolerance=tol).scores[0])
    assert pg(mask_at((I0, J0)), 0) == 1.0
    assert pg(mask_at((I0 - 1, J0), (I0, J0), (I0, J0 + 1)), 0) == 1.0
    far = mask_at((I0 - 3, J0 - 4))  # Euclidean distance 5
    assert pg(far, 0) == 0.0 and pg(far, 4) == 0.0 and pg(far, 5) == 1.0
    diag = mask_at((I0 + 3, J0 + 3))  # distance √18 ≈ 4.24: a square of radius 3 would hit
    assert pg(diag, 3) == 0.0 and pg(diag, 4) == 0.0 and pg(diag, 5) == 1.0
    r = sw.evaluate(model, x, attr, metric="pointing_game", masks=far)
    assert r.params["tolerance"] == round(15 / 224 * SIDE) == 1, "TorchRay's 15 px at 224, scaled"
    with pytest.raises(SaliencyError, match="tolerance"):
        sw.evaluate(model, x, attr, metric="pointing_game", masks=far, tolerance=-1)


def test_pointing_game_tied_maxima_all_must_be_near():
    model, x, _ = one_pixel_attribution()
    values = torch.zeros(1, 1, SIDE, SIDE, dtype=F64)
    values[0, 0, 1, 1] = values[0, 0, 9, 9] = 1.0
    one = sw.evaluate(model, x, values, target=0, metric="pointing_game", masks=mask_at((1, 1)),
                      tolerance=0)
    both = sw.evaluate(model, x, values, target=0, metric="pointing_game",
                       masks=mask_at((1, 1), (9, 9)), tolerance=0)
    assert one.scores.tolist() == [0.0] and both.scores.tolist() == [1.0]


@pytest.mark.parametrize("metric", ["pointing_game", "relevance_mass", "relevance_rank"])
def test_localization_constant_map_and_empty_mask_are_nan(metric):
    model, x, attr = one_pixel_attribution()
    const = torch.full((1, 1, SIDE, SIDE), 0.3, dtype=F64)
    with pytest.warns(sw.SaliencyWarning, match="constant"):
        r = sw.evaluate(model, x, const, target=0, metric=metric, masks=mask_at((I0, J0)))
    assert bool(torch.isnan(r.scores).all()), f"{metric}: a constant map must be NaN, not a hit"
    with pytest.warns(sw.SaliencyWarning, match="constant"):
        r = sw.evaluate(model, x, torch.zeros_like(const), target=0, metric=metric,
                        masks=mask_at((I0, J0)))
    assert bool(torch.isnan(r.scores).all()), f"{metric}: an all-zero map must be NaN"
    with pytest.warns(sw.SaliencyWarning, match="empty"):
        r = sw.evaluate(model, x, attr, metric=metric, masks=mask_at())
    assert bool(torch.isnan(r.scores).all()), f"{metric}: an empty mask must be NaN"
    # one example undefined, the other scored
    x2 = x.repeat(2, 1, 1, 1)
    v2 = torch.cat([attr.values, const])
    with pytest.warns(sw.SaliencyWarning, match=r"example\(s\) \[1\]"):
        r = sw.evaluate(model, x2, v2, target=0, metric=metric,
                        masks=mask_at((I0, J0)).repeat(2, 1, 1))
    assert r.scores[0] == 1.0 and math.isnan(float(r.scores[1]))


@pytest.mark.parametrize("metric", ["pointing_game", "relevance_mass", "relevance_rank"])
def test_localization_needs_valid_masks(metric):
    model, x, attr = one_pixel_attribution()
    with pytest.raises(SaliencyError, match="masks"):
        sw.evaluate(model, x, attr, metric=metric)
    with pytest.raises(SaliencyError, match="bool"):
        sw.evaluate(model, x, attr, metric=metric, masks=mask_at((I0, J0)).double())
    with pytest.raises(SaliencyError, match="shape"):
        sw.evaluate(model, x, attr, metric=metric, masks=mask_at((I0, J0))[:, :4])


def test_relevance_mass():
    model, x, attr = one_pixel_attribution()
    r = sw.evaluate(model, x, attr, metric="relevance_mass", masks=mask_at((I0, J0)))
    assert r.scores.tolist() == [1.0]
    r = sw.evaluate(model, x, attr, metric="relevance_mass", masks=mask_at((0, 0)))
    assert r.scores.tolist() == [0.0]
    # all positive relevance inside, negative relevance outside: still exactly 1 (positive
    # relevance only; Quantus divides by the signed sum and would leave [0, 1])
    v = -rand(1, 1, SIDE, SIDE, seed=2).abs()
    v[0, 0, 2:5, 3:7] = rand(3, 4, seed=3).abs()
    m = torch.zeros(1, SIDE, SIDE, dtype=torch.bool)
    m[0, 2:5, 3:7] = True
    r = sw.evaluate(model, x, v, target=0, metric="relevance_mass", masks=m)
    assert abs(float(r.scores[0]) - 1.0) <= 1e-15
    # random signed maps and masks: always in [0, 1], and equal to the hand-computed share
    for seed in range(5):
        v = rand(1, 3, SIDE, SIDE, seed=10 + seed)
        g = torch.Generator().manual_seed(seed)
        m = torch.rand(1, SIDE, SIDE, generator=g) < 0.3
        r = sw.evaluate(model, x, v.sum(1, keepdim=True), target=0,
                        metric="relevance_mass", masks=m)
        pos = v.sum(1)[0].clamp(min=0)
        ref = float(pos[m[0]].sum() / pos.sum())
        s = float(r.scores[0])
        assert 0.0 <= s <= 1.0 and abs(s - ref) <= 1e-12, f"mass {s} vs {ref} (tol 1e-12)"
    none = -torch.ones(1, 1, SIDE, SIDE, dtype=F64)
    none[0, 0, 0, 0] = -2
    with pytest.warns(sw.SaliencyWarning, match="no positive"):
        r = sw.evaluate(model, x, none, target=0, metric="relevance_mass", masks=mask_at((0, 0)))
    assert math.isnan(float(r.scores[0]))


def test_relevance_rank():
    model, x, _ = one_pixel_attribution()
    v = rand(1, 1, SIDE, SIDE, seed=4)
    flat = v.flatten()
    top = torch.argsort(-flat)[:7]
    m = torch.zeros(SIDE * SIDE, dtype=torch.bool)
    m[top] = True
    r = sw.evaluate(model, x, v, target=0, metric="relevance_rank", masks=m.view(1, SIDE, SIDE))
    assert r.scores.tolist() == [1.0], "top-|mask| pixels == mask must give 1"
    m2 = m.clone()
    m2[top[0]] = False
    m2[torch.argsort(flat)[0]] = True  # swap the best pixel for the worst: 6/7
    r = sw.evaluate(model, x, v, target=0, metric="relevance_rank", masks=m2.view(1, SIDE, SIDE))
    assert abs(float(r.scores[0]) - 6 / 7) <= 1e-15
    # ties: fractional credit, whatever the tied pixels' positions. K = 2: (0, 0) is above
    # the 2nd largest value (1.0); one place is left for the 11 pixels tied at 1.0, one of
    # which is inside: (1 + 1/11) / 2 = 6/11 for both masks (by position: 1 and 0.5)
    tied = torch.zeros(1, 1, SIDE, SIDE, dtype=F64)
    tied[0, 0, 0, 0] = 2.0
    tied[0, 0, 0, 1:] = 1.0  # pixels (0, 1) … (0, 11) tie
    first = mask_at((0, 0), (0, 1))
    later = mask_at((0, 0), (0, 5))
    a = sw.evaluate(model, x, tied, target=0, metric="relevance_rank", masks=first)
    b = sw.evaluate(model, x, tied, target=0, metric="relevance_rank", masks=later)
    assert abs(float(a.scores[0]) - 6 / 11) <= 1e-15 and a.scores.tolist() == b.scores.tolist()


def _rank_by_order(m: torch.Tensor, inside: torch.Tensor, order: list[int]) -> float:
    """Relevance rank with ties broken by ``order`` (earlier in ``order`` ranks first)."""
    pos = {p: i for i, p in enumerate(order)}
    ranked = sorted(range(m.numel()), key=lambda p: (-float(m[p]), pos[p]))
    k = int(inside.sum())
    return sum(bool(inside[p]) for p in ranked[:k]) / k


def test_relevance_rank_ties_score_the_expectation_over_random_tie_orders():
    # 6 pixels, 3 of them tied: the mean over all 6! tie-breaking orders
    m = torch.tensor([3.0, 1.0, 0.0, 1.0, 2.0, 1.0], dtype=F64)
    model = Lambda(lambda x: x.flatten(1)[:, :2])
    x = torch.zeros(1, 1, 1, 6, dtype=F64)
    orders = list(itertools.permutations(range(6)))
    for bits in (0b101100, 0b010010, 0b111000, 0b000111, 0b110101):
        inside = torch.tensor([bool(bits >> (5 - i) & 1) for i in range(6)])
        brute = sum(_rank_by_order(m, inside, list(o)) for o in orders) / len(orders)
        r = sw.evaluate(model, x, m.view(1, 1, 1, 6), target=0, metric="relevance_rank",
                        masks=inside.view(1, 1, 6))
        assert abs(float(r.scores[0]) - brute) <= 1e-12, f"{float(r.scores[0])} vs {brute}"


def test_relevance_rank_is_invariant_to_permuting_pixels():
    # ReLU'd, coarsely quantised maps (many tied zeros and ties above them) with masks larger
    # than the positive area, as a CAM map gives; flips and random pixel permutations applied
    # to map and mask together change nothing (tie-breaking by position moved these scores)
    B, H, W = 4, 12, 10
    g = torch.Generator().manual_seed(5)
    maps = (torch.randn(B, 1, H, W, generator=g, dtype=F64) * 2).round().clamp(min=0)
    masks = torch.rand(B, H, W, generator=g) < 0.6
    model = Lambda(lambda x: x.flatten(1)[:, :2])
    x = torch.zeros(B, 1, H, W, dtype=F64)

    def score(mp, mk):
        return sw.evaluate(model, x, mp, target=0, metric="relevance_rank", masks=mk).scores

    ref = score(maps, masks)
    assert bool(((masks.flatten(1).sum(1) > (maps.flatten(1) > 0).sum(1))).all())
    assert max_err(score(maps.flip(2), masks.flip(1)), ref) <= 1e-15
    assert max_err(score(maps.flip(3), masks.flip(2)), ref) <= 1e-15
    moved = 0.0
    for seed in range(5):
        perm = torch.randperm(H * W, generator=torch.Generator().manual_seed(seed))
        pm = maps.flatten(2)[:, :, perm].view(B, 1, H, W)
        pk = masks.flatten(1)[:, perm].view(B, H, W)
        assert max_err(score(pm, pk), ref) <= 1e-15, f"permutation {seed} changed the score"
        by_position = [_rank_by_order(pm[b].flatten(), pk[b].flatten(), list(range(H * W)))
                       for b in range(B)]
        moved = max(moved, max_err(torch.tensor(by_position, dtype=F64), ref))
    assert moved > 0.01, "the maps must be ones where tie-breaking by position matters"
