"""The engine's differentiable path (``api.attribute_graph``) and the softplus copy of a model.

The attacks differentiate maps with respect to the input. These tests check that the
differentiable path returns exactly ``sw.attribute``'s values for every registered method, that
its derivatives are the true ones (against an independent Hessian-vector product and against
finite differences, float64, for every method on the network an attack differentiates: the model,
or its softplus copy for gradient-only methods; and on a residual network for the methods that
rewrite the backward pass), that a method without a derivative is refused by the attacks, and
that the softplus(β) copy is the smoothed network of the papers without touching the user's
model. Everything here runs in about 12 s (2 shared cores at a load average of 5, 1 thread).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw
from saliency_widgets.api import attribute_graph
from saliency_widgets.attacks.surrogate import needs_surrogate
from saliency_widgets.errors import SaliencyError
from saliency_widgets.model.smooth import smoothing_beta, softplus_copy

try:
    from .models import bias_free_relu_cnn, fill_, gap_head_cnn, smooth_cnn
    from .test_contract import (METHODS, SPECS, assert_untouched, make_model, make_x,
                                params_for, snapshot, user_model_with_oddities)
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, fill_, gap_head_cnn, smooth_cnn
    from test_contract import (METHODS, SPECS, assert_untouched, make_model, make_x,
                               params_for, snapshot, user_model_with_oddities)

F64 = torch.float64
# Methods whose map has no input derivative (``derivative="none: …"``): refused by the attacks.
NO_DERIVATIVE = [n for n in METHODS if SPECS[n]["derivative"].startswith("none: ")]


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- the differentiable path ---------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_graph_map_equals_attribute_exactly(name):
    model = make_model(name, F64)  # the contract's CNN, or its small ViT for attention methods
    x = make_x(2, F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        ref = sw.attribute(model, x, method=name, **params_for(name)).values
        leaf = x.clone().requires_grad_(True)
        got = attribute_graph(model, leaf, method=name, **params_for(name))
    assert torch.equal(got.detach(), ref), f"{name}: differentiable map differs from " \
                                           f"sw.attribute (exact equality expected)"
    if name in NO_DERIVATIVE:  # checked below: no derivative, and the attacks refuse it
        return
    assert got.requires_grad, f"{name}: the map is not in the input's graph"
    (d,) = torch.autograd.grad(got.sum(), leaf, allow_unused=True)
    assert d is None or bool(torch.isfinite(d).all())


def directional_derivatives(model, x, name, h=1e-6, **params):
    """``(autograd, central finite difference)`` of ``<w, map(x)>`` along a fixed direction."""
    v, w = rand(*x.shape, seed=7), None

    def objective(t: torch.Tensor) -> torch.Tensor:
        nonlocal w
        m = attribute_graph(model, t, target=[1, 3][:x.shape[0]], method=name, **params)
        w = rand(*m.shape, seed=8) if w is None else w
        return (m * w).sum()

    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(leaf), leaf, allow_unused=True)
    ad = 0.0 if g is None else float((g * v).sum())
    with torch.no_grad():
        fd = float((objective(x + h * v) - objective(x - h * v)) / (2 * h))
    return ad, fd


@pytest.mark.parametrize("name", [n for n in METHODS if n not in NO_DERIVATIVE])
def test_every_map_derivative_matches_finite_differences(name):
    # On the network whose derivative the attack follows: the contract's model (ReLU CNN or small
    # ViT), or its softplus(10) copy for methods that see x only through ∇ₓf. float64, h = 1e-6:
    # measured errors ≤ 2e-8 relative; 1e-6 leaves room for rounding, not for a missing term.
    model = make_model(name, F64)
    params = params_for(name)
    if needs_surrogate(name, params):
        model = softplus_copy(model, 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        ad, fd = directional_derivatives(model, make_x(2, F64), name, **params)
    assert abs(ad - fd) <= 1e-6 * max(1.0, abs(ad)), \
        f"{name}: directional derivative {ad:.10g} vs finite difference {fd:.10g} (tol 1e-6)"
    assert abs(ad) > 1e-5, f"{name}: the derivative is (nearly) zero, {ad:.3g}: nothing to test"


class Residual(nn.Module):
    """conv → in-place ReLU → max pool → conv → batch norm, added in place to the pooled input
    (ResNet's ``out += identity``) → ReLU → global mean → linear: a batch norm that LRP merges
    into its conv, a residual sum it splits, DeepLIFT's max rule, an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn, self.relu, self.head = nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(self.relu(self.conv1(x)), 2)
        out = self.bn(self.conv2(h))
        out += h
        return self.head(F.relu(out).mean(dim=(2, 3)))


def residual() -> Residual:
    model = fill_(Residual(), seed=3).to(F64).eval()
    with torch.no_grad():
        model.bn.running_mean.copy_(rand(4, seed=5) * 0.2)
        model.bn.running_var.copy_(rand(4, seed=6).abs() + 0.5)
    return model


REWRITING = [("lrp", {}), ("lrp", {"composite": "epsilon_gamma_box", "bounds": (-4.0, 4.0)}),
             ("lrp", {"composite": "alpha1_beta0"}), ("deeplift", {}),
             ("deeplift_shap", {"references": rand(3, 3, 8, 8, seed=9)}),
             ("guided_backprop", {}), ("guided_grad_cam", {"relu": False})]


@pytest.mark.parametrize("name,params", REWRITING,
                         ids=[f"{n}-{p.get('composite', '')}" for n, p in REWRITING])
def test_rewritten_backward_map_derivative_on_a_residual_network(name, params):
    # LRP, DeepLIFT and guided ReLUs replace backward passes; their maps' derivatives must still
    # follow the network (rewrite.py's plain pass), here through a merged batch norm, a residual
    # split and a max pool. LRP's 1/z terms curve strongly: h = 1e-7 (errors measured ≤ 5e-9).
    model = residual()
    if needs_surrogate(name, params):
        model = softplus_copy(model, 10.0)
    ad, fd = directional_derivatives(model, rand(2, 3, 8, 8, seed=4), name, h=1e-7, **params)
    assert abs(ad - fd) <= 1e-6 * max(1.0, abs(ad)), \
        f"{name} {params}: directional derivative {ad:.10g} vs finite difference {fd:.10g}"
    assert abs(ad) > 1e-5


def test_occlusion_map_is_differentiable_where_the_incremental_path_runs():
    # sw.attribute may evaluate occlusion incrementally (cached feature maps, no graph); the
    # differentiable map takes the plain path: equal up to rounding, with a true derivative.
    model = sw.demo.load_model("shapes").double()
    x = sw.demo.sample(1, seed=77).x.double()
    params = {"window": 8, "stride": 8, "incremental": True}
    ref = sw.attribute(model, x, target=1, method="occlusion", **params)
    assert ref.params["incremental"] is True
    leaf = x.clone().requires_grad_(True)
    got = attribute_graph(model, leaf, target=1, method="occlusion", **params)
    torch.testing.assert_close(got.detach(), ref.values, rtol=0, atol=1e-12)
    # (h = 1e-7: a max-pool switch lies within 1e-6 along this direction; measured 3e-10)
    ad, fd = directional_derivatives(model, x, "occlusion", h=1e-7, **params)
    assert abs(ad - fd) <= 1e-6 * max(1.0, abs(ad)) and abs(ad) > 1e-5, (ad, fd)


def test_a_model_whose_calls_change_between_runs_is_refused():
    # The differentiable path runs the forward pass twice and matches their calls by order.
    class Flaky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head, self.runs = nn.Conv2d(3, 4, 3), nn.Linear(4, 5), [0]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.runs[0] += 1
            h = F.relu(self.conv(x))
            if self.runs[0] % 2 == 0:  # every other call adds a ReLU
                h = F.relu(h - 0.1)
            return self.head(h.mean(dim=(2, 3)))

    model = fill_(Flaky()).to(F64).eval()
    leaf = rand(2, 3, 8, 8, seed=1).requires_grad_(True)
    with pytest.raises(SaliencyError, match="made different calls when run twice"):
        attribute_graph(model, leaf, method="deeplift")


def test_every_method_declares_how_it_is_differentiated():
    from saliency_widgets.registry import method
    for name in METHODS:
        d = SPECS[name]["derivative"]
        assert d in ("direct", "surrogate") or (d.startswith("none: ") and len(d) > 20), name
    assert NO_DERIVATIVE == ["deconvolution"]
    for bad in ("sometimes", "none", "none: ", ""):
        with pytest.raises(ValueError, match="derivative must be"):
            method(label="x", family="x", output="map", derivative=bad)


@pytest.mark.parametrize("name", NO_DERIVATIVE)
def test_a_map_without_derivative_is_refused_by_the_attacks(name):
    why = SPECS[name]["derivative"][len("none: "):]
    model, x = make_model(name, F64), make_x(2, F64)
    leaf = x.clone().requires_grad_(True)
    got = attribute_graph(model, leaf, method=name, **params_for(name))
    (d,) = torch.autograd.grad(got.sum(), leaf, allow_unused=True)
    assert d is None or int(torch.count_nonzero(d)) == 0, f"{name} has a derivative after all"
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    for method, params in ((name, None), ("smoothgrad", {"base": name})):
        with pytest.raises(SaliencyError, match="cannot be attacked by gradient steps") as err:
            sw.attack(model, pixels, method=method, params=params, steps=1)
        assert why in str(err.value)


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
