"""DeepLIFT's rescale rule as a backward pass (Shrikumar et al. 2017, arXiv:1704.02685).

The input and its reference run as one batch ``[x; x′]``. Every call of an elementwise
nonlinearity ``y = f(z)`` backpropagates the secant slope ``(f(z) − f(z′)) / (z − z′)`` instead of
``f′(z)`` (the gradient where ``|z − z′| < eps``); max pooling sends ``max(y, y′) − y′`` to the
input's maxima and ``y − max(y, y′)`` to the reference's, summed over overlapping windows. Every
other operation (convolutions, linear layers, eval-mode batch norm, sums, average pools) is linear,
so its gradient is already the exact multiplier and ``Σ (x − x′) ⊙ m = f(x) − f(x′)``.

Calls are intercepted (a thread-local ``TorchFunctionMode``), not modules, so in-place ReLUs and a
ReLU module reused in every block (torchvision's ResNets, where Captum's module hooks go wrong)
get the rule at every use.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import SaliencyError
from .calls import ELEMENTWISE, MAX_POOLS, out_of_place
from .rewrite import PASS, RewriteMode

EPS = 1e-10  # Captum's default: below this input difference the local gradient is used

Tensor = torch.Tensor


def _halves(t: Tensor, n: int, what: str) -> tuple[Tensor, Tensor]:
    if t.dim() == 0 or t.shape[0] != 2 * n:
        raise SaliencyError(
            f"deeplift: {what} received a tensor of shape {tuple(t.shape)} whose first dimension "
            f"is not the batch of input and reference rows ({2 * n}); DeepLIFT needs every "
            f"nonlinearity to act on each example separately")
    return t[:n], t[n:]


def _pad(m: Tensor, z: Tensor) -> Tensor:
    """The input rows' multipliers, zeros for the reference rows (nothing is asked of them)."""
    out = torch.zeros_like(z)
    out[: m.shape[0]] = m
    return out


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _same(t: Tensor) -> Tensor:
    return t


class _Rescale(torch.autograd.Function):
    """``y = f(z)``; backward: ``g · (y − y′)/(z − z′)`` on the input rows, 0 on the reference's,
    read at ``seen`` (``z`` itself, or its twin from a plain pass: see ``rewrite.py``)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, seen: Tensor,  # type: ignore[override]
                f: Callable[[Tensor], Tensor], n: int,
                what: str) -> Tensor:
        y = f(z)
        _halves(z, n, what)
        ctx.f, ctx.n = f, n
        ctx.save_for_backward(seen, y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor  # type: ignore[override]
                 ) -> tuple[Tensor, None, None, None, None]:
        z, y = ctx.saved_tensors
        # create_graph (grad mode on): the multipliers stay in the graph of the twin z, so y is
        # recomputed from it (the saved output's graph runs through this very rule)
        keep = torch.is_grad_enabled()
        if keep:
            y = ctx.f(z)
        n, acc = ctx.n, _work_dtype(z)
        z1, g1 = z[:n].to(acc), g[:n].to(acc)
        dz = z1 - z[n:].to(acc)
        small = dz.abs() < EPS
        # (a safe denominator where the gradient replaces the slope: no 0/0 in a derivative)
        m = g1 * (y[:n].to(acc) - y[n:].to(acc)) / torch.where(small, 1, dz)
        if bool(small.any()):  # equal inputs (e.g. pixels equal to the baseline): the gradient
            zi = z1 if keep else z1.detach().requires_grad_(True)
            with torch.enable_grad():
                (local,) = torch.autograd.grad(ctx.f(zi), zi, g1, create_graph=keep)
            m = torch.where(small, local, m)
        return _pad(m.to(z.dtype), z), None, None, None, None


class _MaxPool(torch.autograd.Function):
    """Max pooling with DeepLIFT's max rule; exact summation also for overlapping windows."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, seen: Tensor,  # type: ignore[override]
                pool: Callable[[Tensor], Tensor], n: int,
                what: str) -> Tensor:
        _halves(z, n, what)
        ctx.pool, ctx.n = pool, n
        ctx.save_for_backward(seen)
        return pool(z)

    @staticmethod
    def backward(ctx: Any, g: Tensor  # type: ignore[override]
                 ) -> tuple[Tensor, None, None, None, None]:
        (z,) = ctx.saved_tensors
        keep = torch.is_grad_enabled()  # create_graph: stay in the graph of the twin z and g
        d = _same if keep else Tensor.detach
        n, acc = ctx.n, _work_dtype(z)
        z1 = d(z[:n]).to(acc).requires_grad_(True)
        z2 = d(z[n:]).to(acc).requires_grad_(True)
        g1 = g[:n].to(acc)
        with torch.enable_grad():
            y1, y2 = ctx.pool(z1), ctx.pool(z2)
            top = d(torch.maximum(y1, y2))
            # The backward of a max pool scatters *and adds* into the maxima, so windows that
            # share a maximum (3×3 stride-2 pools) keep every window's share.
            at_x, at_ref = torch.autograd.grad(
                [y1, y2], [z1, z2], [g1 * (top - d(y2)), g1 * (d(y1) - top)],
                retain_graph=True, create_graph=keep)
            dz = d(z1) - d(z2)
            small = dz.abs() < EPS
            m = (at_x + at_ref) / torch.where(small, 1, dz)
            if bool(small.any()):
                (local,) = torch.autograd.grad(y1, z1, g1, create_graph=keep)
                m = torch.where(small, local, m)
        return _pad(m.to(z.dtype), z), None, None, None, None


class DeepLiftMode(RewriteMode):
    """While active, nonlinearities of a ``[x; x′]`` batch (``n`` input rows) use DeepLIFT's rules.

    ``calls`` counts the rewritten calls (zero: the model had no nonlinearity we know, or is
    TorchScript, whose calls cannot be intercepted). In a plain pass (``rewrite.py``) every call
    runs as it is.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.calls = 0

    def fresh(self) -> DeepLiftMode:
        return DeepLiftMode(self.n)

    def handle(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if func in ELEMENTWISE and args and isinstance(args[0], Tensor):
            self.calls += 1
            seen = self.saved(args[0])
            if self.plain:
                return func(*args, **kwargs)
            name = getattr(func, "__name__", "a nonlinearity")
            return _Rescale.apply(args[0], seen, out_of_place(func, args, kwargs), self.n, name)
        # (return_indices=True dispatches to max_pool*_with_indices, which is not in the set)
        if func in MAX_POOLS and not kwargs.get("return_indices", False):
            self.calls += 1
            seen = self.saved(args[0])
            if self.plain:
                return func(*args, **kwargs)
            rest = args[1:]
            name = getattr(func, "__name__", "max pool")
            return _MaxPool.apply(args[0], seen, lambda t: func(t, *rest, **kwargs), self.n,
                                  name)
        return PASS
