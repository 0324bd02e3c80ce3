"""The torch functions that the backward-rewriting modes (DeepLIFT, LRP) recognise, by role.

Modules call these functions (``nn.ReLU`` calls ``F.relu``, ``nn.Conv2d`` calls ``F.conv2d``), so
intercepting the calls covers modules, functional code and tensor methods alike.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# In-place nonlinearities and their out-of-place forms. The modes compute them out of place;
# callers use the returned tensor, as ``nn.ReLU(inplace=True)`` callers do.
OUT_OF_PLACE: dict[Callable[..., Any], Callable[..., Any]] = {
    F.relu_: F.relu, torch.relu_: torch.relu, Tensor.relu_: torch.relu,
    F.leaky_relu_: F.leaky_relu, F.elu_: F.elu, F.hardtanh_: F.hardtanh, F.rrelu_: F.rrelu,
    F.threshold_: F.threshold,  # type: ignore[attr-defined]  # real, missing from the stubs
    Tensor.sigmoid_: torch.sigmoid, Tensor.tanh_: torch.tanh,
}

# Elementwise nonlinearities (the functions behind zennit's ``Activation`` module types).
ELEMENTWISE = frozenset({
    F.relu, torch.relu, Tensor.relu, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu,
    F.mish, F.softplus, F.hardtanh, F.relu6, F.hardsigmoid, F.hardswish, F.logsigmoid,
    F.softsign, F.tanhshrink, F.hardshrink, F.softshrink, F.threshold, F.prelu, F.rrelu,
    torch.sigmoid, Tensor.sigmoid, F.sigmoid, torch.tanh, Tensor.tanh, F.tanh, *OUT_OF_PLACE})

MAX_POOLS = frozenset({F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
                       F.adaptive_max_pool2d, F.adaptive_max_pool3d})

AVG_POOLS = frozenset({F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d,
                       F.adaptive_avg_pool2d, F.adaptive_avg_pool3d})

# ``(input, weight, bias, ...)`` layers: the ones LRP's rules apply to.
CONVOLUTIONS = frozenset({F.conv1d, F.conv2d, F.conv3d})
TRANSPOSED = frozenset({F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d})
LINEAR = frozenset({F.linear})

# ``a + b``, ``torch.add(a, b)`` and ``a += b`` (``+=`` reaches the mode as ``Tensor.add_``).
ADDS = frozenset({torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__})
ADDS_IN_PLACE = frozenset({Tensor.add_, Tensor.__iadd__})


def out_of_place(func: Callable[..., Any], args: tuple, kwargs: dict
                 ) -> Callable[[Tensor], Tensor]:
    """``t ↦ func(t, *args[1:], **kwargs)`` computed out of place."""
    plain = OUT_OF_PLACE.get(func, func)
    rest = args[1:]
    extra = {k: v for k, v in kwargs.items() if k != "inplace"}
    return lambda t: plain(t, *rest, **extra)
