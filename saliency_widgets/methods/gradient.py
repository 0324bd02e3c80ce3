"""Vanilla gradient saliency (Simonyan, Vedaldi, Zisserman 2013, arXiv:1312.6034).

Signed, raw ``d score / d x``. (Captum's ``Saliency`` returns ``|grad|`` by default; the sign is
information, and the display can show absolute values.)
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch


@method(label="Gradient", family="gradient", output="input", derivative="surrogate")
def gradient(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Gradient of the objective with respect to the input pixels."""
    (g,) = over_batch(ctx, x, lambda xb, rows: ctx.input_grad(xb, rows, original=True)[1:],
                      kind="backward")
    return g
