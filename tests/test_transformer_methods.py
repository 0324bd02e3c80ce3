"""Attention rollout, gradient-weighted rollout and LeGrad on tiny ViTs built in code (float64).

References, each independent of the library's instrumentation:

* attention probabilities from PyTorch's own ``nn.MultiheadAttention`` (``need_weights=True``)
  on each block's captured input: attention rollout (Abnar & Zuidema 2020) from its definition;
* a hand-written forward pass of torchvision's ViT (its logits equal the model's to 1e-12),
  whose attention tensors are differentiated directly: gradient rollout (Chefer et al. 2021)
  and LeGrad's per-block gradients, one ``autograd.grad`` per block, no graph cutting;
* TorchCAM 0.5's ``LeGrad``, with a ``score_projection`` that returns the contrast.

Tolerances: float64, 1e-12 relative to the reference's largest value (measured ≤ 4e-16 against
TorchCAM).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer

import saliency_widgets as sw

try:
    from .models import fill_
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import fill_

pytestmark = pytest.mark.filterwarnings("error::saliency_widgets.errors.SaliencyWarning")

F64 = torch.float64
TOL = 1e-12
SIZE = 32
TARGETS, CONTRASTS = [3, 7], [0, 2]


def tiny_vit(layers: int = 3, seed: int = 3) -> VisionTransformer:
    """32 px, 8 px patches (a 4×4 grid and a class token), 4 heads of 8 dims, 10 classes; every
    parameter re-drawn (torchvision zero-initialises the head and the class token)."""
    torch.manual_seed(seed)
    vit = VisionTransformer(image_size=SIZE, patch_size=8, num_layers=layers, num_heads=4,
                            hidden_dim=32, mlp_dim=64, num_classes=10)
    return fill_(vit, seed=seed).to(F64).eval()


def image(batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, SIZE, SIZE, generator=g, dtype=F64)


def on_image(patch_relevance: torch.Tensor) -> torch.Tensor:
    """``(n, 16)`` patch values → ``(n, 1, 32, 32)``, upsampled as the library documents."""
    grid = patch_relevance.reshape(-1, 1, 4, 4)
    return F.interpolate(grid, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str, tol: float = TOL) -> None:
    scale = float(ref.abs().max())
    assert scale > 0, f"{what}: the reference is identically zero"
    err = float((ours - ref).abs().max()) / scale
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def torch_attention(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-head attention of every block, from PyTorch's own MultiheadAttention."""
    inputs: list[torch.Tensor] = []
    handles = [blk.ln_1.register_forward_hook(lambda m, i, o: inputs.append(o))
               for blk in model.encoder.layers]
    try:
        with torch.no_grad():
            model(x)
            return [blk.self_attention(y, y, y, need_weights=True, average_attn_weights=False)[1]
                    for blk, y in zip(model.encoder.layers, inputs)]
    finally:
        for h in handles:
            h.remove()


