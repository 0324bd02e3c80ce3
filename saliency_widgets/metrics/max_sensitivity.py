"""Max-sensitivity (Yeh et al. 2019, arXiv:1901.09392).

``max_{‖ε‖∞ ≤ r} ‖Φ(x + ε) − Φ(x)‖ / ‖Φ(x)‖`` estimated over ``samples`` uniform draws from the
L∞ ball; ``radius`` is a fraction of each example's value range. Re-explains with the record's
method, parameters and the *same* resolved target. A zero-norm original map divides by 1
(Captum's convention). ``perturbation=`` a ``(samples, B, C, H, W)`` tensor of ε compares with
other implementations under the same draws.
"""

from __future__ import annotations

import torch

from ..checks import nonnegative, positive_int
from ..errors import SaliencyError
from ..registry import metric
from ._common import MetricContext, Scored, draws, noise_scale
from ._stability import PERTURBATION_NOTE


@metric(label="Max-sensitivity", family="robustness", higher_is_better=False, stochastic=True,
        validators={"samples": positive_int, "radius": nonnegative},
        python_only={"perturbation": PERTURBATION_NOTE})
def max_sensitivity(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                    samples: int = 10, radius: float = 0.02,
                    perturbation: object = None) -> Scored:
    """Largest relative change of the map under small input perturbations."""
    explain = mc.require_explain("max_sensitivity")
    ctx = mc.explainee
    B = x.shape[0]
    if isinstance(perturbation, torch.Tensor):
        eps = perturbation.to(x.device, x.dtype)
        if eps.dim() != 5 or eps.shape[1:] != x.shape:
            raise SaliencyError(f"max_sensitivity: perturbation tensor must be (samples, "
                                f"{', '.join(map(str, x.shape))}), got {tuple(eps.shape)}")
    elif perturbation is None:
        eps = (2 * draws(ctx, tuple(x.shape), samples, "uniform", x) - 1) * noise_scale(x, radius)
    else:
        raise SaliencyError("max_sensitivity: perturbation must be None or a tensor")
    S = eps.shape[0]
    noisy = (x[None] + eps).reshape(S * B, *x.shape[1:])
    rows = torch.arange(B, device=x.device).repeat(S)
    maps = explain(noisy, rows).detach().double().reshape(S, B, -1)
    ref = values.detach().double().reshape(1, B, -1)
    ref_norm = ref.norm(dim=2)[0]
    dist = (maps - ref).norm(dim=2)  # (S, B)
    sens = dist / torch.where(ref_norm > 0, ref_norm, 1)[None]
    return Scored(sens.amax(0), curve=sens.T.contiguous(),
                  curve_x=torch.arange(1, S + 1, dtype=torch.float64))
