"""Relative output stability (Agarwal et al. 2022, arXiv:2203.06877).

``ROS = max_{x'} ‖(e_x − e_x') / e_x‖₂ / max(‖h(x) − h(x')‖₂, ε_min)`` over perturbed inputs
``x'`` that keep the predicted label, with ``h`` the model's logits: the map's relative change per
unit of change of the output. Elementwise division with ``ε_min`` for zero entries of ``e_x``, as in
Quantus. Perturbations, the max and the NaN rule as in ``relative_input_stability``.
"""

from __future__ import annotations

import torch

from ..checks import nonnegative, positive, positive_int
from ..registry import metric
from ._common import MetricContext, Scored
from ._stability import (PERTURBATION_NOTE, max_over_kept, perturbations, reexplain,
                         relative_change, unchanged_prediction)


@metric(label="Relative output stability", family="robustness", higher_is_better=False,
        stochastic=True,
        validators={"samples": positive_int, "radius": nonnegative, "eps_min": positive},
        python_only={"perturbation": PERTURBATION_NOTE})
def relative_output_stability(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                              samples: int = 10, radius: float = 0.02, eps_min: float = 1e-6,
                              perturbation: object = None) -> Scored:
    """Largest relative change of the map per change of the logits."""
    eps = perturbations(mc, x, samples, radius, perturbation, "relative_output_stability")
    noisy, maps = reexplain(mc, x, eps, "relative_output_stability")
    z, zs, kept = unchanged_prediction(mc, x, noisy)
    num = relative_change(values.detach(), maps, eps_min)
    den = (z.double()[None] - zs.double()).norm(dim=2).clamp(min=eps_min)
    ratio = num / den
    score = max_over_kept(ratio, kept, "relative_output_stability")
    curve = torch.where(kept, ratio, torch.full_like(ratio, float("nan")))
    return Scored(score, curve=curve.T.contiguous(),
                  curve_x=torch.arange(1, eps.shape[0] + 1, dtype=torch.float64))
