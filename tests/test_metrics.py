"""Metrics: analytic identities, parity with Captum, and the contract every metric keeps.

Everything runs in float64 on tiny models whose metric values are known in closed form (an
additive model for deletion/insertion, a one-pixel model for the localization metrics, a linear
model for infidelity and max-sensitivity). Each assert states its tolerance in its message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError
from saliency_widgets.metrics._curve import removal_order

try:
    from .models import Lambda, bias_free_relu_cnn, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda, bias_free_relu_cnn, linear_model, smooth_cnn

F64 = torch.float64
METRICS = {m["name"]: m for m in sw.list_metrics()}


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=F64)


def objective(model: nn.Module, x: torch.Tensor, target, contrast=None) -> torch.Tensor:
    """``logit[target] − logit[contrast]`` computed directly with the model (float64)."""
    with torch.no_grad():
        out = model(x)
    t = torch.as_tensor(target).view(-1, 1)
    s = out.gather(1, t)[:, 0]
    if contrast is not None:
        s = s - out.gather(1, torch.as_tensor(contrast).view(-1, 1))[:, 0]
    return s


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def one_pixel_model(i0: int, j0: int, channels: int = 1) -> nn.Module:
    """``f(x) = x[0, i0, j0]`` (class 0) and its negative (class 1)."""
    return Lambda(lambda x: torch.stack([x[:, 0, i0, j0], -x[:, 0, i0, j0]], 1))


# ============================================================================================
# infidelity
# ============================================================================================

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


# ============================================================================================
# max-sensitivity
# ============================================================================================

def test_max_sensitivity_linear_gradient_is_exactly_zero():
    model = linear_model(3, 4, 4, 5)
    x = rand(2, 3, 4, 4, seed=1)
    attr = sw.attribute(model, x, method="gradient")
    r = sw.evaluate(model, x, attr, metric="max_sensitivity", samples=4, radius=0.5)
    assert r.scores.tolist() == [0.0, 0.0], f"expected exactly 0, got {r.scores.tolist()}"
    assert r.curve.shape == (2, 4) and r.curve_x.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_max_sensitivity_needs_an_explanation():
    model = linear_model(1, 4, 4, 2)
    x = rand(1, 1, 4, 4)
    with pytest.raises(SaliencyError, match="re-explains"):
        sw.evaluate(model, x, torch.zeros_like(x), target=0, metric="max_sensitivity")


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_max_sensitivity_matches_captum_under_the_same_perturbations():
    metrics = pytest.importorskip("captum.metrics")
    from captum.attr import Saliency

    model = smooth_cnn(c=2, k=3, act="tanh", seed=8)
    B, S = 3, 4
    x = rand(B, 2, 6, 6, seed=9)
    attr = sw.attribute(model, x, method="gradient")
    eps = rand(S, B, 2, 6, 6, seed=10, scale=0.2)
    eps_em = eps.transpose(0, 1).reshape(B * S, 2, 6, 6)  # Captum's example-major order

    def perturb_func(inputs, radius):
        assert inputs.shape == eps_em.shape
        return inputs + eps_em

    ours = sw.evaluate(model, x, attr, metric="max_sensitivity", perturbation=eps)
    ref = metrics.sensitivity_max(Saliency(model).attribute, x, perturb_func=perturb_func,
                                  n_perturb_samples=S, target=list(attr.target), abs=False)
    rel = max_err(ours.scores, ref) / float(ref.abs().max())
    assert rel <= 1e-10, f"relative error vs Captum {rel:.2e} (tol 1e-10): ours " \
                         f"{ours.scores.tolist()} captum {ref.tolist()}"
    assert float(ref.min()) > 1e-4, "the comparison must be on non-trivial values"


def test_max_sensitivity_monotone_in_samples():
    model = bias_free_relu_cnn(c=1, k=3, bias=True, seed=1)
    x = rand(2, 1, 6, 6, seed=3)
    attr = sw.attribute(model, x, method="gradient")
    prev = None
    for n in (1, 3, 6):
        r = sw.evaluate(model, x, attr, metric="max_sensitivity", samples=n, radius=0.3, seed=5)
        if prev is not None:
            # draws come one sample at a time: a larger run starts with the smaller run's draws
            assert torch.equal(r.curve[:, :prev.curve.shape[1]], prev.curve), \
                f"samples={n}: the first draws differ from the smaller run's (exact)"
            assert bool((r.scores >= prev.scores).all()), \
                f"samples={n}: {r.scores.tolist()} < {prev.scores.tolist()} (exact)"
        prev = r
    assert float(prev.scores.max()) > 0


# ============================================================================================
# completeness
# ============================================================================================

@pytest.mark.parametrize("act", ["softplus", "tanh"])
def test_completeness_ig_300_steps_smooth_model(act):
    model = smooth_cnn(c=2, k=3, act=act, seed=1)
    x = rand(2, 2, 6, 6, seed=2)
    for rule in ("midpoint", "gauss_legendre"):
        attr = sw.attribute(model, x, method="integrated_gradients", steps=300, rule=rule)
        r = sw.evaluate(model, x, attr, metric="completeness")
        assert r.scores.dtype == F64 and r.params["baseline"] == 0.0
        assert float(r.scores.max()) < 1e-3, \
            f"{act}/{rule}: relative gap {r.scores.tolist()} (tol 1e-3)"
        rec = attr.extras["relative_completeness_gap"].double()
        assert max_err(r.scores, rec) <= 1e-9, \
            f"metric vs the IG record's own relative gap: {max_err(r.scores, rec):.2e} (tol 1e-9)"


def test_completeness_kernel_shap_sums_its_segment_values():
    # KernelSHAP enforces Σφ = f(x) − f(x′) exactly; its map paints φ_m on each of segment m's
    # pixels, so the pixel sum (what the metric used, and what a plain tensor still gives) is
    # off by the segment sizes
    model = smooth_cnn(c=3, k=3, act="softplus", seed=3)
    x = rand(2, 3, 8, 8, seed=4).abs().clamp(max=1)
    norm = ((0.5,) * 3, (0.25,) * 3)
    for baseline in (0.0, "black", "uniform", "blur"):
        attr = sw.attribute(model, x, [0, 1], method="kernel_shap", grid=2, samples=24,
                            baseline=baseline, normalization=norm, seed=2)
        r = sw.evaluate(model, x, attr, metric="completeness")
        assert r.params["baseline"] == baseline
        assert float(r.scores.max()) <= 1e-12, f"{baseline}: gap {r.scores.tolist()} (1e-12)"
        if baseline == 0.0:
            pixels = sw.evaluate(model, x, attr.values, target=[0, 1], metric="completeness",
                                 baseline=0.0)
            assert float(pixels.scores.min()) > 1.0, "the pixel sum must be far off (16 px each)"
    # a broken record (values that do not add up) is caught: the metric recomputes f(x), f(x′)
    half = dataclasses.replace(attr, extras={**attr.extras,
                                             "segment_values": attr.extras["segment_values"] / 2})
    r = sw.evaluate(model, x, half, metric="completeness")
    assert max_err(r.scores, torch.full((2,), 0.5, dtype=F64)) <= 1e-10


def test_completeness_undefined_without_a_baseline():
    model = smooth_cnn(c=1, k=2)
    x = rand(2, 1, 5, 5, seed=1)
    attr = sw.attribute(model, x, method="input_x_gradient")
    with pytest.warns(sw.SaliencyWarning, match="completeness"):
        r = sw.evaluate(model, x, attr, metric="completeness")
    assert bool(torch.isnan(r.scores).all())
    with pytest.warns(sw.SaliencyWarning, match="plain tensor"):
        r = sw.evaluate(model, x, attr.values, target=list(attr.target), metric="completeness")
    assert bool(torch.isnan(r.scores).all())


def test_completeness_input_x_gradient_fails_on_biased_model():
    x = rand(2, 3, 6, 6, seed=3)
    # a ReLU net without biases is homogeneous (Euler: Σ x⊙∇f = f(x), f(0) = 0): gap ≈ 0;
    # with biases Σ x⊙∇f misses the bias terms: a large gap. A tolerance, not float equality.
    free = bias_free_relu_cnn(bias=False, seed=4)
    biased = bias_free_relu_cnn(bias=True, seed=4)
    for model, small in ((free, True), (biased, False)):
        attr = sw.attribute(model, x, method="input_x_gradient")
        r = sw.evaluate(model, x, attr.values, target=list(attr.target), metric="completeness",
                        baseline=0.0)
        if small:
            assert float(r.scores.max()) < 1e-10, f"bias-free: gap {r.scores.tolist()} (1e-10)"
        else:
            # ≥ 10× the 1e-3 tolerance that IG at 300 steps meets (test above)
            assert float(r.scores.min()) > 1e-2, f"biased: gap {r.scores.tolist()} should be > 1e-2"
        delta = objective(model, x, attr.target) - objective(model, torch.zeros_like(x),
                                                             attr.target)
        ref = (attr.values.flatten(1).sum(1) - delta).abs() / delta.abs()
        assert max_err(r.scores, ref) <= 1e-12 * (1 + float(ref.max())), \
            f"relative gap vs |Σ x⊙∇f − Δf| / |Δf| by hand: {max_err(r.scores, ref):.2e}"
    # (a *linear* model with bias is complete for Grad⊙Input with baseline 0: the bias cancels
    # in f(x) − f(0). The documented check is a nonlinear biased net.)
    lin = linear_model(3, 6, 6, 2, bias=True)
    attr = sw.attribute(lin, x, method="input_x_gradient")
    r = sw.evaluate(lin, x, attr.values, target=list(attr.target), metric="completeness",
                    baseline=0.0)
    assert float(r.scores.max()) < 1e-12, f"linear+bias: gap {r.scores.tolist()} (tol 1e-12)"
    # a map c·(x⊙w) on that model has relative gap |c − 1| exactly, on either side
    for c in (0.25, 1.75):
        r = sw.evaluate(lin, x, c * attr.values, target=list(attr.target), metric="completeness",
                        baseline=0.0)
        assert max_err(r.scores, torch.full((2,), abs(c - 1), dtype=F64)) <= 1e-12, \
            f"c={c}: gap {r.scores.tolist()} != {abs(c - 1)} (tol 1e-12)"


# ============================================================================================
# deletion / insertion
# ============================================================================================

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


# ============================================================================================
# pointing game, relevance mass, relevance rank
# ============================================================================================

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


# ============================================================================================
# sparseness, complexity
# ============================================================================================

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


# ============================================================================================
# validate
# ============================================================================================

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


# ============================================================================================
# the contract every registered metric keeps
# ============================================================================================

CHEAP = {
    "deletion": {"steps": 3},
    "insertion": {"steps": 3},
    "infidelity": {"samples": 3},
    "max_sensitivity": {"samples": 2},
    "road": {"percentages": (0.25, 0.5)},
    "model_randomization": {},
}
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_load_state_dict_pre_hooks")


def user_model() -> nn.Module:
    """BN statistics, a submodule in training mode, a frozen weight, a .grad and a user hook."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Dropout(0.5), nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
        model[1].running_mean.copy_(torch.randn(4, generator=g) * 0.2)
        model[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
    model = model.double().eval()
    model[3].train()
    model[0].weight.requires_grad_(False)
    model[8].weight.grad = torch.full_like(model[8].weight, 0.25)
    model[4].register_forward_hook(lambda m, i, o: None)
    return model


def snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "grad": [(p.requires_grad, None if p.grad is None else p.grad.clone())
                     for p in model.parameters()],
            "hooks": [[dict(getattr(m, d)) for d in HOOK_DICTS] for m in model.modules()]}


