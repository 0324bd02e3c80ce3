"""HiResCAM (Draelos & Carin 2020, arXiv:2011.08891).

``ReLU(Σ_k dS/dA_k ⊙ A_k)`` at a layer: the gradient multiplies the activation position by
position instead of being averaged first, so the map sums to ``S − b`` whenever the head after
the layer is linear (for a GAP → linear head it equals Grad-CAM). Upsampled bilinearly
(``align_corners=False``), raw scale; one forward and a backward through the head.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import weighted_cam


@method(label="HiResCAM", family="cam", output="map", uses_layer=True)
def hires_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Layer activations times their gradients, summed over channels."""
    return weighted_cam(ctx, x, lambda a, g: g, relu=relu, what="hires_cam")
