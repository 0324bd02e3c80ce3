"""Shared by the attention methods: patch-token relevances → an upsampled map."""

from __future__ import annotations

import math

import torch

from ..errors import SaliencyError
from ._common import upsample

PREFIX = 1  # the class token leads the sequence (torchvision's VisionTransformer)


def patch_map(relevance: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``(n, T − 1)`` patch relevances (class token dropped) → ``(n, 1, H, W)``, bilinear."""
    n, patches = relevance.shape
    side = math.isqrt(patches)
    if side * side != patches or side == 0:
        raise SaliencyError(f"the attention runs over {patches + PREFIX} tokens; after the "
                            f"class token, {patches} is not a square patch grid, so the map "
                            f"cannot be placed on the image")
    return upsample(relevance.reshape(n, 1, side, side), size)


def identity_like(a: torch.Tensor) -> torch.Tensor:
    """``(n, T, T)`` identities matching ``(n, heads, T, T)`` attention ``a``."""
    n, _, t, _ = a.shape
    return torch.eye(t, dtype=a.dtype, device=a.device).expand(n, t, t)
