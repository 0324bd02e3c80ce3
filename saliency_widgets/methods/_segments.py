"""Shared machinery of the surrogate methods (LIME, KernelSHAP): segments, coalitions, solves.

* :func:`segment_labels` turns ``segments=`` (``"grid"``, ``"slic"`` or a label tensor) into
  ``(B, H, W)`` labels numbered ``0 … M_b − 1`` per example.
* :func:`coalition_scores` evaluates the objective on every coalition ``z ∈ {0,1}^M`` (segment
  ``m`` from ``x`` where ``z_m = 1``, from the baseline elsewhere), chunked through
  :meth:`Work.run`.
* :func:`weighted_lstsq` solves a weighted least-squares problem in float64 by SVD, shared by all
  examples that share a design, and raises a :class:`SaliencyError` when the design is
  rank-deficient.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import SaliencyError
from ..model.explainee import Explainee
from ..checks import Open

SEGMENTATIONS = ("grid", "slic")
SEGMENTS = Open(SEGMENTATIONS, "an (H, W) or (B, H, W) int label tensor")  # declared choices


# --- segmentations -------------------------------------------------------------------------------
def _grid_shape(grid: Any, size: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, columns)`` of a checked ``grid`` (an int or a pair)."""
    pair = grid if isinstance(grid, (tuple, list)) else (grid, grid)
    # never more cells than pixels along a side, so no cell is empty
    return min(int(pair[0]), size[0]), min(int(pair[1]), size[1])


def grid_labels(rows: int, cols: int, height: int, width: int,
                device: torch.device) -> torch.Tensor:
    """``(H, W)`` labels of a ``rows × cols`` grid whose cells differ by at most one pixel a side.

    Pixel ``i`` of a side of length ``n`` split in ``k`` goes to cell ``⌊i·k/n⌋``: every pixel is
    covered, and cells are ``⌊n/k⌋`` or ``⌈n/k⌉`` long.
    """
    r = torch.arange(height, device=device) * rows // height
    c = torch.arange(width, device=device) * cols // width
    return r[:, None] * cols + c[None, :]


def _slic_labels(owner: str, x: torch.Tensor, normalization: Any, n_segments: int,
                 compactness: float) -> torch.Tensor:
    try:
        from skimage.segmentation import slic
    except ImportError as err:
        raise SaliencyError(f"{owner}: segments='slic' needs scikit-image, which is not "
                            f"installed: pip install scikit-image (or pip install "
                            f"'saliency_widgets[slic]'); or use segments='grid' or pass a "
                            f"label tensor") from err
    pixels = x.detach().to(torch.float64)
    if normalization is not None:  # back to [0, 1] pixels, as SLIC's colour distances expect
        mean, std = normalization
        pixels = (pixels * std.to(pixels) + mean.to(pixels)).clamp(0, 1)
    else:  # unknown scale: each image min-max scaled to [0, 1]
        lo = pixels.amin(dim=(1, 2, 3), keepdim=True)
        hi = pixels.amax(dim=(1, 2, 3), keepdim=True)
        pixels = torch.where(hi > lo, (pixels - lo) / torch.where(hi > lo, hi - lo, 1), 0)
    arrays = pixels.permute(0, 2, 3, 1).cpu().numpy()
    C = x.shape[1]
    out = []
    for image in arrays:
        if C == 1:
            lab = slic(image[..., 0], n_segments=n_segments, compactness=compactness,
                       start_label=0, channel_axis=None)
        else:
            lab = slic(image, n_segments=n_segments, compactness=compactness, start_label=0,
                       channel_axis=-1, convert2lab=(C == 3))
        out.append(torch.as_tensor(lab.astype("int64")))
    return torch.stack(out).to(x.device)


def segment_labels(owner: str, x: torch.Tensor, segments: object, grid: object,
                   slic_segments: int, compactness: float, normalization: Any
                   ) -> tuple[torch.Tensor, list[int], Any]:
    """Return ``(labels (B, H, W) long in 0…M_b−1, [M_b per example], the record)``."""
    B, _, H, W = x.shape
    if isinstance(segments, str):
        if segments == "grid":
            rows, cols = _grid_shape(grid, (H, W))
            lab = grid_labels(rows, cols, H, W, x.device).expand(B, H, W)
            return lab, [rows * cols] * B, "grid"
        if segments == "slic":
            raw = _slic_labels(owner, x, normalization, slic_segments, float(compactness))
            record = "slic"
        else:
            raise SaliencyError(f"{owner}: segments={segments!r} is not supported; use "
                                f"'grid', 'slic', or an int tensor of labels shaped (H, W) or "
                                f"(B, H, W)")
    elif isinstance(segments, torch.Tensor):
        if segments.dtype.is_floating_point or segments.dtype.is_complex \
                or segments.dtype == torch.bool:
            raise SaliencyError(f"{owner}: a segments tensor must hold integer labels, got "
                                f"dtype {segments.dtype}; use .long()")
        if segments.dim() == 2:
            segments = segments[None]
        if segments.dim() != 3 or tuple(segments.shape[1:]) != (H, W) \
                or segments.shape[0] not in (1, B):
            raise SaliencyError(f"{owner}: a segments tensor must have shape ({H}, {W}) or "
                                f"({B}, {H}, {W}) for an input of shape {tuple(x.shape)}; got "
                                f"{tuple(segments.shape)}")
        raw = segments.to(device=x.device, dtype=torch.long).expand(B, H, W)
        record = "tensor"
    else:
        raise SaliencyError(f"{owner}: segments must be 'grid', 'slic' or an int tensor of "
                            f"labels, got {type(segments).__name__}")
    labels = torch.empty((B, H, W), dtype=torch.long, device=x.device)
    counts = []
    for b in range(B):  # renumber each example's labels 0…M_b−1 (any ints, gaps allowed)
        uniq, inverse = torch.unique(raw[b], return_inverse=True)
        labels[b] = inverse.reshape(H, W)
        counts.append(int(uniq.numel()))
    return labels, counts, record


