"""XRAI: region attribution (Kapishnikov et al. 2019, arXiv:1906.02825).

1. Integrated gradients of the objective from each ``baseline`` (our IG: ``steps``, ``rule``),
   averaged, then the maximum over channels: one value per pixel.
2. Regions: overlapping Felzenszwalb segments at six scales, dilated (``segments=
   "felzenszwalb"``, PAIR ``saliency`` 0.2.1's settings, needs scikit-image), or your own
   ``(K, H, W)`` / ``(B, K, H, W)`` bool masks, used as given.
3. Greedy ranking: repeatedly take the region whose not-yet-covered pixels have the highest mean
   attribution (see :mod:`._regions`). Each pixel's value is that density; the ranks (1 = first
   in importance) are in ``extras["ranks"]``. The map sums to the channel-max IG map's sum.

With a contrast, the densities are those of IG of ``logit[target] − logit[contrast]``: a
region ranks high when its pixels, per pixel, most favour the target over the contrast.

Baselines: ``None`` → black and white pixels with ``normalization`` (the paper's), else each
image's minimum and maximum (PAIR's); or a list of baselines, each a name (``black``, ``white``,
``min``, ``max`` or any IG baseline), a number or a tensor. PAIR's IG (equal weights on
``steps`` points from the baseline to the input, both included; 100 in XRAI) is replaced by ours:
32 Gauss-Legendre nodes by default. PAIR's approximate ``fast`` ranking is not offered.
"""

from __future__ import annotations

from typing import Any

import torch

from ..baselines import NAMED_BASELINES, resolve_baseline, to_model_space
from ..checks import Open, positive_int, unit_interval
from ..errors import SaliencyError
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores
from ._regions import felzenszwalb_masks, rank_regions
from .integrated_gradients import RULES, integrated_gradients

OWNER = "xrai"
BASELINES = Open((*NAMED_BASELINES, "white", "min", "max"),
                 "a number, a tensor, or a list of baselines")
SEGMENTS = Open(("felzenszwalb",), "a (K, H, W) or (B, K, H, W) bool tensor of region masks")


def _baselines(spec: Any, x: torch.Tensor, ctx: Explainee) -> tuple[list[torch.Tensor], Any]:
    if spec is None:
        spec = ("black", "white") if ctx.normalization is not None else ("min", "max")
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise SaliencyError(f"{OWNER}: baseline is an empty list; give at least one baseline")
    out, record = [], []
    for s in specs:
        if isinstance(s, str) and s in ("min", "max"):
            flat = x.flatten(1)
            v = flat.amin(1) if s == "min" else flat.amax(1)
            out.append(v.view(-1, 1, 1, 1).expand_as(x))
            record.append(s)
        elif isinstance(s, str) and s == "white":
            if ctx.normalization is None:
                raise SaliencyError(f"{OWNER}: baseline 'white' is defined in pixel space, so it "
                                    f"needs the model's input normalization: pass "
                                    f"normalization=(mean, std), or give numbers in input space")
            out.append(to_model_space(torch.ones_like(x[:1]), ctx.normalization).expand_as(x))
            record.append(s)
        else:
            b, r = resolve_baseline(s, x, ctx.normalization, ctx.generator, owner=OWNER)
            out.append(b.expand_as(x))
            record.append(r)
    return out, ("tensor" if "tensor" in record else tuple(record))


def _region_masks(segments: Any, x: torch.Tensor) -> list[torch.Tensor] | None:
    """Per example ``(K, H, W)`` bool masks, or None for Felzenszwalb (computed per example)."""
    B, _, H, W = x.shape
    if isinstance(segments, str):
        if segments != "felzenszwalb":
            raise SaliencyError(f"{OWNER}: segments={segments!r} is not supported; use "
                                f"'felzenszwalb' or a bool tensor of region masks shaped "
                                f"(K, {H}, {W}) or ({B}, K, {H}, {W})")
        return None
    if not isinstance(segments, torch.Tensor) or segments.dtype != torch.bool:
        raise SaliencyError(f"{OWNER}: segments must be 'felzenszwalb' or a bool tensor of region "
                            f"masks, got {getattr(segments, 'dtype', type(segments).__name__)}")
    shape = tuple(segments.shape)
    if segments.dim() == 3:
        segments = segments[None].expand(B, *segments.shape)
    if segments.dim() != 4 or segments.shape[0] != B or tuple(segments.shape[2:]) != (H, W):
        raise SaliencyError(f"{OWNER}: region masks must have shape (K, {H}, {W}) or "
                            f"({B}, K, {H}, {W}) for an input of shape {tuple(x.shape)}; got "
                            f"{shape}")
    return list(segments.to(x.device))


@method(label="XRAI", family="region", output="map",
        choices={"rule": RULES, "baseline": BASELINES, "segments": SEGMENTS},
        validators={"steps": positive_int, "min_pixel_diff": positive_int,
                    "area_threshold": unit_interval}, derivative="surrogate")
def xrai(ctx: Explainee, x: torch.Tensor, *, steps: int = 32, rule: str = "gauss_legendre",
         baseline: object = None, segments: object = "felzenszwalb", min_pixel_diff: int = 50,
         area_threshold: float = 1.0) -> torch.Tensor:
    """Regions ranked by the density of integrated gradients; each pixel gets its region's."""
    given = _region_masks(segments, x)
    B = x.shape[0]
    bases, record = _baselines(baseline, x, ctx)
    ctx.resolve_param("baseline", record)
    original_scores(ctx, x)  # resolves the targets before IG takes rows of the objective
    # IG from every baseline in one batched run: row k·B + b is example b from baseline k
    n = len(bases)
    sub = ctx.with_rows(torch.arange(B, device=x.device).repeat(n))
    ig = integrated_gradients(sub, x.repeat(n, 1, 1, 1), steps=steps, rule=rule,
                              baseline=torch.cat(bases))
    density = ig.reshape(n, *x.shape).mean(0).amax(1).to(torch.float64)  # (B, H, W)
    pixels = x if ctx.normalization is None else x * ctx.normalization[1] + ctx.normalization[0]
    out = torch.empty_like(density)
    ranks = torch.empty(density.shape, dtype=torch.long, device=x.device)
    for b in range(B):
        ctx.work.check_cancel()
        masks = felzenszwalb_masks(OWNER, pixels[b]) if given is None else given[b]
        out[b], ranks[b] = rank_regions(density[b], masks, min_pixel_diff, float(area_threshold))
    ctx.note("ranks", ranks)
    ctx.note("regions", [int(r.max()) for r in ranks])
    dtype = ig.dtype
    return out.to(dtype)[:, None]
