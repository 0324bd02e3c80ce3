"""Modes that rewrite the backward pass, and how a map made with one is differentiated exactly.

Guided and deconvnet ReLUs, LRP rules and DeepLIFT multipliers replace the backward pass of some
calls with custom autograd nodes, whose backward reads tensors saved in the forward pass. A
differentiable map (``Explainee.differentiable``, for the attacks) is that backward pass taken
with ``create_graph=True``; its derivative reaches the input through those saved tensors. Were
they the rewritten pass's own, autograd would differentiate them through the rewritten nodes, by
the rules instead of the network: a wrong derivative.

So a differentiable call runs the forward pass twice (:func:`rewritten_pass`): first *plain*, in
the input's graph, with the same mode in its plain state (every call runs as it is, but a copy of
each tensor a custom node would save is kept); then *rewritten*, from a detached copy of the
input, where each custom node saves the plain pass's twin instead (same value, true
derivatives). Both passes make the same calls in the same order, so twins match by order.

The derivative is exact when every operation the mode leaves alone has a backward that does not
read the activations: convolutions, linear layers, eval batch norms, sums, average and max
pooling, views; so on the ReLU networks these methods are made for (``tests/
test_differentiable.py`` checks it against finite differences, ResNets included). A nonlinearity
the mode does not rewrite (a tanh or GELU under guided ReLUs, a LayerNorm or softmax under any
mode) still reads the rewritten pass's own tensors, which do not depend on the input: the terms
through it are missing from the derivative. (``saved_tensors_hooks`` cannot swap them: autograd
re-attaches the saved tensor's original graph when it unpacks it.)
"""

from __future__ import annotations

import abc
from typing import Any, Callable, TypeVar

import torch
from torch.overrides import TorchFunctionMode

from ..errors import SaliencyError

Tensor = torch.Tensor
M = TypeVar("M", bound="RewriteMode")
PASS = object()  # ``handle``'s answer for a call the mode leaves alone


class RewriteMode(TorchFunctionMode, abc.ABC):
    """Base of the backward-rewriting modes.

    Subclasses implement ``handle(func, args, kwargs)`` (return :data:`PASS` for calls they leave
    alone) and ``fresh()``; where a custom node saves a tensor they ask :meth:`saved`. ``plain``
    is True in the plain pass: rewritten calls then run as they are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plain = False
        self.tape: list[Tensor] | None = None
        self._next = 0

    @abc.abstractmethod
    def fresh(self: M) -> M:
        """A new mode with the same settings and no state (for the plain pass)."""

    @abc.abstractmethod
    def handle(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """The rewritten call's result, or :data:`PASS` to run ``func`` as it is."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = self.handle(func, args, kwargs)
        return func(*args, **kwargs) if out is PASS else out

    def saved(self, t: Tensor) -> Tensor:
        """What a custom node saves for ``t``: ``t`` (a single pass), ``t`` while a copy is kept
        (plain pass), or the plain pass's twin of ``t`` (rewritten pass)."""
        if self.tape is None:
            return t
        if self.plain:
            self.tape.append(t.clone())  # a copy: in-place operations later cannot change it
            return t
        if self._next >= len(self.tape) or self.tape[self._next].shape != t.shape:
            raise _mismatch()
        twin = self.tape[self._next]
        self._next += 1
        return twin


def _mismatch() -> SaliencyError:
    return SaliencyError("the model's forward pass made different calls when run twice on the "
                         "same input, so this method's map cannot be differentiated; the model "
                         "must be deterministic in eval mode (no random or data-dependent "
                         "control flow)")


def rewritten_pass(mode: RewriteMode, keep: bool, forward: Callable[[Tensor], Tensor],
                   x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(plain output, rewritten output, the rewritten pass's input leaf)``.

    Without ``keep`` one pass, ``forward`` under ``mode`` from a fresh leaf, serves as both.
    With ``keep`` (``x`` is in the graph of a map being differentiated) the plain pass runs on
    ``x`` under a fresh copy of the mode, then ``mode`` runs on a detached copy of ``x`` with the
    plain pass's twins (see the module). The caller differentiates the rewritten output with
    respect to the leaf (``create_graph=keep``) and reads scores from the plain output.
    """
    leaf = x.detach().requires_grad_(True)
    if not keep:
        with mode:
            out = forward(leaf)
        return out, out, leaf
    plain = mode.fresh()
    plain.plain, plain.tape = True, []
    with plain:
        true_out = forward(x)
    mode.tape, mode._next = plain.tape, 0
    try:
        with mode:
            out = forward(leaf)
        if mode._next != len(plain.tape):
            raise _mismatch()
    finally:
        mode.tape = None  # the nodes hold their twins; the tape is not needed any more
    return true_out, out, leaf
