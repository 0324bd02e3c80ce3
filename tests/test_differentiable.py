"""The engine's differentiable path (``api.attribute_graph``) and the softplus copy of a model.

The attacks differentiate maps with respect to the input. These tests check that the
differentiable path returns exactly ``sw.attribute``'s values for every registered method, that
its derivatives are the true ones (against an independent Hessian-vector product and against
finite differences, float64), and that the softplus(β) copy is the smoothed network of the papers
without touching the user's model. Everything here runs in about 3 s.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw
from saliency_widgets.api import attribute_graph
from saliency_widgets.errors import SaliencyError
from saliency_widgets.model.smooth import smoothing_beta, softplus_copy

try:
    from .models import bias_free_relu_cnn, fill_, gap_head_cnn, smooth_cnn
    from .test_contract import (METHODS, assert_untouched, make_cnn, make_x, params_for,
                                snapshot, user_model_with_oddities)
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, fill_, gap_head_cnn, smooth_cnn
    from test_contract import (METHODS, assert_untouched, make_cnn, make_x, params_for,
                               snapshot, user_model_with_oddities)

F64 = torch.float64


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- the differentiable path ---------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_graph_map_equals_attribute_exactly(name):
    model = make_cnn(F64)
    x = make_x(2, F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        ref = sw.attribute(model, x, method=name, **params_for(name)).values
        leaf = x.clone().requires_grad_(True)
        got = attribute_graph(model, leaf, method=name, **params_for(name))
    assert torch.equal(got.detach(), ref), f"{name}: differentiable map differs from " \
                                           f"sw.attribute (exact equality expected)"
    assert got.requires_grad, f"{name}: the map is not in the input's graph"
    (d,) = torch.autograd.grad(got.sum(), leaf, allow_unused=True)
    assert d is None or bool(torch.isfinite(d).all())


def test_graph_map_leaves_the_model_and_input_alone():
    model = user_model_with_oddities()
    x = make_x(2)
    snap = snapshot(model)
    leaf = x.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        m = attribute_graph(model, leaf, method="grad_cam")
    torch.autograd.grad(m.sum(), leaf)
    assert_untouched(model, snap)
    assert leaf.grad is None and all(p.grad is None or p is model.head.weight
                                     for p in model.parameters())


def test_second_derivative_of_gradient_map_is_the_hessian():
    # d/dx <v, ∇f(x)> = H v: compare with torch.autograd.functional.hvp on the plain model.
    model = smooth_cnn(c=2, k=3, act="tanh", seed=2)
    x = rand(1, 2, 5, 5, seed=3)
    v = rand(1, 2, 5, 5, seed=4)
    leaf = x.clone().requires_grad_(True)
    m = attribute_graph(model, leaf, target=1, method="gradient")
    (got,) = torch.autograd.grad((m * v).sum(), leaf)
    _, expected = torch.autograd.functional.hvp(lambda t: model(t)[:, 1].sum(), x, v)
    err = float((got - expected).abs().max())
    assert err <= 1e-12 * float(expected.abs().max()), f"H·v error {err:.2e} (tol 1e-12 rel)"
    assert float(expected.abs().max()) > 1e-3


@pytest.mark.parametrize("name", ["grad_cam", "integrated_gradients", "smoothgrad", "occlusion"])
def test_map_derivative_matches_finite_differences(name):
    # smooth_cnn's automatic CAM layer is its last conv, whose output Grad-CAM reads
    model = smooth_cnn(c=2, k=3, act="tanh", seed=5)
    params = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"samples": 3},
              "occlusion": {"window": 2}}.get(name, {})
    x = rand(1, 2, 5, 5, seed=6)
    v = rand(1, 2, 5, 5, seed=7)
    w = None

    def objective(t: torch.Tensor) -> torch.Tensor:
        nonlocal w
        m = attribute_graph(model, t, target=0, method=name, **params)
        w = rand(*m.shape, seed=8) if w is None else w
        return (m * w).sum()

    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(leaf), leaf)
    h = 1e-5
    with torch.no_grad():
        fd = (objective(x + h * v) - objective(x - h * v)) / (2 * h)
    ad = (g * v).sum()
    assert abs(float(fd - ad)) <= 1e-6 * max(1.0, abs(float(ad))), \
        f"{name}: directional derivative {float(ad):.10g} vs finite difference {float(fd):.10g}" \
        f" (tol 1e-6)"
    assert abs(float(ad)) > 1e-6


def test_relu_network_gradient_map_has_no_second_derivative():
    # Why the attacks need a surrogate: on a ReLU net ∇f is piecewise constant in x.
    model = bias_free_relu_cnn(c=2, k=3, bias=True, seed=1)
    leaf = rand(2, 2, 6, 6, seed=2).requires_grad_(True)
    m = attribute_graph(model, leaf, method="gradient")
    (d,) = torch.autograd.grad((m * rand(*m.shape, seed=3)).sum(), leaf, allow_unused=True)
    assert d is None or bool((d == 0).all())


# --- the softplus copy ---------------------------------------------------------------------------
class InPlaceAndFunctional(nn.Module):
    """ReLUs as an in-place module used twice, ``F.relu`` and ``x.relu()``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(x))
        h = self.act(self.conv2(h) + F.relu(h))
        return self.head(h.relu().mean(dim=(2, 3)))


