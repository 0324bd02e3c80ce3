"""Analytic identities: tests that pass only if a method computes what it claims.

Everything runs in float64 on tiny models whose attributions are known in closed form
(reliability.md, "Analytic test catalogue" and C4 §1). Each assert states its tolerance.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError
from saliency_widgets.methods.integrated_gradients import RULES, quadrature

try:
    from .models import (Lambda, bias_free_relu_cnn, fill_, gap_head_cnn, linear_model,
                         smooth_cnn)
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import (Lambda, bias_free_relu_cnn, fill_, gap_head_cnn, linear_model,
                        smooth_cnn)

# Unexpected warnings are errors; guided backprop on a ReLU-free model rightly says it equals
# the gradient (test_guided_backprop_without_relu_is_gradient asserts that warning).
pytestmark = pytest.mark.filterwarnings(
    "error::saliency_widgets.errors.SaliencyWarning",
    "ignore:guided backpropagation saw no ReLU:saliency_widgets.errors.SaliencyWarning")

F64 = torch.float64
EPS = float(np.finfo(np.float64).eps)
ALL_METHODS = ("gradient", "input_x_gradient", "guided_backprop", "integrated_gradients",
               "smoothgrad", "grad_cam", "grad_cam_plusplus", "score_cam", "guided_grad_cam",
               "occlusion")


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=F64)


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float = 0.0) -> None:
    torch.testing.assert_close(actual, expected.to(actual.dtype).expand_as(actual), atol=atol,
                               rtol=rtol)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# ---------------------------------------------------------------------------------------------
# L1: linear model f(x) = W·x + b
# ---------------------------------------------------------------------------------------------
B, C, H, W, K = 2, 2, 4, 5, 3
TARGET = [0, 2]


@pytest.fixture(scope="module")
def lin():
    model = linear_model(C, H, W, K, seed=1)
    x = rand(B, C, H, W, seed=2)
    w = model[1].weight.detach()  # (K, C·H·W)
    return model, x, w


def w_of(w: torch.Tensor, target: list[int]) -> torch.Tensor:
    return w[target].view(len(target), C, H, W)


def test_linear_gradient_is_w(lin):
    model, x, w = lin
    a = sw.attribute(model, x, TARGET, method="gradient")
    assert a.values.shape == x.shape and a.values.dtype == F64
    assert a.target == tuple(TARGET)
    close(a.values, w_of(w, TARGET), atol=1e-14)  # one-hot · W: exact up to rounding


def test_linear_gradient_resolves_predicted_class(lin):
    model, x, w = lin
    pred = logits(model, x).argmax(1).tolist()
    a = sw.attribute(model, x, method="gradient")
    assert a.target == tuple(pred)
    close(a.values, w_of(w, pred), atol=1e-14)


def test_linear_input_x_gradient_is_w_times_x(lin):
    model, x, w = lin
    a = sw.attribute(model, x, TARGET, method="input_x_gradient")
    close(a.values, w_of(w, TARGET) * x, atol=1e-14)
    # Σ = f(x) − b_t
    f = logits(model, x)[range(B), TARGET] - model[1].bias.detach()[TARGET]
    close(a.values.sum((1, 2, 3)), f, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 50])
def test_linear_integrated_gradients_exact_for_every_rule(lin, rule, steps):
    model, x, w = lin
    if rule == "trapezoid" and steps < 2:
        with pytest.raises(SaliencyError, match="steps"):
            sw.attribute(model, x, TARGET, method="integrated_gradients", steps=1, rule=rule)
        return
    wt = w_of(w, TARGET)
    baselines = [None, 0.0, -0.7, 1.5, rand(B, C, H, W, seed=3), rand(1, C, 1, 1, seed=4)]
    for bl in baselines:
        a = sw.attribute(model, x, TARGET, method="integrated_gradients", steps=steps,
                         rule=rule, baseline=bl)
        xb = bl if isinstance(bl, torch.Tensor) else torch.tensor(float(bl or 0.0), dtype=F64)
        expected = wt * (x - xb)
        close(a.values, expected, atol=1e-12)  # |IG − w⊙(x−x′)| ≤ 1e-12
        gap = a.extras["completeness_gap"]
        assert gap.shape == (B,) and float(gap.abs().max()) <= 1e-10, (rule, steps, bl, gap)


def test_linear_integrated_gradients_named_black_baseline(lin):
    model, x, w = lin
    mean, std = (0.5, 0.25), (0.4, 0.2)
    a = sw.attribute(model, x, TARGET, method="integrated_gradients", baseline="black",
                     normalization=(mean, std), steps=4)
    black = (0 - torch.tensor(mean, dtype=F64) / torch.tensor(std, dtype=F64)).view(1, C, 1, 1)
    close(a.values, w_of(w, TARGET) * (x - black), atol=1e-12)
    assert a.params["baseline"] == "black" and a.normalization == (mean, std)


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_weights_and_exactness(rule):
    for n in [1, 2, 3, 5, 7, 16, 50, 64, 257]:
        if rule == "trapezoid" and n < 2:
            continue
        alphas, weights = quadrature(rule, n)
        assert alphas.dtype == np.float64 and weights.dtype == np.float64
        assert alphas.shape == weights.shape == (n,)
        # Σ weights == 1 up to float64 rounding of n terms (≤ 4 ulp); Captum's trapezoid is off
        # by 1/n, which this catches.
        assert abs(math.fsum(weights) - 1) <= 4 * EPS, (rule, n, math.fsum(weights))
        assert abs(weights.sum() - 1) <= 4 * EPS
        assert (weights > 0).all() and (alphas >= 0).all() and (alphas <= 1).all()
        first = math.fsum(weights * alphas)
        if rule in ("midpoint", "trapezoid", "gauss_legendre"):
            assert abs(first - 0.5) <= 1e-14  # exact for linear integrands
        elif rule == "left":
            assert abs(first - (n - 1) / (2 * n)) <= 1e-14
            assert alphas[0] == 0
        else:
            assert abs(first - (n + 1) / (2 * n)) <= 1e-14
            assert alphas[-1] == 1
        if rule == "gauss_legendre":  # exact for polynomials of degree ≤ 2n − 1
            assert (alphas > 0).all() and (alphas < 1).all()
            for k in range(min(2 * n, 12)):
                assert abs(math.fsum(weights * alphas ** k) - 1 / (k + 1)) <= 1e-13, (n, k)
    with pytest.raises(SaliencyError):
        quadrature("simpson", 4)


@pytest.mark.parametrize("samples,noise", [(1, 0.1), (3, 0.0), (8, 0.15), (5, 2.0)])
def test_linear_smoothgrad_of_gradient_is_w(lin, samples, noise):
    model, x, w = lin
    wt = w_of(w, TARGET)
    kw = dict(method="smoothgrad", base="gradient", samples=samples, noise=noise, seed=7)
    mean = sw.attribute(model, x, TARGET, aggregation="mean", **kw).values
    close(mean, wt, atol=1e-14)
    var = sw.attribute(model, x, TARGET, aggregation="variance", **kw).values
    assert var.shape == x.shape and bool((var == 0).all())  # VarGrad of a constant map: exactly 0
    sq = sw.attribute(model, x, TARGET, aggregation="square", **kw).values
    close(sq, wt * wt, atol=1e-15, rtol=1e-12)


def occlusion_expected(x, wt, v, window, stride):
    """Brute force: window Δ = Σ_{c, window} w(x − v); each pixel gets the mean Δ over the windows
    covering it, 0 if none; returns (map (B,1,H,W), number of uncovered pixel positions)."""
    b_, _, h, w_ = x.shape
    wh, ww = window
    sh, sw_ = stride
    total = torch.zeros(b_, 1, h, w_, dtype=F64)
    count = torch.zeros(h, w_, dtype=F64)
    for y in range(0, h - wh + 1, sh):
        for xx in range(0, w_ - ww + 1, sw_):
            delta = (wt * (x - v))[:, :, y:y + wh, xx:xx + ww].sum((1, 2, 3))
            total[:, 0, y:y + wh, xx:xx + ww] += delta.view(-1, 1, 1)
            count[y:y + wh, xx:xx + ww] += 1
    out = torch.where(count > 0, total / count.clamp(min=1), torch.zeros(()))
    return out, int((count == 0).sum())


@pytest.mark.parametrize("window,stride,v", [
    ((2, 5), (2, 5), 0.0),   # non-overlapping, tiles the 4×5 image
    (2, 2, 0.3),             # non-overlapping; last column uncovered
    ((1, 1), (1, 1), -0.5),  # one pixel at a time
    (3, 1, 0.0),             # overlapping: mean over covering windows
    ((2, 3), (1, 2), 1.0),   # overlapping in rows, not in columns
])
def test_linear_occlusion_window_drop(lin, window, stride, v):
    model, x, w = lin
    wt = w_of(w, TARGET)
    a = sw.attribute(model, x, TARGET, method="occlusion", window=window, stride=stride,
                     baseline=v)
    pair = lambda t: (t, t) if isinstance(t, int) else t  # noqa: E731
    expected, uncovered = occlusion_expected(x, wt, v, pair(window), pair(stride))
    assert a.values.shape == (B, 1, H, W)
    close(a.values, expected, atol=1e-12)
    assert a.extras["uncovered_pixels"] == uncovered
    assert a.params["window"] == pair(window) and a.params["stride"] == pair(stride)


def test_linear_occlusion_non_overlapping_is_whole_window_delta(lin):
    """Captum's convention, pinned: each pixel receives its window's whole Δ, not Δ / size."""
    model, x, w = lin
    wt = w_of(w, TARGET)
    a = sw.attribute(model, x, TARGET, method="occlusion", window=(2, 5), stride=(2, 5),
                     baseline=0.0)
    for y in (0, 2):
        delta = (wt * x)[:, :, y:y + 2, :].sum((1, 2, 3))
        close(a.values[:, 0, y:y + 2, :], delta.view(B, 1, 1).expand(B, 2, W), atol=1e-12)
    # so Σ map = (window size) · (f(x) − f(v)) here, not f(x) − f(v)
    f = (wt * x).sum((1, 2, 3))
    close(a.values.sum((1, 2, 3)), 10 * f, atol=1e-11)


def test_linear_contrast_is_weight_difference(lin):
    model, x, w = lin
    contrast = [1, 0]
    dw = w_of(w, TARGET) - w_of(w, contrast)
    g = sw.attribute(model, x, TARGET, method="gradient", contrast=contrast)
    assert g.contrast == tuple(contrast)
    close(g.values, dw, atol=1e-14)
    ig = sw.attribute(model, x, TARGET, method="integrated_gradients", contrast=contrast,
                      baseline=0.25, steps=3, rule="midpoint")
    close(ig.values, dw * (x - 0.25), atol=1e-12)
    occ = sw.attribute(model, x, TARGET, method="occlusion", contrast=contrast, window=1,
                       stride=1, baseline=0.0)
    close(occ.values, (dw * x).sum(1, keepdim=True), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# L2: bias-free piecewise-linear ReLU network (positively homogeneous of degree 1)
# ---------------------------------------------------------------------------------------------
def test_bias_free_relu_net_euler_and_ig():
    model = bias_free_relu_cnn(c=3, k=4, seed=5)
    x = rand(3, 3, 7, 6, seed=6)
    t = [0, 1, 3]
    f = logits(model, x)[range(3), t]
    assert float(f.abs().min()) > 1e-3  # the identity is not trivially 0 = 0
    ixg = sw.attribute(model, x, t, method="input_x_gradient").values
    close(ixg.sum((1, 2, 3)), f, atol=1e-12)  # Euler: Σ x⊙∇f == f(x)
    for rule, steps in [("right", 1), ("right", 2), ("right", 5), ("gauss_legendre", 1),
                        ("gauss_legendre", 4)]:
        ig = sw.attribute(model, x, t, method="integrated_gradients", baseline=0.0,
                          rule=rule, steps=steps)
        close(ig.values, ixg, atol=1e-12)  # IG(0) == x⊙∇f: all alphas > 0
        assert float(ig.extras["completeness_gap"].abs().max()) <= 1e-10


def test_relu_net_with_biases_breaks_euler_and_ig():
    """Negative control: the same architecture with biases violates both identities."""
    model = bias_free_relu_cnn(c=3, k=4, seed=5, bias=True)
    x = rand(3, 3, 7, 6, seed=6)
    t = [0, 1, 3]
    f = logits(model, x)[range(3), t]
    ixg = sw.attribute(model, x, t, method="input_x_gradient").values
    assert float((ixg.sum((1, 2, 3)) - f).abs().min()) > 1e-2
    ig = sw.attribute(model, x, t, method="integrated_gradients", baseline=0.0, rule="right",
                      steps=2).values
    assert float((ig - ixg).abs().max()) > 1e-2


# ---------------------------------------------------------------------------------------------
# L3: Sundararajan et al.'s worked examples
# ---------------------------------------------------------------------------------------------
def scalar_model(fn) -> nn.Module:
    """A model of (B, 1, 1, n) 'images' returning (B, 1) logits ``fn(x₀, x₁, …)``."""
    return Lambda(lambda x: fn(*x[:, 0, 0, :].unbind(1)).reshape(-1, 1))


def test_sensitivity_one_minus_relu():
    model = scalar_model(lambda x: 1 - torch.relu(1 - x))
    x = torch.full((1, 1, 1, 1), 2.0, dtype=F64)
    g = sw.attribute(model, x, 0, method="gradient").values
    assert float(g) == 0.0  # the gradient is exactly 0 …
    for rule, steps in [("gauss_legendre", 32), ("midpoint", 50), ("gauss_legendre", 500)]:
        ig = sw.attribute(model, x, 0, method="integrated_gradients", baseline=0.0,
                          rule=rule, steps=steps)
        assert abs(float(ig.values) - 1.0) <= 1e-12, (rule, steps)  # … IG is f(2) − f(0) = 1


@pytest.mark.parametrize("fn", [
    lambda a, b: torch.relu(torch.relu(a) - 1 - torch.relu(b)),   # BasicModel2
    lambda a, b: torch.relu(torch.relu(a - 1) - torch.relu(b)),   # BasicModel3
], ids=["model2", "model3"])
@pytest.mark.parametrize("rule", ["gauss_legendre", "midpoint", "right"])
def test_implementation_invariance(fn, rule):
    model = scalar_model(fn)
    x = torch.tensor([3.0, 1.0], dtype=F64).view(1, 1, 1, 2)
    ig = sw.attribute(model, x, 0, method="integrated_gradients", baseline=0.0, steps=500,
                      rule=rule).values.flatten()
    close(ig, torch.tensor([1.5, -0.5], dtype=F64), atol=1e-3)  # 500 steps, atol 1e-3


def test_symmetry_preservation():
    model = scalar_model(lambda a, b, c: torch.tanh(a + b) * c)
    x = torch.tensor([[0.7, 0.7, -1.3], [-0.4, -0.4, 2.0]], dtype=F64).view(2, 1, 1, 3)
    for method, kw in [("gradient", {}), ("integrated_gradients", {"baseline": 0.2}),
                       ("integrated_gradients", {"baseline": 0.2, "rule": "left", "steps": 3}),
                       ("occlusion", {"window": 1, "stride": 1, "baseline": 0.2})]:
        v = sw.attribute(model, x, 0, method=method, **kw).values[:, 0, 0, :]
        close(v[:, 0], v[:, 1], atol=1e-14)  # equal inputs, equal baselines → equal shares
        assert float(v[:, 0].abs().min()) > 1e-3


def test_dummy_features_get_exactly_zero():
    """A model that ignores the last column: gradient, IG and occlusion give it exactly 0."""
    inner = smooth_cnn(c=2, k=3, seed=8)
    model = Lambda(lambda m, x: m(x[..., :-1]), inner)
    x = rand(2, 2, 5, 6, seed=9)
    for method, kw in [("gradient", {}), ("input_x_gradient", {}), ("guided_backprop", {}),
                       ("integrated_gradients", {"baseline": -0.3}),
                       ("smoothgrad", {"samples": 3}),
                       ("occlusion", {"window": 1, "stride": 1, "baseline": 0.0}),
                       ("occlusion", {"window": (2, 1), "stride": (1, 1), "baseline": 0.5})]:
        v = sw.attribute(model, x, [0, 2], method=method, **kw).values
        assert bool((v[..., -1] == 0).all()), (method, kw, v[..., -1])  # exactly zero
        assert float(v[..., :-1].abs().max()) > 1e-6  # the others are not


# ---------------------------------------------------------------------------------------------
# L4: quadratic f = Σ a x² — distinguishes the quadrature rules
# ---------------------------------------------------------------------------------------------
def test_quadratic_rules():
    a = rand(1, 2, 3, 4, seed=10)
    model = Lambda(lambda x: (a * x * x).sum((1, 2, 3)).reshape(-1, 1))
    x = rand(2, 2, 3, 4, seed=11)
    base = rand(2, 2, 3, 4, seed=12)
    d = x - base
    exact = a * (x * x - base * base)  # IGᵢ = aᵢ(xᵢ² − x′ᵢ²)
    for rule, steps in [("midpoint", 1), ("midpoint", 2), ("midpoint", 5),
                        ("gauss_legendre", 1), ("gauss_legendre", 3), ("trapezoid", 2),
                        ("trapezoid", 5)]:
        ig = sw.attribute(model, x, 0, method="integrated_gradients", baseline=base,
                          rule=rule, steps=steps)
        close(ig.values, exact, atol=1e-12)
        assert float(ig.extras["completeness_gap"].abs().max()) <= 1e-12
    # left/right Riemann sums of the linear integrand 2a(x′ + αd) are off by ∓ a·d²/n
    n = 5
    left = sw.attribute(model, x, 0, method="integrated_gradients", baseline=base,
                        rule="left", steps=n).values
    right = sw.attribute(model, x, 0, method="integrated_gradients", baseline=base,
                         rule="right", steps=n).values
    close(left - exact, -a * d * d / n, atol=1e-12)
    close(right - exact, a * d * d / n, atol=1e-12)
    assert float((left - exact).abs().max()) > 0.05  # measurably wrong, as predicted


# ---------------------------------------------------------------------------------------------
# L5: Grad-CAM on conv → ReLU → GAP → linear (CAM's architecture)
# ---------------------------------------------------------------------------------------------
def cam_parts(model, x):
    with torch.no_grad():
        act = model[1](model[0](x))  # (B, K, h, w)
        y = model(x)
    return act, y, model[4].weight.detach(), model[4].bias.detach()


def test_grad_cam_on_gap_head_equals_cam():
    model = gap_head_cnn(c=2, channels=5, k=4, seed=13)
    x = rand(2, 2, 6, 7, seed=14)
    t, c = [1, 3], [0, 0]
    act, y, wc, bc = cam_parts(model, x)
    z = act.shape[-2] * act.shape[-1]
    cam = torch.einsum("bk,bkij->bij", wc[t], act)[:, None] / z  # CAM / Z
    assert float(cam.min()) < 0 < float(cam.max())  # so the ReLU matters
    for layer in ("1", model[1]):
        g = sw.attribute(model, x, t, method="grad_cam", layer=layer, relu=False)
        assert g.layer == "1" and g.values.shape == (2, 1, 6, 7)
        close(g.values, cam, atol=1e-13)  # un-rectified Grad-CAM == CAM/Z
    close(g.values.sum((1, 2, 3)), y[range(2), t] - bc[t], atol=1e-12)  # Σ == y_c − b_c
    r = sw.attribute(model, x, t, method="grad_cam", layer="1").values
    close(r, cam.clamp(min=0), atol=1e-13)
    # with a contrast: Σ == (y_c − b_c) − (y_c′ − b_c′)
    gc = sw.attribute(model, x, t, method="grad_cam", layer="1", relu=False, contrast=c)
    close(gc.values.sum((1, 2, 3)), (y[range(2), t] - bc[t]) - (y[range(2), c] - bc[c]),
          atol=1e-12)
    # the automatic layer is the last 4-D output: the ReLU
    assert sw.attribute(model, x, t, method="grad_cam").layer == "1"


def test_grad_cam_plusplus_on_gap_head_closed_form():
    """dS/dA = w_ck/Z is constant over (i, j), so α = 1/(2 + S_k g) and w_k = Z·g/(2 + S_k g)
    for g > 0 (0 otherwise), S_k = Σ_ij A_k."""
    model = gap_head_cnn(c=2, channels=5, k=4, seed=13)
    x = rand(2, 2, 6, 7, seed=14)
    t = [1, 3]
    act, _, wc, _ = cam_parts(model, x)
    z = act.shape[-2] * act.shape[-1]
    g = wc[t] / z  # (B, K)
    s = act.sum((2, 3))
    weights = torch.where(g > 0, z * g / (2 + s * g), torch.zeros(()))
    expected = torch.einsum("bk,bkij->bij", weights, act)[:, None]
    v = sw.attribute(model, x, t, method="grad_cam_plusplus", layer="1", relu=False).values
    close(v, expected, atol=1e-12, rtol=1e-12)


def test_grad_cam_upsamples_bilinear_from_coarse_grid():
    model = gap_head_cnn(c=2, channels=5, k=4, stride=2, seed=15)
    x = rand(2, 2, 6, 7, seed=16)
    t = [0, 2]
    act, y, wc, bc = cam_parts(model, x)
    assert act.shape[-2:] == (3, 4)
    cam = torch.einsum("bk,bkij->bij", wc[t], act)[:, None] / 12
    close(cam.sum((1, 2, 3)), y[range(2), t] - bc[t], atol=1e-12)  # the identity on the grid
    g = sw.attribute(model, x, t, method="grad_cam", layer="1", relu=False)
    assert tuple(g.extras["layer_grid"]) == (3, 4)
    up = F.interpolate(cam, size=(6, 7), mode="bilinear", align_corners=False)
    close(g.values, up, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# L6: Kindermans et al. input shift
# ---------------------------------------------------------------------------------------------
def test_kindermans_input_shift():
    """f₂ = f₁ with first-layer bias b₁ − W∗m (no zero padding), so f₂(x + m) = f₁(x)."""
    f1 = fill_(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 2), nn.Tanh(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)),
               seed=17).to(F64).eval()
    m = torch.tensor([0.5, -1.0, 2.0], dtype=F64).view(1, 3, 1, 1)
    f2 = copy.deepcopy(f1)
    with torch.no_grad():
        f2[0].bias -= (f2[0].weight * m).sum((1, 2, 3))
    x = rand(2, 3, 6, 5, seed=18)
    t = [2, 0]
    close(logits(f2, x + m), logits(f1, x), atol=1e-12)  # precondition
    g1 = sw.attribute(f1, x, t, method="gradient").values
    g2 = sw.attribute(f2, x + m, t, method="gradient").values
    close(g2, g1, atol=1e-12)  # gradient: invariant
    ig = lambda f, xx, bl: sw.attribute(f, xx, t, method="integrated_gradients",  # noqa: E731
                                        baseline=bl, steps=16).values
    ig1 = ig(f1, x, 0.0)
    close(ig(f2, x + m, m), ig1, atol=1e-12)  # IG with the shifted baseline: invariant
    assert float((ig(f2, x + m, 0.0) - ig1).abs().max()) > 1e-2  # IG with zero baseline: not
    ixg1 = sw.attribute(f1, x, t, method="input_x_gradient").values
    ixg2 = sw.attribute(f2, x + m, t, method="input_x_gradient").values
    assert float((ixg2 - ixg1).abs().max()) > 1e-2  # Gradient × Input: not


# ---------------------------------------------------------------------------------------------
# L7: contrast
# ---------------------------------------------------------------------------------------------
def test_contrast_gradient_is_difference_of_gradients():
    model = bias_free_relu_cnn(c=3, k=4, seed=19, bias=True)
    x = rand(3, 3, 5, 6, seed=20)
    t, c = [0, 3, 1], [2, 2, 1]
    gt = sw.attribute(model, x, t, method="gradient").values
    gc = sw.attribute(model, x, c, method="gradient").values
    d = sw.attribute(model, x, t, method="gradient", contrast=c).values
    close(d, gt - gc, atol=1e-14)
    assert bool((d[2] == 0).all())  # example 2 is a self-contrast
    assert float(d[:2].abs().max()) > 1e-3


def test_log_softmax_contrast_equals_logit_contrast():
    """∇(log p_c − log p_c′) == ∇(z_c − z_c′): the log-normaliser cancels."""
    model = smooth_cnn(c=3, k=4, seed=21)
    logp = nn.Sequential(model, nn.LogSoftmax(dim=1)).eval()
    x = rand(2, 3, 5, 5, seed=22)
    t, c = [0, 3], [1, 2]
    a = sw.attribute(logp, x, t, method="gradient", contrast=c).values
    b = sw.attribute(model, x, t, method="gradient", contrast=c).values
    close(a, b, atol=1e-13)
    plain = sw.attribute(logp, x, t, method="gradient").values
    assert float((plain - sw.attribute(model, x, t, method="gradient").values).abs().max()) \
        > 1e-4  # without a contrast the normaliser does not cancel


@pytest.mark.parametrize("method", ALL_METHODS)
def test_self_contrast_gives_exact_zeros(method):
    model = gap_head_cnn(c=3, channels=5, k=4, seed=23)
    x = rand(2, 3, 6, 5, seed=24)
    kw = {"samples": 2} if method == "smoothgrad" else {}
    kw.update({"window": 2, "stride": 1} if method == "occlusion" else {})
    if {m["name"]: m["uses_layer"] for m in sw.list_methods()}[method]:
        kw["relu"] = False  # un-rectified: a ReLU cannot hide tiny non-zeros
    a = sw.attribute(model, x, [1, 2], method=method, contrast=[1, 0], **kw).values
    assert bool((a[0] == 0).all()), method  # contrast == target: exactly zero
    assert float(a[1].abs().max()) > 0, method  # a real contrast is not


# ---------------------------------------------------------------------------------------------
# Guided backprop without ReLUs
# ---------------------------------------------------------------------------------------------
def test_guided_backprop_without_relu_is_gradient():
    model = smooth_cnn(c=3, k=3, seed=25)
    x = rand(2, 3, 5, 7, seed=26)
    with pytest.warns(sw.SaliencyWarning, match="no ReLU"):  # said, not silent
        gb = sw.attribute(model, x, [0, 2], method="guided_backprop").values
    g = sw.attribute(model, x, [0, 2], method="gradient").values
    close(gb, g, atol=0.0)  # the same graph: bit-identical
    # negative control: with ReLUs they differ
    relu = bias_free_relu_cnn(c=3, k=3, seed=25, bias=True)
    gb = sw.attribute(relu, x, [0, 2], method="guided_backprop").values
    g = sw.attribute(relu, x, [0, 2], method="gradient").values
    assert float((gb - g).abs().max()) > 1e-3
