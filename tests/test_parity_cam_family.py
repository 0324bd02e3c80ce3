"""Parity of the CAM family of issue 15 with pytorch-grad-cam 1.5.7 and TorchCAM 0.5.0.

Same models, inputs and conventions as test_parity.py (random resnet18 with trained-looking batch
norms, a small VGG; errors relative to the reference's largest value). pytorch-grad-cam rectifies,
min-max scales, resizes with OpenCV and returns float32, so its map is an increasing affine
function of ours: we fit ``theirs ≈ a·ours + b`` per image and bound the residual (their maps
span [0, 1]). TorchCAM with ``normalized=False`` returns raw maps on the layer grid: compared in
float64 after our bilinear upsampling, one image per call (see test_parity's notes).

Measured while developing (residual of the affine fit unless said otherwise): HiResCAM, XGrad-CAM,
LayerCAM ≤ 9e-7; EigenCAM ≤ 1e-6 (same orientation as their SVD on both nets here); FullGrad with
the head ×1e4 ≤ 1.5e-6 (at the default scale their 1e-7 in each channel's min-max leaves 2e-3 to
9e-3); LayerCAM over layer3 + layer4 ≤ 5e-7; TorchCAM CAM and LayerCAM 0 (float64, same
arithmetic), XGrad-CAM 2e-10 (their 1e-8 in the denominator), fused LayerCAM 4e-9 (their 1e-8).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw

pytest.importorskip("pytorch_grad_cam")
torchcam = pytest.importorskip("torchcam.methods")
from pytorch_grad_cam import (AblationCAM, EigenCAM, FullGrad, HiResCAM,  # noqa: E402
                              LayerCAM, XGradCAM)

try:
    from .test_parity import (CONTRASTS, TARGETS, TOL_AFFINE, _scaled, _targets,
                              affine_fit, assert_affine, assert_close, image, resnet, vgg)
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from test_parity import (CONTRASTS, TARGETS, TOL_AFFINE, _scaled, _targets,  # noqa: F401
                             affine_fit, assert_affine, assert_close, image, resnet, vgg)

pytestmark = pytest.mark.filterwarnings("ignore")  # their progress bars and print-warnings

TOL_TORCHCAM = 1e-12     # float64, the same arithmetic up to summation order
TOL_TORCHCAM_EPS = 1e-7  # float64; TorchCAM adds 1e-8 to XGrad-CAM's Σ A and to min-max spans
ARCHS = [("resnet", "layer4", 96), ("vgg", "features", 64)]


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    import pytorch_grad_cam.ablation_cam as ablation
    monkeypatch.setattr(ablation.tqdm, "tqdm", lambda it, *a, **k: it)


def theirs_of(cls, model: nn.Module, layers: list[str], x: torch.Tensor, targets):
    m = copy.deepcopy(model)  # they call backward on the weights and switch modes
    with cls(m, [m.get_submodule(name) for name in layers]) as cam:
        return cam(x.clone(), targets)


# --- pytorch-grad-cam ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [("hires_cam", HiResCAM), ("xgrad_cam", XGradCAM),
                                       ("layer_cam", LayerCAM)])
@pytest.mark.parametrize("arch, layer, size", ARCHS)
def test_gradient_cams_affine_to_pytorch_grad_cam(name, cls, arch, layer, size, request):
    model = request.getfixturevalue(arch)
    x = image(size)
    for contrast in (None, CONTRASTS):
        ours = sw.attribute(model, x, TARGETS, method=name, layer=layer, contrast=contrast).values
        theirs = theirs_of(cls, model, [layer], x, _targets(contrast=contrast))
        assert_affine(ours, theirs, TOL_AFFINE,
                      f"{name} (contrast={contrast}) on {arch}.{layer} vs pytorch-grad-cam")


@pytest.mark.parametrize("arch, layer, size", ARCHS)
def test_eigen_cam_affine_to_pytorch_grad_cam_up_to_sign(arch, layer, size, request):
    """Their map is relu(±p) for whichever sign their SVD returns; ours orients p. The rectified
    negative is relu(−p) = relu(p) − p, i.e. ours(relu) − ours(relu=False) (upsampling is
    linear). Exactly one orientation must fit, per image."""
    model = request.getfixturevalue(arch)
    x = image(size)
    pos = sw.attribute(model, x, method="eigen_cam", layer=layer).values
    neg = pos - sw.attribute(model, x, method="eigen_cam", layer=layer, relu=False).values
    theirs = theirs_of(EigenCAM, model, [layer], x, None)
    for i, (fp, fn) in enumerate(zip(affine_fit(pos, theirs), affine_fit(neg, theirs))):
        fits = [f for f in (fp, fn) if f[0] > 0 and f[2] <= TOL_AFFINE]
        assert len(fits) == 1, (f"EigenCAM on {arch}.{layer}, image {i}: residuals "
                                f"{fp[2]:.3g} (our orientation), {fn[2]:.3g} (flipped); exactly "
                                f"one must be ≤ {TOL_AFFINE:g}")


@pytest.mark.parametrize("arch, size", [("resnet", 64), ("vgg", 64)])
def test_fullgrad_affine_to_pytorch_grad_cam(arch, size, request):
    """Their ψ divides by (1e-7 + max) per channel; with the head ×1e4 every bias gradient is
    large enough for that ε to vanish, and the maps are affine (theirs = minmax(ours))."""
    model = _scaled(request.getfixturevalue(arch), arch, 1e4)
    x = image(size)
    for contrast in (None, CONTRASTS):
        ours = sw.attribute(model, x, TARGETS, method="fullgrad", contrast=contrast).values
        theirs = theirs_of(FullGrad, model, [], x, _targets(contrast=contrast))
        assert_affine(ours, theirs, TOL_AFFINE,
                      f"FullGrad (contrast={contrast}, head ×1e4) on {arch} vs pytorch-grad-cam")


def test_fullgrad_their_epsilon_matters_at_default_scale(vgg):
    x = image(64)
    ours = sw.attribute(vgg, x, TARGETS, method="fullgrad").values
    theirs = theirs_of(FullGrad, vgg, [], x, _targets())
    worst = max(r for _, _, r in affine_fit(ours, theirs))
    assert worst > 100 * TOL_AFFINE, f"FullGrad at default scale fits to {worst:.3g}"


@pytest.mark.parametrize("arch, layer, size, cases",
                         [("vgg", "features", 64, [([6, 5], 1), ([3, 9], -1)]),
                          ("resnet", "layer3", 48, [([3], 1)])])  # 3×3 grid, 256 channels
def test_ablation_cam_affine_to_pytorch_grad_cam(arch, layer, size, cases, request):
    """Both zero the channel (their layers have zeros, so they do not use min − 1e7). They divide
    by S, we by |S|: for S > 0 the maps are affine; for S < 0 their weights are ours negated, so
    theirs is affine to relu(−Σ w A) = ours(relu) − ours(relu=False). One image on the ResNet:
    2 × 256 full forward passes already (~2 s on 2 CPU cores)."""
    model = request.getfixturevalue(arch)
    x = image(size)[:len(cases[0][0])]
    with torch.no_grad():
        logits = model(x)
    for targets, sign in cases:
        s = logits[range(len(targets)), targets]
        assert bool((sign * s > 0).all()), f"scores {s.tolist()} do not have sign {sign}"
        ours = sw.attribute(model, x, targets, method="ablation_cam", layer=layer).values
        if sign < 0:
            ours = ours - sw.attribute(model, x, targets, method="ablation_cam", layer=layer,
                                       relu=False).values
        theirs = theirs_of(AblationCAM, model, [layer], x, _targets(targets))
        assert_affine(ours, theirs, TOL_AFFINE,
                      f"Ablation-CAM (S {'> 0' if sign > 0 else '< 0'}) on {arch}.{layer}")


def test_layer_cam_over_two_layers_affine_to_pytorch_grad_cam(resnet):
    """Their multi-layer map: each layer min-max scaled and resized, averaged, min-max again."""
    x = image(96)
    ours = sw.attribute(resnet, x, TARGETS, method="layer_cam", layer=["layer3", "layer4"],
                        fusion="mean")
    assert ours.layer == ("layer3", "layer4")
    theirs = theirs_of(LayerCAM, resnet, ["layer3", "layer4"], x, _targets())
    assert_affine(ours.values, theirs, TOL_AFFINE, "LayerCAM over layer3 + layer4 (mean)")


# --- TorchCAM -----------------------------------------------------------------------------------
def torchcam_maps(cls, model: nn.Module, layers, x: torch.Tensor, targets: list[int],
                  fuse: bool = False, **kw) -> torch.Tensor:
    """Their raw maps, one image per call, upsampled like ours: ``(B, 1, H, W)``."""
    m = copy.deepcopy(model)
    maps = []
    for i, t in enumerate(targets):
        with cls(m, layers, **kw) as extractor:
            out = m(x[i:i + 1])
            if cls is torchcam.CAM:
                found = extractor(t, normalized=False)
            else:
                found = extractor(t, out, normalized=fuse)
            maps.append(extractor.fuse_cams(found) if fuse else found[0])
    raw = torch.cat([mp.detach() for mp in maps])[:, None]
    return F.interpolate(raw, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def resnet64(resnet):
    return copy.deepcopy(resnet).double()


@pytest.mark.parametrize("name, cls, kw, tol", [
    ("cam", "CAM", {"fc_layer": "fc"}, TOL_TORCHCAM),
    ("xgrad_cam", "XGradCAM", {}, TOL_TORCHCAM_EPS),
    ("layer_cam", "LayerCAM", {}, TOL_TORCHCAM)])
def test_cams_match_torchcam_float64(name, cls, kw, tol, resnet64):
    x = image(96, dtype=torch.float64)
    theirs = torchcam_maps(getattr(torchcam, cls), resnet64, "layer4", x, TARGETS, **kw)
    ours = sw.attribute(resnet64, x, TARGETS, method=name, layer="layer4").values
    assert_close(ours, theirs, tol, f"{name} vs TorchCAM {cls} (float64, resnet18.layer4)")


def test_layer_cam_fused_matches_torchcam_float64(resnet64):
    x = image(96, dtype=torch.float64)
    theirs = torchcam_maps(torchcam.LayerCAM, resnet64, ["layer3", "layer4"], x, TARGETS,
                           fuse=True)
    ours = sw.attribute(resnet64, x, TARGETS, method="layer_cam", layer=["layer3", "layer4"],
                        fusion="max").values
    assert_close(ours, theirs, TOL_TORCHCAM_EPS,
                 "LayerCAM fused over layer3 + layer4 vs TorchCAM fuse_cams (float64)")
