"""Guided integrated gradients (Kapishnikov et al. 2021, arXiv:2106.09788).

An adaptive path from the baseline to the input: at each of ``steps`` steps the features with the
smallest ``|gradient|`` (a ``fraction`` of them, ties included) move towards the input first,
until the L1 distance to the input has shrunk by ``1/steps`` of the total; no feature may stray
more than ``max_dist`` (in units of the straight path, α) from the straight line. The
attribution sums ``Δx ⊙ ∇f`` along that path, so ``Σ attr ≈ f(x) − f(baseline)``
(``extras["completeness_gap"]``). ``max_dist=0`` is IG on the straight line (left Riemann sum).

This follows PAIR ``saliency`` 0.2.1's ``guided_ig_impl`` step for step (its quantile is the
"lower" one: the ``⌊fraction·(n − 1)⌋``-th smallest), vectorised over the batch, with the path
kept in float64. The steps are sequential (each needs the gradient where the last one ended), so
only the examples of a batch run together. Where PAIR would loop forever (a step whose selection
can no longer move), the step ends. Defaults are PAIR's: 200 steps, fraction 0.25, max_dist 0.02;
the baseline is black with ``normalization``, else 0 in input space (PAIR: 0).
"""

from __future__ import annotations

import math

import torch

from ..baselines import BASELINE, resolve_baseline
from ..checks import positive_int, unit_interval
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores, over_batch

_EPS = 1e-9  # PAIR's tolerance for "the step has reached its L1 target"


@method(label="Guided IG", family="path", output="input", choices={"baseline": BASELINE},
        validators={"steps": positive_int, "fraction": unit_interval, "max_dist": unit_interval},
        derivative="surrogate")
def guided_ig(ctx: Explainee, x: torch.Tensor, *, steps: int = 200, fraction: float = 0.25,
              max_dist: float = 0.02, baseline: object = None) -> torch.Tensor:
    """Gradients integrated along a path that moves the least important features first."""
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator,
                                      owner="guided_ig")
    ctx.resolve_param("baseline", resolved)
    B, D = x.shape[0], x[0].numel()
    wide = torch.float64
    x_in = x.reshape(B, D).to(wide)
    x_base = base.expand_as(x).reshape(B, D).to(wide)
    diff = x_in - x_base
    l1_total = diff.abs().sum(1)
    kth = math.floor(fraction * (D - 1)) + 1  # 1-based rank of numpy's "lower" quantile
    f_x = original_scores(ctx, x)
    (f_base,) = over_batch(ctx, base.expand_as(x).contiguous(),
                           lambda b, rows: (ctx.scores(b, rows),), kind="forward", report=False)

    point, attr = x_base.clone(), torch.zeros_like(x_in)
    parts: list[torch.Tensor] = []

    def gradients(i: int, j: int) -> None:
        rows = torch.arange(i, j, device=x.device)
        _, g = ctx.input_grad(point[i:j].reshape(-1, *x.shape[1:]).to(x.dtype), rows)
        parts.append(g.reshape(j - i, D).to(wide))

    for k in range(steps):
        parts.clear()
        with ctx.work.scope(k, steps):
            ctx.work.run(B, gradients, item_numel=D, kind="backward")
        # a new tensor each step: a differentiable map keeps the last step's in its graph
        grad_at = torch.cat(parts)
        alpha = (k + 1.0) / steps
        a_min, a_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = x_base + diff * a_min, x_base + diff * a_max
        l1_target = l1_total * (1 - (k + 1) / steps)
        grad = grad_at.clone()
        active = l1_total != 0  # an input equal to its baseline has a zero attribution
        while bool(active.any()):
            old = point.clone()
            on = active[:, None]
            # (safe denominators: a differentiable map must not divide by zero where unused)
            alpha_now = torch.where(diff != 0, (point - x_base) / torch.where(diff != 0, diff, 1),
                                    a_max)
            point = torch.where(on & (alpha_now < a_min), x_min, point)  # catch up the laggards
            l1_now = (point - x_in).abs().sum(1)
            done = active & ((l1_target - l1_now).abs()
                             <= torch.clamp(_EPS * torch.maximum(l1_target.abs(), l1_now.abs()),
                                            min=_EPS))
            go = active & ~done
            grad = torch.where(go[:, None] & (point == x_max), math.inf, grad)
            low = grad.abs().kthvalue(kth, dim=1).values
            chosen = go[:, None] & (grad.abs() <= low[:, None]) & (grad != math.inf)
            l1_chosen = ((point - x_max).abs() * chosen).sum(1)
            some = l1_chosen > 0
            gamma = torch.where(some, (l1_now - l1_target) / torch.where(some, l1_chosen, 1),
                                math.inf)
            full = (gamma > 1)[:, None]
            point = torch.where(chosen & full, x_max, point)
            part = torch.where(full, 0, gamma[:, None])  # finite: an infinite γ moves in full
            point = torch.where(chosen & ~full, point + (x_max - point) * part, point)
            attr += (point - old) * grad_at
            # another round only where the chosen features hit x_max and moved something
            active = go & (gamma > 1) & (point != old).any(1)
    attr = attr.reshape(x.shape)
    gap = attr.flatten(1).sum(1) - (f_x - f_base).to(wide)
    ctx.note("completeness_gap", gap)
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    return attr.to(acc)

