"""Parity with the reference implementations: Captum 0.9 and pytorch-grad-cam 1.5.

Randomly initialised models (fixed seeds, chosen once, never searched), eval mode, 64–112 px,
float32 (float64 where cheap). Every assert message states the measured error and its tolerance.

Errors are relative to the reference's largest magnitude, ``max|ours − ref| / max|ref|``, unless
said otherwise. pytorch-grad-cam min-max normalises its maps (twice) and resizes them with OpenCV,
so its map is an *affine* function of ours (ours is raw scale): there we fit ``theirs ≈ a·ours + b``
per image by least squares and bound the residual (their maps span [0, 1]) and require ``a > 0``.

Findings recorded here (see the individual tests):

* Guided backprop on torchvision ResNets: each ``BasicBlock`` calls its one
  ``nn.ReLU(inplace=True)`` module twice. Captum is nevertheless *right*: its
  ``_register_backward_hook`` registers tensor hooks per forward *call* (on that call's
  input/output) and guided backprop only rewrites the call's own ``grad_input``
  (``relu(grad_input)``); the pre-hook clones the input, so the in-place ReLU is safe. Both Captum
  and ours equal an independent reference whose ReLUs are stateless guided modules. Captum is wrong
  (silently plain gradients) only for functional ``F.relu``, which it documents; we intercept every
  ReLU call — shown on a functional-ReLU model.
* Captum's ``riemann_trapezoid`` weights sum to (n−1)/n; ours sum to 1, so Captum's trapezoid IG is
  exactly ``(n−1)/n`` × ours, for any model; on a linear model ours is exact.
* pytorch-grad-cam's Grad-CAM++ adds ε = 1e-6 to the α denominator ``2g² + ΣA·g³``; ours does not
  (documented). Where |g| ≈ 1e-3 that ε changes α by O(1); we compare in a regime with large layer
  gradients and show that the relation fails by orders of magnitude more in the default regime.
* float32 caveat: an ulp of difference in an input (e.g. Captum's float32 ``torch.linspace`` IG
  nodes) can move a ReLU pre-activation across 0 and change a gradient by O(1) locally. So float32
  comparisons are set up to evaluate bitwise-identical inputs (IG with 8 steps: dyadic nodes), and
  the rest is compared in float64.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import saliency_widgets as sw

captum_attr = pytest.importorskip("captum.attr")
pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from captum.attr import (  # noqa: E402
    GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients, LayerAttribution,
    LayerGradCam, Occlusion, Saliency)
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")  # Captum's "Setting backward hooks" etc.

TARGETS = [3, 7]
CONTRASTS = [5, 0]

# Tolerances (relative to the reference's max |value|).
TOL32 = 1e-5      # float32, same arithmetic up to summation order / batch composition
TOL64 = 1e-12     # float64, same arithmetic
TOL64_CAPTUM_IG = 1e-6  # float64 IG vs Captum: Captum casts its step sizes to float32
#                         (``torch.tensor(step_sizes).float()``) and builds Riemann nodes with
#                         float32 ``torch.linspace``: ~6e-8 relative rounding per node
TOL_SCORES = 1e-4     # Score-CAM channel scores: logits of masked inputs whose masks differ in
#                       the last ulp (their (B, K) interpolation layout vs our per-channel one,
#                       their +1e-8 in the min-max denominator); a resnet18 logit is a sum of terms
#                       with Σ|terms| ≈ 50 |logit|, so ~1e-6 absolute differences appear (4e-6 rel)
TOL_AFFINE = 1e-5     # residual of theirs ≈ a·ours + b (their map spans [0, 1]), OpenCV vs torch
#                       bilinear resize in float32
TOL_AFFINE_PP = 1e-4  # Grad-CAM++ with final layer ×1e4: their ε=1e-6 leaves ≤ 6e-6 here
#                       (4.5e-5 for the VGG at 96 px while developing); ε-free: ~3e-7


# --- models and inputs ------------------------------------------------------------------------

class SmallVGG(nn.Module):
    """VGG-style: ``features`` (conv/ReLU(inplace)/maxpool) → avgpool → classifier with a ReLU,
    so ReLUs run after the CAM layer (Guided Grad-CAM's second, plain pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


class FunctionalReLUNet(nn.Module):
    """ReLUs called functionally: module-hook guided backprop (Captum) cannot see them."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x))
        x = self.c2(x).relu()
        return self.fc(x.mean(dim=(2, 3)))


class Contrast(nn.Module):
    """Output ``logit[t] − logit[c]`` per example as (B, 1): Captum's view of ``contrast=``."""

    def __init__(self, net: nn.Module, target: list[int], contrast: list[int]) -> None:
        super().__init__()
        self.net = net
        self.t = torch.tensor(target)[:, None]
        self.c = torch.tensor(contrast)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        # Captum stacks perturbed copies batch-major (IG: all examples at α₀, then α₁, …), so
        # row r is example r mod B.
        reps = logits.shape[0] // self.t.shape[0]
        return logits.gather(1, self.t.repeat(reps, 1)) - logits.gather(1, self.c.repeat(reps, 1))


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    """resnet18 with random BatchNorm statistics and affine parameters, as after training: at
    torchvision's init (mean 0, var 1, γ 1, β 0) the bias-free trunk is positively homogeneous, so
    the input gradient is the same at every point α·x of an IG path — too easy a test."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    torch.manual_seed(0)
    return SmallVGG().eval()


def image(size: int, batch: int = 2, seed: int = 1, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g, dtype=torch.float64).to(dtype)


def rel_err(ours: torch.Tensor, ref: torch.Tensor, scale: float | None = None
            ) -> tuple[float, float]:
    """``(max |ours − ref|, that / scale)``; ``scale`` defaults to ``max |ref|``."""
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    ours, ref = ours.detach().double(), ref.detach().double()
    assert ref.abs().max().item() > 0, "the reference is identically zero: a vacuous comparison"
    scale = ref.abs().max().item() if scale is None else scale
    abs_err = (ours - ref).abs().max().item()
    return abs_err, abs_err / scale


def assert_close(ours: torch.Tensor, ref: torch.Tensor, tol: float, what: str,
                 scale: float | None = None, scale_name: str = "max |reference|") -> None:
    abs_err, rel = rel_err(ours, ref, scale)
    assert rel <= tol, (f"{what}: max abs err {abs_err:.3g}, rel err {rel:.3g} > tolerance "
                        f"{tol:g} (relative to {scale_name})")


def affine_fit(ours: torch.Tensor, theirs: np.ndarray) -> list[tuple[float, float, float]]:
    """Per image: least-squares ``theirs ≈ a·ours + b``; returns (a, b, max |residual|)."""
    assert ours.shape[1] == 1 and tuple(ours.shape[-2:]) == theirs.shape[-2:]
    fits = []
    for o, th in zip(ours[:, 0].detach().double().numpy(), theirs.astype(np.float64)):
        assert o.std() > 0, "our map is constant: the affine comparison would be vacuous"
        assert th.max() - th.min() > 0.99, f"their map spans {th.min()}..{th.max()}, not [0, 1]"
        design = np.stack([o.ravel(), np.ones(o.size)], 1)
        (a, b), *_ = np.linalg.lstsq(design, th.ravel(), rcond=None)
        fits.append((float(a), float(b), float(np.abs(design @ [a, b] - th.ravel()).max())))
    return fits


def assert_affine(ours: torch.Tensor, theirs: np.ndarray, tol: float, what: str) -> None:
    for i, (a, b, resid) in enumerate(affine_fit(ours, theirs)):
        assert a > 0, f"{what}, image {i}: slope {a:.3g} of theirs ≈ a·ours + b is not positive"
        assert resid <= tol, (f"{what}, image {i}: max |theirs − ({a:.4g}·ours + {b:.4g})| = "
                              f"{resid:.3g} > tolerance {tol:g} (their map spans [0, 1])")


# --- Captum: gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float32, TOL32), (torch.float64, TOL64)])
@pytest.mark.parametrize("arch", ["resnet", "vgg"])
def test_gradient_input_x_gradient_guided_backprop_match_captum(arch, dtype, tol, request):
    model = copy.deepcopy(request.getfixturevalue(arch)).to(dtype)
    x = image(64, dtype=dtype)
    cases = [("gradient", Saliency(model), {"abs": False}),
             ("input_x_gradient", InputXGradient(model), {}),
             ("guided_backprop", GuidedBackprop(model), {})]
    for name, explainer, kwargs in cases:
        ours = sw.attribute(model, x, TARGETS, method=name).values
        assert ours.dtype == dtype
        ref = explainer.attribute(x.clone(), target=TARGETS, **kwargs)
        assert_close(ours, ref, tol, f"{name} vs Captum on {arch} ({dtype})")


class _RefGuidedReLU(torch.autograd.Function):
    """Independent guided ReLU: backward passes ``relu(grad) · 1[x > 0]``."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class _RefGuidedReLUModule(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # stateless: reuse is harmless
        return _RefGuidedReLU.apply(x)


def reference_guided_backprop(model: nn.Module, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    ref = copy.deepcopy(model)
    for parent in list(ref.modules()):
        for key, child in parent._modules.items():
            if isinstance(child, nn.ReLU):
                parent._modules[key] = _RefGuidedReLUModule()
    x = x.clone().requires_grad_(True)
    logits = ref(x)
    (g,) = torch.autograd.grad(logits[torch.arange(len(target)), target].sum(), x)
    return g


def test_guided_backprop_resnet_reused_relu_module(resnet):
    """torchvision's BasicBlock calls one ``nn.ReLU(inplace=True)`` twice. Captum hooks tensors
    per call and rewrites only that call's ``grad_input``, so it is right here too; ours
    intercepts every ReLU call. Both equal a reference with stateless guided-ReLU modules."""
    block = resnet.layer1[0]
    assert sum(isinstance(m, nn.ReLU) for m in block.modules()) == 1  # the premise: one module
    x = image(64)
    ref = reference_guided_backprop(resnet, x, TARGETS)
    ours = sw.attribute(resnet, x, TARGETS, method="guided_backprop").values
    theirs = GuidedBackprop(resnet).attribute(x.clone(), target=TARGETS)
    assert_close(ours, ref, TOL32, "ours vs reference guided backprop (resnet18)")
    assert_close(theirs, ref, TOL32, "Captum vs reference guided backprop (resnet18)")
    plain = sw.attribute(resnet, x, TARGETS, method="gradient").values
    _, rel = rel_err(ours, plain)
    assert rel > 0.1, f"guided backprop ≈ plain gradient (rel diff {rel:.3g}): guidance inactive"


def test_guided_backprop_functional_relu_captum_falls_back_to_gradient():
    """With functional ReLUs Captum (module hooks) silently returns the plain gradient, as its
    docstring warns; ours still guides every ReLU and matches the reference."""
    torch.manual_seed(0)
    model = FunctionalReLUNet().eval()
    x = image(64)
    ours = sw.attribute(model, x, TARGETS, method="guided_backprop").values
    x_req = x.clone().requires_grad_(True)
    logits = model(x_req)
    (plain,) = torch.autograd.grad(logits[[0, 1], TARGETS].sum(), x_req)
    xr = x.clone().requires_grad_(True)
    h = _RefGuidedReLU.apply(model.c1(xr))
    h = _RefGuidedReLU.apply(model.c2(h))
    (ref,) = torch.autograd.grad(model.fc(h.mean(dim=(2, 3)))[[0, 1], TARGETS].sum(), xr)
    assert_close(ours, ref, TOL32, "ours vs reference guided backprop (functional ReLU)")
    theirs = GuidedBackprop(model).attribute(x.clone(), target=TARGETS)
    assert_close(theirs, plain, TOL32, "Captum GBP on functional ReLUs vs plain gradient")
    _, rel = rel_err(ref, plain)
    assert rel > 0.1, f"guided ≈ plain here (rel diff {rel:.3g}); the model does not separate them"


# --- Captum: integrated gradients -------------------------------------------------------------

RULES = [("gauss_legendre", "gausslegendre"), ("left", "riemann_left"),
         ("right", "riemann_right"), ("midpoint", "riemann_middle")]


def _ig_rules_match_captum(model, x, *, steps, tol, where):
    """Every quadrature rule of ours against Captum's same-named method, baseline 0."""
    ig = IntegratedGradients(model)
    for rule, captum_rule in RULES:
        ours = sw.attribute(model, x, TARGETS, method="integrated_gradients", rule=rule,
                            steps=steps, baseline=0.0).values
        ref = ig.attribute(x.clone(), baselines=0.0, target=TARGETS, n_steps=steps,
                           method=captum_rule)
        assert_close(ours, ref, tol, f"IG rule={rule} vs Captum {captum_rule} on {where}")


@pytest.mark.parametrize("arch", ["resnet", "vgg"])
def test_integrated_gradients_matches_captum_float32(arch, request):
    """steps = 8, a power of two, so that every path point is bitwise the same in both libraries:
    Gauss-Legendre nodes come from float64 NumPy in both; Captum builds Riemann nodes with
    float32 ``torch.linspace`` — exact here (k/8, (k+½)/8 are dyadic), but for e.g. the
    trapezoid's k/7 it can differ from ours by an ulp, and in float32 one ulp can move a ReLU
    pre-activation across 0 and change the gradient by O(1) locally (measured 4e-3 relative on
    resnet18: float32 noise, not a difference of method). The trapezoid is compared in float64."""
    model = request.getfixturevalue(arch)
    x = image(64)
    _ig_rules_match_captum(model, x, steps=8, tol=TOL32, where=f"{arch} (float32)")


def test_integrated_gradients_matches_captum_float64(vgg):
    """float64 (on the small VGG: float64 convolutions are slow on CPU), every rule including
    the trapezoid, whose Captum weights sum to (n−1)/n: Captum = (n−1)/n · ours on any model."""
    model = copy.deepcopy(vgg).double()
    x = image(64, dtype=torch.float64)
    steps = 7
    _ig_rules_match_captum(model, x, steps=steps, tol=TOL64_CAPTUM_IG, where="vgg (float64)")
    ig = IntegratedGradients(model)
    ours = sw.attribute(model, x, TARGETS, method="integrated_gradients", rule="trapezoid",
                        steps=steps, baseline=0.0).values
    ref = ig.attribute(x.clone(), baselines=0.0, target=TARGETS, n_steps=steps,
                       method="riemann_trapezoid")
    assert_close(ours * (steps - 1) / steps, ref, TOL64_CAPTUM_IG,
                 "IG trapezoid: Captum vs (n−1)/n · ours on vgg (float64)")
    _, rel = rel_err(ours, ref)
    assert rel > 0.5 / steps, f"trapezoid: ours ≈ Captum (rel {rel:.3g}); expected a 1/n bias"


def test_integrated_gradients_trapezoid_bias_on_linear_model():
    """On a linear model IG is exactly ``(x − x′) · w``. Ours (weights summing to 1) is exact;
    Captum's ``riemann_trapezoid`` gives ``(n−1)/n`` of it and misses completeness by 1/n."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10)).double().eval()
    x = image(64, dtype=torch.float64)
    steps = 10
    exact = x * model[1].weight[TARGETS].reshape(2, 3, 64, 64).detach()
    ours = sw.attribute(model, x, TARGETS, method="integrated_gradients", rule="trapezoid",
                        steps=steps, baseline=0.0)
    theirs = IntegratedGradients(model).attribute(x.clone(), baselines=0.0, target=TARGETS,
                                                  n_steps=steps, method="riemann_trapezoid")
    assert_close(ours.values, exact, TOL64, "ours trapezoid IG vs exact IG of a linear model")
    assert_close(theirs, exact * (steps - 1) / steps, TOL64_CAPTUM_IG,
                 "Captum trapezoid IG vs (n−1)/n · exact IG of a linear model")
    gap = ours.extras["completeness_gap"].abs().max().item()
    assert gap <= 1e-9, f"our completeness gap {gap:.3g} > 1e-9 on a linear model"
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x)))[[0, 1], TARGETS]
    their_gap = (theirs.flatten(1).sum(1) - delta).abs()
    expected = delta.abs() / steps
    assert torch.allclose(their_gap, expected, rtol=1e-6), (
        f"Captum's completeness gap {their_gap.tolist()} != |Δf|/n {expected.tolist()} (rtol 1e-6)")


# --- Captum: occlusion ------------------------------------------------------------------------

@pytest.mark.parametrize("arch, size, window, stride", [("resnet", 64, 16, 12),
                                                         ("vgg", 72, 12, 6)])
def test_occlusion_matches_captum(arch, size, window, stride, request):
    model = request.getfixturevalue(arch)
    assert (size - window) % stride == 0  # every pixel covered the same way in both libraries
    x = image(size)
    ours = sw.attribute(model, x, TARGETS, method="occlusion", window=window, stride=stride,
                        baseline=0.0)
    assert ours.values.shape == (2, 1, size, size) and ours.extras["uncovered_pixels"] == 0
    ref = Occlusion(model).attribute(x.clone(), sliding_window_shapes=(3, window, window),
                                     strides=(3, stride, stride), baselines=0.0, target=TARGETS)
    # Each value is f(x) − f(x_occluded), a difference of nearly equal float32 scores computed in
    # differently composed batches (Captum: B rows per window; ours: many windows per chunk), so
    # its rounding is relative to |f|, not to the (smaller) difference.
    with torch.no_grad():
        score = model(x)[[0, 1], TARGETS].abs().max().item()
    ref_max = ref.abs().max().item()
    assert_close(ours.values.expand_as(ref), ref, TOL32,
                 f"occlusion {window}/{stride} vs Captum on {arch} (our map broadcast to channels)",
                 scale=max(score, ref_max), scale_name="max(|f(x)|, max |reference|)")


# --- Captum: CAMs -----------------------------------------------------------------------------

@pytest.mark.parametrize("arch, layer, size", [("resnet", "layer4", 96), ("vgg", "features", 64)])
def test_grad_cam_and_guided_grad_cam_match_captum(arch, layer, size, request):
    model = request.getfixturevalue(arch)
    module = model.get_submodule(layer)
    x = image(size)
    ours = sw.attribute(model, x, TARGETS, method="grad_cam", layer=layer).values
    low = LayerGradCam(model, module).attribute(x.clone(), target=TARGETS, relu_attributions=True)
    ref = LayerAttribution.interpolate(low, (size, size), "bilinear")
    assert_close(ours, ref, TOL32, f"grad_cam vs Captum LayerGradCam+bilinear on {arch}.{layer}")
    ours = sw.attribute(model, x, TARGETS, method="guided_grad_cam", layer=layer).values
    ref = GuidedGradCam(model, module).attribute(x.clone(), target=TARGETS,
                                                 interpolate_mode="bilinear")
    assert_close(ours, ref, TOL32, f"guided_grad_cam vs Captum GuidedGradCam on {arch}.{layer}")


# --- Captum: contrastive objective ------------------------------------------------------------

def test_contrast_matches_captum_on_difference_model(resnet):
    """``contrast=c`` explains ``logit[t] − logit[c]``: Captum on a wrapper whose only output is
    that difference (target=0) must agree."""
    x = image(64)
    diff = Contrast(resnet, TARGETS, CONTRASTS).eval()
    kw = dict(contrast=CONTRASTS)
    checks = [
        ("gradient", {}, Saliency(diff).attribute(x.clone(), target=0, abs=False)),
        ("guided_backprop", {}, GuidedBackprop(diff).attribute(x.clone(), target=0)),
        ("integrated_gradients", dict(steps=8, rule="gauss_legendre", baseline=0.0),
         IntegratedGradients(diff).attribute(x.clone(), baselines=0.0, target=0, n_steps=8,
                                             method="gausslegendre")),
        ("occlusion", dict(window=16, stride=16, baseline=0.0),
         Occlusion(diff).attribute(x.clone(), sliding_window_shapes=(3, 16, 16),
                                   strides=(3, 16, 16), baselines=0.0, target=0)),
        ("grad_cam", dict(layer="layer4"), LayerAttribution.interpolate(
            LayerGradCam(diff, diff.net.layer4).attribute(x.clone(), target=0,
                                                          relu_attributions=True),
            (64, 64), "bilinear")),
    ]
    for name, params, ref in checks:
        ours = sw.attribute(resnet, x, TARGETS, method=name, **kw, **params)
        assert ours.contrast == tuple(CONTRASTS)
        values = ours.values.expand_as(ref) if name == "occlusion" else ours.values
        assert_close(values, ref, TOL32, f"contrastive {name} vs Captum on logit[t]−logit[c]")
    plain = sw.attribute(resnet, x, TARGETS, method="gradient").values
    _, rel = rel_err(plain, Saliency(diff).attribute(x.clone(), target=0, abs=False))
    assert rel > 0.1, f"contrast did not change the gradient (rel diff {rel:.3g})"


# --- pytorch-grad-cam -------------------------------------------------------------------------

def _targets(target=TARGETS, contrast=None):
    if contrast is None:
        return [ClassifierOutputTarget(t) for t in target]
    return [lambda o, t=t, c=c: o[..., t] - o[..., c] for t, c in zip(target, contrast)]


@pytest.mark.parametrize("arch, layer, size", [("resnet", "layer4", 96), ("vgg", "features", 64)])
def test_grad_cam_affine_to_pytorch_grad_cam(arch, layer, size, request):
    """theirs = minmax(resize_cv2(minmax(relu(cam_low)))): an increasing affine map of ours
    (OpenCV's INTER_LINEAR is half-pixel bilinear like align_corners=False)."""
    model = copy.deepcopy(request.getfixturevalue(arch))  # they call backward on the weights
    x = image(size)
    for contrast in (None, CONTRASTS):
        ours = sw.attribute(model, x, TARGETS, method="grad_cam", layer=layer,
                            contrast=contrast).values
        with GradCAM(model, [model.get_submodule(layer)]) as cam:
            theirs = cam(x.clone(), _targets(contrast=contrast))
        assert_affine(ours, theirs, TOL_AFFINE,
                      f"GradCAM (contrast={contrast}) on {arch}.{layer} vs pytorch-grad-cam")


def _scaled(model: nn.Module, arch: str, factor: float) -> nn.Module:
    m = copy.deepcopy(model)
    last = m.fc if arch == "resnet" else m.classifier[-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return m


@pytest.mark.parametrize("arch, layer, size", [("resnet", "layer4", 96), ("vgg", "features", 64)])
def test_grad_cam_plusplus_affine_to_pytorch_grad_cam(arch, layer, size, request):
    """pytorch-grad-cam's α = g²/(2g² + ΣA·g³ + 1e-6); ours has no ε (documented). Scaling the
    final linear layer by 1e4 scales every layer gradient g by 1e4 (the map is a function of the
    model, so both sides see the same scaled model): then g² ≫ 1e-6 at nearly every position and
    ε is negligible; the ~1e-5 residual left comes from the few positions with |g| ≈ 1e-3."""
    model = _scaled(request.getfixturevalue(arch), arch, 1e4)
    x = image(size)
    ours = sw.attribute(model, x, TARGETS, method="grad_cam_plusplus", layer=layer).values
    with GradCAMPlusPlus(model, [model.get_submodule(layer)]) as cam:
        theirs = cam(x.clone(), _targets())
    assert_affine(ours, theirs, TOL_AFFINE_PP,
                  f"Grad-CAM++ (final layer ×1e4) on {arch}.{layer} vs pytorch-grad-cam")


def test_grad_cam_plusplus_epsilon_matters_at_default_scale(vgg):
    """The documented convention: at the unscaled model, layer gradients are ~1e-4 and their ε
    dominates α, so the maps are *not* affinely related (residual ≫ the tolerance above)."""
    model = copy.deepcopy(vgg)
    x = image(64)
    ours = sw.attribute(model, x, TARGETS, method="grad_cam_plusplus", layer="features").values
    with GradCAMPlusPlus(model, [model.features]) as cam:
        theirs = cam(x.clone(), _targets())
    worst = max(r for _, _, r in affine_fit(ours, theirs))
    assert worst > 100 * TOL_AFFINE_PP, (
        f"Grad-CAM++ at default scale is affine to pytorch-grad-cam (residual {worst:.3g}); "
        f"their ε=1e-6 was expected to matter here")


@pytest.mark.parametrize("arch, layer, size", [("vgg", "features", 64), ("resnet", "layer3", 32)])
def test_score_cam_channel_scores_and_map_match_pytorch_grad_cam(arch, layer, size, request,
                                                                 monkeypatch):
    """Our ``extras['channel_scores']`` are their per-channel scores before the softmax (captured
    by wrapping ``torch.nn.Softmax``); our ``channel_softmax=True`` map is affine to theirs; our
    default weights are those scores minus f(0). ResNet at 32 px: layer3 is a 2×2 grid with 256
    channels (layer4 would be 1×1: constant masks). Contrastive targets on the VGG only (time)."""
    import tqdm
    model = request.getfixturevalue(arch)
    module = model.get_submodule(layer)
    x = image(size)
    softmax = torch.nn.Softmax
    captured: list[torch.Tensor] = []

    class Recording(softmax):
        def forward(self, s: torch.Tensor) -> torch.Tensor:
            captured.append(s.clone())
            return super().forward(s)

    monkeypatch.setattr(torch.nn, "Softmax", Recording)
    monkeypatch.setattr(tqdm, "tqdm", lambda it, *a, **k: it)  # their per-batch progress bars
    their_scores: dict = {}
    for contrast in ((None, CONTRASTS) if arch == "vgg" else (None,)):
        captured.clear()
        with ScoreCAM(model, [module]) as cam:
            cam.batch_size = 64  # = ours: the same 64 masked images per forward on both sides
            theirs = cam(x.clone(), _targets(contrast=contrast))
        assert len(captured) == 1
        their_scores[None if contrast is None else "c"] = captured[0]
        ours = sw.attribute(model, x, TARGETS, method="score_cam", layer=layer,
                            contrast=contrast, channel_softmax=True, batch_size=64)
        what = f"Score-CAM (contrast={contrast}) on {arch}.{layer}"
        assert_close(ours.extras["channel_scores"], captured[0], TOL_SCORES,
                     f"{what}: channel_scores vs their pre-softmax scores")
        assert_affine(ours.values, theirs, TOL_AFFINE, f"{what}: channel_softmax map")

    # Default (no softmax): weights = their scores − f(0), f(0) the score of the all-zero input.
    plain = sw.attribute(model, x, TARGETS, method="score_cam", layer=layer)
    acts: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: acts.append(o.detach()))
    try:
        with torch.no_grad():
            model(x)
            f0 = model(torch.zeros_like(x))[[0, 1], TARGETS]
    finally:
        handle.remove()
    weights = (their_scores[None] - f0[:, None])[:, :, None, None]
    ref = F.interpolate((weights * acts[0]).sum(1, keepdim=True).clamp(min=0), size=(size, size),
                        mode="bilinear", align_corners=False)
    assert_close(plain.values, ref, TOL32,
                 f"Score-CAM default map on {arch}.{layer} vs relu(Σ (their score − f(0))·A)")
