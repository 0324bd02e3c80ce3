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
from torch.overrides import TorchFunctionMode

from ..errors import SaliencyError
from .calls import ELEMENTWISE, MAX_POOLS, out_of_place

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


class _Rescale(torch.autograd.Function):
    """``y = f(z)``; backward: ``g · (y − y′)/(z − z′)`` on the input rows, 0 on the reference's."""

    @staticmethod
    def forward(ctx: Any, z: Tensor,  # type: ignore[override]
                f: Callable[[Tensor], Tensor], n: int,
                what: str) -> Tensor:
        y = f(z)
        _halves(z, n, what)
        ctx.f, ctx.n = f, n
        ctx.save_for_backward(z, y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        z, y = ctx.saved_tensors
        n, acc = ctx.n, _work_dtype(z)
        z1, g1 = z[:n].to(acc), g[:n].to(acc)
        dz = z1 - z[n:].to(acc)
        m = g1 * (y[:n].to(acc) - y[n:].to(acc)) / dz
        small = dz.abs() < EPS
        if bool(small.any()):  # equal inputs (e.g. pixels equal to the baseline): the gradient
            z1 = z1.detach().requires_grad_(True)
            with torch.enable_grad():
                (local,) = torch.autograd.grad(ctx.f(z1), z1, g1)
            m = torch.where(small, local, m)
        return _pad(m.to(z.dtype), z), None, None, None


class _MaxPool(torch.autograd.Function):
    """Max pooling with DeepLIFT's max rule; exact summation also for overlapping windows."""

    @staticmethod
    def forward(ctx: Any, z: Tensor,  # type: ignore[override]
                pool: Callable[[Tensor], Tensor], n: int,
                what: str) -> Tensor:
        _halves(z, n, what)
        ctx.pool, ctx.n = pool, n
        ctx.save_for_backward(z)
        return pool(z)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (z,) = ctx.saved_tensors
        n, acc = ctx.n, _work_dtype(z)
        z1 = z[:n].detach().to(acc).requires_grad_(True)
        z2 = z[n:].detach().to(acc).requires_grad_(True)
        g1 = g[:n].to(acc)
        with torch.enable_grad():
            y1, y2 = ctx.pool(z1), ctx.pool(z2)
            top = torch.maximum(y1, y2).detach()
            # The backward of a max pool scatters *and adds* into the maxima, so windows that
            # share a maximum (3×3 stride-2 pools) keep every window's share.
            at_x, at_ref = torch.autograd.grad(
                [y1, y2], [z1, z2], [g1 * (top - y2.detach()), g1 * (y1.detach() - top)],
                retain_graph=True)
            dz = z1.detach() - z2.detach()
            m = (at_x + at_ref) / dz
            small = dz.abs() < EPS
            if bool(small.any()):
                (local,) = torch.autograd.grad(y1, z1, g1)
                m = torch.where(small, local, m)
        return _pad(m.to(z.dtype), z), None, None, None


class DeepLiftMode(TorchFunctionMode):
    """While active, nonlinearities of a ``[x; x′]`` batch (``n`` input rows) use DeepLIFT's rules.

    ``calls`` counts the rewritten calls (zero: the model had no nonlinearity we know, or is
    TorchScript, whose calls cannot be intercepted).
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.calls = 0

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in ELEMENTWISE and args and isinstance(args[0], Tensor):
            self.calls += 1
            name = getattr(func, "__name__", "a nonlinearity")
            return _Rescale.apply(args[0], out_of_place(func, args, kwargs), self.n, name)
        # (return_indices=True dispatches to max_pool*_with_indices, which is not in the set)
        if func in MAX_POOLS and not kwargs.get("return_indices", False):
            self.calls += 1
            rest = args[1:]
            name = getattr(func, "__name__", "max pool")
            return _MaxPool.apply(args[0], lambda t: func(t, *rest, **kwargs), self.n, name)
        return func(*args, **kwargs)
