"""Stability metrics: relative input / output stability (Agarwal et al. 2022) and average
sensitivity. Closed forms on a linear model, identities with max-sensitivity, the rule for
perturbations that change the prediction, and parity with Quantus 0.6.0 under the same
perturbations (float64; Quantus quirks in the metric modules' docstrings). About 2 s in all.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import Lambda, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda, linear_model, smooth_cnn

F64 = torch.float64
STABILITY = ("relative_input_stability", "relative_output_stability", "avg_sensitivity")


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=F64)


def dyadic(*shape: int, seed: int, scale: float, offset: float = 0.0) -> torch.Tensor:
    """Values on a 2⁻¹⁰ grid: sums of two are exact in float32 too (Quantus predicts in float32)."""
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(*shape, generator=g, dtype=F64) * 2 - 1) * scale * 1024).round() / 1024 \
        + offset


@pytest.mark.parametrize("name", STABILITY)
def test_gradient_of_a_linear_model_is_perfectly_stable(name):
    model = linear_model(2, 4, 4, 3)
    x = rand(2, 2, 4, 4, seed=1)
    attr = sw.attribute(model, x, method="gradient")
    r = sw.evaluate(model, x, attr, metric=name, samples=4, radius=0.05)
    assert r.scores.tolist() == [0.0, 0.0], f"{name}: expected exactly 0, got {r.scores.tolist()}"
    assert r.curve.shape == (2, 4) and r.curve_x.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_ris_and_ros_closed_forms_for_input_times_gradient():
    # e = w ⊙ x, so (e − e')/e = (x − x')/x elementwise: RIS = 1 for every perturbation, and
    # ROS = ‖(x − x')/x‖ / ‖W (x − x')‖ (the logit change of a linear model).
    model = linear_model(2, 3, 3, 4, seed=3)
    x = rand(2, 2, 3, 3, seed=4)
    eps = rand(3, 2, 2, 3, 3, seed=5, scale=1e-3)
    attr = sw.attribute(model, x, target=[1, 2], method="input_x_gradient")
    ris = sw.evaluate(model, x, attr, metric="relative_input_stability", perturbation=eps)
    assert float((ris.curve - 1).abs().max()) <= 1e-12, f"RIS per sample {ris.curve} (tol 1e-12)"
    ros = sw.evaluate(model, x, attr, metric="relative_output_stability", perturbation=eps)
    W = model[1].weight.detach()
    rel = (eps / x[None]).flatten(2).norm(dim=2)  # (S, B)
    dz = (eps.flatten(2) @ W.T).norm(dim=2)
    expected = (rel / dz).amax(0)
    err = float(((ros.scores - expected) / expected).abs().max())
    assert err <= 1e-12, f"ROS {ros.scores.tolist()} vs {expected.tolist()} (rel tol 1e-12)"


def test_avg_sensitivity_shares_max_sensitivity_draws():
    model = smooth_cnn(c=2, k=3, seed=1)
    x = rand(2, 2, 5, 5, seed=2)
    attr = sw.attribute(model, x, method="gradient")
    avg = sw.evaluate(model, x, attr, metric="avg_sensitivity", samples=5, radius=0.3, seed=4)
    mx = sw.evaluate(model, x, attr, metric="max_sensitivity", samples=5, radius=0.3, seed=4)
    assert torch.equal(avg.curve, mx.curve), "the same seed must give the same draws (exact)"
    assert torch.equal(avg.scores, avg.curve.mean(1))
    assert bool((avg.scores <= mx.scores).all()) and bool((avg.scores > 0).all())


def test_perturbations_that_change_the_prediction_are_left_out():
    # f(x) = (x₀, −x₀) on one pixel: the label flips exactly when x₀ changes sign.
    model = Lambda(lambda t: torch.stack([t[:, 0, 0, 0], -t[:, 0, 0, 0]], 1))
    x = torch.full((2, 1, 2, 2), 1.0, dtype=F64)
    x[1, 0, 0, 0] = 0.5
    eps = torch.zeros(3, 2, 1, 2, 2, dtype=F64)
    eps[:, :, 0, 1, 1] = torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    eps[1, 0, 0, 0, 0] = -2.0  # flips example 0 in sample 1
    eps[:, 1, 0, 0, 0] = -1.0  # flips example 1 in every sample
    values = torch.full((2, 1, 2, 2), 1.0, dtype=F64)

    def explain(net: nn.Module, t: torch.Tensor) -> torch.Tensor:
        return t.clone()  # the "map" is the input: its relative change is the input's

    for name in ("relative_input_stability", "relative_output_stability"):
        with pytest.warns(sw.SaliencyWarning, match=r"example\(s\) \[1\].*every perturbation"):
            r = sw.evaluate(model, x, values, target=[0, 0], metric=name, explain=explain,
                            perturbation=eps)
        assert torch.isnan(r.curve[0, 1]) and bool(torch.isnan(r.curve[1]).all())
        assert not torch.isnan(r.curve[0, [0, 2]]).any()
        assert float(r.scores[0]) == float(r.curve[0, [0, 2]].max()) and torch.isnan(r.scores[1])


def test_stability_errors():
    model = linear_model(1, 3, 3, 2)
    x = rand(2, 1, 3, 3)
    attr = sw.attribute(model, x, method="gradient")
    for name in STABILITY:
        with pytest.raises(SaliencyError, match=r"perturbation tensor must be \(samples, 2, 1"):
            sw.evaluate(model, x, attr, metric=name, perturbation=torch.zeros(2, 3, 1, 3, 3))
        with pytest.raises(SaliencyError, match="samples must be an int"):
            sw.evaluate(model, x, attr, metric=name, samples=0)
        with pytest.raises(SaliencyError, match="re-explains"):
            sw.evaluate(model, x, attr.values, metric=name)


# --- parity with Quantus 0.6.0 --------------------------------------------------------------------
class Float64Input(nn.Module):
    """Quantus predicts on ``torch.Tensor(x)`` (float32); this feeds the float64 model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.double())


