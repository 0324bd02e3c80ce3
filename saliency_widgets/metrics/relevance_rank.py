"""Relevance rank accuracy (Arras et al. 2022, arXiv:2003.07258).

With ``K = |mask|``, the share of the ``K`` most relevant pixels that lie inside the mask.

Ties get fractional credit: the score is its expected value when tied pixels are ordered at
random. Pixels strictly above the ``K``-th largest value ``t`` are all in the top ``K``; the
``r`` places left go to ``r`` of the ``g`` pixels equal to ``t``, so each of them counts
``r / g``. The score is therefore invariant to any permutation of the pixels (flipping map and
mask together changes nothing). Breaking ties by position instead (Quantus: ``np.argsort``
order) makes a ReLU'd CAM map, whose zeros fill the top ``K`` when fewer than ``K`` pixels are
positive, score by where the mask lies in the image. Empty mask or constant map: NaN with a
warning.
"""

from __future__ import annotations

import torch

from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored
from ._localization import map_and_masks


def expected_top_k_inside(m: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float64: expected share of the top-``|inside|`` pixels of ``m`` that are inside.

    ``m`` ``(B, N)`` float64, ``inside`` ``(B, N)`` bool; ties ordered uniformly at random.
    """
    k = inside.sum(1)
    ranked = m.sort(dim=1, descending=True).values
    t = ranked.gather(1, (k - 1).clamp(min=0)[:, None])  # the K-th largest value
    above, tied = m > t, m == t
    slots = (k - above.sum(1)).double()  # places in the top K left for the tied pixels
    credit = (inside & above).sum(1).double() \
        + slots * (inside & tied).sum(1).double() / tied.sum(1).clamp(min=1).double()
    return credit / k.clamp(min=1).double()


@metric(label="Relevance rank", family="localization", higher_is_better=True,
        choices={"reduction": REDUCTIONS})
def relevance_rank(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                   reduction: str = "sum") -> Scored:
    """Share of the top-|mask| pixels that are inside the mask (ties: expected share)."""
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "relevance_rank")
    acc = expected_top_k_inside(m.flatten(1), masks.flatten(1))
    return Scored(torch.where(undefined, torch.nan, acc))
