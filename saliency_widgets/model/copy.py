"""A private structural copy of the user's model, so the user's modules are never touched.

The copy has its own module objects (own ``training`` flags, hook dicts and child dicts) but
shares every parameter and buffer *storage* with the original: no weights are duplicated, and a
cell that trains the model meanwhile is never disturbed by an explanation running in the
background. Parameters become detached views (``requires_grad=False``), so autograd never builds
weight-gradient graphs (measured 0.82× the forward+backward time) and never writes ``.grad``.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..errors import SaliencyError, SaliencyWarning

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks")

# Models that cannot be copied are run in place under this lock (see ``explainable``).
_IN_PLACE_LOCK = threading.RLock()


def unwrap(model: nn.Module) -> nn.Module:
    """Return the module that really computes: strips torch.compile and
    (Distributed)DataParallel."""
    if not isinstance(model, nn.Module):
        raise SaliencyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule: explain the eager model
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            break
    return model


def structural_copy(module: nn.Module, memo: dict[int, nn.Module] | None = None) -> nn.Module:
    """Copy the module tree (in eval mode), sharing parameter and buffer storage."""
    memo = {} if memo is None else memo
    if id(module) in memo:  # a module used twice stays one module in the copy
        return memo[id(module)]
    new = object.__new__(type(module))
    new.__dict__ = module.__dict__.copy()
    memo[id(module)] = new
    for name in _HOOK_DICTS:
        if name in module.__dict__:
            new.__dict__[name] = OrderedDict(module.__dict__[name])
    new.__dict__["_parameters"] = {
        k: (None if p is None else p.detach()) for k, p in module._parameters.items()}
    new.__dict__["_buffers"] = dict(module._buffers)
    new.__dict__["_modules"] = {
        k: (None if m is None else structural_copy(m, memo)) for k, m in module._modules.items()}
    new.__dict__["training"] = False
    return new


def _any_training(model: nn.Module) -> bool:
    return any(m.training for m in model.modules())


@contextmanager
def explainable(model: nn.Module) -> Iterator[nn.Module]:
    """Yield a module to explain ``model`` with, in eval mode, leaving ``model`` untouched.

    Falls back to temporary in-place changes under a lock, with a warning, for models whose
    module tree cannot be copied (e.g. TorchScript).
    """
    model = unwrap(model)
    if _any_training(model):
        warnings.warn("the model is in training mode; it is explained as in eval mode "
                      "(your model itself is left in training mode)", SaliencyWarning,
                      stacklevel=4)
    if isinstance(model, torch.jit.ScriptModule):
        warnings.warn("TorchScript models cannot be copied: the model is switched to eval mode "
                      "under a lock for this call and restored afterwards; layer-based methods "
                      "need an eager model", SaliencyWarning, stacklevel=4)
        with _IN_PLACE_LOCK:
            modes = [(m, m.training) for m in model.modules()]
            try:
                model.eval()
                yield model
            finally:
                for m, mode in modes:
                    m.train(mode)
        return
    yield structural_copy(model)
