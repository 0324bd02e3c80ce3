"""Shared by the attention methods: patch-token relevances → an upsampled map."""

from __future__ import annotations

import math

import torch

from ..errors import SaliencyError
from ._common import upsample

PREFIX = 1  # the class token leads the sequence (torchvision's VisionTransformer)


def patch_grid(patches: int, size: tuple[int, int]) -> tuple[int, int]:
    """The ``(rows, columns)`` of ``patches`` row-major patches tiling an ``H × W`` image: the
    grid of the image's aspect ratio (square images: ``√patches`` a side)."""
    H, W = size
    rows = max(1, round(math.sqrt(patches * H / W)))  # rows / cols = H / W, rows · cols = patches
    cols = patches // rows
    if rows * cols != patches or rows * W != cols * H:
        raise SaliencyError(f"the attention runs over {patches + PREFIX} tokens; after the "
                            f"class token, {patches} patches do not tile the {H} × {W} input in "
                            f"a grid of its aspect ratio (a {H // math.gcd(H, W)} : "
                            f"{W // math.gcd(H, W)} grid), so the map cannot be placed on the "
                            f"image; pass an input the model's patches tile exactly")
    return rows, cols


def patch_map(relevance: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(n, T − 1)`` patch relevances (class token dropped) → ``(n, 1, H, W)``, bilinear."""
    n, patches = relevance.shape
    return upsample(relevance.reshape(n, 1, *patch_grid(patches, size)), size)


def identity_like(a: torch.Tensor) -> torch.Tensor:
    """``(n, T, T)`` identities matching ``(n, heads, T, T)`` attention ``a``."""
    n, _, t, _ = a.shape
    return torch.eye(t, dtype=a.dtype, device=a.device).expand(n, t, t)
