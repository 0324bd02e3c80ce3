"""The CAM family of issue 15: closed forms on models whose answer is known on paper.

HiResCAM, XGrad-CAM, LayerCAM, EigenCAM, Ablation-CAM, FullGrad and the original CAM, in float64
on tiny models (tests/models.py). On a "conv → ReLU → GAP → linear" head the layer gradient is
the constant ``w_tk / Z`` (Z = h·w), which gives each method a closed form; other heads are the
negative controls. Parity with pytorch-grad-cam and TorchCAM is in test_parity_cam_family.py.
Tolerances are absolute, stated per assert (float64 arithmetic: ~1e-13 on values of order 1).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw
from saliency_widgets.methods.fullgrad import channel_scaled_sum

try:
    from .models import bias_free_relu_cnn, fill_, gap_head_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, fill_, gap_head_cnn

pytestmark = pytest.mark.filterwarnings("error::saliency_widgets.errors.SaliencyWarning")

F64 = torch.float64


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    torch.testing.assert_close(actual, expected.to(actual.dtype).expand_as(actual), atol=atol,
                               rtol=0)


def gap_parts(model: nn.Sequential, x: torch.Tensor):
    """Activation A of layer "1", logits, head weight and bias of ``gap_head_cnn``."""
    with torch.no_grad():
        return model[1](model[0](x)), model(x), model[4].weight.detach(), model[4].bias.detach()


def attr(model, x, target, method, **kw) -> torch.Tensor:
    return sw.attribute(model, x, target, method=method, **kw).values


# --- GAP → linear: every gradient CAM reduces to CAM / Z ----------------------------------------
def test_gradient_cams_on_gap_head_closed_forms():
    model = gap_head_cnn(c=2, channels=5, k=4, seed=13)
    x = rand(2, 2, 6, 7, seed=14)
    t, c = [1, 3], [0, 2]
    a, y, w, b = gap_parts(model, x)
    z = 6 * 7
    for contrast in (None, c):
        wt = w[t] - (0 if contrast is None else w[contrast])
        cam_over_z = torch.einsum("bk,bkij->bij", wt, a)[:, None] / z
        assert float(cam_over_z.min()) < 0 < float(cam_over_z.max())  # the ReLU matters
        for name in ("hires_cam", "xgrad_cam", "grad_cam"):
            v = attr(model, x, t, name, layer="1", relu=False, contrast=contrast)
            close(v, cam_over_z, atol=1e-13)  # HiResCAM == XGrad-CAM == Grad-CAM == CAM/Z
            close(attr(model, x, t, name, layer="1", contrast=contrast),
                  cam_over_z.clamp(min=0), atol=1e-13)
        layer_cam = torch.einsum("bk,bkij->bij", (wt / z).clamp(min=0), a)[:, None]
        close(attr(model, x, t, "layer_cam", layer="1", relu=False, contrast=contrast),
              layer_cam, atol=1e-13)
        cam = attr(model, x, t, "cam", contrast=contrast)  # relu=False by default, like the paper
        close(cam, cam_over_z * z, atol=1e-12)
        # Σ_ij CAM / Z is the objective without the head's bias
        bias = b[t] - (0 if contrast is None else b[contrast])
        s = y[range(2), t] - (0 if contrast is None else y[range(2), contrast])
        close(cam.sum((1, 2, 3)) / z, s - bias, atol=1e-12)


def test_hires_cam_sums_to_the_objective_on_any_linear_head():
    """Flatten → Linear after the layer: S = Σ W⊙A + b, so Σ_ij HiResCAM = S − b, while Grad-CAM
    (the gradient averaged first) misses it: the negative control."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 4))
    model = fill_(model, seed=3).to(F64).eval()
    x = rand(2, 2, 5, 5, seed=4)
    t = [0, 3]
    with torch.no_grad():
        y = model(x)
    hires = attr(model, x, t, "hires_cam", layer="1", relu=False)
    close(hires.sum((1, 2, 3)), y[range(2), t] - model[3].bias[t], atol=1e-12)
    grad_cam = attr(model, x, t, "grad_cam", layer="1", relu=False)
    assert float((grad_cam.sum((1, 2, 3)) - hires.sum((1, 2, 3))).abs().min()) > 1e-3


