"""EigenCAM (Muhammad & Yeasin 2020, arXiv:2008.00299). Class-agnostic: no gradients, no target.

The layer activation of each example, as an ``(h·w) × K`` matrix centred over positions, is
projected on its first principal direction (first right singular vector); the map is that
projection, optionally rectified, upsampled bilinearly (``align_corners=False``), raw scale.
A principal direction has no sign of its own; we orient it so that its channel loadings sum to a
positive number, i.e. the map rises where the channels' total activation rises (pytorch-grad-cam
keeps whichever sign its SVD returns, so its map can be the rectified *negative* of ours).
The SVD runs in float32 at least (half-precision SVD does not exist on most devices).
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch, upsample


def principal_projection(a: torch.Tensor) -> torch.Tensor:
    """``(n, 1, h, w)`` projections of centred ``(n, K, h, w)`` activations on their first
    principal direction, oriented so the direction's loadings sum to ≥ 0."""
    n, k, h, w = a.shape
    work = a.to(torch.promote_types(a.dtype, torch.float32)).nan_to_num(0.0)
    m = work.reshape(n, k, h * w).transpose(1, 2)
    m = m - m.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    v = vh[:, 0, :]  # (n, K)
    total = v.sum(dim=1, keepdim=True)
    p = (m @ v[:, :, None])[:, :, 0]  # (n, h·w)
    # orientation: loadings summing to > 0; if they sum to 0, the largest |projection| positive
    peak = p.gather(1, p.abs().argmax(1, keepdim=True))
    sign = torch.where(total != 0, total.sign(), peak.sign())
    sign = torch.where(sign == 0, 1, sign)
    return (p * sign).reshape(n, 1, h, w).to(a.dtype)


@method(label="EigenCAM", family="cam", output="map", uses_layer=True, class_agnostic=True)
def eigen_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """The layer activation's first principal component, per example (ignores the target)."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, a = ctx.layer_value(xb, rows, original=True)
        p = principal_projection(a)
        return (p.clamp(min=0) if relu else p,)

    (cam,) = over_batch(ctx, x, one, kind="forward")
    ctx.note("layer_grid", tuple(cam.shape[-2:]))
    return upsample(cam, tuple(x.shape[-2:]))
