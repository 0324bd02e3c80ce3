"""DeepLIFT with the rescale rule (Shrikumar, Greenside, Kundaje 2017, arXiv:1704.02685).

``(x − x′) ⊙ m``, where the multipliers ``m`` come from a backward pass in which every
nonlinearity passes its secant slope ``(f(z) − f(z′)) / (z − z′)`` between the input's and the
baseline's activations (``model/deeplift.py``). The map sums to ``f(x) − f(x′)`` on networks of
linear layers, elementwise nonlinearities and max pools (the record's ``summation_gap`` says by
how much it misses); ReLUs may be in place or reused (torchvision's ResNets), where Captum's
module hooks go wrong. Baseline as for integrated gradients: black when the normalization is
known, else zeros in input space.
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..model.explainee import Explainee
from ..registry import method
from ._rescale import rescale_mean


@method(label="DeepLIFT", family="relevance", output="input", choices={"baseline": BASELINE})
def deeplift(ctx: Explainee, x: torch.Tensor, *, baseline: object = None) -> torch.Tensor:
    """(input − baseline) times DeepLIFT's rescale multipliers."""
    base, resolved = resolve_baseline(baseline, x, ctx.normalization, ctx.generator,
                                      owner="deeplift")
    ctx.resolve_param("baseline", resolved)
    return rescale_mean(ctx, x, base.expand_as(x)[:, None])
