"""Sparseness: the Gini index of |map| (Chalasani et al. 2020, arXiv:1810.06583).

``(n − 1)/n`` (→ 1) when all relevance sits on one of ``n`` pixels, 0 when it is spread evenly.
An all-zero map is undefined (NaN, with a warning).
"""

from __future__ import annotations

import torch

from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored, pixel_map, warn_nan


def gini(a: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of non-negative ``a`` ``(B, n)``; NaN for an all-zero row."""
    a, _ = a.sort(dim=1)
    n = a.shape[1]
    i = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    total = a.sum(1)
    g = ((2 * i - n - 1) * a).sum(1) / (n * total)
    return torch.where(total > 0, g, torch.nan)


@metric(label="Sparseness", family="complexity", higher_is_better=True,
        choices={"reduction": REDUCTIONS})
def sparseness(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
               reduction: str = "sum") -> Scored:
    """Gini index of the absolute map (higher: more concentrated)."""
    g = gini(pixel_map(values, reduction).abs().flatten(1))
    warn_nan("sparseness", torch.isnan(g), "the map is all zeros")
    return Scored(g)
