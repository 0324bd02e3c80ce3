"""LRP: parity with zennit 0.5.1, conservation, and the contrastive start.

zennit is run on a deep copy of each model (its canonizers edit parameters in place) with
``grad_outputs = logits ⊙ (onehot_t − onehot_c)``, the start we document. zennit has no named ε or
α1β0 composite; they are built from its ``Epsilon`` and ``AlphaBeta(1, 0)`` rules over its base
layer map, as ``EpsilonPlusFlat`` is. Errors are ``max|ours − zennit| / max|zennit|`` in float64.

Batch norms are built with ``eps = 0``: zennit merges a batch norm into the preceding layer and
leaves it computing ``x / √(1 + eps)``, which differs from the original network by ~eps/2 per
layer (measured 3.0e-5 on the ResNet below with the default eps = 1e-5); we merge exactly.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

import saliency_widgets as sw
from models import bias_free_relu_cnn

zennit = pytest.importorskip("zennit")
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import (EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite,  # noqa: E402
                               SpecialFirstLayerMapComposite, layer_map_base)
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, ZBox, ZPlus  # noqa: E402
from zennit.torchvision import ResNetCanonizer  # noqa: E402
from zennit.types import Convolution, Linear  # noqa: E402

F64 = torch.float64
TOL = 1e-11  # float64, same arithmetic up to summation order (measured ≤ 6e-13)
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
TARGET, CONTRAST = [1, 2], [3, 0]


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial batch-norm statistics and affine parameters, and eps = 0 (module doc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g, dtype=F64) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(c, generator=g, dtype=F64) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g, dtype=F64) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g, dtype=F64) * 0.4 - 0.2)
                m.eps = 0.0
    return model.eval()


def vgg_like() -> nn.Module:
    """conv-BN-ReLU twice (one ReLU in place), max pool, conv-ReLU, average pool, two linears."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5)).to(F64)
    return randomize_bn(model, 1)


def small_resnet(block: type) -> nn.Module:
    """torchvision's ResNet class with one block per stage (its blocks reuse an in-place ReLU
    and add the shortcut with ``out += identity``)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ResNet(block, [1, 1, 1, 1], num_classes=5).to(F64)
    return randomize_bn(model, 2)


MODELS = {"vgg": (vgg_like, SequentialMergeBatchNorm),
          "resnet_basic": (lambda: small_resnet(BasicBlock), ResNetCanonizer),
          "resnet_bottleneck": (lambda: small_resnet(Bottleneck), ResNetCanonizer)}


def inputs(batch: int = 2, size: int = 32) -> torch.Tensor:
    """Normalized pixels in [0, 1], so the box bounds from ``normalization`` hold."""
    pixels = torch.rand(batch, 3, size, size, dtype=F64, generator=torch.Generator().manual_seed(3))
    mean, std = (torch.tensor(v, dtype=F64).view(1, 3, 1, 1) for v in (MEAN, STD))
    return (pixels - mean) / std


def box() -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = (torch.tensor(v, dtype=F64).view(1, 3, 1, 1) for v in (MEAN, STD))
    return (0 - mean) / std, (1 - mean) / std


def zennit_composite(name: str, first: str | None, canonizer: type):
    """The zennit composite equivalent to ours (``first`` overrides the first layer's rule)."""
    low, high = box()
    hidden = {"epsilon_plus_flat": [(Convolution, ZPlus()), (nn.Linear, Epsilon())],
              "epsilon_gamma_box": [(Convolution, Gamma()), (nn.Linear, Epsilon())],
              "epsilon": [(Linear, Epsilon())], "alpha1_beta0": [(Linear, AlphaBeta(1, 0))]}
    if first is None:
        if name == "epsilon_plus_flat":
            return EpsilonPlusFlat(canonizers=[canonizer()])
        if name == "epsilon_gamma_box":
            return EpsilonGammaBox(low=low, high=high, canonizers=[canonizer()])
        return LayerMapComposite(layer_map_base() + hidden[name], canonizers=[canonizer()])
    if first == "same":
        return LayerMapComposite(layer_map_base() + hidden[name], canonizers=[canonizer()])
    first_rule = {"flat": Flat(), "box": ZBox(low, high)}[first]
    return SpecialFirstLayerMapComposite(layer_map_base() + hidden[name], [(Linear, first_rule)],
                                         canonizers=[canonizer()])


def zennit_lrp(model: nn.Module, x: torch.Tensor, target, contrast, composite) -> torch.Tensor:
    net = copy.deepcopy(model)  # zennit's canonizers merge batch norms in place
    xr = x.clone().requires_grad_(True)
    with composite.context(net) as m:
        out = m(xr)
        w = torch.zeros_like(out)
        w[range(len(x)), target] = 1
        if contrast is not None:
            w[range(len(x)), contrast] -= 1
        (r,) = torch.autograd.grad(out, xr, out.detach() * w)
    return r


def ours(model, x, target, contrast=None, **params) -> sw.Attribution:
    return sw.attribute(model, x, method="lrp", target=target, contrast=contrast,
                        normalization=(MEAN, STD), **params)


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon",
                                       "alpha1_beta0"])