@pytest.mark.parametrize("name,cls,tol", [
    ("relative_input_stability", "RelativeInputStability", 1e-12),
    ("relative_output_stability", "RelativeOutputStability", 1e-12),
    ("avg_sensitivity", "AvgSensitivity", 1e-12)])
def test_matches_quantus_under_the_same_perturbations(name, cls, tol):
    quantus = pytest.importorskip("quantus")
    model = Float64Input(smooth_cnn(c=2, k=3, act="tanh", seed=8)).eval()
    B, S = 3, 4
    x = dyadic(B, 2, 6, 6, seed=9, scale=0.5, offset=0.625)
    eps = dyadic(S, B, 2, 6, 6, seed=10, scale=0.05)
    attr = sw.attribute(model, x, method="gradient")
    calls = {"n": 0}

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        out = arr + eps[calls["n"]].reshape(B, -1).numpy()
        calls["n"] += 1
        return out

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs) -> np.ndarray:
        t = torch.as_tensor(inputs, dtype=F64)
        return sw.attribute(model, t, [int(v) for v in targets], method="gradient").values.numpy()

    ours = sw.evaluate(model, x, attr, metric=name, perturbation=eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = getattr(quantus, cls)(nr_samples=S, perturb_func=perturb, disable_warnings=True,
                                       display_progressbar=False)
        ref = metric(model=model, x_batch=x.numpy(), y_batch=np.array(attr.target),
                     a_batch=attr.values.numpy(), explain_func=explain, device="cpu")
    ref = torch.as_tensor(np.asarray(ref, dtype=np.float64))
    assert calls["n"] == S, "Quantus must have used exactly our perturbations"
    assert bool(torch.isfinite(ref).all()), "no perturbation may change the prediction here"
    err = float(((ours.scores - ref) / ref).abs().max())
    assert err <= tol, f"{name}: relative error vs Quantus {err:.2e} (tol {tol:g}): " \
                       f"ours {ours.scores.tolist()} quantus {ref.tolist()}"
    assert float(ref.min()) > 1e-3, "the comparison must be on non-trivial values"