def assert_untouched(model: nn.Module, snap: dict, name: str) -> None:
    state = model.state_dict()
    assert list(state) == list(snap["state"]), f"{name}: state_dict keys changed"
    for k, v in state.items():
        assert torch.equal(v, snap["state"][k]), f"{name}: {k} changed (bit-identical expected)"
    assert [m.training for m in model.modules()] == snap["training"], f"{name}: training flags"
    for p, (rg, grad) in zip(model.parameters(), snap["grad"]):
        assert p.requires_grad == rg, f"{name}: requires_grad changed"
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad), \
            f"{name}: .grad changed"
    assert [[dict(getattr(m, d)) for d in HOOK_DICTS] for m in model.modules()] == \
        snap["hooks"], f"{name}: hooks changed"


@pytest.fixture(scope="module")
def contract_setup():
    model = user_model()
    x = rand(2, 3, 8, 8, seed=21)
    with pytest.warns(sw.SaliencyWarning, match="training mode"):  # the Dropout left in train
        attr = sw.attribute(model, x, method="integrated_gradients", steps=4)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:5, 1:4] = True
    masks[1, 5:, 5:] = True
    return model, x, attr, masks


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_contract(name, contract_setup):
    model, x, attr, masks = contract_setup
    x0 = x.clone()
    snap = snapshot(model)
    rng = torch.get_rng_state()
    np_rng = np.random.get_state()
    params = CHEAP.get(name, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        a = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=7, **params)
        b = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=7, **params)
        c = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=8, **params)
    assert_untouched(model, snap, name)
    assert torch.equal(x, x0) and not x.requires_grad, f"{name}: the input changed"
    assert torch.equal(torch.get_rng_state(), rng), f"{name}: the global torch RNG was used"
    after = np.random.get_state()
    assert after[0] == np_rng[0] and np.array_equal(after[1], np_rng[1]) \
        and after[2:] == np_rng[2:], f"{name}: the global numpy RNG was used"
    assert a.metric == name
    assert a.higher_is_better is METRICS[name]["higher_is_better"]
    assert a.scores.shape == (2,) and a.scores.dtype == F64
    assert not a.scores.requires_grad
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0, equal_nan=True,
                               msg=f"{name}: same seed, different scores")
    if a.curve is not None:
        assert a.curve.shape[0] == 2
        torch.testing.assert_close(a.curve, b.curve, rtol=0, atol=0, equal_nan=True)
    if METRICS[name]["stochastic"]:
        assert not torch.equal(a.scores, c.scores), f"{name}: the seed has no effect"
    else:
        torch.testing.assert_close(a.scores, c.scores, rtol=0, atol=0, equal_nan=True,
                                   msg=f"{name}: deterministic metric depends on the seed")
    assert a.seconds >= 0
    for k, v in params.items():
        assert a.params[k] == v
    with pytest.raises(SaliencyError, match="unknown parameter"):
        sw.evaluate(model, x, attr, metric=name, masks=masks, not_a_param=1)


