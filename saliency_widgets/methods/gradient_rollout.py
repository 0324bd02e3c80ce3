"""Gradient-weighted attention rollout (Chefer, Gur & Wolf 2021, arXiv:2103.15679: "Generic
Attention-model Explainability", its rule for self-attention).

Each block's attention is weighted by the objective's gradient, positive parts averaged over
heads, ``Ā_l = mean_h((∇A_l ⊙ A_l)⁺)``, and accumulated from the identity, ``R ← R + Ā_l·R``
through the blocks in order; the map is ``R[0, 1:]``, the class token's row over the patches.
The gradients are total derivatives of ``logit[target] − logit[contrast]``, so a self-contrast
gives ``R = I`` and an exactly zero map. One forward and one backward pass.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch
from ._vit import PREFIX, identity_like, patch_map


def weighted_rollout(attention: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    r = identity_like(attention[0])
    for a, g in zip(attention, grads):
        r = r + (g * a).clamp(min=0).mean(dim=1) @ r
    return r


@method(label="Gradient rollout", family="transformer", output="map")
def gradient_rollout(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Gradient-weighted attention accumulated through the blocks (Chefer et al. 2021)."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, attention, grads = ctx.attention_grads(xb, rows, original=True)
        return (weighted_rollout(attention, grads)[:, 0, PREFIX:],)

    (relevance,) = over_batch(ctx, x, one, kind="backward")
    return patch_map(relevance, (x.shape[-2], x.shape[-1]))
