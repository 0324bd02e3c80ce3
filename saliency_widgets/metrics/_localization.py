"""Checks shared by the localization metrics (masks, constant maps)."""

from __future__ import annotations

import torch

from ..errors import SaliencyError
from ._common import MetricContext, pixel_map, warn_nan


def map_and_masks(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, reduction: str,
                  metric: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(map (B, H, W) float64, masks (B, H, W) bool, undefined (B,) bool)``.

    Undefined: an empty mask, or a constant map (every pixel ties, so it points nowhere), each
    with a warning. Quantus counts both as hits.
    """
    masks = mc.require_masks(metric, x)
    B, _, H, W = x.shape
    if masks.shape != (B, H, W):
        raise SaliencyError(f"{metric}: masks must have shape (B, H, W) = {(B, H, W)}, got "
                            f"{tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        raise SaliencyError(f"{metric}: masks must be a bool tensor, got {masks.dtype}")
    m = pixel_map(values, reduction)
    masks = masks.to(m.device)
    flat = m.flatten(1)
    empty = ~masks.flatten(1).any(1)
    constant = flat.amax(1) == flat.amin(1)
    warn_nan(metric, empty, "the mask is empty")
    warn_nan(metric, constant & ~empty, "the map is constant, so it points nowhere")
    return m, masks, empty | constant
