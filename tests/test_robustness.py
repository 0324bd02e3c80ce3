"""Bad input fails with a clear SaliencyError naming the fix; awkward models still work right."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer

import saliency_widgets as sw

METHODS = [m["name"] for m in sw.list_methods()]
SPECS = {m["name"]: m for m in sw.list_methods()}
CAM_METHODS = [m["name"] for m in sw.list_methods() if m["uses_layer"]]
NON_LAYER_METHODS = [m["name"] for m in sw.list_methods() if not m["uses_layer"]]
# Methods that read self-attention run on a small ViT (tiny_vit, 32 px) where the CNN runs.
VIT_ONLY = {m["name"] for m in sw.list_methods() if m["family"] == "transformer"}
AGNOSTIC = {m["name"] for m in sw.list_methods() if m["class_agnostic"]}
CHEAP = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"samples": 3},
         "occlusion": {"window": 4}, "lime": {"grid": 2, "samples": 16},
         "kernel_shap": {"grid": 2, "samples": 16}, "blur_ig": {"steps": 4},
         "guided_ig": {"steps": 4}, "rise": {"samples": 24, "grid": 2}, "xrai": {"steps": 2}}
CLASSES = 5


def attribute(model, x, name, **kw):
    params = {k: v for k, v in CHEAP.get(name, {}).items() if k in SPECS[name]["params"]}
    return sw.attribute(model, x, method=name, **{**params, **kw})


def seeded(fn, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


def cnn(in_ch=3, inplace=False):
    return seeded(lambda: nn.Sequential(
        nn.Conv2d(in_ch, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=inplace),
        nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))).eval()


def make_x(batch=2, channels=3, size=(16, 16), dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *size, generator=g, dtype=torch.float64).to(dtype)


def saliency_error(fn, *patterns):
    with pytest.raises(sw.SaliencyError) as err:
        fn()
    msg = str(err.value)
    for p in patterns:
        assert re.search(p, msg, re.IGNORECASE), f"{p!r} not in {msg!r}"
    return msg


# --- bad input ---------------------------------------------------------------------------------
class _CountBackward(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        _CountBackward.calls += 1
        return g


class CountingNet(nn.Module):
    """Counts every backward through its input (the counter is a class attribute, so calls on
    the library's copy of the model count too)."""

    def __init__(self):
        super().__init__()
        self.body = cnn()
        self.eval()

    def forward(self, x):
        return self.body(_CountBackward.apply(x))


class TinyViT(VisionTransformer):
    """tiny_vit() as a class of its own, so a test can change its forward and still hand over a
    VisionTransformer (LeGrad reads ``encoder.ln`` and ``heads`` at the model's root)."""

    def __init__(self):
        super().__init__(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                         mlp_dim=64, num_classes=CLASSES)
        self.load_state_dict(tiny_vit().state_dict())
        self.eval()


class CountingViT(TinyViT):
    def forward(self, x):
        return super().forward(_CountBackward.apply(x))


def model_and_x(name, cnn_model, vit_model):
    """The CNN and a 16-pixel input, or for the attention methods the ViT and 32 pixels."""
    if name in VIT_ONLY:
        return vit_model(), make_x(2, size=(32, 32))
    return cnn_model(), make_x(2)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("bad", [{"target": 5}, {"target": -1}, {"target": [0, 7]},
                                 {"target": 1, "contrast": 9}],
                         ids=["target5", "target-1", "per-example", "contrast"])
def test_class_index_out_of_range_before_any_backward(name, bad):
    model, x = model_and_x(name, CountingNet, CountingViT)
    # the counter works: a valid call does run backwards for gradient methods
    _CountBackward.calls = 0
    attribute(model, x, "gradient", target=1)
    assert _CountBackward.calls > 0
    _CountBackward.calls = 0
    if name in AGNOSTIC and "contrast" in bad:  # any contrast is refused first, in words
        saliency_error(lambda: attribute(model, x, name, **bad), "class-agnostic",
                       r"contrast=9", "drop contrast=")
    else:
        saliency_error(lambda: attribute(model, x, name, **bad),
                       r"out of range", r"5 classes", r"0\s*(–|-|to|\.\.)\s*4")
    assert _CountBackward.calls == 0, "a backward pass ran before the range check"


def test_nan_input():
    x = make_x()
    x[1, 0, 3, 3] = float("nan")
    saliency_error(lambda: sw.attribute(cnn(), x, method="gradient"), "NaN")
    x[1, 0, 3, 3] = float("inf")
    saliency_error(lambda: sw.attribute(cnn(), x, method="gradient"), "Inf")


NAN_AT_2 = torch.where(torch.arange(CLASSES) == 2, float("nan"), 0.0)


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = cnn()
        self.eval()

    def forward(self, x):
        return self.body(x) + NAN_AT_2


class NaNViT(TinyViT):
    def forward(self, x):
        return super().forward(x) + NAN_AT_2


@pytest.mark.parametrize("name", METHODS)
def test_nan_logits(name):
    model, x = model_and_x(name, NaNNet, NaNViT)
    saliency_error(lambda: attribute(model, x, name, target=0), "NaN", "logits")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_input(dtype):
    x = (make_x().abs() * 50).to(dtype)
    saliency_error(lambda: sw.attribute(cnn(), x, method="gradient"),
                   re.escape(str(dtype)), "float")


def test_missing_batch_dimension():
    saliency_error(lambda: sw.attribute(cnn(), make_x()[0], method="grad_cam"), "unsqueeze")


def test_not_a_tensor_and_wrong_rank():
    saliency_error(lambda: sw.attribute(cnn(), make_x().numpy(), method="gradient"), "Tensor")
    saliency_error(lambda: sw.attribute(cnn(), make_x()[None], method="gradient"),
                   r"\(B, C, H, W\)")


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = cnn()
        self.eval()

    def forward(self, x):
        logits = self.body(x)
        return {"features": x.mean((2, 3)), "logits": logits}


class TupleNet(DictNet):
    def forward(self, x):
        out = super().forward(x)
        return out["logits"], out["features"]


@dataclass
class HFOutput:
    logits: torch.Tensor
    hidden_states: tuple | None = None


class HFNet(DictNet):
    def forward(self, x):
        return HFOutput(logits=super().forward(x)["logits"])


@pytest.mark.parametrize("name", ["gradient", "grad_cam", "occlusion"])
def test_structured_model_outputs(name):
    x = make_x()
    ref = attribute(cnn(), x, name, target=[1, 3], layer="3" if name == "grad_cam" else None)
    layer = {"layer": "body.3"} if name == "grad_cam" else {}
    saliency_error(lambda: attribute(DictNet(), x, name, target=[1, 3], **layer),
                   "dict", "output=", "logits")
    saliency_error(lambda: attribute(TupleNet(), x, name, target=[1, 3], **layer),
                   "tuple", "output=")
    results = [
        attribute(DictNet(), x, name, target=[1, 3], output="logits", **layer),
        attribute(TupleNet(), x, name, target=[1, 3], output=0, **layer),
        attribute(TupleNet(), x, name, target=[1, 3], output=lambda out: out[0], **layer),
        attribute(HFNet(), x, name, target=[1, 3], **layer),
    ]
    for r in results:
        assert torch.equal(r.values, ref.values)
    saliency_error(lambda: attribute(DictNet(), x, name, output="features", target=4, **layer),
                   "out of range")


class SqueezeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = cnn()
        self.eval()

    def forward(self, x):
        return self.body(x).squeeze()


def test_squeezed_batch_of_one():
    saliency_error(lambda: sw.attribute(SqueezeNet(), make_x(1), method="gradient"), "squeeze")
    # a batch of 2 is not squeezed and works
    assert sw.attribute(SqueezeNet(), make_x(2), method="gradient").values.shape == (2, 3, 16, 16)


def test_device_mismatch():
    model = cnn().to("meta")
    saliency_error(lambda: sw.attribute(model, make_x(), method="gradient"),
                   "meta", "cpu", re.escape("x.to('meta')"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_mismatch_cuda():
    saliency_error(lambda: sw.attribute(cnn().cuda(), make_x(), method="gradient"),
                   "cuda", "cpu", r"x\.to\('cuda")


def test_dtype_mismatch():
    saliency_error(lambda: sw.attribute(cnn(), make_x(dtype=torch.float64), method="gradient"),
                   "float64", "float32", r"x\.to\(")
    saliency_error(lambda: sw.attribute(cnn().double(), make_x(), method="grad_cam"),
                   "float32", "float64")


@pytest.mark.parametrize("name,baseline", [("integrated_gradients", "black"),
                                           ("integrated_gradients", "uniform"),
                                           ("occlusion", "blur")])
def test_named_baseline_needs_normalization(name, baseline):
    x = make_x()
    saliency_error(lambda: attribute(cnn(), x, name, baseline=baseline), "normalization")
    attr = attribute(cnn(), x, name, baseline=baseline, normalization=((0.5,), (0.25,)))
    assert attr.params["baseline"] == baseline
    assert attr.normalization == ((0.5,) * 3, (0.25,) * 3)


def test_black_baseline_is_pixel_zero():
    """'black' is pixel 0 before normalization: IG from it equals IG from (0 − mean) / std."""
    x, norm = make_x(), ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    mean = torch.tensor(norm[0]).view(1, 3, 1, 1)
    std = torch.tensor(norm[1]).view(1, 3, 1, 1)
    named = sw.attribute(cnn(), x, method="integrated_gradients", steps=4, baseline="black",
                         normalization=norm, target=0)
    explicit = sw.attribute(cnn(), x, method="integrated_gradients", steps=4,
                            baseline=(-mean / std), target=0)
    torch.testing.assert_close(named.values, explicit.values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NON_LAYER_METHODS)
def test_layer_on_non_cam_method(name):
    model = cnn()
    saliency_error(lambda: attribute(model, make_x(), name, layer="3"), "layer")
    saliency_error(lambda: attribute(model, make_x(), name, layer=model[3]), "layer")


def test_smoothgrad_over_cam_base_accepts_layer():
    model = cnn()
    attr = sw.attribute(model, make_x(), method="smoothgrad", base="grad_cam", samples=2,
                        layer="3")
    assert attr.layer == "3" and attr.values.shape == (2, 1, 16, 16)


# --- awkward models ----------------------------------------------------------------------------
class _RefGuidedReLU(torch.autograd.Function):
    """Reference guided ReLU written independently of the library."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.where((x > 0) & (g > 0), g, torch.zeros_like(g))


class ReluZoo(nn.Module):
    """One ReLU module used twice, an in-place ReLU module, F.relu, torch.relu and Tensor.relu."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.c4 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, CLASSES)
        self.relu = nn.ReLU()
        self.relu_inplace = nn.ReLU(inplace=True)

    def forward(self, x, act=None):
        h = (act or self.relu)(self.c1(x))
        h = (act or self.relu)(self.c2(h))  # the same module again
        h = (act or self.relu_inplace)(self.c3(h))
        h = (act or F.relu)(self.c4(h))
        h = (act or torch.relu)(self.fc1(h.mean((2, 3))))
        return self.fc2(h if act else h.relu())


def test_guided_backprop_reused_and_functional_relus_match_reference():
    model = seeded(ReluZoo).double().eval()
    x = make_x(3, dtype=torch.float64)
    target = [0, 2, 4]
    attr = sw.attribute(model, x, method="guided_backprop", target=target)
    xr = x.clone().requires_grad_(True)
    out = model(xr, act=_RefGuidedReLU.apply)
    (ref,) = torch.autograd.grad(out.gather(1, torch.tensor(target)[:, None]).sum(), xr)
    torch.testing.assert_close(attr.values, ref, rtol=0, atol=1e-12)
    # the comparison can fail: the plain gradient is different
    plain = sw.attribute(model, x, method="gradient", target=target)
    assert (plain.values - ref).abs().max() > 0.1 * ref.abs().max()
    for p in model.parameters():
        assert p.grad is None


def _twins(make):
    plain, inplace = make(False), make(True)
    inplace.load_state_dict(plain.state_dict())
    return plain, inplace


def _inplace_net(inplace):
    net = seeded(lambda: nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=inplace),  # the layer feeds an in-place ReLU
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 12), nn.ReLU(inplace=inplace),
        nn.Linear(12, CLASSES)))
    return net.eval()


