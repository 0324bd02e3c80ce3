"""Complexity: the Shannon entropy of the normalised |map| (Bhatt et al. 2020, arXiv:2005.00631).

``H = −Σ p log p`` with ``p = |a| / Σ|a|``; 0 for one pixel, ``log(HW)`` when uniform. Lower is
simpler. An all-zero map is undefined (NaN, with a warning).
"""

from __future__ import annotations

import torch

from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored, pixel_map, warn_nan


@metric(label="Complexity", family="complexity", higher_is_better=False,
        choices={"reduction": REDUCTIONS})
def complexity(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
               reduction: str = "sum") -> Scored:
    """Entropy of the absolute map's distribution (lower: simpler)."""
    a = pixel_map(values, reduction).abs().flatten(1)
    total = a.sum(1, keepdim=True)
    p = a / torch.where(total > 0, total, 1)
    h = -torch.where(p > 0, p * p.log(), 0).sum(1)
    h = torch.where(total[:, 0] > 0, h, torch.nan)
    warn_nan("complexity", torch.isnan(h), "the map is all zeros")
    return Scored(h)
