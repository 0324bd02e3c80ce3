"""Infidelity (Yeh et al. 2019, arXiv:1901.09392).

``INFD = E_I[(Iᵀ Φ − (f(x) − f(x − I)))²]``: how well the map, read as a linear model, predicts
the score change under perturbations ``I``. ``normalize=True`` first rescales the map by the
optimal ``β = E[IᵀΦ·Δf] / E[(IᵀΦ)²]``, as the paper's code does. The score is then invariant to
the map's arbitrary scale (without it, a Grad-CAM map ×1000 scores far worse than the same map)
and to a ``(B, 1, H, W)`` map being copied over the C input channels (β absorbs that factor too).
``normalize=False`` (Captum's and Quantus' default) gives the raw squared error, which grows with
the map's scale. The default ``None`` means True, except with a single perturbation sample
(``perturbation="baseline"``), where β would fit that sample exactly and every map would score 0;
the resolved value is recorded in ``params``.

Perturbations: ``gaussian`` (default, ``I ~ N(0, σ²)``, σ = ``noise`` × the example's value range),
``baseline`` (``I = x − baseline``, one deterministic sample; the map is read as per-feature
contributions, as Captum's ``multiply_by_inputs=True``, so the prediction is ``Σ Φ`` and the score
is the squared completeness gap ``(Σ Φ − (f(x) − f(baseline)))²``), or a tensor
``(samples, B, C, H, W)`` of ``I`` given explicitly (to compare with other implementations under
the same perturbations). ``(B, 1, H, W)`` maps are broadcast over channels. ``IᵀΦ``, the score
differences and every mean are computed in float64 whatever the input's dtype.
"""

from __future__ import annotations

import torch

from ..baselines import BASELINE, resolve_baseline
from ..checks import Open, nonnegative, positive_int
from ..errors import SaliencyError
from ..registry import metric
from ._common import (MetricContext, Scored, draws, noise_scale, on_input, record_generator,
                      scores_of)

PERTURBATIONS = ("gaussian", "baseline")
PERTURBATION = Open(PERTURBATIONS, "a (samples, B, C, H, W) tensor of perturbations")


@metric(label="Infidelity", family="faithfulness", higher_is_better=False, stochastic=True,
        choices={"perturbation": PERTURBATION, "baseline": BASELINE},
        validators={"samples": positive_int, "noise": nonnegative})
def infidelity(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
               perturbation: object = "gaussian", samples: int = 16, noise: float = 0.1,
               baseline: object = None, normalize: bool | None = None) -> Scored:
    """Expected squared error of the map's linear prediction of score changes."""
    ctx = mc.explainee
    B = x.shape[0]
    weight = None  # what multiplies the map in the prediction (the perturbation itself)
    if isinstance(perturbation, torch.Tensor):
        pert = perturbation.to(x.device, x.dtype)
        if pert.dim() != 5 or pert.shape[1:] != x.shape:
            raise SaliencyError(f"infidelity: perturbation tensor must be (samples, "
                                f"{', '.join(map(str, x.shape))}), got {tuple(pert.shape)}")
    elif perturbation == "gaussian":
        pert = draws(ctx, tuple(x.shape), samples, "normal", x) * noise_scale(x, noise)
    elif perturbation == "baseline":
        if baseline is None and mc.record is not None and "baseline" in mc.record.params:
            baseline = mc.record.params["baseline"]  # the baseline the map was made with
            if baseline == "tensor":  # the record keeps only the word, not the tensor
                raise SaliencyError("infidelity: the attribution used a tensor baseline, which "
                                    "the record does not keep; pass baseline= that tensor")
        from_record = mc.record is not None and baseline == mc.record.params.get("baseline")
        generator = record_generator(mc, x) if from_record else ctx.generator
        base, resolved = resolve_baseline(baseline, x, ctx.normalization, generator,
                                          owner="infidelity")
        mc.resolve_param("baseline", resolved)
        pert = (x - base)[None]
        weight = torch.ones_like(pert)  # contributions: I / (x − baseline) = 1
    else:
        raise SaliencyError(f"infidelity: perturbation={perturbation!r}; use one of "
                            f"{PERTURBATIONS} or a (samples, B, C, H, W) tensor")
    S = pert.shape[0]
    mc.resolve_param("samples", S)
    if normalize is None:
        normalize = S > 1
    elif normalize and S == 1:
        raise SaliencyError("infidelity: normalize=True with one perturbation sample fits β to "
                            "that sample exactly, so every map would score 0; pass "
                            "normalize=False (or more perturbation samples)")
    mc.resolve_param("normalize", bool(normalize))
    weight = pert if weight is None else weight
    phi = on_input(values.detach().to(x.device, torch.float64), x)
    f_x = scores_of(ctx, B, lambda i, j: (x[i:j], torch.arange(i, j, device=x.device)),
                    x[0].numel())

    def build(i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(i, j, device=x.device)
        s, rows = t // B, t % B
        return x[rows] - pert[s, rows], rows

    f_pert = scores_of(ctx, S * B, build, x[0].numel()).view(S, B)
    delta = f_x.double()[None] - f_pert.double()  # (S, B)
    # Iᵀ Φ in float64, one sample at a time (a float32 dot product over C·H·W terms loses
    # digits; the products of float32 numbers are exact in float64)
    pred = torch.stack([(w.double() * phi).flatten(1).sum(1) for w in weight])  # (S, B)
    if normalize:
        denom = (pred * pred).mean(0)
        beta = torch.where(denom > 0, (pred * delta).mean(0) / torch.where(denom > 0, denom, 1), 0)
        pred = beta[None] * pred
    return Scored(((pred - delta) ** 2).mean(0))
