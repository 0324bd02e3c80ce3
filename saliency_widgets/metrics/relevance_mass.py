"""Relevance mass accuracy (Arras et al. 2022, arXiv:2003.07258).

Positive relevance inside the mask divided by all positive relevance, in [0, 1]. (Quantus divides
by the *signed* sum, which can leave [0, 1].) Empty mask, constant map, or no positive relevance:
NaN with a warning.
"""

from __future__ import annotations

import torch

from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored, warn_nan
from ._localization import map_and_masks


@metric(label="Relevance mass", family="localization", higher_is_better=True,
        choices={"reduction": REDUCTIONS})
def relevance_mass(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                   reduction: str = "sum") -> Scored:
    """Share of the positive relevance that falls inside the mask."""
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "relevance_mass")
    pos = m.clamp(min=0).flatten(1)
    total = pos.sum(1)
    none = (total == 0) & ~undefined
    warn_nan("relevance_mass", none, "the map has no positive relevance")
    inside = (pos * masks.flatten(1)).sum(1)
    mass = inside / torch.where(total > 0, total, 1)
    return Scored(torch.where(undefined | none, torch.nan, mass))
