"""Trivial maps, so that a metric's number has something to beat.

Neither looks at the model: ``random`` is one map of i.i.d. uniform [0, 1) values drawn once from
a seed (the same for every input), ``edge`` is the Sobel gradient magnitude of the image (in
pixel space when the normalization is known), summed over channels. A method whose map scores
no better than these on a metric has not shown, on that metric, that it explains the model.
Scored like any map with ``sw.evaluate`` (with ``explain=`` the same trivial map of the
perturbed input, for the metrics that re-explain).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .baselines import parse_normalization
from .errors import SaliencyError

TRIVIAL_MAPS = ("random", "edge")

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                      dtype=torch.float64)


def random_map(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Return ``(B, 1, H, W)`` float64: one uniform [0, 1) map per seed, the same for every
    example and input (drawn on the CPU, so the same on every device)."""
    H, W = x.shape[-2:]
    draw = torch.rand((1, 1, H, W), generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)
    return draw.to(x.device).expand(x.shape[0], 1, H, W).clone()


def edge_map(x: torch.Tensor, normalization: Any = None) -> torch.Tensor:
    """Return ``(B, 1, H, W)`` float64: Σ over channels of the Sobel gradient magnitude of the
    image (borders replicated, so the frame of the image is not an edge)."""
    B, C = x.shape[:2]
    pixels = x.detach().double()
    norm, _ = parse_normalization(normalization, C, x.device, torch.float64)
    if norm is not None:
        mean, std = norm
        pixels = pixels * std + mean
    padded = F.pad(pixels.reshape(B * C, 1, *x.shape[2:]), (1, 1, 1, 1), mode="replicate")
    k = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(x.device)
    g = F.conv2d(padded, k)  # (B·C, 2, H, W): d/dx, d/dy
    return g.pow(2).sum(1).sqrt().reshape(B, C, *x.shape[2:]).sum(1, keepdim=True)


def trivial_map(kind: str, x: torch.Tensor, *, normalization: Any = None,
                seed: int = 0) -> torch.Tensor:
    """Return the ``kind`` (``"random"`` or ``"edge"``) trivial map of ``x``, ``(B, 1, H, W)``."""
    if kind == "random":
        return random_map(x, seed)
    if kind == "edge":
        return edge_map(x, normalization)
    raise SaliencyError(f"unknown trivial map {kind!r}; use one of {TRIVIAL_MAPS}")
