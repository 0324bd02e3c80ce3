"""Completeness (Sundararajan et al. 2017): ``|Σ attr − (f(x) − f(x′))| / |f(x) − f(x′)|``.

Only defined for methods with a baseline ``x′`` whose attributions should sum to the score
difference: integrated gradients, and KernelSHAP, which enforces it exactly. KernelSHAP paints
each segment's value on every pixel of the segment, so its sum is that of the segment values
(``extras["segment_values"]``), not the pixel sum; its ``uniform`` baseline is drawn after the
coalitions and cannot be replayed, so there ``f(x′)`` is the record's ``extras["base_score"]``.
For the other methods the score is NaN with a warning. A relative tolerance, never float
equality (Quantus compares with ``==``, so it is essentially always False). It measures the
map's scale, which every other metric ignores, so ``validate`` leaves it out of the mean rank.
"""

from __future__ import annotations

import torch

from ..baselines import resolve_baseline
from ..errors import SaliencyError
from ..registry import metric
from ._common import MetricContext, Scored, record_generator, scores_of, warn_nan

_WITH_BASELINE = ("integrated_gradients", "kernel_shap")


@metric(label="Completeness gap", family="axiomatic", higher_is_better=False)
def completeness(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                 baseline: object = None) -> Scored:
    """Relative gap between the attribution sum and the score difference to the baseline."""
    ctx = mc.explainee
    record = mc.record
    if baseline is None and record is not None:
        if record.method in _WITH_BASELINE:
            baseline = record.params.get("baseline")
            if baseline == "tensor":  # the record keeps only the word, not the tensor
                raise SaliencyError("completeness: the attribution used a tensor baseline, "
                                    "which the record does not keep; pass baseline= that tensor")
        else:
            nan = torch.full((x.shape[0],), torch.nan, dtype=torch.float64)
            warn_nan("completeness", torch.ones_like(nan, dtype=torch.bool),
                     f"method {record.method!r} has no baseline whose score difference its "
                     f"attributions should sum to (only {', '.join(_WITH_BASELINE)})")
            return Scored(nan)
    if baseline is None:
        nan = torch.full((x.shape[0],), torch.nan, dtype=torch.float64)
        warn_nan("completeness", torch.ones_like(nan, dtype=torch.bool),
                 "a plain tensor has no baseline: pass baseline= the one the map was made with")
        return Scored(nan)
    from_record = record is not None and baseline == record.params.get("baseline")
    shap = record is not None and record.method == "kernel_shap"
    B = x.shape[0]
    if shap and from_record and baseline == "uniform":
        mc.extras["baseline"] = baseline
        f_x = scores_of(ctx, B, lambda i, j: (x[i:j], torch.arange(i, j, device=x.device)),
                        x[0].numel()).double()
        f_b = torch.as_tensor(record.extras["base_score"]).to(f_x)
    else:
        generator = record_generator(mc, x) if from_record else ctx.generator
        base, resolved = resolve_baseline(baseline, x, ctx.normalization, generator,
                                          owner="completeness")
        mc.extras["baseline"] = resolved
        base = base.expand_as(x)
        both = scores_of(ctx, 2 * B, lambda i, j: _pair(x, base, i, j), x[0].numel()).double()
        f_x, f_b = both[:B], both[B:]
    delta = f_x - f_b
    if shap:  # the segment values, not the painted pixels
        total = torch.as_tensor(record.extras["segment_values"]).double().to(delta.device).sum(1)
    else:
        total = values.detach().double().flatten(1).sum(1)
    gap = (total - delta).abs() / (delta.abs() + torch.finfo(torch.float64).eps)
    return Scored(gap)


def _pair(x: torch.Tensor, base: torch.Tensor, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``0..B-1`` are the inputs, ``B..2B-1`` their baselines."""
    B = x.shape[0]
    t = torch.arange(i, j, device=x.device)
    rows = t % B
    return torch.where((t < B).view(-1, 1, 1, 1), x[rows], base[rows]), rows
