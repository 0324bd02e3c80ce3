"""Deletion AUC (Petsiuk et al. 2018): remove the most relevant pixels first; lower is better.

Default substrate: black pixels when the normalization is known (else zeros in input space).
See ``_curve.py`` for the shared procedure.
"""

from __future__ import annotations

import torch

from ..registry import metric
from ._common import MetricContext, Scored
from ._curve import CHOICES, VALIDATORS, curve


@metric(label="Deletion AUC", family="faithfulness", higher_is_better=False,
        choices=CHOICES, validators=VALIDATORS)
def deletion(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *, steps: int = 24,
             baseline: object = None, reduction: str = "sum",
             score: str = "objective", tie_seed: int = 0) -> Scored:
    """Area under the objective as the most relevant pixels are deleted first."""
    return curve(mc, x, values, insert=False, steps=steps, baseline=baseline,
                 reduction=reduction, score=score, tie_seed=tie_seed, owner="deletion")