def test_xgrad_cam_weights_closed_form_on_a_non_gap_head():
    """w_k = Σ_ij A_k g_k / Σ_ij A_k with g = dS/dA; a channel summing to 0 gets weight 0."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 4))
    model = fill_(model, seed=5).to(F64).eval()
    with torch.no_grad():
        model[0].weight[1] = 0  # channel 1 is dead: Σ A_1 = 0 after a non-positive bias
        model[0].bias[1] = -1.0
    x = rand(2, 2, 4, 4, seed=6)
    t = [2, 1]
    with torch.no_grad():
        a = model[1](model[0](x))
    g = model[3].weight[t].view(2, 3, 4, 4)  # the head is linear in A: g is its weight
    total = a.sum((2, 3))
    assert bool((total[:, 1] == 0).all())
    wk = torch.where(total != 0, (a * g).sum((2, 3)) / torch.where(total != 0, total, 1), 0)
    expected = torch.einsum("bk,bkij->bij", wk, a)[:, None]
    close(attr(model, x, t, "xgrad_cam", layer="1", relu=False), expected, atol=1e-13)


# --- the original CAM refuses heads it does not apply to ----------------------------------------
@pytest.mark.parametrize("case", ["pre_relu_layer", "mlp_head", "max_pool", "no_linear"])
def test_cam_refuses_other_heads_in_words(case):
    gap = gap_head_cnn(c=2, channels=5, k=4, seed=13)
    conv = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU())
    models = {
        "pre_relu_layer": (gap, "0", "not the spatial mean"),
        "mlp_head": (nn.Sequential(*conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 6),
                                   nn.ReLU(), nn.Linear(6, 4)), "1", "not the spatial mean"),
        "max_pool": (nn.Sequential(*conv, nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                                   nn.Linear(5, 4)), "1", "not the spatial mean"),
        "no_linear": (nn.Sequential(*conv, nn.Conv2d(5, 4, 1), nn.AdaptiveAvgPool2d(1),
                                    nn.Flatten()), "1", "no nn.Linear produces the logits"),
    }
    model, layer, words = models[case]
    model = fill_(model, seed=2).to(F64).eval()
    with pytest.raises(sw.SaliencyError, match=f"global average pool.*{words}"):
        sw.attribute(model, rand(1, 2, 6, 6, seed=1), method="cam", layer=layer)


class FunctionalGap(nn.Module):
    """conv → ReLU, then a functional global mean, a Dropout and the linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.body(x).mean((2, 3))))


def test_cam_accepts_functional_pooling_and_dropout_between():
    """The check is numerical, so x.mean((2, 3)) and a Dropout (eval mode) pass."""
    model = fill_(FunctionalGap(), seed=7).to(F64).eval()
    x = rand(2, 2, 5, 5, seed=9)
    v = attr(model, x, [0, 2], "cam", layer="body.1")
    with torch.no_grad():
        a = model.body(x)
    close(v, torch.einsum("bk,bkij->bij", model.head.weight[[0, 2]], a)[:, None], atol=1e-13)


# --- Ablation-CAM: on a GAP head the drop of channel k is w_tk · mean(A_k) ----------------------
def test_ablation_cam_closed_form_on_gap_head():
    model = gap_head_cnn(c=2, channels=5, k=4, seed=21)
    x = rand(3, 2, 6, 6, seed=22)
    t, c = [0, 1, 3], [2, 2, 1]
    a, y, w, _ = gap_parts(model, x)
    for contrast in (None, c):
        wt = w[t] - (0 if contrast is None else w[contrast])
        s = y[range(3), t] - (0 if contrast is None else y[range(3), contrast])
        drops = wt * a.mean((2, 3))  # zeroing A_k removes exactly its term of the linear head
        res = sw.attribute(model, x, t, method="ablation_cam", layer="1", relu=False,
                           contrast=contrast)
        close(res.extras["score_drops"], drops, atol=1e-13)
        expected = torch.einsum("bk,bkij->bij", drops / s.abs()[:, None], a)[:, None]
        close(res.values, expected, atol=1e-12)


