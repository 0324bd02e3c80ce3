"""Relative input stability (Agarwal et al. 2022, "Rethinking stability for attribution-based
explanations", arXiv:2203.06877).

``RIS = max_{x'} ‖(e_x − e_x') / e_x‖₂ / max(‖(x − x') / x‖₂, ε_min)`` over perturbed inputs
``x'`` that keep the predicted label: the map's relative change per unit of relative input change.
Divisions are elementwise; zero entries of ``e_x`` and ``x`` are replaced by ``ε_min``, as in
Quantus. Perturbations are max-sensitivity's draws (``_stability.py``) or a given
``(samples, B, C, H, W)`` tensor. Perturbations that change the prediction are left out of the
max (``curve`` is NaN there); Quantus instead returns NaN for the example as soon as one does.
"""

from __future__ import annotations

import torch

from ..checks import nonnegative, positive, positive_int
from ..registry import metric
from ._common import MetricContext, Scored
from ._stability import (PERTURBATION_NOTE, max_over_kept, perturbations, reexplain,
                         relative_change, unchanged_prediction)


@metric(label="Relative input stability", family="robustness", higher_is_better=False,
        stochastic=True,
        validators={"samples": positive_int, "radius": nonnegative, "eps_min": positive},
        python_only={"perturbation": PERTURBATION_NOTE})
def relative_input_stability(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                             samples: int = 10, radius: float = 0.02, eps_min: float = 1e-6,
                             perturbation: object = None) -> Scored:
    """Largest relative change of the map per relative change of the input."""
    eps = perturbations(mc, x, samples, radius, perturbation, "relative_input_stability")
    noisy, maps = reexplain(mc, x, eps, "relative_input_stability")
    _, _, kept = unchanged_prediction(mc, x, noisy)
    num = relative_change(values.detach(), maps, eps_min)
    den = relative_change(x.detach(), noisy, eps_min).clamp(min=eps_min)
    ratio = num / den
    score = max_over_kept(ratio, kept, "relative_input_stability")
    curve = torch.where(kept, ratio, torch.full_like(ratio, float("nan")))
    return Scored(score, curve=curve.T.contiguous(),
                  curve_x=torch.arange(1, eps.shape[0] + 1, dtype=torch.float64))
