"""Shared pieces of the CAM family: a pass over the batch collecting layer activations/gradients."""

from __future__ import annotations

from typing import Callable

import torch

from ..model.explainee import Explainee
from ._common import over_batch, upsample

# (A, dA) → channel weights (n, K, 1, 1), or per-position weights (n, K, h, w)
WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def weighted_cam(ctx: Explainee, x: torch.Tensor, weights: WeightFn, *, relu: bool,
                 what: str) -> torch.Tensor:
    """``(B, 1, H, W)``: ``Σ_k w_k A_k`` at the layer, optionally rectified, upsampled to the
    input."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, a, g, _, _ = ctx.layer_grad(xb, rows, original=True)
        ctx.warn_if_blank(g, rows, what)
        return (combine(a, weights(a, g), relu),)

    (cam,) = over_batch(ctx, x, one, kind="forward")
    ctx.note("layer_grid", tuple(cam.shape[-2:]))
    return upsample(cam, tuple(x.shape[-2:]))


def combine(a: torch.Tensor, w: torch.Tensor, relu: bool) -> torch.Tensor:
    cam = (w * a).sum(1, keepdim=True)
    return cam.clamp(min=0) if relu else cam


def grad_cam_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's channel weights: the spatial mean of the gradient."""
    return g.mean(dim=(2, 3), keepdim=True)
