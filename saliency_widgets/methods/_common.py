"""Helpers shared by several methods: batch-chunked passes over the original input, upsampling."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..model.explainee import Explainee


def over_batch(ctx: Explainee, x: torch.Tensor,
               fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]], *,
               kind: str, report: bool = True) -> tuple[torch.Tensor, ...]:
    """Run ``fn(x_chunk, rows)`` over chunks of the original batch; concatenate its outputs."""
    parts: list[tuple[torch.Tensor, ...]] = []

    def step(i: int, j: int) -> None:
        rows = torch.arange(i, j, device=x.device)
        parts.append(fn(x[i:j], rows))

    ctx.work.run(x.shape[0], step, item_numel=x[0].numel(), kind=kind, report=report)
    return tuple(torch.cat(cols) for cols in zip(*parts))


def original_scores(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` objective at the original input; resolves the targets. A silent preliminary pass."""
    (s,) = over_batch(ctx, x, lambda xb, rows: (ctx.scores(xb, rows, original=True),),
                      kind="forward", report=False)
    return s


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear upsampling with ``align_corners=False`` (pixel centres aligned, as torchvision)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)

