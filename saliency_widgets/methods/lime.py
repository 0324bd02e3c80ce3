"""LIME (Ribeiro, Singh & Guestrin 2016, arXiv:1602.04938) over image segments.

The image is split into ``M`` segments (``segments="grid"``: ``grid × grid`` cells as equal as
possible; ``"slic"``: scikit-image's SLIC superpixels; or a user-given ``(H, W)`` / ``(B, H, W)``
int label tensor). A coalition ``z ∈ {0,1}^M`` keeps segment ``m`` from ``x`` where ``z_m = 1``
and takes it from ``baseline`` elsewhere (None → ``black`` with ``normalization``, else 0).

* Sampling: the all-ones coalition (``x`` itself, as the ``lime`` package always includes) and
  ``samples − 1`` coalitions with each segment on with probability ½, all drawn up front from
  the call's generator, so results depend only on the seed, never on ``batch_size``.
* Locality kernel: ``π(z) = exp(−d²/kernel_width²)`` with ``d`` the cosine distance between
  ``z`` and the all-ones vector (``d = 1 − √(k/M)`` for ``k`` segments on; 1 for ``z = 0``), the
  paper's formula with the ``lime`` package's image default width 0.25. (The ``lime`` package
  itself weights by ``√exp(−d²/w²)``, i.e. this formula with width ``√2·w``.)
* Surrogate: weighted least squares with an (unpenalised) intercept, solved in float64;
  unregularised by default — the ``lime`` package's ``Ridge(alpha=1)`` and Captum's
  ``Lasso(alpha=0.01)`` shrink the coefficients, so even a model that *is* linear in the
  segments is not recovered exactly. ``ridge > 0`` adds ``ridge·‖β‖²``.

Each pixel gets its segment's coefficient. ``samples=None`` → ``max(64, 8·M)`` (512 for the
default 64 cells): 8 equations per unknown keeps the coefficients' noise a fraction of their
size at the cost of ~0.7 × occlusion's default 729 windows. When all examples have the same
number of segments they share the coalitions (so an example's map does not depend on the rest of
the batch). Extras: ``segments`` (M per example), ``segment_values`` ``(B, M)``, ``intercept``
and the weighted R² ``score`` of the surrogate (the ``lime`` package's fidelity score).
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..checks import int_pair, integer, nonnegative, positive, positive_int
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores
from ._segments import (SEGMENTS, coalition_scores, paint, resolve_samples, segment_labels,
                        weighted_lstsq, weighted_r2)

OWNER = "lime"


def lime_coalitions(generator: torch.Generator | None, samples: int, segments: int,
                    device: torch.device) -> torch.Tensor:
    """``(samples, M)`` bool: the all-ones row, then Bernoulli(½) rows."""
    rand = torch.rand((samples - 1, segments), generator=generator, device=device) < 0.5
    ones = torch.ones((1, segments), dtype=torch.bool, device=device)
    return torch.cat([ones, rand])


def lime_kernel(z: torch.Tensor, width: float) -> torch.Tensor:
    """``(N,)`` float64 weights ``exp(−d²/width²)``, ``d`` = cosine distance of ``z`` to 1."""
    k = z.sum(1, dtype=torch.float64)
    d = 1 - torch.sqrt(k / z.shape[1])  # cos(z, 1) = k / (√k √M); z = 0 → distance 1
    return torch.exp(-(d * d) / (width * width))


@method(label="LIME", family="surrogate", output="map", stochastic=True,
        choices={"segments": SEGMENTS, "baseline": BASELINE},
        validators={"grid": int_pair("(rows, columns)"), "samples": integer(2).or_none(),
                    "slic_segments": positive_int, "compactness": positive,
                    "kernel_width": positive, "ridge": nonnegative},
        segment_values=True)
def lime(ctx: Explainee, x: torch.Tensor, *, segments: object = "grid", grid: object = 8,
         samples: int | None = None, kernel_width: float = 0.25, ridge: float = 0.0,
         baseline: object = None, slic_segments: int = 64,
         compactness: float = 10.0) -> torch.Tensor:
    """Coefficients of a locally weighted linear surrogate over image segments."""
    B = x.shape[0]
    labels, counts, _ = segment_labels(OWNER, x, segments, grid, slic_segments, compactness,
                                       ctx.normalization)
    M = max(counts)
    N = resolve_samples(samples, M)
    ctx.resolve_param("samples", N)
    shared = len(set(counts)) == 1
    # every random draw up front, in a fixed order: coalitions, then the baseline's noise (if any)
    if shared:
        z = lime_coalitions(ctx.generator, N, M, x.device)[None]
    else:
        z = torch.zeros((B, N, M), dtype=torch.bool, device=x.device)
        for b, m in enumerate(counts):
            z[b, :, :m] = lime_coalitions(ctx.generator, N, m, x.device)
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator, owner=OWNER)
    ctx.resolve_param("baseline", resolved)
    base = base.expand_as(x)

    original_scores(ctx, x)  # resolves the targets
    y = coalition_scores(ctx, x, base, labels, z)  # (B, N) float64

    coef = torch.zeros((B, M), dtype=torch.float64, device=x.device)
    intercept = torch.zeros(B, dtype=torch.float64, device=x.device)
    score = torch.ones(B, dtype=torch.float64, device=x.device)
    groups = [(list(range(B)), M)] if shared else [([b], m) for b, m in enumerate(counts)]
    for rows, m in groups:
        design = z[rows[0] if not shared else 0, :, :m].to(torch.float64)
        w = lime_kernel(design, float(kernel_width))
        yy = y[rows].mT  # (N, R)
        beta, a0 = weighted_lstsq(OWNER, design, w, yy, intercept=True, ridge=float(ridge))
        coef[rows, :m] = beta
        intercept[rows] = a0
        score[rows] = weighted_r2(design, w, yy, beta, a0)
    ctx.note("segments", counts)
    ctx.note("segment_values", coef)
    ctx.note("intercept", intercept)
    ctx.note("score", score)
    return paint(coef, labels, x.dtype)
