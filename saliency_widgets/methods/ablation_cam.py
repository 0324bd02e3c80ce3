"""Ablation-CAM (Desai & Ramaswamy 2020, WACV, doi:10.1109/WACV45572.2020.9093360).

Each channel's weight is the objective's relative drop when that channel of the layer is zeroed:
``w_k = (S − S_k) / |S|``, then ``ReLU(Σ_k w_k A_k)``, upsampled bilinearly, raw scale. One
forward per (example, channel), streamed in chunks like Score-CAM. Dividing by ``|S|`` (not
``S``, as pytorch-grad-cam does) keeps the weights' sign meaning "this channel helped" when the
objective is negative. Where ``|S| < 1e-6`` the relative drop is undefined: the map is NaN with
a warning (a self-contrast, an identically zero objective, gives zeros). The ablated channel is
set to 0 as in the paper; pytorch-grad-cam uses ``min − 1e7`` when the layer has no zeros.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import SaliencyWarning
from ..model.explainee import Explainee
from ..registry import method
from ._cam import combine
from ._common import over_batch, upsample

TINY = 1e-6


@method(label="Ablation-CAM", family="cam", output="map", uses_layer=True)
def ablation_cam(ctx: Explainee, x: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Layer activations weighted by the objective's relative drop when each is zeroed."""
    s, acts = over_batch(ctx, x, lambda xb, rows: ctx.layer_value(xb, rows, original=True),
                         kind="forward", report=False)
    B, K = acts.shape[:2]
    drops = torch.zeros((B, K), dtype=s.dtype, device=x.device)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, k = t // K, t % K
        drops[rows, k] = s[rows] - ctx.ablated_scores(x[rows], rows, k)

    ctx.work.run(B * K, step, item_numel=x[0].numel(), kind="forward")
    zero = ctx.objective.self_contrast()
    undefined = (s.abs() < TINY) & ~zero
    scale = torch.where(undefined | zero, 1, s.abs())
    weights = torch.where(zero[:, None], 0, drops / scale[:, None])
    ctx.note("score_drops", drops)
    cam = combine(acts, weights[:, :, None, None].to(acts.dtype), relu)
    if bool(undefined.any()):
        idx = undefined.nonzero()[:, 0].tolist()
        warnings.warn(f"ablation_cam: the objective is within {TINY:g} of 0 for example(s) "
                      f"{idx}, so its relative drop (S − S_k)/|S| is undefined; their maps are "
                      f"NaN. Explain another target or contrast", SaliencyWarning, stacklevel=3)
        cam = torch.where(undefined[:, None, None, None], torch.nan, cam)
    return upsample(cam, tuple(x.shape[-2:]))
