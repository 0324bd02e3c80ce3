"""Attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928). Class-agnostic.

Each block's attention, averaged over heads and mixed with the residual connection,
``Ã_l = ½·mean_h(A_l) + ½·I``, is multiplied through the blocks, ``R = Ã_L ⋯ Ã_1``; the map is
the class token's row over the patch tokens, ``R[0, 1:]``. Rows of ``R`` sum to 1, so the map
and ``R[0, 0]`` share one unit of attention. Upsampled bilinearly from the patch grid; one forward.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch
from ._vit import PREFIX, identity_like, patch_map


def rollout(attention: list[torch.Tensor]) -> torch.Tensor:
    eye = identity_like(attention[0])
    r = eye
    for a in attention:
        r = (0.5 * a.mean(dim=1) + 0.5 * eye) @ r
    return r


@method(label="Attention rollout", family="transformer", output="map", class_agnostic=True)
def attention_rollout(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Attention multiplied through the blocks, read from the class token (ignores the target)."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, attention = ctx.attention(xb, rows, original=True)
        return (rollout(attention)[:, 0, PREFIX:],)

    (relevance,) = over_batch(ctx, x, one, kind="forward")
    return patch_map(relevance, (x.shape[-2], x.shape[-1]))