def softplus_by_hand(x: torch.Tensor, m: InPlaceAndFunctional, beta: float) -> torch.Tensor:
    sp = lambda t: F.softplus(t, beta=beta)  # noqa: E731
    h = sp(m.conv1(x))
    h = sp(m.conv2(h) + sp(h))
    return m.head(sp(h).mean(dim=(2, 3)))


def test_softplus_copy_replaces_every_relu_call():
    model = fill_(InPlaceAndFunctional(), seed=3).double().eval()
    x = rand(3, 2, 5, 5, seed=1)
    snap = snapshot(model)
    smooth = softplus_copy(model, 4.0)
    with torch.no_grad():
        got, expected = smooth(x), softplus_by_hand(x, model, 4.0)
        plain = model(x)
    assert torch.equal(got, expected), "softplus copy differs from the hand-built network (exact)"
    assert not torch.equal(got, plain)
    assert_untouched(model, snap)
    assert type(smooth).__name__ == type(model).__name__ and isinstance(smooth, type(model))
    assert [n for n, _ in smooth.named_modules()] == [n for n, _ in model.named_modules()]
    assert smoothing_beta(smooth) == 4.0 and smoothing_beta(model) is None
    with torch.no_grad():  # outside the copy's forward, ReLU is a ReLU again
        assert torch.equal(torch.relu(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
    # a copy of a copy smooths the original network, not the smoothed one
    with torch.no_grad():
        assert torch.equal(softplus_copy(smooth, 2.0)(x), softplus_by_hand(x, model, 2.0))
    # large β tends to the ReLU network
    with torch.no_grad():
        assert float((softplus_copy(model, 1e4)(x) - plain).abs().max()) < 1e-3


def test_softplus_copy_works_through_the_engine():
    model = gap_head_cnn(c=2, channels=4, k=3, seed=1)
    x = rand(2, 2, 6, 6, seed=2)
    smooth = softplus_copy(model, 3.0)
    hand = nn.Sequential(model[0], nn.Softplus(beta=3.0), *model[2:]).eval()
    for name in ("gradient", "grad_cam"):
        a = sw.attribute(smooth, x, target=[0, 2], method=name)
        b = sw.attribute(hand, x, target=[0, 2], method=name,
                         **({"layer": "1"} if name == "grad_cam" else {}))
        assert torch.equal(a.values, b.values), f"{name} on the softplus copy (exact)"
    assert sw.attribute(smooth, x, method="grad_cam").layer == "1"  # automatic choice unchanged
    # guided backprop on the smoothed net: positive gradients, weighted by σ(βx)
    g = sw.attribute(smooth, x, target=[0, 2], method="guided_backprop").values
    with torch.enable_grad():
        leaf = x.clone().requires_grad_(True)
        pre = model[0](leaf)
        w = model[4].weight[[0, 2]]  # (2, K)
        dpre = (w[:, :, None, None] / 36).clamp(min=0) * torch.sigmoid(3.0 * pre)
        (expected,) = torch.autograd.grad(pre, leaf, dpre)
    assert float((g - expected).abs().max()) <= 1e-12, "guided softplus backward"
    # and it has second derivatives, unlike the ReLU network
    leaf = x.clone().requires_grad_(True)
    m = attribute_graph(smooth, leaf, method="gradient")
    (d,) = torch.autograd.grad((m * rand(*m.shape, seed=4)).sum(), leaf)
    assert float(d.abs().max()) > 1e-6


def test_softplus_copy_refuses_bad_beta_and_scripts():
    model = gap_head_cnn(c=1, channels=2, k=2)
    for beta in (0, -1.0, float("inf"), True, "10"):
        with pytest.raises(SaliencyError, match="beta must be a positive"):
            softplus_copy(model, beta)
    with pytest.raises(SaliencyError, match="TorchScript"):
        softplus_copy(torch.jit.script(model), 2.0)
