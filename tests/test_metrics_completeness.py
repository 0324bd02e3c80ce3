"""Completeness: exact on integrated gradients and KernelSHAP, NaN where undefined.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import saliency_widgets as sw

try:
    from .models import bias_free_relu_cnn, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, linear_model, smooth_cnn

try:
    from .metric_helpers import F64, max_err, objective, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, max_err, objective, rand


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
