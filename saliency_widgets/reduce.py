"""The one place that reduces a ``(B, C, H, W)`` map over channels to ``(B, H, W)``.

Metrics and rendering both import this so the map that is scored is the map that is shown.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("sum", "abs", "max_abs")


def reduce_channels(values: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """Return ``(B, H, W)``: ``values`` reduced over the channel axis.

    ``sum`` keeps the sign (the natural reduction for additive attributions such as IG);
    ``abs`` sums magnitudes; ``max_abs`` takes the largest magnitude (Simonyan et al.'s
    saliency-map convention).
    """
    if values.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) map, got shape {tuple(values.shape)}")
    if how == "sum":
        return values.sum(1)
    if how == "abs":
        return values.abs().sum(1)
    if how == "max_abs":
        return values.abs().amax(1)
    raise ValueError(f"unknown channel reduction {how!r}; use one of {REDUCTIONS}")
