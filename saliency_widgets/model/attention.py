"""Self-attention probabilities of a vision transformer, read from our copy of the model.

For the duration of a call, every ``nn.MultiheadAttention`` of the copy runs an explicit forward
(``softmax(q·kᵀ/√d)·v``, PyTorch's own arithmetic), and its per-head probabilities
``A`` ``(n, heads, T, T)`` are the very tensor its output is computed from. That is what makes
their gradients exact: PyTorch's module returns a reshaped copy of the weights that nothing
downstream uses (or, on its fused path, none at all).

The explicit forward is set as an instance attribute of *our copy's* modules only, and removed in
``finally``; the user's modules never see it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SaliencyError

NO_ATTENTION = ("the attention methods (attention_rollout, gradient_rollout, legrad) need a "
                "vision transformer whose blocks use torch.nn.MultiheadAttention for "
                "self-attention (e.g. torchvision's VisionTransformer); {model} has none. Use a "
                "CAM or gradient method for this model")


def _check(mha: nn.MultiheadAttention, name: str) -> None:
    if mha.bias_k is not None or mha.bias_v is not None or mha.add_zero_attn:
        raise SaliencyError(f"attention {name!r} adds key/value bias tokens (add_bias_kv or "
                            f"add_zero_attn); attention maps over image tokens are undefined "
                            f"for it")
    if not mha._qkv_same_embed_dim:
        raise SaliencyError(f"attention {name!r} has key/value sizes (kdim={mha.kdim}, "
                            f"vdim={mha.vdim}) other than its embedding size {mha.embed_dim}, "
                            f"so it cannot be self-attention over image tokens")


def _explicit_forward(mha: nn.MultiheadAttention, name: str, store: list[torch.Tensor]
                      ) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    def forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if key is not query or value is not query:
            raise SaliencyError(f"attention {name!r} is not self-attention (its query, key and "
                                f"value differ); attention maps need self-attention over the "
                                f"image tokens")
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise SaliencyError(f"attention {name!r} is called with a mask; attention maps need "
                                f"unmasked self-attention over the image tokens")
        x = query if mha.batch_first else query.transpose(0, 1)
        n, T, E = x.shape
        heads = mha.num_heads
        d = E // heads
        # self-attention has kdim == vdim == embed_dim, so the packed projection exists
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias)
        q, k, v = qkv.view(n, T, 3, heads, d).permute(2, 0, 3, 1, 4)
        # scale q before the product, as torch.nn.functional.multi_head_attention_forward does
        a = torch.softmax((q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1), dim=-1)
        store.append(a)
        out = (a @ v).transpose(1, 2).reshape(n, T, E)
        out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
        if not mha.batch_first:
            out = out.transpose(0, 1)
        weights = (a.mean(1) if average_attn_weights else a) if need_weights else None
        return out, weights

    return forward


def attention_modules(root: nn.Module) -> list[tuple[str, nn.MultiheadAttention]]:
    found = [(n, m) for n, m in root.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if not found:
        raise SaliencyError(NO_ATTENTION.format(model=type(root).__name__))
    return found


@contextmanager
def explicit_attention(root: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Yield a list that collects each attention call's ``A`` ``(n, heads, T, T)`` in order."""
    if isinstance(root, torch.jit.ScriptModule):
        raise SaliencyError("attention methods need an eager model; TorchScript modules cannot "
                            "be instrumented. Pass the model before torch.jit.script")
    mhas = attention_modules(root)
    for name, m in mhas:
        _check(m, name)
    store: list[torch.Tensor] = []
    try:
        for name, m in mhas:
            object.__setattr__(m, "forward", _explicit_forward(m, name, store))
        yield store
    finally:
        for _, m in mhas:
            m.__dict__.pop("forward", None)


def attention_blocks(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that own an ``nn.MultiheadAttention`` child (a ViT's encoder blocks)."""
    blocks = [(n, m) for n, m in root.named_modules()
              if any(isinstance(c, nn.MultiheadAttention) for c in m.children())]
    if not blocks:
        raise SaliencyError(NO_ATTENTION.format(model=type(root).__name__))
    return blocks


def token_head(root: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """LeGrad's per-block logits for a torchvision ViT: ``heads(encoder.ln(mean of tokens))``."""
    encoder = getattr(root, "encoder", None)
    norm = getattr(encoder, "ln", None)
    heads = getattr(root, "heads", None)
    if not isinstance(norm, nn.Module) or not isinstance(heads, nn.Module):
        raise SaliencyError(f"legrad reads each block's tokens through the model's final norm and "
                            f"head, which it finds as encoder.ln and heads (torchvision's "
                            f"VisionTransformer); {type(root).__name__} has no such modules")
    return lambda tokens: heads(norm(tokens.mean(dim=1)))