_TWIN_CASES = [(n, None) for n in ("guided_backprop", "gradient", "grad_cam", "guided_grad_cam",
                                    "grad_cam_plusplus", "score_cam")]
_TWIN_CASES += [(n, layer) for n in ("grad_cam", "guided_grad_cam", "grad_cam_plusplus",
                                     "score_cam") for layer in ("0", "3", "6")]


@pytest.mark.parametrize("name,layer", _TWIN_CASES)
def test_inplace_relu_twin_gives_identical_maps(name, layer):
    """Layers "0" and "3" feed an in-place ReLU, which must not edit the captured activation."""
    plain, inplace = _twins(_inplace_net)
    x = make_x(2)
    kw = {"layer": layer} if layer is not None else {}
    a = attribute(plain, x, name, target=[1, 3], **kw)
    b = attribute(inplace, x, name, target=[1, 3], **kw)
    assert a.layer == b.layer
    assert torch.equal(a.values, b.values)
    assert int(torch.count_nonzero(a.values)) > 0 or name in ("grad_cam", "score_cam")


def _bn_net():
    net = cnn()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(3)
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.3, 3)
    return net


@pytest.mark.parametrize("name", ["gradient", "grad_cam", "integrated_gradients"])
def test_train_mode_model_is_explained_in_eval_mode(name):
    model = _bn_net().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = make_x(3)
    with pytest.warns(sw.SaliencyWarning, match="training mode"):
        attr = attribute(model, x, name, target=[0, 1, 2])
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed"
    ref = attribute(copy.deepcopy(model).eval(), x, name, target=[0, 1, 2])
    assert torch.equal(attr.values, ref.values)
    # and the train-mode computation would really have been different
    xr = x.clone().requires_grad_(True)
    out = copy.deepcopy(model)(xr)
    (g_train,) = torch.autograd.grad(out[:, 0].sum(), xr)
    if name == "gradient":
        assert (g_train[:1] - attr.values[:1]).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["gradient", "integrated_gradients", "grad_cam"])
