"""Batched patch primitives: read windows of a cached feature map with patches laid over them.

Every occluded copy ``i`` of an image differs from the image's cached feature map ``A`` only
inside a box (``origin[i]``, fixed ``size``), where it holds ``patch[i]``. The boxes of one
chunk sit at different places, so all reads use index tensors rather than Python loops.
Caches are kept channels-last (``(H, W, C)``): a window gathered from them is then a
channels-last ``(n, C, h, w)`` view, the layout oneDNN convolves fastest on CPUs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hwc(cache: torch.Tensor, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
        fill: float = 0.0) -> torch.Tensor:
    """``(H + top + bottom, W + left + right, C)``: a ``(1, C, H, W)`` map padded with ``fill``.

    ``pad`` is ``(top, left, bottom, right)``.
    """
    top, left, bottom, right = pad
    if any(pad):
        cache = F.pad(cache, (left, right, top, bottom), value=fill)
    return cache[0].permute(1, 2, 0).contiguous()


def _ranges(start: torch.Tensor, length: int) -> torch.Tensor:
    return start[:, None] + torch.arange(length, device=start.device)


def gather(table: torch.Tensor, origin: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(n, C, h, w)`` windows of an ``hwc`` table at ``origin`` ``(n, 2)`` (table coordinates)."""
    rows = _ranges(origin[:, 0], size[0])
    cols = _ranges(origin[:, 1], size[1])
    return table[rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def overlay(windows: torch.Tensor, patch: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Write ``patch`` ``(n, C, ph, pw)`` into ``windows`` at ``offset`` ``(n, 2)``, in place;
    every patch must lie inside its window."""
    n, _, ph, pw = patch.shape
    rows = _ranges(offset[:, 0], ph)
    cols = _ranges(offset[:, 1], pw)
    target = windows.permute(0, 2, 3, 1)  # a view: writes reach ``windows``
    item = torch.arange(n, device=patch.device)
    target[item[:, None, None], rows[:, :, None], cols[:, None, :]] = patch.permute(0, 2, 3, 1)
    return windows


def materialize(cache: torch.Tensor, patch: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """``(n, C, H, W)``: fresh full feature maps, the ``(1, C, H, W)`` cache with the patches in."""
    full = cache.expand(patch.shape[0], *cache.shape[1:]).contiguous()
    return overlay(full, patch, origin)
