"""A private structural copy of the user's model, so the user's modules are never touched.

The copy has its own module objects (own ``training`` flags, hook dicts and child dicts) but
shares every parameter and buffer *storage* with the original: no weights are duplicated, and a
cell that trains the model meanwhile is never disturbed by an explanation running in the
background. Parameters become detached views (``requires_grad=False``), so autograd never builds
weight-gradient graphs (measured 0.82× the forward+backward time) and never writes ``.grad``.

Building the copy walks every module in Python (a few µs each: about 1 ms for a ResNet-50 on a
slow core), which on a GPU is a large share of a 4 ms batch-1 call. So a finished call hands its
copy back to a small pool, and the next call on the same model *refreshes* it instead of
building a new one: every module's attributes, hooks, parameters (detached again) and buffers are
re-read from the original, exactly as a new copy would read them, and the copy is rebuilt when
any module's children changed. A copy serves one call at a time (concurrent calls each get their
own), and the pool holds a model only weakly.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator

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
    new = memo.get(id(module))
    if new is not None:  # a module used twice stays one module in the copy
        return new
    new = object.__new__(type(module))
    d = _own_dict(module.__dict__)
    # object.__setattr__: nn.Module.__setattr__ would inspect the value for parameters first
    object.__setattr__(new, "__dict__", d)
    memo[id(module)] = new
    d["_modules"] = {k: (None if m is None else structural_copy(m, memo))
                     for k, m in module._modules.items()}
    return new


def _own_dict(theirs: dict[str, Any]) -> dict[str, Any]:
    """A copy module's ``__dict__``: the original's entries, with its own hook dicts, detached
    parameters, buffer dict and eval mode (children are set by the caller)."""
    d = theirs.copy()
    for name in _HOOK_DICTS:
        hooks = d.get(name)
        if hooks is not None:
            d[name] = OrderedDict(hooks)
    d["_parameters"] = {k: (None if p is None else p.detach())
                        for k, p in theirs["_parameters"].items()}
    d["_buffers"] = dict(theirs["_buffers"])
    d["training"] = False
    return d


class _Copy:
    """A structural copy and what refreshing it from the original needs."""

    def __init__(self, model: nn.Module) -> None:
        memo: dict[int, nn.Module] = {}
        self.root = structural_copy(model, memo)
        originals = {id(m): m for m in _all_modules(model)}
        # (the original, weakly: the pool must not keep the user's model alive; the copy's
        # __dict__, its own hook dicts and child dict; the original's children's ids)
        self.pairs = []
        for key, copy in memo.items():
            mine = copy.__dict__
            own = tuple((name, mine[name]) for name in _HOOK_DICTS if name in mine)
            original = originals[key]
            self.pairs.append((weakref.ref(original), mine, own, mine["_modules"],
                               tuple(map(id, original._modules.values()))))
        self.training = any(m.__dict__.get("training", False) for m in originals.values())

    def refresh(self) -> bool:
        """Re-read every module from its original, as a new copy would; False (leaving the copy
        unusable) when a module's children changed, so the caller builds a new copy."""
        originals = [ref() for ref, *_ in self.pairs]
        for original, (_, _, _, _, children) in zip(originals, self.pairs):
            if original is None or tuple(map(id, original._modules.values())) != children:
                return False
        training = False
        for original, (_, mine, own, kids, _) in zip(originals, self.pairs):
            theirs = original.__dict__  # type: ignore[union-attr]
            training = training or theirs.get("training", False)
            mine.update(theirs)
            if len(mine) != len(theirs):  # an attribute was deleted from the original
                mine.clear()
                mine.update(theirs)
            for name, hooks in own:
                given = theirs.get(name)
                if given or hooks:
                    hooks.clear()
                    if given:
                        hooks.update(given)
                mine[name] = hooks
            mine["_parameters"] = {k: (None if p is None else p.detach())
                                   for k, p in theirs["_parameters"].items()}
            mine["_buffers"] = dict(theirs["_buffers"])
            mine["_modules"] = kids
            mine["training"] = False
        self.training = training
        return True


def _all_modules(model: nn.Module) -> list[nn.Module]:
    """Every module of the tree once, the root included (in no particular order)."""
    seen: dict[int, nn.Module] = {}
    stack = [model]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen[id(m)] = m
        stack.extend(c for c in m._modules.values() if c is not None)
    return list(seen.values())


# id(model) → (weak reference to the model, a copy not in use). At most _POOL_SIZE models.
_POOL: OrderedDict[int, tuple[weakref.ref, _Copy]] = OrderedDict()
_POOL_LOCK = threading.Lock()
_POOL_SIZE = 4
# Copies of models that died while the pool was locked (a weakref callback may run inside the
# lock's own thread, during any allocation): dropped by the next pool operation.
_DEAD: list[tuple[int, weakref.ref]] = []


def _purge() -> None:
    """Drop the copies of dead models (call with the lock held)."""
    while _DEAD:
        key, ref = _DEAD.pop()
        if key in _POOL and _POOL[key][0] is ref:
            del _POOL[key]


def _forget(key: int, ref: weakref.ref) -> None:
    """The model died: free its copy (and with it the views of its weights) now if the pool is
    free, else at the next pool operation. Never waits: it may run inside a pool operation."""
    _DEAD.append((key, ref))
    if _POOL_LOCK.acquire(blocking=False):
        try:
            _purge()
        finally:
            _POOL_LOCK.release()


def _take(model: nn.Module) -> _Copy:
    """A refreshed copy of ``model`` from the pool, or a new one."""
    with _POOL_LOCK:
        _purge()
        item = _POOL.pop(id(model), None)
    if item is not None and item[0]() is model and item[1].refresh():
        return item[1]
    return _Copy(model)


def _give_back(model: nn.Module, entry: _Copy) -> None:
    key = id(model)

    def died(ref: weakref.ref, key: int = key) -> None:
        _forget(key, ref)

    ref = weakref.ref(model, died)
    with _POOL_LOCK:
        if key not in _POOL:  # else a concurrent call already returned one
            _POOL[key] = (ref, entry)
            while len(_POOL) > _POOL_SIZE:
                _POOL.popitem(last=False)
        _purge()


def _any_training(model: nn.Module) -> bool:
    return any(m.training for m in model.modules())


def _warn_training() -> None:
    warnings.warn("the model is in training mode; it is explained as in eval mode "
                  "(your model itself is left in training mode)", SaliencyWarning,
                  stacklevel=5)


@contextmanager
def explainable(model: nn.Module) -> Iterator[nn.Module]:
    """Yield a module to explain ``model`` with, in eval mode, leaving ``model`` untouched.

    Falls back to temporary in-place changes under a lock, with a warning, for models whose
    module tree cannot be copied (e.g. TorchScript).
    """
    model = unwrap(model)
    if isinstance(model, torch.jit.ScriptModule):
        if _any_training(model):
            _warn_training()
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
    entry = _take(model)
    if entry.training:
        _warn_training()
    yield entry.root
    # Only after a clean exit: every hook we place is removed in a finally block, but a copy
    # that saw an exception is not worth the doubt.
    _give_back(model, entry)
