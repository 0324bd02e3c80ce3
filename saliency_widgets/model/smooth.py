"""A softplus(β) copy of a model: every ReLU call becomes ``log(1 + exp(βx)) / β``.

Dombrowski et al. 2019 ("Explanations can be manipulated and geometry is to blame",
arXiv:1906.07983) use this network twice: as the attacker's surrogate, because a ReLU network's
input gradient is piecewise constant in ``x`` (its second derivative, which a gradient-based attack
on a gradient map needs, is zero almost everywhere), and as a defence, explaining through the
smoothed network. As β → ∞ the copy tends to the original network.

The copy is a structural copy (``copy.py``): it shares the user's weight storage, has its own
module objects, and is in eval mode. Its class is a subclass of the model's class *with the same
name* whose ``forward`` runs the original ``forward`` under :class:`SoftplusReLUMode`, so layer
names, automatic CAM layer choice and ``isinstance`` checks behave as for the original. Only ReLU
calls (modules, ``F.relu``, ``x.relu()``, in place or not) are smoothed; other piecewise-linear
operations (max-pooling, LeakyReLU, ReLU6) are left as they are.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import torch
from torch import nn

from ..errors import SaliencyError
from .copy import structural_copy, unwrap
from .hooks import softplus_relus

_CLASSES: dict[type, type] = {}
_LOCK = threading.Lock()


def _smooth_class(cls: type[nn.Module]) -> type:
    # a copy of a copy re-smooths the original class
    base: type[nn.Module] = getattr(cls, "_sw_smooth_base", cls)
    with _LOCK:
        if base not in _CLASSES:
            def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
                with softplus_relus(cast(float, self._sw_beta)):
                    return base.forward(self, *args, **kwargs)

            _CLASSES[base] = type(base.__name__, (base,), {
                "forward": forward, "_sw_smooth_base": base, "__module__": base.__module__,
                "__qualname__": base.__qualname__, "__doc__": base.__doc__})
        return _CLASSES[base]


def softplus_copy(model: nn.Module, beta: float) -> nn.Module:
    """Return a structural copy of ``model`` whose ReLUs compute softplus with parameter ``beta``.

    The user's model is not modified; the copy shares its weights (rebuild it after moving the
    model to another device or dtype).
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 \
            or beta == float("inf"):
        raise SaliencyError(f"beta must be a positive, finite number (softplus sharpness; the "
                            f"papers use 1–30), got {beta!r}")
    model = unwrap(model)
    if isinstance(model, torch.jit.ScriptModule):
        raise SaliencyError("a softplus copy needs an eager model: TorchScript runs its ReLUs "
                            "where they cannot be intercepted; pass the nn.Module the script "
                            "was made from")
    new = structural_copy(model)
    new.__class__ = _smooth_class(type(model))
    new.__dict__["_sw_beta"] = float(beta)
    return new


def smoothing_beta(model: nn.Module) -> float | None:
    """β of a softplus copy, or None for any other model."""
    return unwrap(model).__dict__.get("_sw_beta")
