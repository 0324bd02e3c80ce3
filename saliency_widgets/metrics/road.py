"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022, arXiv:2202.00449).

Removing pixels with a constant leaks class information through the *shape* of the removal mask.
ROAD instead fills removed pixels by **noisy linear imputation**: every removed pixel equals the
weighted mean of its 8 neighbours (weight 1/6 for the 4-neighbours, 1/12 for the diagonals,
renormalised over the neighbours inside the image), which couples the removed pixels into one
sparse linear system per image, solved for all channels with one sparse LU factorisation. Then
Gaussian noise of standard deviation ``noise`` × the example's value range is added to the
imputed pixels (the paper uses 0.01 on [0, 1] pixels). The noise is seeded from the call's
``seed``: one sub-seed per perturbed input, so results do not depend on ``batch_size``.

Space: with a known ``normalization`` the image is mapped back to pixels, imputed there and
normalised again, as in the paper's runner (imputation before ``transform_test``). The weighted
mean commutes with a per-channel affine map, so this changes only the noise: its scale is then a
fraction of the *pixel* range and equal in pixel units for every channel. Without normalization
the imputation runs in the model's input space. Pixels that are not removed are never altered.

Removal: pixels are ranked by the channel-reduced map as in deletion (highest first, ties in the
seeded random order of ``tie_seed``, see ``_curve.removal_order``). At percentage ``p`` MoRF
removes the ``round(p·HW)`` top-ranked pixels and LeRF the ``round(p·HW)`` bottom-ranked ones;
larger percentages remove supersets. Each perturbed input is scored with the explained objective
(``logit[t] − logit[c]``; contrast honoured).

