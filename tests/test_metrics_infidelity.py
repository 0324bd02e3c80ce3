"""Infidelity: the closed form on linear models, parity with Captum, and its parameters.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations


import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import Lambda, bias_free_relu_cnn, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda, bias_free_relu_cnn, linear_model, smooth_cnn

try:
    from .metric_helpers import F64, max_err, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, max_err, rand


def test_infidelity_linear_model_gradient_gaussian_is_zero():
    model = linear_model(2, 5, 5, 3)
    x = rand(3, 2, 5, 5, seed=1)
    attr = sw.attribute(model, x, [0, 1, 2], method="gradient")
    r = sw.evaluate(model, x, attr, metric="infidelity", samples=8)
    assert r.scores.shape == (3,) and r.params["samples"] == 8
    assert float(r.scores.abs().max()) <= 1e-12, \
        f"linear model + gradient: infidelity {r.scores.tolist()} should be 0 (tol 1e-12)"
    # scaled map: not zero without normalize, zero (β = 1/7) with it (the default)
    seven = sw.evaluate(model, x, attr.values * 7, target=list(attr.target),
                        metric="infidelity", samples=8, normalize=False)
    assert float(seven.scores.min()) > 1e-3, "a ×7 map must be unfaithful without normalize"
    norm = sw.evaluate(model, x, attr.values * 7, target=list(attr.target),
                       metric="infidelity", samples=8)
    assert norm.params["normalize"] is True
    assert float(norm.scores.abs().max()) <= 1e-12, \
        f"×7 map with normalize=True: {norm.scores.tolist()} should be 0 (tol 1e-12)"


def test_infidelity_baseline_perturbation_is_squared_ig_completeness_gap():
    model = smooth_cnn(c=2, k=3, act="softplus", seed=3)
    x = rand(2, 2, 5, 5, seed=0, scale=3.0)
    # two left-Riemann steps: a deliberately poor integral, so the gap is far from zero
    attr = sw.attribute(model, x, method="integrated_gradients", steps=2, rule="left",
                        baseline=0.0)
    gap2 = attr.extras["completeness_gap"].double() ** 2
    assert float(gap2.min()) > 1e-5, f"the IG gap must be non-trivial, got {gap2.tolist()}"
    r = sw.evaluate(model, x, attr, metric="infidelity", perturbation="baseline", baseline=0.0)
    assert r.params["samples"] == 1 and r.params["baseline"] == 0.0
    # one sample: the default does not normalize (β would fit it exactly: 0 for every map)
    assert r.params["normalize"] is False
    err = max_err(r.scores, gap2)
    assert err <= 1e-10, f"infidelity(I = x − x′) vs IG gap²: max abs error {err:.2e} (tol 1e-10)"
    # the default baseline (0.0 in input space, like IG's default) gives the same score
    d = sw.evaluate(model, x, attr, metric="infidelity", perturbation="baseline")
    assert max_err(d.scores, gap2) <= 1e-10, "default baseline: error > 1e-10"


def test_infidelity_normalize_never_worse():
    model = bias_free_relu_cnn(c=2, k=3, bias=True, seed=2)
    x = rand(3, 2, 6, 6, seed=4)
    for method in ("gradient", "input_x_gradient"):
        attr = sw.attribute(model, x, method=method)
        plain = sw.evaluate(model, x, attr, metric="infidelity", samples=6, noise=0.3,
                            normalize=False)
        norm = sw.evaluate(model, x, attr, metric="infidelity", samples=6, noise=0.3)
        slack = 1e-12 * (1 + plain.scores.abs())
        assert bool((norm.scores <= plain.scores + slack).all()), \
            f"{method}: normalize=True {norm.scores.tolist()} > False {plain.scores.tolist()}"
        assert float((plain.scores - norm.scores).max()) > 0, "β = 1 should not be optimal here"


def test_infidelity_hand_computed_two_features():
    # f(x) = x1² + 3·x2 on a (1, 1, 1, 2) input; x = (2, 1), map Φ = (1, 2)
    model = Lambda(lambda x: (x[:, 0, 0, 0] ** 2 + 3 * x[:, 0, 0, 1])[:, None])
    x = torch.tensor([[[[2.0, 1.0]]]], dtype=F64)
    phi = torch.tensor([[[[1.0, 2.0]]]], dtype=F64)
    pert = torch.tensor([[[[[1.0, 0.0]]]], [[[[0.5, -1.0]]]]], dtype=F64)  # (S=2, B=1, 1, 1, 2)
    # f(x) = 7.  I1 = (1, 0):   f(x − I1) = f(1, 1)   = 4     → Δ1 = 3,     IᵀΦ = 1
    #            I2 = (.5, −1): f(x − I2) = f(1.5, 2) = 8.25  → Δ2 = −1.25, IᵀΦ = −1.5
    # plain:      ((1 − 3)² + (−1.5 + 1.25)²) / 2 = (4 + 0.0625) / 2 = 2.03125
    # normalize:  β = (1·3 + 1.5·1.25) / (1 + 2.25) = 4.875 / 3.25 = 1.5
    #             ((1.5 − 3)² + (−2.25 + 1.25)²) / 2 = (2.25 + 1) / 2 = 1.625
    plain = sw.evaluate(model, x, phi, target=0, metric="infidelity", perturbation=pert,
                        normalize=False)
    norm = sw.evaluate(model, x, phi, target=0, metric="infidelity", perturbation=pert)
    assert abs(float(plain.scores[0]) - 2.03125) <= 1e-14, f"plain {plain.scores} != 2.03125"
    assert abs(float(norm.scores[0]) - 1.625) <= 1e-14, f"normalized {norm.scores} != 1.625"
    assert plain.params["samples"] == 2


def test_infidelity_default_ignores_the_maps_scale_and_the_copy_over_channels():
    # a CAM-like (B, 1, H, W) map: ×1e-3 or ×1e3, or copied over the C channels, scores the
    # same by default (normalize=True), and very differently with normalize=False
    model = smooth_cnn(c=3, k=3, act="tanh", seed=8)
    x = rand(2, 3, 6, 6, seed=9)
    cam = sw.attribute(model, x, [0, 1], method="grad_cam")
    assert cam.values.shape[1] == 1
    kw = dict(target=[0, 1], metric="infidelity", samples=6)
    ref = sw.evaluate(model, x, cam.values, **kw)
    assert ref.params["normalize"] is True and float(ref.scores.min()) > 1e-6
    for map_ in (cam.values * 1e-3, cam.values * 1e3, cam.values.expand_as(x)):
        other = sw.evaluate(model, x, map_, **kw)
        rel = max_err(other.scores, ref.scores) / float(ref.scores.abs().max())
        assert rel <= 1e-12, f"normalized infidelity changed with the map's scale: rel {rel:.1e}"
    small = sw.evaluate(model, x, cam.values * 1e-3, normalize=False, **kw).scores
    big = sw.evaluate(model, x, cam.values * 1e3, normalize=False, **kw).scores
    assert bool((big > 100 * small).all()), "without normalize the scale must matter"
    with pytest.raises(SaliencyError, match="normalize=False"):
        sw.evaluate(model, x, cam, metric="infidelity", perturbation="baseline", normalize=True)


def test_infidelity_dot_product_is_float64_for_float32_inputs():
    # f ≡ 0, so the score is (IᵀΦ)² with one perturbation and normalize=False. Φ ~ ±1000 and
    # I ~ 1 in float32, one pixel shifted so that IᵀΦ ≈ 0.1 after heavy cancellation: products
    # of float32 numbers are exact in float64, while the float32 dot product (the code before
    # this test) was off by 2 % in the score.
    model = Lambda(lambda x: x.flatten(1)[:, :2] * 0.0)
    g = torch.Generator().manual_seed(0)
    C, H, W = 3, 16, 16
    phi = (torch.randn(1, C, H, W, generator=g) * 1000).float()
    pert = torch.rand(1, 1, C, H, W, generator=g).float()
    exact = (pert[0].double() * phi.double()).sum()
    phi[0, 0, 0, 0] -= float(exact / pert[0, 0, 0, 0, 0].double()) - 1.0
    exact = float((pert[0].double() * phi.double()).sum()) ** 2
    f32 = float((pert[0] * phi).sum()) ** 2
    assert abs(f32 - exact) / exact > 1e-9, "the case must defeat a float32 dot product"
    r = sw.evaluate(model, torch.ones(1, C, H, W), phi, target=0, metric="infidelity",
                    perturbation=pert, normalize=False)
    rel = abs(float(r.scores[0]) - exact) / exact
    assert rel <= 1e-12, f"IᵀΦ not in float64: {float(r.scores[0])} vs {exact} (rel {rel:.1e})"


def test_infidelity_seeded_and_bad_perturbation():
    model = smooth_cnn(c=1, k=2)
    x = rand(2, 1, 5, 5, seed=2)
    attr = sw.attribute(model, x, method="gradient")
    a = sw.evaluate(model, x, attr, metric="infidelity", samples=4, seed=3)
    b = sw.evaluate(model, x, attr, metric="infidelity", samples=4, seed=3)
    c = sw.evaluate(model, x, attr, metric="infidelity", samples=4, seed=4)
    assert torch.equal(a.scores, b.scores) and not torch.equal(a.scores, c.scores)
    with pytest.raises(SaliencyError, match="perturbation"):
        sw.evaluate(model, x, attr, metric="infidelity", perturbation="uniform")
    with pytest.raises(SaliencyError, match="samples"):
        sw.evaluate(model, x, attr, metric="infidelity", perturbation=torch.zeros(2, 2, 1, 5))


def test_infidelity_matches_captum_under_the_same_perturbations():
    metrics = pytest.importorskip("captum.metrics")
    model = smooth_cnn(c=2, k=3, act="tanh", seed=5)
    B, S = 3, 5
    x = rand(B, 2, 6, 6, seed=6)
    attr = sw.attribute(model, x, method="gradient")
    pert = rand(S, B, 2, 6, 6, seed=7, scale=0.3)
    # Captum repeats each example n_perturb_samples times (repeat_interleave: example-major),
    # so its row b·S + s must hold our sample s of example b.
    pert_em = pert.transpose(0, 1).reshape(B * S, 2, 6, 6)

    def perturb_func(inputs):
        assert inputs.shape == pert_em.shape
        assert torch.equal(inputs, x.repeat_interleave(S, dim=0))
        return pert_em, inputs - pert_em

    for normalize in (False, True):
        ours = sw.evaluate(model, x, attr, metric="infidelity", perturbation=pert,
                           normalize=normalize)
        ref = metrics.infidelity(model, perturb_func, x, attr.values, target=list(attr.target),
                                 n_perturb_samples=S, normalize=normalize)
        rel = max_err(ours.scores, ref) / float(ref.abs().max())
        assert rel <= 1e-10, f"normalize={normalize}: relative error vs Captum {rel:.2e} " \
                             f"(tol 1e-10); ours {ours.scores.tolist()} captum {ref.tolist()}"
        assert float(ref.min()) > 1e-8, "the comparison must be on non-trivial values"
