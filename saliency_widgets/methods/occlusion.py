"""Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901).

Slide a ``window`` (all channels) with ``stride`` over the image, fill it with ``baseline``, and
record the drop of the objective ``f(x) − f(x_occluded)``. Each pixel gets the mean drop over the
windows covering it (Captum's convention); windows stay inside the image, and pixels no window
covers are 0 and counted in ``extras["uncovered_pixels"]``.

Defaults scale with the image: window = min(H, W)/14 rounded (16 px at 224), stride = half the
window (8 px), so about 27×27 = 729 windows at any size.
"""

from __future__ import annotations

import torch

from ..baselines import resolve_baseline
from ..errors import SaliencyError
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores


def _pair(owner: str, name: str, value: object, limit: tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)):
        raise SaliencyError(f"{owner}: {name} must be a positive int or (height, width), "
                            f"got {value!r}")
    if pair[0] > limit[0] or pair[1] > limit[1]:
        raise SaliencyError(f"{owner}: {name} {tuple(pair)} is larger than the image "
                            f"{limit}; use a smaller {name}")
    return int(pair[0]), int(pair[1])


@method(label="Occlusion", family="perturbation", output="map")
def occlusion(ctx: Explainee, x: torch.Tensor, *, window: object = None, stride: object = None,
              baseline: object = None) -> torch.Tensor:
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

    ys = range(0, H - wh + 1, sh)
    xs = range(0, W - ww + 1, sw)
    corners = [(y, xx) for y in ys for xx in xs]
    count = torch.zeros((1, 1, H, W), dtype=x.dtype, device=x.device)
    for y, xx in corners:
        count[..., y:y + wh, xx:xx + ww] += 1

    f_x = original_scores(ctx, x)
    acc = torch.zeros((B, 1, H, W), dtype=x.dtype, device=x.device)
    per = len(corners)

    def step(i: int, j: int) -> None:
        items = [(t // per, corners[t % per]) for t in range(i, j)]
        rows = torch.tensor([b for b, _ in items], device=x.device)
        batch = x[rows]
        for r, (b, (y, xx)) in enumerate(items):
            batch[r, :, y:y + wh, xx:xx + ww] = base[b, :, y:y + wh, xx:xx + ww]
        drop = f_x[rows] - ctx.scores(batch, rows)
        for r, (b, (y, xx)) in enumerate(items):
            acc[b, :, y:y + wh, xx:xx + ww] += drop[r]

    ctx.work.run(B * per, step, item_numel=x[0].numel(), kind="forward")
    ctx.note("uncovered_pixels", int((count == 0).sum()))
    ctx.note("windows", per)
    return torch.where(count > 0, acc / count.clamp(min=1), torch.zeros_like(acc))
