"""What the audit keeps of each example's pixels: a small map per method and a thumbnail."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SaliencyError, SaliencyWarning
from ..reduce import reduce_channels


def map_shape(height: int, width: int, map_size: int) -> tuple[int, int]:
    """``(h, w)``: the longer side ``map_size`` (never larger than the image), aspect kept."""
    if isinstance(map_size, bool) or not isinstance(map_size, int) or map_size < 1:
        raise SaliencyError(f"map_size must be a positive int (the longer side of the stored "
                            f"maps and thumbnails, in pixels), got {map_size!r}")
    side = min(map_size, max(height, width))
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(t: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``(n, c, H, W)`` → ``(n, c, h, w)`` by area averaging (shapes never grow; see map_shape)."""
    if tuple(t.shape[-2:]) == tuple(shape):
        return t
    return F.interpolate(t, size=shape, mode="area")


def small_maps(values: torch.Tensor, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(unit float16 (n, h, w), scale float64 (n,))`` with map ≈ unit · scale.

    The map is the channel sum (``sw.reduce_channels``'s default, the one metrics score),
    area-resized, divided by its largest magnitude: float16 then keeps ~3 significant digits
    relative to each map's peak whatever its raw scale (raw gradients can be far below float16's
    smallest normal number, 6e-5). An all-zero map has scale 0 and stays zero.
    """
    m = reduce_channels(values.detach().float(), "sum")[:, None]
    m = _resize(m, shape)[:, 0]
    scale = m.flatten(1).abs().amax(1)
    unit = m / torch.where(scale > 0, scale, 1.0)[:, None, None]
    return (unit.to(torch.float16).cpu().numpy(),
            scale.cpu().numpy().astype(np.float64))


def thumbnails(x: torch.Tensor, normalization: tuple[torch.Tensor, torch.Tensor] | None,
               shape: tuple[int, int], warned: list[bool]) -> np.ndarray:
    """Return uint8 ``(n, h, w, 3)``: the input as pixels (normalization undone), area-resized.

    Without a normalization, inputs in [0, 1] are taken as pixels; others are min–max scaled
    per image, with one warning (``warned`` remembers it across batches).
    """
    t = x.detach().float()
    if normalization is not None:
        mean, std = normalization
        t = t * std.to(t) + mean.to(t)
    else:
        lo, hi = float(t.min()), float(t.max())
        if lo < -0.02 or hi > 1.02:
            if not warned[0]:
                warnings.warn(f"the inputs have values in [{lo:.2f}, {hi:.2f}], not [0, 1], and "
                              f"no normalization was given; thumbnails are min-max scaled per "
                              f"image. Pass normalization=(mean, std) to see the pixels",
                              SaliencyWarning, stacklevel=4)
                warned[0] = True
            flat = t.flatten(1)
            lo_i = flat.amin(1).view(-1, 1, 1, 1)
            span = (flat.amax(1).view(-1, 1, 1, 1) - lo_i).clamp(min=1e-12)
            t = (t - lo_i) / span
    c = t.shape[1]
    if c == 1:
        t = t.expand(-1, 3, -1, -1)
    elif c != 3:
        t = t.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    t = _resize(t, shape).clamp(0, 1).mul(255).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).contiguous().cpu().numpy()
