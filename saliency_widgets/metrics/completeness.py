"""Completeness (Sundararajan et al. 2017): ``|Σ attr − (f(x) − f(x′))| / |f(x) − f(x′)|``.

Only defined for methods whose spec declares ``sums_to_baseline`` (a baseline ``x′`` whose score
difference the attributions should sum to: integrated gradients, and KernelSHAP, which enforces
it exactly). A method declaring ``segment_values`` (KernelSHAP) paints each segment's value on
every pixel of the segment, so its sum is that of the segment values
(``extras["segment_values"]``), not the pixel sum. A recorded ``uniform`` baseline is replayed
from the record's seed, unless the record kept the score at its baseline
(``extras["base_score"]``: KernelSHAP draws it after the coalitions), which is then used.
For the other methods the score is NaN with a warning. A relative tolerance, never float
equality (Quantus compares with ``==``, so it is essentially always False). It measures the
map's scale, which every other metric ignores, so ``validate`` leaves it out of the mean rank.
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..errors import SaliencyError
from ..registry import METHODS, metric
from ._common import MetricContext, Scored, record_generator, scores_of, warn_nan



def _with_baseline() -> list[str]:
    return [n for n in METHODS.names() if METHODS.get(n).sums_to_baseline]


@metric(label="Completeness gap", family="axiomatic", higher_is_better=False,
        choices={"baseline": BASELINE})
def completeness(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                 baseline: object = None) -> Scored:
    """Relative gap between the attribution sum and the score difference to the baseline."""
    ctx = mc.explainee
    record = mc.record
    spec = METHODS.get(record.method) if record is not None else None
    if baseline is None and record is not None and spec is not None:
        if spec.sums_to_baseline:
            baseline = record.params.get("baseline")
            if baseline == "tensor":  # the record keeps only the word, not the tensor
                raise SaliencyError("completeness: the attribution used a tensor baseline, "
                                    "which the record does not keep; pass baseline= that tensor")
        else:
            nan = torch.full((x.shape[0],), torch.nan, dtype=torch.float64)
            warn_nan("completeness", torch.ones_like(nan, dtype=torch.bool),
                     f"method {record.method!r} has no baseline whose score difference its "
                     f"attributions should sum to (only {', '.join(_with_baseline())})")
            return Scored(nan)
    if baseline is None:
        nan = torch.full((x.shape[0],), torch.nan, dtype=torch.float64)
        warn_nan("completeness", torch.ones_like(nan, dtype=torch.bool),
                 "a plain tensor has no baseline: pass baseline= the one the map was made with")
        return Scored(nan)
    # the record whose baseline this is (its random draws can be replayed from its seed)
    recorded = record if record is not None and baseline == record.params.get("baseline") \
        else None
    B = x.shape[0]
    if recorded is not None and baseline == "uniform" and "base_score" in recorded.extras:
        mc.resolve_param("baseline", baseline)
        f_x = scores_of(ctx, B, lambda i, j: (x[i:j], torch.arange(i, j, device=x.device)),
                        x[0].numel()).double()
        f_b = torch.as_tensor(recorded.extras["base_score"]).to(f_x)
    else:
        generator = record_generator(mc, x) if recorded is not None else ctx.generator
        base, resolved = resolve_baseline(baseline, x, ctx.normalization, generator,
                                          owner="completeness")
        mc.resolve_param("baseline", resolved)
        base = base.expand_as(x)
        both = scores_of(ctx, 2 * B, lambda i, j: _pair(x, base, i, j), x[0].numel()).double()
        f_x, f_b = both[:B], both[B:]
    delta = f_x - f_b
    if spec is not None and spec.segment_values and record is not None:  # not the pixels
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
