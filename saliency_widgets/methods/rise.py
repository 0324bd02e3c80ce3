"""RISE: randomized input sampling (Petsiuk, Das, Saenko 2018, arXiv:1806.07421).

``S = 1/(N·keep) · Σ_i f(x_i) · M_i`` over ``N = samples`` random masks ``M_i``, where ``x_i`` keeps
``x`` where ``M_i = 1`` and takes ``baseline`` where it is 0 (``x ⊙ M`` for a zero baseline, as in
the paper). ``f`` is the objective ``logit[target] − logit[contrast]`` (the paper uses the class
probability). ``S`` estimates ``E[f(x_M) · M] / E[M]``: for binary masks, the expected objective
given that the pixel is kept.

Masks as in the paper: a ``grid`` of cells, each kept with probability ``keep``, upsampled
bilinearly (``align_corners=False``) to ``(grid + 1)`` cells of ``⌈H / grid⌉ × ⌈W / grid⌉`` px
and cropped to ``H × W`` at an integer shift drawn uniformly from ``0 … cell − 1`` per axis. All
grids and shifts are drawn up front from the call's generator, shared by the batch; the scores
are computed in chunks and summed against the masks in blocks of a fixed size, so results depend
neither on ``batch_size`` nor on the other examples. Memory: one block of masks.

Defaults: 4000 masks on a 7 × 7 grid with ``keep`` ½ (Xplique's defaults; the paper uses
4000–8000 masks); baseline black with ``normalization``, else 0 in input space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..baselines import BASELINE, resolve_baseline
from ..checks import int_pair, positive_int, probability
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores
from ._segments import _grid_shape

_BLOCK_VALUES = 1 << 22  # mask values per accumulation block (16 MiB in float32)


def rise_masks(grids: torch.Tensor, shifts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(k, 1, H, W)`` masks from ``grids (k, gh, gw)`` in {0, 1} and integer ``shifts (k, 2)``."""
    k, gh, gw = grids.shape
    ch, cw = math.ceil(height / gh), math.ceil(width / gw)
    up = F.interpolate(grids[:, None], size=((gh + 1) * ch, (gw + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0]
    iy = shifts[:, 0, None, None] + torch.arange(height, device=grids.device)[None, :, None]
    ix = shifts[:, 1, None, None] + torch.arange(width, device=grids.device)[None, None, :]
    return up[torch.arange(k, device=grids.device)[:, None, None], iy, ix][:, None]


@method(label="RISE", family="perturbation", output="map", stochastic=True,
        choices={"baseline": BASELINE},
        validators={"samples": positive_int, "grid": int_pair("(rows, columns)"),
                    "keep": probability})
def rise(ctx: Explainee, x: torch.Tensor, *, samples: int = 4000, grid: object = 7,
         keep: float = 0.5, baseline: object = None) -> torch.Tensor:
    """Average of random smooth masks weighted by the objective on the masked inputs."""
    B, _, H, W = x.shape
    gh, gw = _grid_shape(grid, (H, W))
    ch, cw = math.ceil(H / gh), math.ceil(W / gw)
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    # every random draw up front, in a fixed order: grids, shifts, then the baseline's noise
    gen, dev = ctx.generator, x.device
    grids = (torch.rand((samples, gh, gw), generator=gen, device=dev) < keep).to(dtype)
    shifts = torch.stack([torch.randint(0, ch, (samples,), generator=gen, device=dev),
                          torch.randint(0, cw, (samples,), generator=gen, device=dev)], 1)
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, gen, owner="rise")
    ctx.resolve_param("baseline", resolved)
    base = base.expand_as(x)

    original_scores(ctx, x)  # resolves the targets
    scores = torch.empty((B, samples), dtype=dtype, device=dev)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=dev)
        rows, n = t // samples, t % samples
        m = rise_masks(grids[n], shifts[n], H, W).to(x.dtype)
        scores[rows, n] = ctx.scores(base[rows] + m * (x[rows] - base[rows]), rows).to(dtype)

    ctx.work.run(B * samples, step, item_numel=x[0].numel(), kind="forward")
    block = max(1, _BLOCK_VALUES // (H * W))
    total = torch.zeros((B, H * W), dtype=dtype, device=dev)
    for i in range(0, samples, block):  # fixed blocks: the sum's order ignores batch_size
        j = min(samples, i + block)
        masks = rise_masks(grids[i:j], shifts[i:j], H, W).reshape(j - i, H * W)
        total += scores[:, i:j] @ masks
    return (total / (samples * keep)).reshape(B, 1, H, W)