def test_torch_compile_aot_eager_matches_eager(name):
    model = _bn_net()
    try:
        compiled = torch.compile(model, backend="aot_eager")
    except Exception as err:  # unavailable on this platform
        pytest.skip(f"torch.compile unavailable: {err}")
    x = make_x(2)
    eager = attribute(model, x, name, target=[2, 4])
    comp = attribute(compiled, x, name, target=[2, 4])
    assert torch.equal(comp.values, eager.values)
    assert comp.layer == eager.layer
    assert comp.target == eager.target


@pytest.mark.parametrize("name", ["gradient", "grad_cam", "guided_grad_cam", "occlusion"])
def test_data_parallel_cpu_model(name):
    model = _bn_net()
    wrapped = nn.DataParallel(model)
    x = make_x(2)
    a = attribute(wrapped, x, name, target=[0, 3])
    b = attribute(model, x, name, target=[0, 3])
    assert torch.equal(a.values, b.values)
    assert a.layer == b.layer
    # a layer given as a module of the wrapped model resolves to the same name
    if SPECS[name]["uses_layer"]:
        c = attribute(wrapped, x, name, target=[0, 3], layer=model[3])
        assert c.layer == "3"


@pytest.mark.parametrize("name", METHODS)
def test_memory_layout_does_not_change_values(name):
    model, x = (tiny_vit(), make_x(2, size=(32, 32))) if name in VIT_ONLY else \
        (_bn_net(), make_x(2, size=(16, 16)))
    ref = attribute(model, x, name, target=[1, 4])
    S = x.shape[-1]
    nhwc = x.permute(0, 2, 3, 1).contiguous()
    big = torch.zeros(2, 3, S + 4, S + 8)
    big[:, :, 2:S + 2, 5:S + 5] = x
    wide = torch.zeros(2, 3, S, 2 * S)
    wide[..., ::2] = x
    variants = {
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "permuted view": nhwc.permute(0, 3, 1, 2),
        "sliced view": big[:, :, 2:S + 2, 5:S + 5],
        "strided view": wide[..., ::2],
    }
    for label, v in variants.items():
        assert torch.equal(v, x)
        if label != "channels_last":
            assert not v.is_contiguous(), label
        got = attribute(model, v, name, target=[1, 4])
        torch.testing.assert_close(got.values, ref.values, rtol=0, atol=1e-5, msg=label)
        assert got.values.shape == ref.values.shape


