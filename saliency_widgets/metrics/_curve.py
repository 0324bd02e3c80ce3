"""Deletion and insertion curves (Petsiuk, Das, Saenko 2018, arXiv:1806.07421), batched over steps.

Pixels (all channels at once) are ranked by the reduced map, highest first. Ties are broken by a
seeded random permutation of the pixels (``tie_seed``, recorded in ``params``), never by position:
a ReLU'd CAM map is zero on most pixels, and removing its zeros top-left first would make the
score depend on where the object lies. :func:`removal_order` returns that exact order (the same
for every example, device and batch), so a curve can be replayed or scrubbed pixel by pixel. At
step ``k`` of ``steps`` the top ``round(k·HW/steps)`` pixels are moved: deletion replaces them
with the substrate, insertion copies them from the image into the substrate. The curve is the
explained objective (``logit[t] − logit[c]``, so contrastive objectives are honoured) or, with
``score="probability"``, softmax(target) − softmax(contrast). The AUC is the trapezoid on [0, 1].
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..checks import nonnegative_int, positive_int
from ..reduce import REDUCTIONS
from ..registry import Choices
from ..checks import Check
from ._common import MetricContext, Scored, pixel_map

SCORES = ("objective", "probability")
# what deletion and insertion declare about their parameters
CHOICES: dict[str, Choices] = {"baseline": BASELINE, "reduction": REDUCTIONS, "score": SCORES}
VALIDATORS: dict[str, Check] = {"steps": positive_int, "tie_seed": nonnegative_int}


def removal_order(values: torch.Tensor, reduction: str = "sum",
                  tie_seed: int = 0) -> torch.Tensor:
    """Return ``(B, H·W)`` int64: the row-major pixel indices, most relevant first.

    ``values`` is a ``(B, C, H, W)`` map, reduced over channels as the metrics do (float64).
    Tied values keep the order of one random permutation of the ``H·W`` pixels, drawn on the
    CPU from ``tie_seed``: the same order on every device and for every example.
    """
    m = pixel_map(values, reduction).flatten(1)
    n = m.shape[1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(tie_seed)).to(m.device)
    return perm[torch.argsort(-m[:, perm], dim=1, stable=True)]


def ranks_of(order: torch.Tensor) -> torch.Tensor:
    """``(B, N)``: the position of every pixel in ``order`` (0 = first removed)."""
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return rank


def curve(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *, insert: bool, steps: int,
          baseline: object, reduction: str, score: str, tie_seed: int, owner: str) -> Scored:
    ctx = mc.explainee
    B, C, H, W = x.shape
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator, owner=owner)
    mc.resolve_param("baseline", resolved)
    base = base.expand_as(x)
    # rank[b, p] = position of pixel p in the removal order (0 = most relevant)
    rank = ranks_of(removal_order(values, reduction, tie_seed)).to(x.device).view(B, 1, H, W)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * (H * W) / steps).long()
    start, end = (base, x) if insert else (x, base)
    points = steps + 1
    out: list[torch.Tensor] = []

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, k = t // points, t % points
        moved = rank[rows] < counts.to(x.device)[k].view(-1, 1, 1, 1)
        xb = torch.where(moved, end[rows], start[rows])
        if score == "objective":
            out.append(ctx.scores(xb, rows))
        else:
            with torch.no_grad():
                probs = torch.softmax(ctx.logits(xb).double(), dim=1)
            out.append(ctx.objective.score(probs, rows))

    ctx.work.run(B * points, step, item_numel=x[0].numel(), kind="forward")
    ys = torch.cat(out).double().view(B, points)
    xs = counts.double() / (H * W)
    auc = torch.trapezoid(ys, xs.to(ys.device), dim=1)
    return Scored(auc, curve=ys, curve_x=xs)
