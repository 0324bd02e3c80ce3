"""The bias terms FullGrad decomposes a network into: every 2-D convolution's bias and every
2-D batch norm's effective bias.

In eval mode a batch norm is the affine map ``γ(z − μ)/√(σ² + ε) + β``, so its bias is
``β − γμ/√(σ² + ε)`` (``γ = 1, β = 0`` without affine parameters). Batch norms without running
statistics normalise with the batch's own, have no fixed bias, and are left out, as are
convolutions without a bias.
"""

from __future__ import annotations

import torch
from torch import nn


def bias_layers(root: nn.Module) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """``(name, module, bias (C,))`` for every biased 2-D layer, in registration order."""
    found: list[tuple[str, nn.Module, torch.Tensor]] = []
    for name, m in root.named_modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            found.append((name, m, m.bias.detach()))
        elif isinstance(m, nn.BatchNorm2d) and m.running_mean is not None \
                and m.running_var is not None:
            scale = (m.running_var + m.eps).rsqrt()
            if m.weight is not None:
                scale = scale * m.weight.detach()
            bias = -m.running_mean * scale
            if m.bias is not None:
                bias = bias + m.bias.detach()
            found.append((name, m, bias))
    return found
