"""KernelSHAP (Lundberg & Lee 2017, arXiv:1705.07874) over image segments.

Segments, coalitions and the baseline are as in :mod:`.lime`: coalition ``z ∈ {0,1}^M`` keeps
the segments with ``z_m = 1`` from ``x`` and takes the rest from ``baseline``; ``v(z)`` is the
objective there, so ``v(1) = f(x)`` and ``v(0) = f(baseline)``.

* Sampling from the Shapley kernel: coalition size ``k ∈ 1…M−1`` with probability
  ``∝ (M−1)/(k(M−k))``, then a uniform subset of that size; the sampled coalitions are then
  weighted equally (sampling *from* the kernel rather than weighting uniform samples by it, as
  Captum and Covert & Lee 2021 do: far lower variance than uniform sampling, where sizes near
  ``M/2`` — of negligible kernel weight — dominate). With ``paired=True`` (default) each drawn
  coalition is followed by its complement (the ``shap`` package's and Covert & Lee's antithetic
  sampling; the size law is symmetric, so the distribution is unchanged and the variance lower).
  All draws come up front from the call's generator: results depend only on the seed, never on
  ``batch_size``.
* Efficiency enforced exactly (the ``shap`` package's trick): the intercept is fixed to
  ``φ₀ = v(0)`` and ``Σφ = v(1) − v(0)`` is used to eliminate ``φ_M``; the remaining ``M − 1``
  values solve the equally weighted least squares
  ``v(z) − φ₀ − z_M Δ ≈ Σ_{m<M} (z_m − z_M) φ_m`` in float64. So the segment values add up to
  ``f(x) − f(baseline)`` to rounding (``extras["completeness_gap"]``, ~1e-16 relative).

``samples`` counts the model evaluations per example: ``v(0)`` and ``samples − 1`` sampled
coalitions (``v(1)`` is the original pass). ``samples=None`` → ``max(64, 8·M)`` (512 for the
default 64 cells), as LIME. A single segment gets ``φ = Δ`` without sampling. Extras:
``segments``, ``segment_values`` ``(B, M)``, ``base_score`` ``v(0)``, ``completeness_gap``
``Σφ − (v(1) − v(0))``.
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..checks import int_pair, integer, positive, positive_int
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores
from ._segments import (SEGMENTS, coalition_scores, paint, resolve_samples, segment_labels,
                        weighted_lstsq)

OWNER = "kernel_shap"


def shapley_coalitions(generator: torch.Generator | None, samples: int, segments: int,
                       device: torch.device, paired: bool = True) -> torch.Tensor:
    """``(samples, M)`` bool: the empty coalition, then ``samples − 1`` Shapley-kernel draws."""
    M, S = segments, samples - 1
    empty = torch.zeros((1, M), dtype=torch.bool, device=device)
    if M < 2:
        return empty  # one segment: no coalition of size 1…M−1 exists
    draws = (S + 1) // 2 if paired else S
    k = torch.arange(1, M, dtype=torch.float64, device=device)
    p = (M - 1) / (k * (M - k))
    sizes = torch.multinomial(p / p.sum(), draws, replacement=True, generator=generator) + 1
    keys = torch.rand((draws, M), generator=generator, device=device)
    rank = keys.argsort(1).argsort(1)  # a uniform random permutation per row
    z = rank < sizes[:, None]
    if paired:  # z₁, 1−z₁, z₂, 1−z₂, …, cut to S rows
        z = torch.stack([z, ~z], 1).reshape(2 * draws, M)[:S]
    return torch.cat([empty, z])


@method(label="KernelSHAP", family="surrogate", output="map", stochastic=True,
        choices={"segments": SEGMENTS, "baseline": BASELINE},
        validators={"grid": int_pair("(rows, columns)"), "samples": integer(2).or_none(),
                    "slic_segments": positive_int, "compactness": positive},
        sums_to_baseline=True, segment_values=True)
def kernel_shap(ctx: Explainee, x: torch.Tensor, *, segments: object = "grid", grid: object = 8,
                samples: int | None = None, paired: bool = True, baseline: object = None,
                slic_segments: int = 64, compactness: float = 10.0) -> torch.Tensor:
    """Shapley values of image segments, estimated by a constrained weighted regression."""
    B = x.shape[0]
    labels, counts, _ = segment_labels(OWNER, x, segments, grid, slic_segments, compactness,
                                       ctx.normalization)
    M = max(counts)
    N = resolve_samples(samples, M)
    if M == 1:
        N = 1  # one segment: φ = Δ, nothing to sample
    ctx.resolve_param("samples", N)
    paired = bool(paired)
    shared = len(set(counts)) == 1
    if shared:
        z = shapley_coalitions(ctx.generator, N, M, x.device, paired)[None]
    else:
        z = torch.zeros((B, N, M), dtype=torch.bool, device=x.device)
        for b, m in enumerate(counts):
            zb = shapley_coalitions(ctx.generator, N, m, x.device, paired)
            z[b, :zb.shape[0], :m] = zb  # a one-segment example uses only row 0 (the rest unused)
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator, owner=OWNER)
    ctx.resolve_param("baseline", resolved)
    base = base.expand_as(x)

    f_x = original_scores(ctx, x).to(torch.float64)
    v = coalition_scores(ctx, x, base, labels, z)  # (B, N) float64; column 0 is v(0)
    phi0 = v[:, 0]
    delta = f_x - phi0

    coef = torch.zeros((B, M), dtype=torch.float64, device=x.device)
    groups = [(list(range(B)), M)] if shared else [([b], m) for b, m in enumerate(counts)]
    for rows, m in groups:
        d = delta[rows]
        if m == 1:
            coef[rows, 0] = d
            continue
        zz = z[0 if shared else rows[0], 1:, :m].to(torch.float64)  # (N−1, m)
        last = zz[:, m - 1:]
        design = zz[:, :m - 1] - last
        target = (v[rows, 1:] - phi0[rows, None] - last.mT * d[:, None]).mT  # (N−1, R)
        w = torch.ones(zz.shape[0], dtype=torch.float64, device=x.device)
        beta, _ = weighted_lstsq(OWNER, design, w, target, intercept=False)
        coef[rows, :m - 1] = beta
        coef[rows, m - 1] = d - beta.sum(1)
    ctx.note("segments", counts)
    ctx.note("segment_values", coef)
    ctx.note("base_score", phi0)
    ctx.note("completeness_gap", coef.sum(1) - delta)
    return paint(coef, labels, x.dtype)