# --- coalitions ----------------------------------------------------------------------------------
def coalition_scores(ctx: Explainee, x: torch.Tensor, base: torch.Tensor, labels: torch.Tensor,
                     z: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` float64 objective of each example's ``N`` coalitions ``z (B or 1, N, M)``.

    Row ``(b, n)`` is ``x[b]`` where ``z[b, n, labels[b]]`` is 1 and ``base[b]`` elsewhere. All
    ``B·N`` inputs go through one :meth:`Work.run` (chunked, with progress and cancel).
    """
    B, C, H, W = x.shape
    N = z.shape[1]
    flat = labels.reshape(B, H * W)
    out = torch.zeros((B, N), dtype=torch.float64, device=x.device)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, n = t // N, t % N
        zr = z[rows if z.shape[0] > 1 else torch.zeros_like(rows), n]  # (k, M)
        keep = zr.gather(1, flat[rows]).reshape(-1, 1, H, W)
        batch = torch.where(keep, x[rows], base[rows])
        s = ctx.scores(batch, rows).to(torch.float64)
        out[rows, n] = s

    ctx.work.run(B * N, step, item_numel=x[0].numel(), kind="forward")
    return out


def paint(values: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, 1, H, W)``: each pixel gets its segment's value from ``values (B, M_max)``."""
    B, H, W = labels.shape
    return values.gather(1, labels.reshape(B, H * W)).reshape(B, 1, H, W).to(dtype)


# --- the weighted least-squares surrogate -------------------------------------------------------
def rank_error(owner: str, samples: int, unknowns: int) -> SaliencyError:
    return SaliencyError(
        f"{owner}: the {samples} samples do not determine the {unknowns} unknowns of the "
        f"surrogate (the sampled coalitions are rank-deficient: some segments are never "
        f"separated); raise samples= (to several times the number of segments) or use fewer "
        f"segments")


def weighted_lstsq(owner: str, design: torch.Tensor, weights: torch.Tensor, y: torch.Tensor, *,
                   intercept: bool, ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``Σ_n w_n (y_nr − a_r − design_n·β_r)² + ridge·‖β_r‖²`` for each column ``r``.

    ``design (N, p)``, ``weights (N,)`` and ``y (N, R)`` are float64. The intercept ``a`` (if
    any) is not penalised: the problem is centred on the weighted means first. Solved by SVD of
    ``√w ⊙ design`` (backward stable, the same code on CPU and CUDA). Returns ``(β (R, p),
    a (R,))``. A column of ``y`` that is exactly zero gives exactly zero. Without ``ridge`` a
    rank-deficient design raises a :class:`SaliencyError`.
    """
    N, p = design.shape
    if intercept:
        mean_w = weights / weights.sum()
        xm = mean_w @ design  # (p,)
        ym = mean_w @ y  # (R,)
        xc, yc = design - xm, y - ym
    else:
        xm = torch.zeros(p, dtype=design.dtype, device=design.device)
        ym = torch.zeros(y.shape[1], dtype=y.dtype, device=y.device)
        xc, yc = design, y
    sw = weights.sqrt()[:, None]
    a, rhs = sw * xc, sw * yc
    if p == 0:
        beta = torch.zeros((0, y.shape[1]), dtype=y.dtype, device=y.device)
    else:
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        if ridge > 0:
            inv = s / (s * s + ridge)
        else:
            eps = torch.finfo(s.dtype).eps
            tol = s.max() * max(N, p) * eps if s.numel() else 0.0
            if s.numel() < p or bool((s <= tol).any()):
                raise rank_error(owner, N, p + int(intercept))
            inv = 1.0 / s
        beta = vh.mT @ (inv[:, None] * (u.mT @ rhs))  # (p, R)
    zero = (y == 0).all(0)  # an identically zero objective: exactly zero, whatever the rounding
    beta = torch.where(zero[None, :], 0.0, beta)
    a0 = torch.where(zero, 0.0, ym - xm @ beta)
    return beta.mT, a0


def weighted_r2(design: torch.Tensor, weights: torch.Tensor, y: torch.Tensor,
                beta: torch.Tensor, a0: torch.Tensor) -> torch.Tensor:
    """``(R,)`` weighted R² of the surrogate (LIME's ``score``); 1 where ``y`` is constant."""
    pred = design @ beta.mT + a0
    mean = (weights[:, None] * y).sum(0) / weights.sum()
    ss_res = (weights[:, None] * (y - pred) ** 2).sum(0)
    ss_tot = (weights[:, None] * (y - mean) ** 2).sum(0)
    return torch.where(ss_tot > 0, 1 - ss_res / torch.where(ss_tot > 0, ss_tot, 1), 1.0)


def resolve_samples(samples: int | None, segments: int) -> int:
    """``None`` → ``max(64, 8·M)`` (512 for the default 64 grid cells); else ``samples``."""
    return max(64, 8 * segments) if samples is None else samples
