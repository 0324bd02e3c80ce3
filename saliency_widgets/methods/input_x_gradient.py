"""Gradient × input (Shrikumar et al. 2016, arXiv:1605.01713).

For a bias-free ReLU network it sums exactly to the score (Euler's theorem for positively
homogeneous functions).
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch


@method(label="Input × Gradient", family="gradient", output="input",
        derivative="surrogate")
def input_x_gradient(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Elementwise product of the input and the objective's gradient."""
    (g,) = over_batch(ctx, x, lambda xb, rows: ctx.input_grad(xb, rows, original=True)[1:],
                      kind="backward")
    return x * g
