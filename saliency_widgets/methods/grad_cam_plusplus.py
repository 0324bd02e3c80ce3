"""Grad-CAM++ (Chattopadhyay et al. 2018, arXiv:1710.11063), Eq. 19 with first-order gradients.

``α_ij = g² / (2g² + Σ_ab A_ab · g³)`` (0 where the denominator is 0), ``w_k = Σ_ij α_ij·ReLU(g)``.
Unlike pytorch-grad-cam we add no ε to the denominator: its fixed 1e-6 dominates ``g²`` when
gradients are small (typical at a deep layer), turning the weights into ``Σ ReLU(g)·g²/ε``.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import weighted_cam


def plusplus_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    g2 = g * g
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1), 0)
    return (alpha * g.clamp(min=0)).sum(dim=(2, 3), keepdim=True)


@method(label="Grad-CAM++", family="cam", output="map", uses_layer=True)
def grad_cam_plusplus(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Grad-CAM with pixel-wise weighting of positive gradients."""
    return weighted_cam(ctx, x, plusplus_weights, relu=relu, what="grad_cam_plusplus")
