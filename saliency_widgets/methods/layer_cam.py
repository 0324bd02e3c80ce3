"""LayerCAM (Jiang et al. 2021, IEEE TIP 30:5875–5888, doi:10.1109/TIP.2021.3089943; no arXiv id).

``ReLU(Σ_k ReLU(dS/dA_k) ⊙ A_k)`` at each layer: positive gradients weight the activation
position by position, so shallow layers give fine maps. Raw scale for one layer.

Several layers (``layer=["layer3", "layer4"]``, Python only) come from one forward and one
backward pass and fused on a common scale, each layer's map ``M_l`` first min-max scaled to
[0, 1] on its own grid (0 where constant): ``fusion="max"`` scales shallow and deep layers alike
with ``tanh(γ·M_l)`` (the paper's fusion, as TorchCAM implements it), resizes them to the largest
layer grid and takes the element-wise maximum; ``fusion="mean"`` (pytorch-grad-cam) resizes them
to the input and averages them. A self-contrast gives zeros.
"""

from __future__ import annotations

import torch

from ..checks import positive
from ..model.explainee import Explainee
from ..registry import LAYER_NOTE, method
from ._cam import combine
from ._common import over_batch, upsample


def _scaled(m: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    span = hi - lo
    return torch.where(span > 0, (m - lo) / torch.where(span > 0, span, 1), 0)


def fuse(cams: list[torch.Tensor], fusion: str, gamma: float,
         size: tuple[int, ...]) -> torch.Tensor:
    """One ``(n, 1, H, W)`` map from per-layer ``(n, 1, h_l, w_l)`` maps."""
    minmax = [_scaled(c, c.amin((2, 3), keepdim=True), c.amax((2, 3), keepdim=True))
              for c in cams]
    if fusion == "mean":
        return torch.stack([upsample(c, size) for c in minmax]).mean(0)
    grid = (max(c.shape[2] for c in cams), max(c.shape[3] for c in cams))
    scaled = [upsample(torch.tanh(gamma * c), grid) for c in minmax]
    return upsample(torch.stack(scaled).amax(0), size)


@method(label="LayerCAM", family="cam", output="map", uses_layer=True,
        choices={"fusion": ("max", "mean")}, validators={"gamma": positive},
        notes={"layer": LAYER_NOTE + "; a list of layers is fused (Python only)"})
def layer_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True, fusion: str = "max",
              gamma: float = 2.0) -> torch.Tensor:
    """Layer activations times their positive gradients; several layers can be fused."""
    size = tuple(x.shape[-2:])
    grids: list[tuple[int, ...]] = []

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, pairs = ctx.layers_grad(xb, rows, original=True)
        cams = []
        for a, g in pairs:
            ctx.warn_if_blank(g, rows, "layer_cam")
            cams.append(combine(a, g.clamp(min=0), relu))
        grids[:] = [tuple(c.shape[-2:]) for c in cams]
        if len(cams) == 1:
            return (upsample(cams[0], size),)
        return (fuse(cams, fusion, float(gamma), size),)

    (cam,) = over_batch(ctx, x, one, kind="forward")
    ctx.note("layer_grid", grids[0] if len(grids) == 1 else grids)
    return cam
