"""SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825), SmoothGrad² and VarGrad (Adebayo et al.
2018, arXiv:1810.03307) over any base method.

Adds Gaussian noise with σ = ``noise`` × (max − min) of each example, runs the ``base`` method on
the noisy copies (batched), and aggregates: ``mean`` (signed), ``square`` (mean of squares, ≥ 0)
or ``variance`` (VarGrad, ≥ 0, by Welford's update so a constant map gives exactly 0). Noise is
drawn one sample at a time from the call's seeded generator and shared across the batch, so an
example's map depends neither on the chunk size nor on the other examples, and the global RNG is
never touched.

Defaults: 25 samples and 15% noise (the paper finds 10–20% best; 25 samples is PAIR saliency's
default, between Captum's 5 and Xplique's 50).
"""

from __future__ import annotations

from typing import Any

import torch

from ..checks import Check, nonnegative, positive_int
from ..errors import SaliencyError
from ..model.explainee import Explainee
from ..registry import METHODS, method
from ._common import original_scores

AGGREGATIONS = ("mean", "square", "variance")
BASE_PARAMS = Check("dict", "a dict of the base method's parameters",
                    lambda v: isinstance(v, dict), none=True)


def bases() -> tuple[str, ...]:
    """Every registered method but SmoothGrad itself (read when checked: all are registered)."""
    return tuple(name for name in METHODS.names() if name != "smoothgrad")


@method(label="SmoothGrad", family="smoothing", output="input", stochastic=True,
        choices={"aggregation": AGGREGATIONS, "base": bases},
        validators={"samples": positive_int, "noise": nonnegative, "base_params": BASE_PARAMS},
        python_only={"base_params": "the base method's parameters, passed flat (steps=16) or in "
                                    "base_params= where a name is also SmoothGrad's (samples); "
                                    "the widget edits them as the base's own fields"},
        wraps=("base", "base_params"))
def smoothgrad(ctx: Explainee, x: torch.Tensor, *, base: str = "gradient", samples: int = 25,
               noise: float = 0.15, aggregation: str = "mean", base_params: dict | None = None,
               **more_base_params: Any) -> torch.Tensor:
    """Average (or square/variance) of a base method's maps over noisy copies of the input.

    The base's parameters are passed flat (``steps=16``) or, where a name is also one of
    SmoothGrad's own (``samples``), in ``base_params={"samples": 256}``.
    """
    base_params = {**more_base_params, **(base_params or {})}
    spec = METHODS.get(base)
    original_scores(ctx, x)  # resolve the targets from the clean input
    B = x.shape[0]
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    # A base that draws random numbers itself (LIME, KernelSHAP, a uniform baseline) gets a
    # private generator per noise sample, run one sample at a time, so its draws never depend
    # on how samples are grouped into chunks.
    own_rng = spec.stochastic or base_params.get("baseline") == "uniform"
    seeds = torch.randint(0, 2**62, (samples + 1,), generator=ctx.generator,
                          device=ctx.generator.device).tolist()
    noise_rng = torch.Generator(device=x.device).manual_seed(seeds[0])
    group = 1 if own_rng else max(1, ctx.work.chunk_size(x[0].numel(), "backward") // B)
    groups = -(-samples // group)
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    sq: torch.Tensor | None = None
    seen = 0
    for gi in range(groups):
        n = min(group, samples - gi * group)
        # One draw per sample, shared by every example (each scaled by its own σ), so an
        # example's noise does not depend on its position in the batch or on the batch size.
        eps = torch.stack([torch.randn((1, *x.shape[1:]), generator=noise_rng,
                                       device=x.device, dtype=x.dtype) for _ in range(n)])
        noisy = (x[None] + eps * sigma.view(1, B, 1, 1, 1)).reshape(n * B, *x.shape[1:])
        rows = torch.arange(B, device=x.device).repeat(n)
        sub = ctx.with_rows(rows)
        sub.trace = None  # a traced SmoothGrad reports its samples, not its base's inner steps
        if own_rng:
            sub.generator = torch.Generator(device=x.device).manual_seed(seeds[1 + gi])
        with ctx.work.scope(gi, groups):
            values = spec.fn(sub, noisy, **base_params)
        if ctx._layer is None:  # record the base's layer once (and do not resolve it again)
            ctx._layer = sub._layer
        values = values.reshape(n, B, *values.shape[1:])
        for i, v in enumerate(values):  # sample order: independent of the group size
            seen += 1
            if mean is None:
                mean, m2, sq = v.clone(), torch.zeros_like(v), v * v
            else:
                delta = v - mean
                mean += delta / seen
                m2 += delta * (v - mean)
                sq += v * v
            if ctx.trace is not None:  # api.attribution_path: one sample and the running result
                ctx.trace("smoothgrad", sample=seen - 1, noisy=noisy.view(n, B, *x.shape[1:])[i],
                          values=v, running=_aggregate(aggregation, mean, m2, sq, seen))
    if sub.resolved:  # e.g. the base's automatic window or baseline
        ctx.resolve_param("base_params", {**base_params, **sub.resolved})
    if mean is None or m2 is None or sq is None:  # the registry checked samples ≥ 1
        raise SaliencyError(f"smoothgrad: samples must be an int ≥ 1, got {samples!r}")
    return _aggregate(aggregation, mean, m2, sq, samples)


def _aggregate(aggregation: str, mean: torch.Tensor, m2: torch.Tensor, sq: torch.Tensor,
               n: int) -> torch.Tensor:
    """The map after ``n`` samples: their mean, mean square or variance."""
    if aggregation == "mean":
        return mean
    if aggregation == "square":
        return sq / n
    return (m2 / n).clamp(min=0)
