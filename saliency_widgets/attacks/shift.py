"""How far a map moved: the measures of Ghorbani et al. 2019 (arXiv:1710.10547), on ``|map|``.

Every measure reads the channel-reduced magnitude ``|map|`` (``reduce_channels(..., "abs")``, the
display's "absolute" map) in float64:

* ``top_k_intersection``: the share of the original top-k pixels (k = ``fraction`` of the pixels,
  5 % by default) that are still among the top k; 1 = unmoved. Ties are broken by position.
* ``spearman``: Spearman rank correlation with average ranks for ties; 1 = unmoved. NaN when the
  original map is constant (no ranking to keep); 0 when only the new one is.
* ``com_distance``: distance in pixels between the two centres of mass; 0 = unmoved. NaN when a
  map is zero everywhere (it has no centre).

The differentiable versions used as attack objectives live in ``pgd.py``.
"""

from __future__ import annotations

import torch

from ..metrics._similarity import spearman
from ..reduce import reduce_channels

MEASURES = ("top_k_intersection", "spearman", "com_distance")


def magnitude(values: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` float64 ``|map|`` summed over channels."""
    return reduce_channels(values.detach(), "abs").double()


def top_k_count(height: int, width: int, fraction: float) -> int:
    """Pixels in the top-``fraction`` region (at least 1)."""
    return max(1, round(fraction * height * width))


def top_k_mask(m: torch.Tensor, fraction: float) -> torch.Tensor:
    """``(B, H, W)`` bool: the ``fraction`` largest pixels of each map (ties by position)."""
    B, H, W = m.shape
    k = top_k_count(H, W, fraction)
    order = torch.argsort(-m.reshape(B, -1), dim=1, stable=True)[:, :k]
    out = torch.zeros(B, H * W, dtype=torch.bool, device=m.device)
    return out.scatter_(1, order, True).view(B, H, W)


def centre_of_mass(m: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` (row, column) centre of mass of non-negative maps; NaN for an all-zero map."""
    H, W = m.shape[1:]
    total = m.sum(dim=(1, 2))
    rows = torch.arange(H, dtype=m.dtype, device=m.device)
    cols = torch.arange(W, dtype=m.dtype, device=m.device)
    r = (m.sum(2) * rows).sum(1)
    c = (m.sum(1) * cols).sum(1)
    com = torch.stack([r, c], 1) / torch.where(total > 0, total, 1)[:, None]
    return torch.where((total > 0)[:, None], com, torch.nan)


def map_shift(before: torch.Tensor, after: torch.Tensor,
              fraction: float = 0.05) -> dict[str, torch.Tensor]:
    """Return ``{measure: (B,) float64}`` comparing two ``(B, C|1, H, W)`` maps (see the module)."""
    a, b = magnitude(before), magnitude(after)
    ta, tb = top_k_mask(a, fraction), top_k_mask(b, fraction)
    k = top_k_count(a.shape[1], a.shape[2], fraction)
    inter = (ta & tb).flatten(1).sum(1).double() / k
    rho = spearman(a.flatten(1), b.flatten(1))
    dist = (centre_of_mass(a) - centre_of_mass(b)).norm(dim=1)
    return {"top_k_intersection": inter.cpu(), "spearman": rho.cpu(), "com_distance": dist.cpu()}


def mass_in(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``(B,)`` share of ``|map|`` inside ``region`` (``(B, H, W)`` weights in [0, 1]); NaN for an
    all-zero map."""
    m = magnitude(values)
    total = m.flatten(1).sum(1)
    inside = (m * region.to(m)).flatten(1).sum(1)
    return torch.where(total > 0, inside / torch.where(total > 0, total, 1), torch.nan).cpu()
