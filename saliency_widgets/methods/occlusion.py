"""Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901).

Slide a ``window`` (all channels) with ``stride`` over the image, fill it with ``baseline``, and
record the drop of the objective ``f(x) − f(x_occluded)``. Each pixel gets the mean drop over the
windows covering it (Captum's convention); windows stay inside the image, and pixels no window
covers are 0 and counted in ``extras["uncovered_pixels"]``.

Defaults scale with the image: window = min(H, W)/14 rounded (16 px at 224), stride = half the
window (8 px), so about 27×27 = 729 windows at any size.

``incremental`` recomputes only what each window changes (Nakandala et al., SIGMOD 2019,
arXiv:1810.08303; ``_occlusion_incremental.py``): same map up to float rounding, about 2× faster
on CPU for ResNets at 224 px. ``"auto"`` uses it where a cost model predicts a clear gain.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..baselines import BASELINE, resolve_baseline
from ..checks import int_pair
from ..errors import SaliencyError
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores
from ._occlusion_incremental import choose_path, image_spans


def _pair(owner: str, name: str, value: Any, limit: tuple[int, int]) -> tuple[int, int]:
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if pair[0] > limit[0] or pair[1] > limit[1]:
        raise SaliencyError(f"{owner}: {name} {tuple(pair)} is larger than the image "
                            f"{limit}; use a smaller {name}")
    return int(pair[0]), int(pair[1])


@method(label="Occlusion", family="perturbation", output="map",
        choices={"baseline": BASELINE, "incremental": (False, True, "auto")},
        validators={"window": int_pair("(height, width)").or_none(),
                    "stride": int_pair("(height, width)").or_none()})
def occlusion(ctx: Explainee, x: torch.Tensor, *, window: object = None, stride: object = None,
              baseline: object = None, incremental: object = "auto") -> torch.Tensor:
    """Mean drop of the objective when a window around each pixel is filled with the baseline."""
    B, _, H, W = x.shape
    if window is None:
        window = max(1, round(min(H, W) / 14))
    wh, ww = _pair("occlusion", "window", window, (H, W))
    if stride is None:
        stride = (max(1, wh // 2), max(1, ww // 2))
    sh, sw = _pair("occlusion", "stride", stride, (H, W))
    ctx.resolve_param("window", (wh, ww))
    ctx.resolve_param("stride", (sh, sw))
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator,
                                      owner="occlusion")
    ctx.resolve_param("baseline", resolved)
    base = base.expand_as(x)

    ny, nx = (H - wh) // sh + 1, (W - ww) // sw + 1
    per = ny * nx
    f_x = original_scores(ctx, x)
    drops = torch.empty((B, per), dtype=x.dtype, device=x.device)
    iy = torch.arange(H, device=x.device).view(1, 1, H, 1)
    ix = torch.arange(W, device=x.device).view(1, 1, 1, W)
    grid = torch.arange(per, device=x.device)
    origins = torch.stack([(grid // nx) * sh, (grid % nx) * sw], 1)
    path = choose_path(ctx, x, base, (wh, ww), origins, incremental)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, p = t // per, t % per
        y0 = ((p // nx) * sh).view(-1, 1, 1, 1)
        x0 = ((p % nx) * sw).view(-1, 1, 1, 1)
        inside = (iy >= y0) & (iy < y0 + wh) & (ix >= x0) & (ix < x0 + ww)
        batch = torch.where(inside, base[rows], x[rows])
        drops[rows, p] = f_x[rows] - ctx.scores(batch, rows)

    if path.occluder is None or path.reference is None:
        ctx.work.run(B * per, step, item_numel=x[0].numel(), kind="forward")
    else:
        occ, ref = path.occluder, path.reference

        def patched(i: int, j: int) -> None:
            done = [(b, p, ref[b] - ctx.occluded_scores(occ, x, base, b, p, r))
                    for b, p, r in image_spans(i, j, per, x.device)]
            for b, p, d in done:  # store last: a chunk retried after running out of memory
                drops[b, p] = d

        ctx.work.run(B * per, patched, item_numel=occ.item_numel, kind="patches")
    if ctx.trace is not None:  # api.attribution_path: the windows one by one
        ctx.trace("occlusion", drops=drops, grid=(ny, nx), window=(wh, ww), stride=(sh, sw),
                  baseline=base, scores=f_x)
    attr, count = spread(drops, torch.ones(per, dtype=torch.bool), (ny, nx), (wh, ww), (sh, sw),
                         (H, W))
    ctx.note("uncovered_pixels", int((count == 0).sum()))
    ctx.note("windows", per)
    return attr


def spread(drops: torch.Tensor, used: torch.Tensor, grid: tuple[int, int],
           window: tuple[int, int], stride: tuple[int, int], size: tuple[int, int]
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``((B, 1, H, W) mean drop per pixel, (1, 1, H, W) windows per pixel)`` over the
    windows where ``used`` (``(ny·nx,)`` bool) is set.

    Each window's drop is spread over its pixels once, after all chunks: a transposed convolution
    of the (ny, nx) grid of drops with a window of ones. Independent of the chunk size.
    """
    (ny, nx), (wh, ww), (sh, sw), (H, W) = grid, window, stride, size
    on = used.to(device=drops.device, dtype=drops.dtype).view(1, 1, ny, nx)
    ones = torch.ones((1, 1, wh, ww), dtype=drops.dtype, device=drops.device)
    total = F.conv_transpose2d(drops.view(-1, 1, ny, nx) * on, ones, stride=(sh, sw))
    count = F.conv_transpose2d(on, ones, stride=(sh, sw))
    pad = (0, W - total.shape[-1], 0, H - total.shape[-2])  # pixels past the last window
    total, count = F.pad(total, pad), F.pad(count, pad)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total)), count