def test_matches_zennit(model_name, composite):
    build, canonizer = MODELS[model_name]
    model, x = build(), inputs(size=32 if model_name == "vgg" else 16)
    # the contrastive start contains the plain one (linearity is tested below): ResNets once
    for contrast in ((None, CONTRAST) if model_name == "vgg" else (CONTRAST,)):
        ref = zennit_lrp(model, x, TARGET, contrast, zennit_composite(composite, None, canonizer))
        got = ours(model, x, TARGET, contrast, composite=composite).values
        err = rel_err(got, ref)
        assert err < TOL, f"{model_name}/{composite}/contrast={contrast}: {err:.2e} (tol {TOL})"


@pytest.mark.parametrize("composite,first", [("epsilon", "box"), ("alpha1_beta0", "flat"),
                                             ("epsilon_gamma_box", "flat"),
                                             ("epsilon_gamma_box", "same"),
                                             ("epsilon_plus_flat", "same")])
def test_first_layer_override_matches_zennit(composite, first):
    """Also the γ and z⁺ rules on the first layer, whose input has negative values (the other
    layers see ReLU outputs, where the negative-input terms are skipped as exact zeros)."""
    model, x = vgg_like(), inputs()
    ref = zennit_lrp(model, x, TARGET, None,
                     zennit_composite(composite, first, SequentialMergeBatchNorm))
    attr = ours(model, x, TARGET, composite=composite, first_layer=first)
    assert attr.params["first_layer"] == first
    assert rel_err(attr.values, ref) < TOL


def test_explicit_bounds_equal_the_normalization_box():
    model, x = vgg_like(), inputs()
    a = ours(model, x, TARGET, composite="epsilon_gamma_box").values
    b = sw.attribute(model, x, method="lrp", target=TARGET, composite="epsilon_gamma_box",
                     bounds=box()).values
    assert rel_err(b, a) < TOL


def test_unmerged_batch_norm_passes_relevance_like_zennit():
    """A batch norm before the first conv has no layer to merge into: zennit passes its relevance
    unchanged (``Pass``), and so do we, with a warning."""
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).to(F64)
    model = randomize_bn(model, 5)
    x = inputs(size=8)
    ref = zennit_lrp(model, x, TARGET, None,
                     zennit_composite("epsilon_plus_flat", None, SequentialMergeBatchNorm))
    with pytest.warns(sw.SaliencyWarning, match="not merged"):
        got = ours(model, x, TARGET).values
    assert rel_err(got, ref) < TOL


# --- conservation and the contrastive start ----------------------------------------------------
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon",
                                       "alpha1_beta0"])
def test_conservation_on_a_bias_free_network(composite):
    """Every rule conserves relevance layer by layer up to its stabilizer, so on a bias-free
    ReLU network the map sums to the score (measured ≤ 6e-11 relative with ε = stabilizer =
    1e-12; 3.5e-5 at the default 1e-6); with biases it does not (the negative control)."""
    x = torch.randn(3, 3, 12, 12, dtype=F64, generator=torch.Generator().manual_seed(0))
    target = [0, 0, 2]
    tiny = {"epsilon": 1e-12, "stabilizer": 1e-12, "bounds": (-5.0, 5.0)}
    for contrast in (None, [1, 2, 3]):
        model = bias_free_relu_cnn(k=4, width=6)
        attr = sw.attribute(model, x, method="lrp", target=target, contrast=contrast,
                            composite=composite, **tiny)
        with torch.no_grad():
            logits = model(x)
        s = logits[range(3), target] - (0 if contrast is None else logits[range(3), contrast])
        total = attr.values.flatten(1).sum(1)
        torch.testing.assert_close(attr.extras["conservation_gap"], total - s, rtol=0,
                                   atol=1e-12)
        gap = float(((total - s) / s.abs()).abs().max())
        assert gap < 1e-9, f"{composite}: relative conservation gap {gap:.2e} (tol 1e-9)"
    biased = bias_free_relu_cnn(k=4, width=6, bias=True)
    attr = sw.attribute(biased, x, method="lrp", target=target, composite=composite, **tiny)
    with torch.no_grad():
        s = biased(x)[range(3), target]
    assert float(((attr.values.flatten(1).sum(1) - s) / s.abs()).abs().max()) > 1e-3


