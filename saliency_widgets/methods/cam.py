"""CAM, the original class activation map (Zhou et al. 2016, arXiv:1512.04150).

For a network ending in ``global average pool → one nn.Linear``, ``M = Σ_k w_k A_k`` with ``w``
the head's weights for the objective (``w_target − w_contrast``): no gradients, one forward.
Raw scale (``Σ_ij M / (h·w) = S − b``) and not rectified by default, as in the paper and TorchCAM.
Any other head is refused with an error that says what was found; Grad-CAM is the general form
(on a GAP → linear head it equals CAM / (h·w)).
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import combine
from ._common import over_batch, upsample


@method(label="CAM", family="cam", output="map", uses_layer=True)
def cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = False) -> torch.Tensor:
    """Layer activations weighted by the linear head's weights (GAP → linear models only)."""

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, a, w = ctx.cam_head(xb, rows, original=True)
        return (combine(a, w[:, :, None, None], relu),)

    (maps,) = over_batch(ctx, x, one, kind="forward")
    ctx.note("layer_grid", tuple(maps.shape[-2:]))
    return upsample(maps, tuple(x.shape[-2:]))