def test_unknown_metric_and_plain_tensor_target():
    model = linear_model(1, 4, 4, 3)
    x = rand(2, 1, 4, 4)
    with pytest.raises(SaliencyError, match="did you mean 'deletion'"):
        sw.evaluate(model, x, torch.zeros_like(x), metric="deletoin")
    # a plain tensor with target=None explains the predicted class, as sw.attribute does
    values = rand(2, 1, 4, 4, seed=3)
    with torch.no_grad():
        t = model(x).argmax(1).tolist()
    a = sw.evaluate(model, x, values, metric="deletion", baseline=0.0, steps=4)
    b = sw.evaluate(model, x, values, target=t, metric="deletion", baseline=0.0, steps=4)
    assert torch.equal(a.scores, b.scores)
    with pytest.raises(SaliencyError, match="differs"):
        attr = sw.attribute(model, x, target=[0, 1], method="gradient")
        sw.evaluate(model, x, attr, target=[1, 1], metric="sparseness")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(METRICS))
def test_metric_runs_on_cuda_like_cpu(name, contract_setup):
    # the deletion/insertion AUC once mixed a CUDA curve with a CPU x-axis (RuntimeError)
    model, x, attr, masks = contract_setup
    dev = torch.device("cuda")
    gpu_model = user_model().to(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        gpu_attr = sw.attribute(gpu_model, x.to(dev), method="integrated_gradients", steps=4)
        r = sw.evaluate(gpu_model, x.to(dev), gpu_attr, metric=name, masks=masks.to(dev),
                        seed=7, **CHEAP.get(name, {}))
    assert r.scores.shape == (2,) and r.scores.device.type == "cpu"
    if r.curve is not None:
        assert r.curve.device.type == "cpu" and r.curve_x.device.type == "cpu"
