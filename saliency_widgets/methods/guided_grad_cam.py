"""Guided Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391): guided backprop × Grad-CAM.

One forward and one backward give both the guided input gradient and the layer gradient. When
ReLUs run *after* the layer (e.g. VGG's classifier), the guided layer gradient differs from
Grad-CAM's, so a second, plain pass computes the Grad-CAM part.
"""

from __future__ import annotations

from typing import cast

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._cam import combine, grad_cam_weights
from ._common import over_batch, upsample


@method(label="Guided Grad-CAM", family="cam", output="input", uses_layer=True,
        derivative="surrogate")
def guided_grad_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Guided backprop gradient times the upsampled Grad-CAM map."""
    size = tuple(x.shape[-2:])

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, a, g, gx, relus_after = ctx.layer_grad(xb, rows, original=True,
                                                  with_input_grad=True, guided=True)
        if relus_after:
            _, a, g, _, _ = ctx.layer_grad(xb, rows)
        ctx.warn_if_blank(g, rows, "guided_grad_cam")
        cam = upsample(combine(a, grad_cam_weights(a, g), relu), size)
        return (cast(torch.Tensor, gx) * cam,)  # with_input_grad=True: there

    (values,) = over_batch(ctx, x, one, kind="backward")
    return values
