"""ROAD (Rong et al. 2022): the noisy linear imputer and the MoRF/LeRF metric built on it.

Every reference value is derived here from the imputer's definition (each removed pixel is the
weighted mean of its in-image neighbours: 1/6 for the 4-neighbours, 1/12 for the diagonals).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError
from saliency_widgets.metrics._curve import removal_order
from saliency_widgets.metrics.road import (linear_impute, removal_counts, removal_ranks,
                                           removed_mask)

from models import Lambda, bias_free_relu_cnn


def _ramp(c: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(1.5 + k) * yy - (2.0 - k) * xx + 7 * k for k in range(c)])


# --- the imputer (noise-free) ---------------------------------------------------------------

def test_constant_image_reproduced_exactly():
    rng = np.random.default_rng(0)
    img = np.full((3, 17, 13), 0.37)
    for fraction in (0.1, 0.5, 0.95):
        removed = rng.random((17, 13)) < fraction  # touches borders and corners too
        removed[0, 0] = False  # keep at least one pixel
        out = linear_impute(img, removed)
        assert np.abs(out - img).max() <= 1e-13  # measured ≤ 1e-15: a solve, not a copy


def test_interior_hole_in_linear_ramp_reproduced():
    img = _ramp(2, 20, 20)
    removed = np.zeros((20, 20), bool)
    removed[5:15, 4:12] = True  # a block …
    removed[8, 15] = True       # … and an isolated pixel, none touching the border
    out = linear_impute(img, removed)
    np.testing.assert_allclose(out, img, rtol=0, atol=1e-6)  # measured 3e-14
    assert np.array_equal(out[:, ~removed], img[:, ~removed])  # kept pixels untouched


def test_hole_at_corner_is_not_a_ramp():
    """Negative control: border renormalisation breaks linear exactness (documented in ROAD)."""
    img = _ramp(1, 12, 12)
    removed = np.zeros((12, 12), bool)
    removed[0, 0] = removed[0, 1] = True
    assert np.abs(linear_impute(img, removed) - img).max() > 0.1


def test_neighbour_weights_and_border_renormalisation():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(2, 6, 7))
    one = np.zeros((6, 7), bool)
    one[2, 3] = True  # interior: weights sum to 4/6 + 4/12 = 1
    want = (img[:, 1, 3] + img[:, 3, 3] + img[:, 2, 2] + img[:, 2, 4]) / 6 \
        + (img[:, 1, 2] + img[:, 1, 4] + img[:, 3, 2] + img[:, 3, 4]) / 12
    np.testing.assert_allclose(linear_impute(img, one)[:, 2, 3], want, rtol=1e-12)
    corner = np.zeros((6, 7), bool)
    corner[0, 6] = True  # in-image neighbours weigh 1/6 + 1/6 + 1/12 = 5/12
    want = ((img[:, 0, 5] + img[:, 1, 6]) / 6 + img[:, 1, 5] / 12) / (5 / 12)
    np.testing.assert_allclose(linear_impute(img, corner)[:, 0, 6], want, rtol=1e-12)


def test_all_pixels_removed_is_an_error():
    with pytest.raises(SaliencyError, match="nothing to impute"):
        linear_impute(np.zeros((1, 3, 3)), np.ones((3, 3), bool))


def test_percentages_remove_nested_sets_of_the_right_size():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 2, 9, 11, generator=g, dtype=torch.float64)
    values[0] = 0.0  # all ties: ranked by the seeded tie order
    ps = (0.0, 0.1, 0.25, 0.5, 0.9)
    rank = removal_ranks(values, "sum")
    counts = removal_counts(ps, 99).tolist()
    assert counts == [0, 10, 25, 50, 89]  # round(p·HW), half to even (24.75 → 25)
    reduced = sw.reduce_channels(values, "sum").flatten(1)
    for lerf in (False, True):
        masks = [removed_mask(rank, n, lerf) for n in counts]
        for n, m in zip(counts, masks):
            assert (m.sum(1) == n).all()
        for small, big in zip(masks, masks[1:]):
            assert not (small & ~big).any()  # monotone: larger percentages remove supersets
        for b in range(3):  # MoRF removes the highest values, LeRF the lowest
            m = masks[2][b]
            if not lerf and b:
                assert reduced[b][m].min() >= reduced[b][~m].max()
            if lerf and b:
                assert reduced[b][m].max() <= reduced[b][~m].min()
    first = removed_mask(rank, 10, False)[0].nonzero().flatten()
    assert set(first.tolist()) == set(removal_order(values, "sum", 0)[0, :10].tolist())
    assert first.tolist() != list(range(10)), "ties must not be broken by position"


# --- the metric -------------------------------------------------------------------------------

def _region_model(h: int, w: int, region: torch.Tensor) -> Lambda:
    """A model that reads only the pixels in ``region`` (a bool (H, W) mask): nonlinear in them."""
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(3, 2, h, w, generator=g, dtype=torch.float64) * region

    def fn(x: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("bchw,kchw->bk", x, weight)
        return torch.stack([torch.tanh(z[:, 0]) * 2, z[:, 1], z[:, 2] ** 2 / 4], 1)
    return Lambda(fn)


def test_morf_on_a_region_reading_model_equals_the_model_with_the_region_imputed():
    """Identity: with attribution = 1[R] and p = |R|/HW, MoRF removes exactly R, so
    MoRF(p) = f(impute(x, R)) (noise 0), with or without normalization (the weighted mean
    commutes with per-channel affine maps). And since f ignores every pixel outside R,
    LeRF(p) = f(x) for every p ≤ 1 − |R|/HW, whatever the noise."""
    H = W = 10
    region = torch.zeros(H, W, dtype=torch.bool)
    region[3:7, 2:7] = True  # 20 pixels = 0.2 of the image
    model = _region_model(H, W, region)
    x = torch.rand(2, 2, H, W, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    attr = region.double().expand(2, 1, H, W).clone()
    ps = (0.1, 0.2, 0.5, 0.8)
    imputed = torch.stack([torch.from_numpy(linear_impute(x[b].numpy(), region.numpy()))
                           for b in range(2)])
    with torch.no_grad():
        want_morf = model(imputed)[torch.arange(2), [0, 2]]
        f_x = model(x)[torch.arange(2), [0, 2]]
    for norm in (None, ((0.4, 0.5), (0.2, 0.3))):
        r = sw.evaluate(model, x, attr, metric="road", target=[0, 2], percentages=ps,
                        noise=0.0, normalization=norm)
        torch.testing.assert_close(r.extras["morf"][:, 1], want_morf, rtol=0, atol=1e-10)
        torch.testing.assert_close(r.extras["original"], f_x, rtol=0, atol=1e-12)
        # the same inputs: equal up to batch-size-dependent BLAS rounding (5e-15 seen on torch 2.11)
        torch.testing.assert_close(r.extras["lerf"], f_x[:, None].expand(2, 4), rtol=0,
                                   atol=1e-12)
        torch.testing.assert_close(r.curve, r.extras["morf"])
        assert r.curve_x.tolist() == list(ps)
    noisy = sw.evaluate(model, x, attr, metric="road", target=[0, 2], percentages=ps, noise=0.05)
    torch.testing.assert_close(noisy.extras["lerf"], f_x[:, None].expand(2, 4), rtol=0,
                               atol=1e-12)
    assert not torch.allclose(noisy.extras["morf"][:, 1], want_morf)  # noise on R matters


def test_score_definitions_are_consistent_across_orders():
    model = bias_free_relu_cnn(c=3, k=4, bias=True)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    attr = sw.attribute(model, x, method="gradient")
    both = sw.evaluate(model, x, attr, metric="road", noise=0.0)
    morf = sw.evaluate(model, x, attr, metric="road", noise=0.0, order="morf")
    lerf = sw.evaluate(model, x, attr, metric="road", noise=0.0, order="lerf")
    f = both.extras["original"][:, None]
    torch.testing.assert_close(both.scores, ((both.extras["lerf"] - both.extras["morf"]) / 2)
                               .mean(1))
    torch.testing.assert_close(morf.scores, (f - both.extras["morf"]).mean(1))
    torch.testing.assert_close(lerf.scores, (both.extras["lerf"] - f).mean(1))
    torch.testing.assert_close(both.scores, (morf.scores + lerf.scores) / 2)
    torch.testing.assert_close(lerf.curve, both.extras["lerf"])
    assert "lerf" not in morf.extras and both.higher_is_better
    assert both.curve.shape == (2, 9)
    torch.testing.assert_close(both.curve_x, torch.arange(1, 10, dtype=torch.float64) / 10)


def test_self_contrast_gives_all_zero_curves():
    model = bias_free_relu_cnn(c=3, k=4, bias=True)
    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    attr = sw.attribute(model, x, [1, 3], method="input_x_gradient", contrast=[1, 3])
    r = sw.evaluate(model, x, attr, metric="road")
    for key in ("morf", "lerf", "original"):
        assert torch.equal(r.extras[key], torch.zeros_like(r.extras[key]))
    assert torch.equal(r.scores, torch.zeros(2, dtype=torch.float64))


def test_noise_is_seeded_chunk_independent_and_leaves_the_global_rng_alone():
    model = bias_free_relu_cnn(c=3, k=4, bias=True)
    x = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    attr = sw.attribute(model, x, method="gradient")
    state = torch.get_rng_state()
    seen: list[tuple[int, int]] = []
    a = sw.evaluate(model, x, attr, metric="road", seed=1, batch_size=5,
                    progress=lambda d, t: seen.append((d, t)))
    b = sw.evaluate(model, x, attr, metric="road", seed=1, batch_size=64)
    c = sw.evaluate(model, x, attr, metric="road", seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.scores, b.scores) and torch.equal(a.extras["morf"], b.extras["morf"])
    assert not torch.equal(a.extras["morf"], c.extras["morf"])
    assert seen[-1] == (54, 54) and len(seen) == 11  # 3 images × 2 orders × 9 percentages
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_float32_input_space_and_bad_parameters():
    model = bias_free_relu_cnn(c=3, k=4, bias=True, dtype=torch.float32)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    attr = sw.attribute(model, x, method="gradient")
    r = sw.evaluate(model, x, attr, metric="road", percentages=[0.25, 0.75])
    assert r.scores.shape == (1,) and torch.isfinite(r.scores).all()
    for bad in ([0.5, 0.2], [1.0], [], "half", [0.2, 0.2]):
        with pytest.raises(SaliencyError, match="percentages"):
            sw.evaluate(model, x, attr, metric="road", percentages=bad)
    with pytest.raises(SaliencyError, match="order"):
        sw.evaluate(model, x, attr, metric="road", order="random")
    with pytest.raises(SaliencyError, match="noise"):
        sw.evaluate(model, x, attr, metric="road", noise=-0.1)


def test_noise_is_a_fraction_of_the_pixel_range():
    """One removed pixel amid a flat 0.2 surround is imputed as 0.2 + σ·ε, σ = noise × the
    image's range (1.0 here). With normalization the noise lives in pixel space: in input space
    its std is σ / std. A model that reads that pixel turns MoRF into draws of it."""
    B = 200
    x = torch.full((B, 1, 8, 8), 0.2, dtype=torch.float64)
    x[:, :, 7, 7] = 1.2  # sets the range; far from the removed pixel
    attr = torch.zeros(B, 1, 8, 8, dtype=torch.float64)
    attr[:, :, 3, 3] = 1.0
    model = Lambda(lambda t: torch.stack([t[:, 0, 3, 3], -t[:, 0, 3, 3]], 1))
    r = sw.evaluate(model, x, attr, metric="road", target=0, percentages=(1 / 64,),
                    order="morf", noise=0.05)
    drawn = r.extras["morf"][:, 0]
    assert abs(float(drawn.mean()) - 0.2) < 0.02
    assert 0.85 < float(drawn.std()) / 0.05 < 1.15
    xn = (x - 0.5) / 0.25
    rn = sw.evaluate(model, xn, attr, metric="road", target=0, percentages=(1 / 64,),
                     order="morf", noise=0.05, normalization=((0.5,), (0.25,)))
    assert 0.85 < float(rn.extras["morf"][:, 0].std()) / (0.05 / 0.25) < 1.15