Score (higher is better for every ``order``): with ``f`` the objective on the clean input,
``morf`` → mean over percentages of ``f − MoRF(p)`` (how much removing the most relevant pixels
hurts); ``lerf`` → mean of ``LeRF(p) − f`` (removing the least relevant should not hurt);
``both`` (default) → their average, ``mean_p (LeRF(p) − MoRF(p)) / 2``, the paper's combined
(area-between-curves) view. ``curve`` is the MoRF curve (the LeRF curve for ``order="lerf"``),
``curve_x`` the percentages; ``extras`` hold ``morf``, ``lerf`` (those computed) and
``original`` (``f``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import splu

from ..checks import nonnegative, nonnegative_int
from ..errors import SaliencyError
from ..reduce import REDUCTIONS
from ..registry import metric
from ._common import MetricContext, Scored, noise_scale, scores_of
from ._curve import ranks_of, removal_order

ORDERS = ("morf", "lerf", "both")

# (row offset, column offset, weight): the ROAD reference imputer's neighbourhood
_NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def linear_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Noise-free ROAD imputation of one ``(C, H, W)`` float64 image; ``removed`` is ``(H, W)``.

    Returns a copy in which every removed pixel is the weighted mean of its in-image neighbours
    (removed neighbours being unknowns of the same system). Needs at least one kept pixel.
    """
    C, H, W = image.shape
    out = np.array(image, dtype=np.float64, copy=True)
    idx = np.flatnonzero(removed.reshape(-1))
    n = idx.size
    if n == 0:
        return out
    if n == H * W:
        raise SaliencyError("road: every pixel is removed, so there is nothing to impute from; "
                            "use percentages below 1")
    flat = out.reshape(C, H * W)
    unknown = np.full(H * W, -1, dtype=np.int64)
    unknown[idx] = np.arange(n)
    r, c = idx // W, idx % W
    total = np.zeros(n)
    rhs = np.zeros((n, C))
    rows, cols, vals = [], [], []
    for dr, dc, w in _NEIGHBOURS:
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
        eq = np.flatnonzero(inside)
        nb = rr[eq] * W + cc[eq]
        total[eq] += w
        var = unknown[nb]
        is_var = var >= 0
        rows.append(eq[is_var])
        cols.append(var[is_var])
        vals.append(np.full(int(is_var.sum()), w))
        known = ~is_var
        rhs[eq[known]] -= w * flat[:, nb[known]].T
    # Σ_nb w·x_nb − (Σ_nb w)·x_i = 0 for every removed pixel i
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-total)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(n, n)).tocsc()
    # A is symmetric and strictly diagonally dominant by rows touching a kept pixel
    # (irreducibly so overall): no pivoting needed, and a symmetric ordering is ~25 % faster
    lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
              options={"SymmetricMode": True})
    flat[:, idx] = lu.solve(rhs).T
    return out


def removal_ranks(values: torch.Tensor, reduction: str, tie_seed: int = 0) -> torch.Tensor:
    """``(B, H·W)`` rank of every pixel in the MoRF order (0 = most relevant), ties broken as in
    deletion (:func:`removal_order`)."""
    return ranks_of(removal_order(values, reduction, tie_seed))


def removal_counts(percentages: tuple[float, ...], pixels: int) -> torch.Tensor:
    """How many pixels each percentage removes: ``round(p·HW)`` (half to even)."""
    return torch.round(torch.tensor(percentages, dtype=torch.float64) * pixels).long()


def removed_mask(rank: torch.Tensor, count: int, lerf: bool) -> torch.Tensor:
    """``(…, H·W)`` bool: the pixels removed at one percentage (top ``count`` ranks for MoRF)."""
    return rank >= rank.shape[-1] - count if lerf else rank < count


def _percentages(percentages: Any) -> tuple[float, ...]:
    if isinstance(percentages, torch.Tensor):
        percentages = percentages.tolist()
    try:
        ps = tuple(float(p) for p in percentages)
    except (TypeError, ValueError) as err:
        raise SaliencyError(f"road: percentages must be a sequence of fractions in [0, 1), "
                            f"got {percentages!r}") from err
    if not ps or any(not 0 <= p < 1 for p in ps) or any(a >= b for a, b in zip(ps, ps[1:])):
        raise SaliencyError(f"road: percentages must be non-empty, increasing fractions of the "
                            f"pixels in [0, 1) (e.g. (0.1, 0.2, …, 0.9)), got {percentages!r}")
    return ps


@metric(label="ROAD", family="faithfulness", higher_is_better=True, stochastic=True,
        choices={"order": ORDERS, "reduction": REDUCTIONS},
        validators={"noise": nonnegative, "tie_seed": nonnegative_int},
        python_only={"percentages": "increasing fractions of the pixels in [0, 1)"})
def road(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
         percentages: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         order: str = "both", noise: float = 0.01, reduction: str = "sum",
         tie_seed: int = 0) -> Scored:
    """Objective drop when pixels are removed by noisy linear imputation, MoRF vs LeRF."""
    ctx = mc.explainee
    ps = _percentages(percentages)
    B, C, H, W = x.shape
    orders = ("morf", "lerf") if order == "both" else (order,)
    O, P = len(orders), len(ps)
    rank = removal_ranks(values, reduction, tie_seed).cpu()
    counts = removal_counts(ps, H * W).tolist()
    norm = ctx.normalization
    space = x.detach().double().cpu()
    if norm is not None:
        mean, std = (t.detach().double().cpu() for t in norm)
        space = space * std + mean
    sigma = noise_scale(space, float(noise)).view(B).tolist()
    total = B * O * P
    # one sub-seed per perturbed input: the noise is independent of chunking and retries
    gen = ctx.generator
    seeds = torch.randint(0, 2 ** 62, (total,), generator=gen, device=gen.device).tolist()

    def perturbed(t: int) -> torch.Tensor:
        b, o, k = t // (O * P), (t // P) % O, t % P
        gone = removed_mask(rank[b], counts[k], orders[o] == "lerf").view(H, W)
        filled = torch.from_numpy(linear_impute(space[b].numpy(), gone.numpy()))
        if sigma[b] > 0:
            g = torch.Generator().manual_seed(seeds[t])
            eps = torch.randn(filled.shape, generator=g, dtype=torch.float64)
            filled = filled + sigma[b] * eps * gone
        if norm is not None:
            filled = (filled - mean[0]) / std[0]
        return torch.where(gone.to(x.device), filled.to(x.device, x.dtype), x[b])

    def build(i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = torch.stack([perturbed(t) for t in range(i, j)])
        rows = torch.arange(i, j, device=x.device) // (O * P)
        return xb, rows

    original = _scores_quiet(mc, x)
    ys = scores_of(ctx, total, build, x[0].numel()).double().cpu().view(B, O, P)
    curves = {name: ys[:, o] for o, name in enumerate(orders)}
    mc.extras.update(curves)
    mc.extras["original"] = original
    parts = []
    if "morf" in curves:
        parts.append((original[:, None] - curves["morf"]).mean(1))
    if "lerf" in curves:
        parts.append((curves["lerf"] - original[:, None]).mean(1))
    score = torch.stack(parts).mean(0)
    shown = curves["morf"] if "morf" in curves else curves["lerf"]
    return Scored(score, curve=shown, curve_x=torch.tensor(ps, dtype=torch.float64))


def _scores_quiet(mc: MetricContext, x: torch.Tensor) -> torch.Tensor:
    """Objective on the clean inputs (a short preliminary pass, kept out of the progress)."""
    ctx = mc.explainee
    out: list[torch.Tensor] = []

    def step(i: int, j: int) -> None:
        out.append(ctx.scores(x[i:j], torch.arange(i, j, device=x.device)))

    ctx.work.run(x.shape[0], step, item_numel=x[0].numel(), kind="forward", report=False)
    return torch.cat(out).double().cpu()