def manual_vit(model: VisionTransformer, x: torch.Tensor, attention: list, tokens: list):
    """torchvision's ViT forward written out, collecting each block's attention and output."""
    n = x.shape[0]
    h = model.conv_proj(x).flatten(2).transpose(1, 2)
    h = torch.cat([model.class_token.expand(n, -1, -1), h], dim=1) + model.encoder.pos_embedding
    for blk in model.encoder.layers:
        mha, y = blk.self_attention, blk.ln_1(h)
        heads, d = mha.num_heads, y.shape[-1] // mha.num_heads
        q, k, v = (t.view(n, -1, heads, d).transpose(1, 2)
                   for t in F.linear(y, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
        attention.append(a)
        o = (a @ v).transpose(1, 2).reshape(n, -1, heads * d)
        h = h + F.linear(o, mha.out_proj.weight, mha.out_proj.bias)
        h = h + blk.mlp(blk.ln_2(h))
        tokens.append(h)
    return model.heads(model.encoder.ln(h)[:, 0])


def objective(logits: torch.Tensor, contrast) -> torch.Tensor:
    s = logits[range(len(TARGETS)), TARGETS]
    return s if contrast is None else s - logits[range(len(TARGETS)), contrast]


# --- attention rollout ---------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 3])
def test_attention_rollout_is_the_product_of_residual_mixed_attention(layers):
    model, x = tiny_vit(layers), image()
    eye = torch.eye(17, dtype=F64)
    r = eye
    for a in torch_attention(model, x):
        r = (0.5 * a.mean(1) + 0.5 * eye) @ r
    assert torch.allclose(r.sum(-1), torch.ones((), dtype=F64), atol=1e-14)  # row-stochastic
    ours = sw.attribute(model, x, method="attention_rollout")
    assert_close(ours.values, on_image(r[:, 0, 1:]), f"rollout, {layers} block(s)")
    if layers == 1:  # one block: half the class token's attention to each patch
        a = torch_attention(model, x)[0]
        assert_close(ours.values, on_image(0.5 * a.mean(1)[:, 0, 1:]), "rollout of one block")
    for target in (0, 9):  # class-agnostic
        assert torch.equal(sw.attribute(model, x, target, method="attention_rollout").values,
                           ours.values)


class SeqFirstTransformer(nn.Module):
    """Not torchvision: a sequence-first MultiheadAttention (batch_first=False), no encoder.ln."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 16))
        self.block = nn.Module()
        self.block.norm = nn.LayerNorm(16)
        self.block.attn = nn.MultiheadAttention(16, 2)
        self.out = nn.Linear(16, 5)
        self.mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1).transpose(0, 1)
        y = self.block.norm(h)
        h = h + self.block.attn(y, y, y, need_weights=False, attn_mask=self.mask)[0]
        return self.out(h[0])


def test_rollouts_on_a_sequence_first_attention_and_legrad_refuses_it():
    model = fill_(SeqFirstTransformer(), seed=4).to(F64).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5), dtype=F64)
    with torch.no_grad():
        h = model.embed(x).flatten(2).transpose(1, 2)
        y = model.block.norm(torch.cat([model.cls.expand(2, -1, -1), h], 1).transpose(0, 1))
        a = model.block.attn(y, y, y, need_weights=True, average_attn_weights=True)[1]
    ref = F.interpolate((0.5 * a[:, 0, 1:]).reshape(2, 1, 4, 4), size=(16, 16), mode="bilinear",
                        align_corners=False)
    assert_close(sw.attribute(model, x, method="attention_rollout").values, ref,
                 "rollout, sequence-first attention")
    assert sw.attribute(model, x, method="gradient_rollout").values.shape == (2, 1, 16, 16)
    with pytest.raises(sw.SaliencyError, match="legrad.*encoder.ln and heads"):
        sw.attribute(model, x, method="legrad")
    model.mask = torch.zeros(17, 17, dtype=F64)
    with pytest.raises(sw.SaliencyError, match="called with a mask"):
        sw.attribute(model, x, method="attention_rollout")


# --- gradient-weighted rollout (Chefer et al. 2021) ----------------------------------------------
@pytest.mark.parametrize("contrast", [None, CONTRASTS], ids=["target", "contrast"])
def test_gradient_rollout_matches_its_definition(contrast):
    model, x = tiny_vit(), image()
    attention: list[torch.Tensor] = []
    logits = manual_vit(model, x, attention, [])
    with torch.no_grad():
        assert_close(logits, model(x), "hand-written ViT forward vs torchvision", tol=1e-12)
    grads = torch.autograd.grad(objective(logits, contrast).sum(), attention)
    r = torch.eye(17, dtype=F64).expand(2, 17, 17)
    for a, g in zip(attention, grads):
        r = r + (g * a).clamp(min=0).mean(1) @ r
    ours = sw.attribute(model, x, TARGETS, method="gradient_rollout", contrast=contrast).values
    assert_close(ours, on_image(r[:, 0, 1:].detach()), f"gradient rollout (contrast={contrast})")


# --- LeGrad ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("blocks", [None, 2])
@pytest.mark.parametrize("contrast", [None, CONTRASTS], ids=["target", "contrast"])
def test_legrad_matches_per_block_gradients(blocks, contrast):
    """One autograd.grad per block of S_l = objective(heads(ln(mean of block l's tokens)))
    with respect to that block's attention, on the hand-written forward (no graph cutting)."""
    model, x = tiny_vit(), image()
    attention: list[torch.Tensor] = []
    tokens: list[torch.Tensor] = []
    manual_vit(model, x, attention, tokens)
    chosen = range(3) if blocks is None else range(3 - blocks, 3)
    maps = []
    for b in chosen:
        s = objective(model.heads(model.encoder.ln(tokens[b].mean(1))), contrast)
        (g,) = torch.autograd.grad(s.sum(), attention[b], retain_graph=True)
        maps.append(g.clamp(min=0).mean((1, 2))[:, 1:])
    ref = on_image(torch.stack(maps).mean(0))
    ours = sw.attribute(model, x, TARGETS, method="legrad", blocks=blocks, contrast=contrast)
    assert_close(ours.values, ref, f"LeGrad (blocks={blocks}, contrast={contrast})")


@pytest.mark.parametrize("blocks", [None, 2])
@pytest.mark.parametrize("contrast", [None, CONTRASTS], ids=["target", "contrast"])
def test_legrad_matches_torchcam(blocks, contrast):
    torchcam = pytest.importorskip("torchcam.methods")
    model, x = tiny_vit(), image()
    m = copy.deepcopy(model)
    chosen = list(m.encoder.layers) if blocks is None else list(m.encoder.layers)[-blocks:]
    maps = []
    for i, t in enumerate(TARGETS):
        def project(tokens: torch.Tensor, i: int = i, t: int = t) -> torch.Tensor:
            logits = m.heads(m.encoder.ln(tokens.mean(dim=1)))
            return logits if contrast is None else logits[:, [t]] - logits[:, [contrast[i]]]

        with torchcam.LeGrad(m, chosen, score_projection=project) as extractor:
            scores = m(x[i:i + 1])
            maps.append(extractor(t if contrast is None else 0, scores, normalized=False)[0])
    theirs = on_image(torch.cat(maps).detach())
    ours = sw.attribute(model, x, TARGETS, method="legrad", blocks=blocks, contrast=contrast)
    assert_close(ours.values, theirs, f"LeGrad vs TorchCAM (blocks={blocks}, contrast={contrast})")


def test_legrad_blocks_is_checked():
    with pytest.raises(sw.SaliencyError, match="blocks must be an int"):
        sw.attribute(tiny_vit(1), image(1), method="legrad", blocks=0)
