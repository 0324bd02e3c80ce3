"""LeGrad (Bousselham et al. 2024, arXiv:2404.03214), as TorchCAM 0.5 defines it.

Each block ``l`` gets its own objective ``S_l``: the block's output tokens, averaged, read
through the model's final norm and head. LeGrad takes the gradient of ``S_l`` with respect to
that block's attention probabilities, keeps its positive part, averages it over heads and query
tokens, drops the class token's column, and averages the blocks:
``mean_l mean_{h,q} ReLU(∂S_l/∂A_l)[h, q, 1:]``. Raw scale (TorchCAM min-max scales it),
upsampled bilinearly from the patch grid. ``blocks`` keeps the last few blocks (None: all, as in
the paper). Each block's input is cut from the graph, so one backward pass gives every
``∂S_l/∂A_l``. Needs torchvision's VisionTransformer layout (``encoder.ln``, ``heads``).
"""

from __future__ import annotations

import torch

from ..checks import positive_int
from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch
from ._vit import PREFIX, patch_map


@method(label="LeGrad", family="transformer", output="map", validators={"blocks": positive_int})
def legrad(ctx: Explainee, x: torch.Tensor, *, blocks: int | None = None) -> torch.Tensor:
    """Positive gradients of each block's score with respect to its attention, averaged."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        grads = ctx.block_attention_grads(xb, rows, original=True, last=blocks)
        per_block = [g.clamp(min=0).mean(dim=(1, 2))[:, PREFIX:] for g in grads]
        return (torch.stack(per_block).mean(0),)

    (relevance,) = over_batch(ctx, x, one, kind="backward")
    return patch_map(relevance, (x.shape[-2], x.shape[-1]))
