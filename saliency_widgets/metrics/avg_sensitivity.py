"""Average sensitivity (Yeh et al. 2019, arXiv:1901.09392; Bhatt et al. 2020, arXiv:2005.00631).

``E_{‖ε‖∞ ≤ r} ‖Φ(x + ε) − Φ(x)‖₂ / ‖Φ(x)‖₂``, the mean where max-sensitivity takes the max, over
the *same* draws for the same seed (so ``avg_sensitivity ≤ max_sensitivity`` exactly). A zero-norm
original map divides by 1 (Captum's convention; Quantus divides by 0). ``perturbation=`` a
``(samples, B, C, H, W)`` tensor compares with other implementations under the same draws.
"""

from __future__ import annotations

import torch

from ..checks import nonnegative, positive_int
from ..registry import metric
from ._common import MetricContext, Scored
from ._stability import PERTURBATION_NOTE, perturbations, reexplain


@metric(label="Avg-sensitivity", family="robustness", higher_is_better=False, stochastic=True,
        validators={"samples": positive_int, "radius": nonnegative},
        python_only={"perturbation": PERTURBATION_NOTE})
def avg_sensitivity(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                    samples: int = 10, radius: float = 0.02,
                    perturbation: object = None) -> Scored:
    """Mean relative change of the map under small input perturbations."""
    eps = perturbations(mc, x, samples, radius, perturbation, "avg_sensitivity")
    _, maps = reexplain(mc, x, eps, "avg_sensitivity")
    S, B = maps.shape[:2]
    ref = values.detach().double().reshape(1, B, -1)
    ref_norm = ref.norm(dim=2)[0]
    sens = (maps.reshape(S, B, -1) - ref).norm(dim=2) / torch.where(ref_norm > 0, ref_norm, 1)[None]
    return Scored(sens.mean(0), curve=sens.T.contiguous(),
                  curve_x=torch.arange(1, S + 1, dtype=torch.float64))
