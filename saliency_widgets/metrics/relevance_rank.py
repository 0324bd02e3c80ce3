"""Relevance rank accuracy (Arras et al. 2022, arXiv:2003.07258).

With ``K = |mask|``, the share of the ``K`` most relevant pixels that lie inside the mask. Ties are
broken by position (deterministic). Empty mask or constant map: NaN with a warning.
"""

from __future__ import annotations

import torch

from ..registry import metric
from ._common import MetricContext, Scored, check_reduction
from ._localization import map_and_masks


@metric(label="Relevance rank", family="localization", higher_is_better=True)
def relevance_rank(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                   reduction: str = "sum") -> Scored:
    """Share of the top-|mask| pixels that are inside the mask."""
    check_reduction("relevance_rank", reduction)
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "relevance_rank")
    flat, inside = m.flatten(1), masks.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    k = inside.sum(1)
    ranked_inside = inside.gather(1, order)
    top = torch.arange(flat.shape[1], device=flat.device)[None] < k[:, None]
    acc = (ranked_inside & top).sum(1).double() / k.clamp(min=1).double()
    return Scored(torch.where(undefined, torch.nan, acc))