class FlexViT(nn.Module):
    """torchvision's encoder blocks behind a patch embedding for any input the 4-pixel patches
    tile: one channel, 20 × 28 pixels, a 5 × 7 patch grid (torchvision's own ViT takes square
    3-channel images only). ``encoder`` and ``heads`` as torchvision names them (LeGrad)."""

    def __init__(self):
        super().__init__()
        vit = tiny_vit()
        self.encoder, self.heads, self.class_token = vit.encoder, vit.heads, vit.class_token
        dim = vit.hidden_dim
        self.conv_proj = nn.Conv2d(1, dim, 4, stride=4)
        self.encoder.pos_embedding = nn.Parameter(
            seeded(lambda: torch.randn(1, 5 * 7 + 1, dim) * 0.5))
        self.eval()

    def forward(self, x):
        h = self.conv_proj(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.class_token.expand(h.shape[0], -1, -1), h], dim=1)
        return self.heads(self.encoder(h)[:, 0])


def test_attention_maps_on_a_non_square_patch_grid():
    # rows and columns are not swapped: rollout by its definition, laid out 5 × 7 row-major
    model = FlexViT().double()
    x = make_x(2, channels=1, size=(20, 28), dtype=torch.float64)
    attention = []
    hooks = [blk.ln_1.register_forward_hook(lambda m, i, o: attention.append(o))
             for blk in model.encoder.layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        r = torch.eye(36, dtype=torch.float64).expand(2, 36, 36)
        for blk, y in zip(model.encoder.layers, attention):
            a = blk.self_attention(y, y, y, need_weights=True, average_attn_weights=True)[1]
            r = (0.5 * a + 0.5 * torch.eye(36, dtype=torch.float64)) @ r
    ref = F.interpolate(r[:, 0, 1:].reshape(2, 1, 5, 7), size=(20, 28), mode="bilinear",
                        align_corners=False)
    got = attribute(model, x, "attention_rollout").values
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    # an input the patches do not tile (20 × 30: the convolution drops 2 columns) is refused
    wide = make_x(2, channels=1, size=(20, 30), dtype=torch.float64)
    for name in sorted(VIT_ONLY):
        saliency_error(lambda name=name: attribute(model, wide, name), "35 patches do not tile",
                       r"20 × 30", "exactly")


@pytest.mark.parametrize("name", METHODS)
def test_one_channel_non_square_float64(name):
    model = (FlexViT() if name in VIT_ONLY else cnn(in_ch=1)).double()
    x = make_x(2, channels=1, size=(20, 28), dtype=torch.float64)
    attr = attribute(model, x, name, target=[0, 3])
    assert attr.values.shape == (2, 1, 20, 28)
    assert attr.values.dtype == torch.float64
    assert bool(torch.isfinite(attr.values).all())
    if name == "gradient":  # H and W are not swapped anywhere
        xr = x.clone().requires_grad_(True)
        out = model(xr)
        (g,) = torch.autograd.grad(out[0, 0] + out[1, 3], xr)
        torch.testing.assert_close(attr.values, g, rtol=0, atol=1e-12)


# --- layers ------------------------------------------------------------------------------------
def tiny_vit():
    from torchvision.models import VisionTransformer

    def build():
        vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                hidden_dim=32, mlp_dim=64, num_classes=CLASSES)
        # a fresh torchvision head is all zeros: every map would be zero
        nn.init.normal_(vit.heads.head.weight, std=0.5)
        nn.init.normal_(vit.heads.head.bias, std=0.1)
        return vit.eval()

    return seeded(build)


