"""Guided backpropagation (Springenberg et al. 2014, arXiv:1412.6806).

Every ReLU's backward passes only positive gradients through positive inputs. Implemented by
intercepting ReLU *calls* (see ``model/hooks.py``), so in-place, functional and reused ReLUs are
all guided. Other activations (SiLU, GELU) are left as they are, as in the paper and Captum.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch


@method(label="Guided Backprop", family="gradient", output="input",
        derivative="surrogate")
def guided_backprop(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Input gradient with guided ReLU backward passes."""
    (g,) = over_batch(
        ctx, x, lambda xb, rows: ctx.input_grad(xb, rows, original=True, guided=True)[1:],
        kind="backward")
    return g
