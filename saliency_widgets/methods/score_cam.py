"""Score-CAM (Wang et al. 2020, arXiv:1910.01279).

Each channel's weight is the objective's change when the input is multiplied by that channel's
upsampled, min-max normalised activation, relative to the fully masked input (``x · 0``):
``w_k = f(x ⊙ M_k) − f(0)``. No softmax across channels by default: a softmax of an identically
zero objective (contrast == target) is uniform and would paint a map where there is nothing.
``channel_softmax=True`` reproduces pytorch-grad-cam's map (self-contrast still gives zeros).

Masks are upsampled with ``align_corners=True`` like pytorch-grad-cam's, so the per-channel
scores (``extras["channel_scores"]``) match it. Masks are built per chunk (streamed), never all
at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.explainee import Explainee
from ..registry import method
from ._cam import combine
from ._common import over_batch, upsample


def channel_masks(a: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``(n, 1, H, W)`` masks in [0, 1] from ``(n, h, w)`` activations (constant channel → 0)."""
    up = F.interpolate(a[:, None], size=size, mode="bilinear", align_corners=True)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (up - lo) / torch.where(span > 0, span, 1), 0)


@method(label="Score-CAM", family="cam", output="map", uses_layer=True)
def score_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True,
              channel_softmax: bool = False) -> torch.Tensor:
    """Layer activations weighted by the score of the input masked with each channel."""
    size = tuple(x.shape[-2:])
    _, acts = over_batch(ctx, x, lambda xb, rows: ctx.layer_value(xb, rows, original=True),
                         kind="forward", report=False)
    B, K = acts.shape[:2]
    (empty,) = over_batch(ctx, torch.zeros_like(x), lambda xb, rows: (ctx.scores(xb, rows),),
                          kind="forward", report=False)
    scores = torch.zeros((B, K), dtype=x.dtype, device=x.device)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, k = t // K, t % K
        masked = x[rows] * channel_masks(acts[rows, k], size)
        scores[rows, k] = ctx.scores(masked, rows)

    ctx.work.run(B * K, step, item_numel=x[0].numel(), kind="forward")
    ctx.note("channel_scores", scores)
    if channel_softmax:
        weights = torch.softmax(scores, dim=1)
        weights = torch.where(ctx.objective.self_contrast()[:, None], 0, weights)
    else:
        weights = scores - empty[:, None]
    cam = combine(acts, weights[:, :, None, None], relu)
    return upsample(cam, size)