def test_ablation_cam_is_nan_with_a_warning_where_the_objective_vanishes():
    """Classes 0 and 1 have identical head rows, so S = logit_0 − logit_1 = 0 without being a
    self-contrast: (S − S_k)/|S| is undefined there, and only there."""
    model = gap_head_cnn(c=2, channels=5, k=4, seed=21)
    with torch.no_grad():
        model[4].weight[1] = model[4].weight[0]
        model[4].bias[1] = model[4].bias[0]
    x = rand(2, 2, 6, 6, seed=22)
    with pytest.warns(sw.SaliencyWarning, match=r"example\(s\) \[0\].*NaN"):
        v = attr(model, x, [0, 0], "ablation_cam", layer="1", contrast=[1, 2])
    assert bool(v[0].isnan().all()) and bool(v[1].isfinite().all())
    # a self-contrast is an identically zero objective: zeros, no warning
    assert int(attr(model, x, [0, 0], "ablation_cam", layer="1", contrast=[0, 2])[0]
               .count_nonzero()) == 0


# --- EigenCAM: rank-one activations have a known principal component ----------------------------
class RankOne(nn.Module):
    """A_k(i, j) = u_k · x₀(i, j) + c_k: centred over positions it is the rank-one u ⊗ (x₀ − x̄₀)."""

    def __init__(self, u: torch.Tensor, c: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("u", u)
        self.register_buffer("c", c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.u[None, :, None, None] * x[:, :1] + self.c[None, :, None, None]


@pytest.mark.parametrize("flip", [1.0, -1.0], ids=["loadings_sum_positive", "negative"])
def test_eigen_cam_rank_one_closed_form_and_orientation(flip):
    u = flip * torch.tensor([0.5, 2.0, -0.3, 1.0], dtype=F64)
    model = nn.Sequential(RankOne(u, torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = fill_(model, seed=1).to(F64).eval()
    x = rand(2, 2, 5, 6, seed=2)
    m = x[:, :1]
    # principal direction ±u/|u|, oriented so its loadings sum > 0: sign(Σu)·u/|u|
    expected = (m - m.mean((2, 3), keepdim=True)) * u.norm() * torch.sign(u.sum())
    for target in (0, 2):  # class-agnostic: the target changes nothing
        v = attr(model, x, target, "eigen_cam", layer="0", relu=False)
        close(v, expected, atol=1e-12)
    close(attr(model, x, None, "eigen_cam", layer="0"), expected.clamp(min=0), atol=1e-12)


# --- FullGrad ------------------------------------------------------------------------------------
def test_fullgrad_without_biases_is_the_scaled_input_gradient_term():
    """No bias anywhere: FullGrad = Σ_c minmax(|x ⊙ ∇ₓS|_c)."""
    model = bias_free_relu_cnn(c=3, k=4, bias=False, seed=3)
    x = rand(2, 3, 7, 7, seed=4)
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    (g,) = torch.autograd.grad(out[range(2), [1, 2]].sum(), xg)
    res = sw.attribute(model, x, [1, 2], method="fullgrad")
    assert res.extras["bias_layers"] == 0
    close(res.values, channel_scaled_sum(x * g), atol=1e-13)


def fullgrad_reference(model: nn.Module, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    """The paper's definition computed directly on the model (hooks on its biased layers)."""
    outs, biases = [], []

    def keep(m: nn.Module, i, o: torch.Tensor) -> None:
        outs.append(o)

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            biases.append(m.bias.detach())
            handles.append(m.register_forward_hook(keep))
        elif isinstance(m, nn.BatchNorm2d):
            gamma = m.weight.detach() if m.weight is not None else 1.0
            beta = m.bias.detach() if m.bias is not None else 0.0
            biases.append(beta - gamma * m.running_mean / torch.sqrt(m.running_var + m.eps))
            handles.append(m.register_forward_hook(keep))
    xg = x.clone().requires_grad_(True)
    try:
        logits = model(xg)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(logits[range(len(target)), target].sum(), [xg] + outs)
    total = channel_scaled_sum(x * grads[0])
    for g, b in zip(grads[1:], biases):
        total = total + F.interpolate(channel_scaled_sum(g * b[None, :, None, None]),
                                      size=x.shape[-2:], mode="bilinear", align_corners=False)
    return total.detach()


def test_fullgrad_matches_the_definition_with_batch_norms():
    """Convs with biases, a batch norm with affine parameters and one without, max-pooling:
    every bias term, upsampled from its own grid."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1),
                          nn.BatchNorm2d(5, affine=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    fill_(model, seed=8)
    g = torch.Generator().manual_seed(9)
    for bn in (model[1], model[5]):
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    model = model.to(F64).eval()
    x = rand(2, 3, 8, 8, seed=10)
    res = sw.attribute(model, x, [0, 2], method="fullgrad")
    assert res.extras["bias_layers"] == 4
    close(res.values, fullgrad_reference(model, x, [0, 2]), atol=1e-12)


# --- LayerCAM over several layers --------------------------------------------------------------
def test_layer_cam_fuses_several_layers_from_one_pass():
    model = bias_free_relu_cnn(c=2, k=3, width=4, bias=True, seed=5)
    x = rand(2, 2, 8, 8, seed=6)
    t = [0, 2]
    single = {}
    for layer in ("1", "4"):
        res = sw.attribute(model, x, t, method="layer_cam", layer=layer)
        single[layer] = (res.values, res.extras["layer_grid"])
    assert single["1"][1] == (8, 8) and single["4"][1] == (4, 4)
    fine = single["1"][0]  # on the input grid already: no resizing
    res = sw.attribute(model, x, t, method="layer_cam", layer=["1", "4"], fusion="mean")
    assert res.layer == ("1", "4") and res.extras["layer_grid"] == [(8, 8), (4, 4)]
    # the fine layer's min-max share of the mean is known exactly from its own map
    lo, hi = fine.amin((2, 3), keepdim=True), fine.amax((2, 3), keepdim=True)
    coarse_share = 2 * res.values - (fine - lo) / (hi - lo)
    assert float(coarse_share.min()) >= -1e-12 and float(coarse_share.max()) <= 1 + 1e-12
    fused = sw.attribute(model, x, t, method="layer_cam", layer=["1", "4"]).values  # max
    assert float(fused.min()) >= 0 and float(fused.max()) <= float(torch.tanh(torch.tensor(2.)))
    close(fused.amax((2, 3)), torch.tanh(torch.tensor(2.0, dtype=F64)), atol=1e-12)
    assert int(attr(model, x, t, "layer_cam", layer=["1", "4"], contrast=t).count_nonzero()) == 0


def test_a_list_of_layers_is_for_layer_cam_only():
    model = bias_free_relu_cnn(c=2, k=3, width=4, seed=5)
    with pytest.raises(sw.SaliencyError, match="reads one layer.*only layer_cam"):
        sw.attribute(model, rand(1, 2, 8, 8), method="grad_cam", layer=["1", "4"])
    assert sw.attribute(model, rand(1, 2, 8, 8), method="grad_cam", layer=["4"]).layer == "4"
    with pytest.raises(sw.SaliencyError, match="names a layer twice"):
        sw.attribute(model, rand(1, 2, 8, 8), method="layer_cam", layer=["4", "4"])
    with pytest.raises(sw.SaliencyError, match="gamma"):
        sw.attribute(model, rand(1, 2, 8, 8), method="layer_cam", gamma=0)