def test_epsilon_rule_tends_to_input_times_gradient():
    """LRP-ε with ε → 0 on a bias-free ReLU network is input × gradient (measured 2e-11)."""
    model = bias_free_relu_cnn(k=4, width=6)
    x = torch.randn(3, 3, 12, 12, dtype=F64, generator=torch.Generator().manual_seed(1))
    a = sw.attribute(model, x, method="lrp", composite="epsilon", epsilon=1e-12,
                     stabilizer=1e-12, target=[0, 1, 3], contrast=[2, 2, 0]).values
    b = sw.attribute(model, x, method="input_x_gradient", target=[0, 1, 3],
                     contrast=[2, 2, 0]).values
    assert rel_err(a, b) < 1e-9


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "alpha1_beta0"])
def test_contrast_is_the_difference_of_two_maps(composite):
    """The start ``l_t e_t − l_c e_c`` is linear, so the contrastive map is map(t) − map(c)."""
    model, x = small_resnet(BasicBlock), inputs(size=16)
    both = ours(model, x, TARGET, CONTRAST, composite=composite).values
    t = ours(model, x, TARGET, composite=composite).values
    c = ours(model, x, CONTRAST, composite=composite).values
    assert rel_err(both, t - c) < 1e-12
    zero = ours(model, x, TARGET, TARGET, composite=composite).values
    assert int(torch.count_nonzero(zero)) == 0


def test_user_model_and_its_batch_norms_stay_untouched():
    """Merging batch norms happens on our calls only: parameters and buffers stay bit-identical
    (zennit's canonizer, by contrast, edits them while active)."""
    model = small_resnet(Bottleneck)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ours(model, inputs(size=16), TARGET)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_torchvision_resnet18_float32_close_to_zennit():
    model = torchvision.models.resnet18(weights=None, num_classes=5)
    model = randomize_bn(model.to(F64), 6).float()
    x = inputs(size=32).float()
    ref = zennit_lrp(model, x, TARGET, CONTRAST,
                     zennit_composite("epsilon_plus_flat", None, ResNetCanonizer))
    got = ours(model, x, TARGET, CONTRAST).values
    assert rel_err(got, ref) < 1e-5  # float32 rounding through 20 layers (measured 6.6e-7)


# --- errors ---------------------------------------------------------------------------------------
def test_box_rule_needs_bounds():
    with pytest.raises(sw.SaliencyError, match="normalization=.*bounds="):
        sw.attribute(vgg_like(), inputs(), method="lrp", composite="epsilon_gamma_box")
    with pytest.raises(sw.SaliencyError, match="low < high"):
        sw.attribute(vgg_like(), inputs(), method="lrp", first_layer="box", bounds=(1.0, 0.0))
    with pytest.raises(sw.SaliencyError, match="bounds must be"):
        sw.attribute(vgg_like(), inputs(), method="lrp", first_layer="box", bounds=3.0)


def test_box_bounds_from_normalization_refuse_a_model_that_transforms_its_input():
    class Normalizing(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = vgg_like()

        def forward(self, x):
            return self.body((x - 0.5) / 0.25)

    with pytest.raises(sw.SaliencyError, match="transformed input"):
        ours(Normalizing().eval(), inputs(), TARGET, composite="epsilon_gamma_box")


def test_input_outside_the_box_warns():
    x = inputs() * 3
    with pytest.warns(sw.SaliencyWarning, match="leaves the box"):
        ours(vgg_like(), x, TARGET, composite="epsilon_gamma_box")


def test_model_without_layers_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Softplus()).eval()
    with pytest.raises(sw.SaliencyError, match="no conv or linear"):
        sw.attribute(model, torch.randn(2, 1, 2, 3), method="lrp", target=0)


def test_unknown_composite_is_refused():
    with pytest.raises(sw.SaliencyError, match="composite"):
        sw.attribute(vgg_like(), inputs(), method="lrp", composite="zplus")
