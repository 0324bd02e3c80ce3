"""XRAI's regions: overlapping Felzenszwalb segments, and their greedy ranking by density.

* :func:`felzenszwalb_masks` segments an image at six scales (Felzenszwalb & Huttenlocher 2004)
  with the settings of PAIR ``saliency`` 0.2.1: the image min-max scaled to [−1, 1] and resized
  to 224 × 224 (cubic), σ 0.8, minimum size 150, scales 50, 100, 150, 250, 500 and 1200; each
  label map resized back (nearest) and every segment dilated by a disk of radius 5 px. Needs
  scikit-image (CPU); the dilation runs on the model's device.
* :func:`rank_regions` adds, greedily, the region whose *not yet covered* pixels have the highest
  mean attribution (dropping regions that would add fewer than ``min_pixel_diff`` pixels), until
  the covered area exceeds ``area_threshold`` or no region is left. Each pixel gets the density
  of the region that covered it; pixels never covered get their own mean. Each region's new-pixel
  count and sum are updated incrementally, so a whole ranking costs ``O(regions × pixels)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SaliencyError

SCALES = (50, 100, 150, 250, 500, 1200)
SIGMA = 0.8
MIN_SIZE = 150
WORK_SIZE = (224, 224)
DILATION = 5


def felzenszwalb_masks(owner: str, pixels: torch.Tensor) -> torch.Tensor:
    """``(M, H, W)`` bool: the dilated segments of one ``(C, H, W)`` image at every scale."""
    try:
        from skimage.segmentation import felzenszwalb
        from skimage.transform import resize
    except ImportError as err:
        raise SaliencyError(f"{owner}: segments='felzenszwalb' needs scikit-image, which is not "
                            f"installed: pip install scikit-image (or pip install "
                            f"'saliency_widgets[xrai]'); or pass segments= a (K, H, W) bool "
                            f"tensor of region masks") from err
    H, W = pixels.shape[-2:]
    im = pixels.detach().to(torch.float64).permute(1, 2, 0).cpu().numpy()
    lo, hi = im.min(), im.max()
    im = (im - lo) / (hi - lo) * 2 - 1 if hi > lo else np.zeros_like(im)
    im = resize(im, WORK_SIZE, order=3, mode="constant", preserve_range=True, anti_aliasing=True)
    labels = []
    for scale in SCALES:
        seg = felzenszwalb(im, scale=scale, sigma=SIGMA, min_size=MIN_SIZE)
        seg = resize(seg, (H, W), order=0, preserve_range=True, mode="constant",
                     anti_aliasing=False).astype(np.int64)
        labels.append(torch.from_numpy(seg))
    return dilated_segments(torch.stack(labels).to(pixels.device), DILATION)


def dilated_segments(labels: torch.Tensor, radius: int) -> torch.Tensor:
    """``(M, H, W)`` bool: every segment of each ``(S, H, W)`` label map, dilated by the disk
    ``dy² + dx² ≤ radius²`` (outside the image counts as not in the segment).

    One mask per label value from each map's minimum to its maximum, in map order (values that
    no pixel holds give empty masks, which the ranking drops). A pixel is in a dilated segment
    when some pixel of the disk around it is in the segment, so each map costs one scatter per
    disk offset, whatever its number of segments.
    """
    H, W = labels.shape[1:]
    r = torch.arange(-radius, radius + 1).tolist()
    offsets = [(dy, dx) for dy in r for dx in r if dy * dy + dx * dx <= radius * radius]
    dev = labels.device
    pixel = torch.arange(H * W, device=dev).view(H, W)
    out = []
    for lab in labels:
        lab = (lab - lab.min()).reshape(-1)
        masks = torch.zeros((int(lab.max()) + 1) * H * W, dtype=torch.bool, device=dev)
        for dy, dx in offsets:  # pixel p gets the label found at p + (dy, dx)
            p = pixel[max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)].reshape(-1)
            masks.index_fill_(0, lab[p + (dy * W + dx)] * (H * W) + p, True)
        out.append(masks.view(-1, H, W))
    return torch.cat(out)


def _sums(flat: torch.Tensor, a: torch.Tensor, idx: torch.Tensor | None = None,
          budget: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M,)`` counts and sums of ``a`` of each mask over the pixels ``idx`` (None: all), in
    pieces of at most ``budget`` mask values (bounded memory)."""
    count = torch.zeros(flat.shape[0], dtype=torch.long, device=a.device)
    total = torch.zeros(flat.shape[0], dtype=a.dtype, device=a.device)
    n = a.numel() if idx is None else idx.numel()
    step = max(1, budget // max(1, flat.shape[0]))
    for i in range(0, n, step):
        cols = slice(i, i + step) if idx is None else idx[i:i + step]
        part = flat[:, cols]
        count += part.sum(1)
        total += part.to(a.dtype) @ a[cols]
    return count, total


def rank_regions(attr: torch.Tensor, masks: torch.Tensor, min_pixel_diff: int,
                 area_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(map (H, W), ranks (H, W) long)`` for one ``(H, W)`` attribution (float64).

    ``ranks`` numbers the chosen regions ``1…N`` by decreasing density (stable: ties keep the
    order of choice) and the uncovered rest, if any, ``N + 1``.
    """
    H, W = attr.shape
    a = attr.reshape(-1)
    flat = masks.reshape(masks.shape[0], -1)
    count, total = _sums(flat, a)
    alive = torch.ones(flat.shape[0], dtype=torch.bool, device=a.device)
    covered = torch.zeros_like(a, dtype=torch.bool)
    value = torch.zeros_like(a)
    chosen: list[tuple[torch.Tensor, float]] = []
    while float(covered.sum()) / covered.numel() <= area_threshold:
        alive &= count >= min_pixel_diff
        if not bool(alive.any()):
            break
        gain = torch.where(alive, total / count.clamp(min=1), -torch.inf)
        best = int(gain.argmax())  # the first of equal gains, as PAIR's strict ">" scan
        new = flat[best] & ~covered
        density = a[new].mean()
        value[new] = density
        chosen.append((new, float(density)))
        covered |= new
        alive[best] = False
        idx = new.nonzero()[:, 0]
        lost, lost_sum = _sums(flat, a, idx)
        count -= lost
        total -= lost_sum
    rest = ~covered
    if bool(rest.any()):
        value[rest] = a[rest].mean()
    ranks = torch.zeros_like(a, dtype=torch.long)
    order = sorted(range(len(chosen)), key=lambda i: -chosen[i][1])
    for r, i in enumerate(order):
        ranks[chosen[i][0]] = r + 1
    if bool(rest.any()):
        ranks[rest] = len(chosen) + 1
    return value.reshape(H, W), ranks.reshape(H, W)
