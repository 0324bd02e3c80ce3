"""Turning maps into pictures: numpy + matplotlib only, no maths about models."""

from .heatmap import display_map, robust_range, threshold_mask
from .figure import Overlay, method_grid, overlay_grid

__all__ = ["Overlay", "display_map", "method_grid", "overlay_grid", "robust_range",
           "threshold_mask"]
