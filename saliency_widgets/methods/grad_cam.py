"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391).

``ReLU(Σ_k mean_ij(dS/dA_k) · A_k)`` at a layer, upsampled bilinearly (``align_corners=False``)
to the input, raw scale. Costs about one forward pass: the graph starts at the layer, so nothing
before it is recorded, and only the layer gradient is computed (no weight gradients).
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import grad_cam_weights, weighted_cam


@method(label="Grad-CAM", family="cam", output="map", uses_layer=True)
def grad_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Layer activations weighted by their spatially averaged gradients."""
    return weighted_cam(ctx, x, grad_cam_weights, relu=relu, what="grad_cam")