def test_vit_grad_cam_automatic_layer():
    vit = tiny_vit()
    x = make_x(2, size=(32, 32))
    attr = sw.attribute(vit, x, method="grad_cam", target=[1, 2], relu=False)
    assert "ln_1" in attr.layer and attr.layer.startswith("encoder.layers.")
    assert attr.layer == "encoder.layers.encoder_layer_1.ln_1"
    assert attr.extras["layer_grid"] == (4, 4)
    assert attr.values.shape == (2, 1, 32, 32)
    assert bool((attr.values != 0).any(dim=(1, 2, 3)).all()), "a map is all zero"
    # the map varies across the image (not a constant from a degenerate grid)
    assert float(attr.values[0].std()) > 0


def test_vit_last_block_output_warns_zero_gradients():
    vit = tiny_vit()
    x = make_x(1, size=(32, 32))
    with pytest.warns(sw.SaliencyWarning, match="zero"):
        attr = sw.attribute(vit, x, method="grad_cam", layer="encoder.layers.-1")
    assert attr.layer == "encoder.layers.encoder_layer_1"
    assert int(torch.count_nonzero(attr.values)) == 0


TORCHVISION = [("resnet18", 64, "layer4", (2, 2)), ("vgg11", 32, "features", (1, 1)),
               ("densenet121", 32, "features", (1, 1)),
               ("mobilenet_v3_small", 64, "features", (2, 2)),
               ("efficientnet_b0", 64, "features", (2, 2)),
               ("convnext_tiny", 64, "features", (2, 2)),
               ("regnet_y_400mf", 64, "trunk_output", (2, 2))]


