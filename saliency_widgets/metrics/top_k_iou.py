"""Intersection over union of the map's top-k region and the mask.

The region is the ``top_k`` fraction of pixels with the largest channel-reduced values (ties
broken by position, as in ``relevance_rank``); the score is ``|region ∩ mask| / |region ∪ mask|``
in [0, 1]. It is 1 only when the mask covers exactly ``top_k`` of the image and the region is the
mask, so compare methods at one ``top_k``, not across. Default 10 %, about the size of the demo
objects (2.5–18 %, median 7.5 % of the image). Empty mask or constant map: NaN with a warning.
"""

from __future__ import annotations

import torch

from ..checks import fraction
from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored
from ._localization import map_and_masks


@metric(label="Top-k IoU", family="localization", higher_is_better=True,
        choices={"reduction": REDUCTIONS}, validators={"top_k": fraction})
def top_k_iou(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
              top_k: float = 0.1, reduction: str = "sum") -> Scored:
    """IoU of the top-k fraction of pixels with the mask."""
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "top_k_iou")
    flat, inside = m.flatten(1), masks.flatten(1)
    k = max(1, round(top_k * flat.shape[1]))
    order = torch.argsort(-flat, dim=1, stable=True)[:, :k]
    region = torch.zeros_like(inside).scatter_(1, order, True)
    iou = (region & inside).sum(1).double() / (region | inside).sum(1).double()
    return Scored(torch.where(undefined, torch.nan, iou))
