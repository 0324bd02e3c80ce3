"""Turning maps into pictures: numpy + matplotlib only, no maths about models."""

from .heatmap import display_map, robust_range
from .figure import method_grid

__all__ = ["display_map", "method_grid", "robust_range"]
