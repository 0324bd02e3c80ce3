"""Pointing game (Zhang et al. 2016, arXiv:1608.00507).

A hit when the map's maximum lies within ``tolerance`` pixels (Euclidean) of the mask. With
tied maxima, a hit needs *every* tied maximum within tolerance, so ties cannot cheat. A constant
map or an empty mask gives NaN with a warning, never a hit. Default tolerance: TorchRay's 15 px at
224, scaled with the image (round(15/224 × max(H, W))).
"""

from __future__ import annotations

import torch

from ..checks import nonnegative_int
from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored
from ._localization import map_and_masks


def maxima_near_mask(m: torch.Tensor, masks: torch.Tensor, radius: int,
                     skip: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: every maximum of ``m`` lies within Euclidean ``radius`` of ``masks``.

    Only the maxima matter, so this measures their distance to the nearest mask pixel
    (a handful of points against the mask) instead of dilating the whole mask.
    """
    out = torch.zeros(m.shape[0], dtype=torch.bool)
    peak = m.flatten(1).amax(1)
    for b in range(m.shape[0]):
        inside = masks[b].nonzero().double()
        if bool(skip[b]) or inside.numel() == 0:
            continue
        tops = (m[b] == peak[b]).nonzero().double()
        hit = True
        for i in range(0, tops.shape[0], 64):  # ties in blocks: memory stays 64 × |mask|
            nearest = torch.cdist(tops[i:i + 64], inside).amin(1)
            if not bool((nearest <= radius + 1e-9).all()):
                hit = False
                break
        out[b] = hit
    return out


@metric(label="Pointing game", family="localization", higher_is_better=True,
        choices={"reduction": REDUCTIONS}, validators={"tolerance": nonnegative_int})
def pointing_game(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                  tolerance: int | None = None, reduction: str = "sum") -> Scored:
    """1 if the map's maximum falls on (or near) the object, else 0."""
    if tolerance is None:
        tolerance = round(15 / 224 * max(x.shape[-2:]))
    mc.resolve_param("tolerance", tolerance)
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "pointing_game")
    hit = maxima_near_mask(m, masks, tolerance, undefined).double().to(m.device)
    return Scored(torch.where(undefined, torch.nan, hit))
