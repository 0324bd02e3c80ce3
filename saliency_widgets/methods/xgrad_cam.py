"""XGrad-CAM (Fu et al. 2020, arXiv:2008.02312).

Channel weights ``w_k = Σ_ij (A_k,ij / Σ_ab A_k,ab) · dS/dA_k,ij``: the gradient averaged with
the activation's own spatial distribution, then ``ReLU(Σ_k w_k A_k)``, upsampled bilinearly, raw
scale. A channel whose activations sum to exactly 0 gets weight 0 (pytorch-grad-cam adds 1e-7 and
TorchCAM 1e-8 to that sum instead, which changes weights whose sum is small).
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import weighted_cam


def xgrad_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    total = a.sum(dim=(2, 3), keepdim=True)
    num = (a * g).sum(dim=(2, 3), keepdim=True)
    return torch.where(total != 0, num / torch.where(total != 0, total, 1), 0)


@method(label="XGrad-CAM", family="cam", output="map", uses_layer=True)
def xgrad_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Layer activations weighted by their activation-weighted gradients."""
    return weighted_cam(ctx, x, xgrad_weights, relu=relu, what="xgrad_cam")
