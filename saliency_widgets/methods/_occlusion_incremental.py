"""Occlusion's choice between plain and incremental evaluation, and the record of it.

``incremental=False`` runs every occluded image through the model. ``True`` uses the
incremental evaluator (``model/incremental.py``) where the model allows it and otherwise falls
back to the plain path with a warning. ``"auto"`` (the default) uses it only on CPUs and only
where the cost model predicts at least ``AUTO_MIN_SPEEDUP`` — a modelled cost, not a timing, so
that the same call always takes the same path and gives bit-identical results.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import SaliencyWarning
from ..model.explainee import Explainee
from ..model.graph import Untraceable
from ..model.incremental import Occluder

# On the 2-core CI CPU the modelled speed-up was at or below the measured one wherever checked
# (per window, one thread: resnet18 at 224 px 1.96× vs ≥ 2.5×, DenseNet-121 1.53× vs 1.64×,
# MobileNet-V3-small 0.90× vs 0.92×; whole calls: the demo ShapesNet 1.78× vs 2.7×), so 1.3
# keeps "auto" off where the gain could be noise or a loss (small images, tiny models, early
# global pooling) without giving up the clear cases.
AUTO_MIN_SPEEDUP = 1.3


@dataclass
class Path:
    occluder: Occluder | None = None
    reference: torch.Tensor | None = None   # (B,) objective of each image, incrementally


def choose_path(ctx: Explainee, x: torch.Tensor, base: torch.Tensor, window: tuple[int, int],
                origins: torch.Tensor, mode: object) -> Path:
    """Build the incremental evaluator if ``mode`` asks for it and it pays; record the choice."""
    if mode is False or mode == 0:
        return _plain(ctx, "incremental=False")
    if ctx.differentiable:  # an attack differentiates the map; cached feature maps have no graph
        return _plain(ctx, "a differentiable map (sw.attack): the incremental path keeps no "
                           "autograd graph")
    if mode == "auto" and x.device.type != "cpu":
        return _plain(ctx, f"auto: the cost model is calibrated on CPUs only; pass "
                           f"incremental=True to use it on {x.device.type}")
    try:
        occ = ctx.occluder(x, window, origins)
        summary = occ.summary()
        if mode == "auto" and summary["cost_ratio"] < AUTO_MIN_SPEEDUP:
            return _plain(ctx, f"auto: modelled speed-up {summary['cost_ratio']:.2f}× is below "
                               f"{AUTO_MIN_SPEEDUP}×", summary)
        reference = ctx.occluder_reference(occ, x, base)
    except Untraceable as err:
        if mode is True or mode == 1:
            warnings.warn(f"occlusion: incremental evaluation is not possible ({err}); ran the "
                          f"plain path (same result, not faster)", SaliencyWarning, stacklevel=4)
        return _plain(ctx, f"not possible: {err}")
    ctx.resolve_param("incremental", True)
    ctx.note("occlusion_path", "incremental")
    ctx.note("incremental_reason", "requested" if mode is True or mode == 1 else
             f"auto: modelled speed-up {summary['cost_ratio']:.2f}× ≥ {AUTO_MIN_SPEEDUP}×")
    _summary(ctx, summary)
    return Path(occ, reference)


def _plain(ctx: Explainee, reason: str, summary: dict | None = None) -> Path:
    ctx.resolve_param("incremental", False)
    ctx.note("occlusion_path", "plain")
    ctx.note("incremental_reason", reason)
    if summary is not None:
        _summary(ctx, summary)
    return Path()


def _summary(ctx: Explainee, summary: dict) -> None:
    ctx.note("incremental_flop_ratio", round(summary["flop_ratio"], 3))
    ctx.note("incremental_modelled_speedup", round(summary["cost_ratio"], 3))
    ctx.note("incremental_crossover", round(summary["crossover"], 4))
    ctx.note("incremental_patched_ops", summary["patched_ops"])
    ctx.note("incremental_region_end", list(summary["region_end"]))


def image_spans(i: int, j: int, per: int, device: torch.device
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Split items ``[i, j)`` (image ``t // per``, window ``t % per``) into per-image runs:
    ``(image, window numbers, rows)``."""
    for b in range(i // per, (j - 1) // per + 1):
        lo, hi = max(i, b * per) - b * per, min(j, (b + 1) * per) - b * per
        windows = torch.arange(lo, hi, device=device)
        yield b, windows, torch.full_like(windows, b)
