"""Insertion AUC (Petsiuk et al. 2018): insert the most relevant pixels first into a blurred
copy; higher is better. Default substrate: ``blur`` when the normalization is known (else zeros in
input space). See ``_curve.py`` for the shared procedure.
"""

from __future__ import annotations

import torch

from ..registry import metric
from ._common import MetricContext, Scored
from ._curve import CHOICES, VALIDATORS, curve


@metric(label="Insertion AUC", family="faithfulness", higher_is_better=True,
        choices=CHOICES, validators=VALIDATORS)
def insertion(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *, steps: int = 24,
              baseline: object = None, reduction: str = "sum",
              score: str = "objective", tie_seed: int = 0) -> Scored:
    """Area under the objective as the most relevant pixels are inserted first."""
    if baseline is None and mc.explainee.normalization is not None:
        baseline = "blur"
    return curve(mc, x, values, insert=True, steps=steps, baseline=baseline,
                 reduction=reduction, score=score, tie_seed=tie_seed, owner="insertion")
