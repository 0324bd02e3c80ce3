"""Deconvolution (Zeiler & Fergus 2014, arXiv:1311.2901).

The input gradient with every ReLU's backward replaced by the rectified gradient: the sign of
the forward input is ignored. ReLU calls are intercepted (``model/hooks.py``), so in-place,
functional and reused ReLUs are all rewritten; other activations keep their gradients, as in
Captum's ``Deconvolution``.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import SaliencyWarning
from ..model.explainee import Explainee
from ..model.hooks import DeconvReLUMode
from ..registry import method
from ._common import over_batch


# Its backward ignores the forward pass at ReLUs (it rectifies the gradient wherever the input was),
# so on a ReLU network the map depends on the input only through max-pooling switches and the
# predicted class: piecewise constant, with no derivative to follow, also on a softplus copy.
NO_DERIVATIVE = ("none: its backward pass ignores the signs of the forward pass at ReLUs, so on "
                 "a ReLU network the map changes with the input only where a max-pooling switch "
                 "flips: it is piecewise constant, and no gradient (not even a softplus copy's) "
                 "gives a step direction")


@method(label="Deconvolution", family="gradient", output="input", derivative=NO_DERIVATIVE)
def deconvolution(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Input gradient with deconvnet ReLU backward passes (the gradient's positive part)."""
    calls = [0]

    def run(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        mode = DeconvReLUMode()
        _, _, g = ctx.input_grad_under(xb, rows, mode=mode, original=True)
        calls[0] += mode.calls
        return (g,)

    (g,) = over_batch(ctx, x, run, kind="backward")
    if calls[0] == 0:
        warnings.warn("deconvolution saw no ReLU call in the forward pass (a model without "
                      "ReLUs), so it equals the plain gradient", SaliencyWarning, stacklevel=3)
    return g
