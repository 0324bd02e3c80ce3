"""Pointing game (Zhang et al. 2016, arXiv:1608.00507).

A hit when the map's maximum lies within ``tolerance`` pixels (Euclidean) of the mask. With
tied maxima, a hit needs *every* tied maximum within tolerance, so ties cannot cheat. A constant
map or an empty mask gives NaN with a warning, never a hit. Default tolerance: TorchRay's 15 px at
224, scaled with the image (round(15/224 × max(H, W))).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SaliencyError
from ..registry import metric
from ._common import MetricContext, Scored, check_reduction
from ._localization import map_and_masks


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within Euclidean ``radius`` of the mask."""
    if radius <= 0:
        return masks
    r = torch.arange(-radius, radius + 1, device=masks.device)
    disc = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2).double()[None, None]
    grown = F.conv2d(masks.double()[:, None], disc, padding=radius)
    return grown[:, 0] > 0


@metric(label="Pointing game", family="localization", higher_is_better=True)
def pointing_game(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                  tolerance: int | None = None, reduction: str = "sum") -> Scored:
    """1 if the map's maximum falls on (or near) the object, else 0."""
    check_reduction("pointing_game", reduction)
    if tolerance is None:
        tolerance = round(15 / 224 * max(x.shape[-2:]))
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise SaliencyError(f"pointing_game: tolerance must be an int ≥ 0, got {tolerance!r}")
    mc.extras["tolerance"] = tolerance
    m, masks, undefined = map_and_masks(mc, x, values, reduction, "pointing_game")
    near = dilate(masks, tolerance)
    is_max = m == m.flatten(1).amax(1).view(-1, 1, 1)
    hit = (~is_max | near).flatten(1).all(1).double()
    return Scored(torch.where(undefined, torch.nan, hit))
