"""Similarity of two maps, for the randomization sanity checks (Adebayo et al. 2018).

The four measures of the paper, per example, on ``(B, H, W)`` channel-reduced maps: Spearman
rank correlation of the absolute and of the signed maps (ties get average ranks), SSIM, and the
Pearson correlation of HOG descriptors. A structured reference against a constant map: 0 (the
constant map keeps none of its structure); a constant reference: NaN (nothing to compare).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog")


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` float64 ranks along dim 1, ties sharing their average rank."""
    out = torch.empty(v.shape, dtype=torch.float64, device=v.device)
    for b in range(v.shape[0]):
        uniq, inverse, counts = torch.unique(v[b], sorted=True, return_inverse=True,
                                             return_counts=True)
        start = torch.cumsum(counts, 0) - counts
        out[b] = (start.double() + (counts.double() - 1) / 2)[inverse]
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Spearman rank correlation of the rows of reference ``a`` and ``b`` ``(B, N)``.

    A constant ``b`` against a structured ``a`` keeps none of its ranking: 0. A constant ``a``
    leaves nothing to compare: NaN.
    """
    return pearson(average_ranks(a), average_ranks(b))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Pearson correlation of the rows of reference ``a`` and ``b`` ``(B, N)``, with
    :func:`spearman`'s conventions for constant rows (constant ``b``: 0; constant ``a``: NaN)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    va, vb = a.pow(2).sum(1), b.pow(2).sum(1)
    denom = (va * vb).sqrt()
    rho = torch.where(denom > 0, (a * b).sum(1) / torch.where(denom > 0, denom, 1),
                      torch.zeros_like(denom))
    return torch.where(va > 0, rho, torch.full_like(denom, float("nan")))


def _minmax(m: torch.Tensor) -> torch.Tensor:
    flat = m.flatten(1)
    lo, hi = flat.amin(1).view(-1, 1, 1), flat.amax(1).view(-1, 1, 1)
    span = hi - lo
    return torch.where(span > 0, (m - lo) / torch.where(span > 0, span, 1), torch.zeros_like(m))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """``(B,)`` SSIM of ``(B, H, W)`` maps in [0, 1] (data range 1), scikit-image's defaults."""
    win = max(1, min(window, a.shape[-2], a.shape[-1]))
    win -= 1 - win % 2  # odd
    x, y = a.double()[:, None], b.double()[:, None]
    k = torch.full((1, 1, win, win), 1.0 / win ** 2, dtype=torch.float64, device=x.device)
    n = win * win
    cov = n / (n - 1) if n > 1 else 1.0

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, k)  # "valid" windows only: the same as skimage's border crop

    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def hog_cell(height: int, width: int) -> int:
    """The HOG cell side for a map: even (see :func:`hog`), about 8 cells on the short side."""
    return max(2, 2 * (min(height, width) // 16))


def hog(m: torch.Tensor, cell: int, orientations: int = 9, block: int = 2) -> torch.Tensor:
    """``(B, F)`` float64 HOG descriptors of ``(B, H, W)`` maps (Dalal & Triggs 2005).

    As ``skimage.feature.hog(m, orientations, (cell, cell), (block, block), "L2-Hys")``:
    central-difference gradients (0 on the border rows/columns), unsigned orientations in
    ``[0°, 180°)`` hard-binned, per-cell sums of magnitudes over whole cells only, then every
    ``block × block`` group of cells L2-normalised, clipped at 0.2 and normalised again (ε 1e-5),
    flattened in scikit-image's order. ``cell`` must be even (scikit-image's cells of odd side
    leave out their last row and column).
    """
    if cell < 2 or cell % 2:
        raise ValueError(f"hog: cell must be an even number ≥ 2, got {cell}")
    m = m.double()
    B, H, W = m.shape
    rows, cols = H // cell, W // cell
    if rows < block or cols < block:
        raise ValueError(f"hog: a {H}×{W} map has {rows}×{cols} cells of {cell} px, fewer than "
                         f"a {block}×{block} block")
    g_row, g_col = torch.zeros_like(m), torch.zeros_like(m)
    g_row[:, 1:-1] = m[:, 2:] - m[:, :-2]
    g_col[:, :, 1:-1] = m[:, :, 2:] - m[:, :, :-2]
    magnitude = torch.hypot(g_col, g_row)
    angle = torch.remainder(torch.rad2deg(torch.atan2(g_row, g_col)), 180.0)
    # bin i holds [i, i + 1) · 180°/orientations; the edges in float32, as scikit-image's
    edges = (torch.arange(1, orientations + 1, dtype=torch.float64) * (180.0 / orientations)
             ).float().double().to(m.device)
    bins = (angle[..., None] >= edges).sum(-1).clamp(max=orientations - 1)
    votes = F.one_hot(bins, orientations).double() * magnitude[..., None]
    votes = votes[:, :rows * cell, :cols * cell]
    hist = votes.reshape(B, rows, cell, cols, cell, orientations).sum((2, 4))
    # every block of block × block cells: (B, rows − block + 1, cols − block + 1, block, block, O)
    blocks = hist.unfold(1, block, 1).unfold(2, block, 1).permute(0, 1, 2, 4, 5, 3)
    flat = blocks.reshape(*blocks.shape[:3], -1)
    eps2 = 1e-5 ** 2
    flat = flat / (flat.pow(2).sum(-1, keepdim=True) + eps2).sqrt()
    flat = flat.clamp(max=0.2)
    flat = flat / (flat.pow(2).sum(-1, keepdim=True) + eps2).sqrt()
    return flat.reshape(B, -1)


def hog_similarity(ref: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Pearson correlation of the HOG descriptors of two ``(B, H, W)`` maps, each
    min-max normalised first (as for SSIM); NaN for maps under 4 px on a side."""
    H, W = ref.shape[-2:]
    if min(H, W) < 4:
        return torch.full((ref.shape[0],), float("nan"), dtype=torch.float64)
    cell = hog_cell(H, W)
    return pearson(hog(_minmax(ref), cell), hog(_minmax(new), cell))


def similarities(ref: torch.Tensor, new: torch.Tensor) -> dict[str, torch.Tensor]:
    """All four measures between ``(B, H, W)`` reduced maps."""
    a, b = ref.flatten(1), new.flatten(1)
    return {"spearman_abs": spearman(a.abs(), b.abs()), "spearman": spearman(a, b),
            "ssim": ssim(_minmax(ref), _minmax(new)), "hog": hog_similarity(ref, new)}