@pytest.mark.parametrize("arch,px,layer,grid", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_automatic_layers(arch, px, layer, grid):
    import torchvision.models as tvm

    model = seeded(lambda: getattr(tvm, arch)(num_classes=CLASSES)).eval()
    attr = sw.attribute(model, make_x(1, size=(px, px)), method="grad_cam", target=0)
    assert attr.layer == layer
    assert attr.extras["layer_grid"] == grid
    assert attr.values.shape == (1, 1, px, px)
    assert bool(torch.isfinite(attr.values).all())


class Custom(nn.Module):
    """Registration order differs from execution order; the head is a global pool."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(6, 8, 3, padding=1)
        self.early = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x):
        h = F.relu(self.late(F.max_pool2d(self.early(x), 2)))
        return self.fc(self.pool(h).flatten(1))


def test_unknown_model_uses_last_4d_module():
    model = seeded(Custom).eval()
    attr = sw.attribute(model, make_x(2), method="grad_cam", target=[0, 1])
    assert attr.layer == "late"
    assert attr.extras["layer_grid"] == (8, 8)
    explicit = sw.attribute(model, make_x(2), method="grad_cam", target=[0, 1], layer="late")
    assert torch.equal(attr.values, explicit.values)


def test_mlp_has_no_automatic_layer():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 32), nn.ReLU(),
                        nn.Linear(32, 5)).eval()
    saliency_error(lambda: sw.attribute(mlp, make_x(), method="grad_cam"), "layer=")
    # …but input-space methods work on it
    assert sw.attribute(mlp, make_x(), method="gradient").values.shape == (2, 3, 16, 16)


class Featured(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


@pytest.mark.parametrize("name", CAM_METHODS)
def test_layer_by_module_and_negative_index_name(name):
    model = seeded(Featured).eval()
    x = make_x(2)
    by_module = attribute(model, x, name, target=[0, 2], layer=model.features[-1])
    by_name = attribute(model, x, name, target=[0, 2], layer="features.-1")
    canonical = attribute(model, x, name, target=[0, 2], layer="features.3")
    assert by_module.layer == by_name.layer == canonical.layer == "features.3"
    assert torch.equal(by_module.values, by_name.values)
    assert torch.equal(by_module.values, canonical.values)
    if name == "cam":  # features.2 is a conv whose output a ReLU follows: no GAP → linear head
        saliency_error(lambda: attribute(model, x, name, target=[0, 2], layer="features.-2"),
                       r"layer 'features\.2'", "global average pool")
        return
    other = attribute(model, x, name, target=[0, 2], layer="features.-2")
    assert other.layer == "features.2"


def test_bad_layers():
    model = seeded(Featured).eval()
    saliency_error(lambda: sw.attribute(model, make_x(), method="grad_cam", layer="features.9"),
                   "features.9", "not found")
    saliency_error(lambda: sw.attribute(model, make_x(), method="grad_cam",
                                        layer=nn.Conv2d(3, 3, 1)), "not part of the model")


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, CLASSES)

    def forward(self, x):
        h = self.act(self.c2(self.act(self.c1(x))))
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("name", CAM_METHODS)
def test_layer_that_runs_twice_raises(name):
    model = seeded(Twice).eval()
    saliency_error(lambda: attribute(model, make_x(), name, layer="act"), "more than once")
    saliency_error(lambda: attribute(model, make_x(), name, layer=model.act), "more than once")
    if name == "cam":  # the head pools act(c2), not c2: refused in words, naming the layer
        saliency_error(lambda: attribute(model, make_x(), name, layer="c2"), r"layer 'c2'",
                       "global average pool", "grad_cam")
        return
    assert attribute(model, make_x(), name, layer="c2").layer == "c2"
