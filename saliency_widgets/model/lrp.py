"""Layer-wise relevance propagation as a backward pass (Bach et al. 2015, PLoS ONE 10(7):e0130140;
rules as in Montavon et al. 2019, "Layer-wise relevance propagation: an overview").

While :class:`LRPMode` is active, every conv/linear call backpropagates its rule's relevance
instead of the gradient; average pools and sums of two activations (residual connections) split
relevance in proportion to their inputs (zennit's ``Norm``); activations and batch norms that
could not be merged pass it unchanged (zennit's ``Pass``); everything else (max pooling, views)
passes the gradient. Two canonizers run on the fly, on our calls only (never on the user's
model): a batch norm applied to a conv/linear output is merged into that layer's rule, and a
residual sum gets the proportional split (torchvision's ResNets add with ``out += identity``).

Rules, with ``s(z) = z + e·sign(z)`` (sign(0) = 1), ``x⁺ = max(x, 0)``, ``x⁻ = min(x, 0)`` and the
relevance ``r`` at the layer's output:

* ``epsilon``: ``x ⊙ Wᵀ(r / s(Wx + b))``, e = ``epsilon``;
* ``zplus`` (= α1β0): ``x⁺ ⊙ W⁺ᵀc + x⁻ ⊙ W⁻ᵀc``, ``c = r / s(W⁺x⁺ + b⁺ + W⁻x⁻)``;
* ``gamma``: outputs ``z = Wx + b > 0`` get ``x⁺ ⊙ (W + γW⁺)ᵀc + x⁻ ⊙ (W + γW⁻)ᵀc`` with
  ``c = r / s((W + γW⁺)x⁺ + b + γb⁺ + (W + γW⁻)x⁻)``, outputs ``z < 0`` the same with ``W⁺``
  and ``W⁻`` swapped (the generalized γ rule of zennit, Andéol et al. 2021);
* ``flat``: ``1ᵀ(r / s(1·1))`` (the first layer only: relevance spread over the receptive field);
* ``box`` (z^B): ``x ⊙ Wᵀc − l ⊙ W⁺ᵀc − h ⊙ W⁻ᵀc``, ``c = r / s(Wx + b − W⁺l − b⁺ − W⁻h − b⁻)``
  for inputs bounded by ``l ≤ x ≤ h``.
All but ``epsilon`` use ``e = stabilizer`` (1e-6, as zennit). Each rule is linear in ``r``, so
relevance that starts at zero stays exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, cast

import torch
import torch.nn.functional as F

from ..errors import SaliencyError
from .calls import (ADDS, ADDS_IN_PLACE, AVG_POOLS, CONVOLUTIONS, ELEMENTWISE, LINEAR,
                    TRANSPOSED, out_of_place)
from .rewrite import PASS, RewriteMode

Tensor = torch.Tensor
STABILIZER = 1e-6


def _total(parts: list[torch.Tensor]) -> torch.Tensor:
    """``sum(parts)``, typed (the built-in starts from the int 0, kept for identical rounding)."""
    return cast(torch.Tensor, sum(parts))


def stabilize(z: Tensor, e: float) -> Tensor:
    """``z + e·sign(z)`` with sign(0) = 1: keeps the denominator's sign, never zero."""
    return z + e * ((z == 0).to(z) + z.sign())


def _acc(t: Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


@dataclass(frozen=True)
class Rules:
    """Which rule each layer gets. ``low``/``high`` bound the first layer's input (box rule)."""

    conv: str
    linear: str
    first: str  # "same", "flat" or "box"
    epsilon: float = 1e-6
    gamma: float = 0.25
    stabilizer: float = STABILIZER
    low: Tensor | None = None
    high: Tensor | None = None


@dataclass
class _Layer:
    call: Callable[[Tensor, Tensor, Tensor | None], Tensor]  # the call, hyper-parameters fixed
    weight: Tensor
    bias: Tensor | None
    rule: str


def _pos(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(min=0)


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(max=0)


def _relevance(layer: _Layer, rules: Rules, x: Tensor, r: Tensor) -> Tensor:
    """Relevance at the layer's input for relevance ``r`` at its output (float32 for halves).

    Run in a backward pass with ``create_graph`` (grad mode on: a differentiable map), the
    result stays in the graph of ``x`` and ``r``; otherwise ``x`` is cut off (cheaper).
    """
    keep = torch.is_grad_enabled()
    acc = _acc(x)
    x, r = (x if keep else x.detach()).to(acc), r.to(acc)
    d = _same if keep else Tensor.detach  # what a value that the result uses goes through
    w = layer.weight.to(acc)
    b = None if layer.bias is None else layer.bias.to(acc)
    call, rule = layer.call, layer.rule

    def grads(outputs: list[Tensor], inputs: list[Tensor], cs: list[Tensor]) -> tuple:
        return torch.autograd.grad(outputs, inputs, cs, create_graph=keep)

    with torch.enable_grad():
        if rule == "epsilon":
            xi = x.requires_grad_(True)
            z = call(xi, w, b)
            (g,) = grads([z], [xi], [r / stabilize(d(z), rules.epsilon)])
            return d(xi) * g
        # After a ReLU the input has no negative part: its terms are exact zeros, so they are
        # skipped (the same numbers, two fewer convolutions per layer).
        signed = bool((x < 0).any())
        if rule == "zplus":
            xp = x.clamp(min=0).requires_grad_(True)
            zs = [call(xp, w.clamp(min=0), _pos(b))]
            if signed:
                xn = x.clamp(max=0).requires_grad_(True)
                zs.append(call(xn, w.clamp(max=0), None))
            c = r / stabilize(d(_total(zs)), rules.stabilizer)
            gs = grads(zs, [xp, xn] if signed else [xp], [c] * len(zs))
            return d(xp) * gs[0] + (d(xn) * gs[1] if signed else 0)
        if rule == "gamma":
            gm = rules.gamma
            wp, wn = w + gm * w.clamp(min=0), w + gm * w.clamp(max=0)
            bp = None if b is None else b + gm * b.clamp(min=0)
            bn = None if b is None else b + gm * b.clamp(max=0)
            xp = x.clamp(min=0).requires_grad_(True)
            up_parts, down_parts = [call(xp, wp, bp)], [call(xp, wn, bn)]
            if signed:  # negative inputs add to the positive outputs through W⁻, and vice versa
                xn = x.clamp(max=0).requires_grad_(True)
                up_parts.append(call(xn, wn, None))
                down_parts.append(call(xn, wp, None))
            z = call(x, w, b).detach()
            up = (z > 0) * r / stabilize(d(_total(up_parts)), rules.stabilizer)
            down = (z < 0) * r / stabilize(d(_total(down_parts)), rules.stabilizer)
            gs = grads(up_parts + down_parts, [xp, xn] if signed else [xp],
                       [up] * len(up_parts) + [down] * len(down_parts))
            return d(xp) * gs[0] + (d(xn) * gs[1] if signed else 0)
        if rule == "flat":
            ones = torch.ones_like(x).requires_grad_(True)
            z = call(ones, torch.ones_like(w), None)
            (g,) = grads([z], [ones], [r / stabilize(z.detach(), rules.stabilizer)])
            return g
        if rule == "box":
            if rules.low is None or rules.high is None:
                raise SaliencyError("lrp: the box rule needs bounds=(low, high)")
            low = rules.low.to(acc).expand_as(x).clone().requires_grad_(True)
            high = rules.high.to(acc).expand_as(x).clone().requires_grad_(True)
            xi = x.requires_grad_(True)
            z0, zl, zh = call(xi, w, b), call(low, w.clamp(min=0), _pos(b)), \
                call(high, w.clamp(max=0), _neg(b))
            c = r / stabilize(d(z0 - (zl + zh)), rules.stabilizer)
            g0, gl, gh = grads([z0, zl, zh], [xi, low, high], [c, c, c])
            return d(xi) * g0 - (low.detach() * gl + high.detach() * gh)
    raise ValueError(f"unknown LRP rule {rule!r}")


def _same(t: Tensor) -> Tensor:
    return t


class _Rule(torch.autograd.Function):
    """``forward``: the layer's true output; ``backward``: the layer's LRP rule, read at ``seen``
    (``x`` itself, or its twin from a plain pass: see ``rewrite.py``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, seen: Tensor, layer: _Layer,  # type: ignore[override]
                rules: Rules, value: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.layer, ctx.rules = layer, rules
        ctx.save_for_backward(seen)
        return value(x)

    @staticmethod
    def backward(ctx: Any, r: Tensor  # type: ignore[override]
                 ) -> tuple[Tensor, None, None, None, None]:
        (x,) = ctx.saved_tensors
        return _relevance(ctx.layer, ctx.rules, x, r).to(x.dtype), None, None, None, None


class _Norm(torch.autograd.Function):
    """An average pool whose relevance goes to its inputs in proportion to their values."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, seen: Tensor,  # type: ignore[override]
                pool: Callable[[Tensor], Tensor], e: float) -> Tensor:
        ctx.pool, ctx.e = pool, e
        ctx.save_for_backward(seen)
        return pool(x)

    @staticmethod
    def backward(ctx: Any, r: Tensor  # type: ignore[override]
                 ) -> tuple[Tensor, None, None, None]:
        (x,) = ctx.saved_tensors
        keep = torch.is_grad_enabled()  # create_graph: stay in the graph of x and r
        acc = _acc(x)
        xi = (x if keep else x.detach()).to(acc).requires_grad_(True)
        d = _same if keep else Tensor.detach
        with torch.enable_grad():
            z = ctx.pool(xi)
            (g,) = torch.autograd.grad(z, xi, r.to(acc) / stabilize(d(z), ctx.e),
                                       create_graph=keep)
        return (d(xi) * g).to(x.dtype), None, None, None


class _SumSplit(torch.autograd.Function):
    """``a + b`` of two activations; relevance split as ``a·r/s(a+b)`` and ``b·r/s(a+b)``, read
    at ``seen_a``, ``seen_b`` (the summands before the sum)."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, seen_a: Tensor,  # type: ignore[override]
                seen_b: Tensor, in_place: bool, e: float) -> Tensor:
        ctx.e = e
        ctx.save_for_backward(seen_a, seen_b)
        if in_place:  # `out += identity` must update `out` itself, as the model expects
            ctx.mark_dirty(a)
            return a.add_(b)
        return a + b

    @staticmethod
    def backward(ctx: Any, r: Tensor  # type: ignore[override]
                 ) -> tuple[Tensor, Tensor, None, None, None, None]:
        a, b = ctx.saved_tensors
        acc = _acc(a)
        c = r.to(acc) / stabilize(a.to(acc) + b.to(acc), ctx.e)
        return (a.to(acc) * c).to(a.dtype), (b.to(acc) * c).to(b.dtype), None, None, None, None


class _Pass(torch.autograd.Function):
    """An elementwise function whose relevance passes through unchanged."""

    @staticmethod
    def forward(ctx: Any, x: Tensor,  # type: ignore[override]
                f: Callable[[Tensor], Tensor]) -> Tensor:
        return f(x)

    @staticmethod
    def backward(ctx: Any, r: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return r, None


def _split_call(func: Callable[..., Any], args: tuple, kwargs: dict
                ) -> tuple[Tensor, Tensor, Tensor | None, Callable[..., Tensor]]:
    """``(input, weight, bias, call(x, w, b))`` of a conv/linear call, any argument style."""
    names = ("input", "weight", "bias")
    given = list(args[:3]) + [kwargs.get(k) for k in names[len(args[:3]):]]
    rest, extra = args[3:], {k: v for k, v in kwargs.items() if k not in names}
    return given[0], given[1], given[2], lambda x, w, b: func(x, w, b, *rest, **extra)


class LRPMode(RewriteMode):
    """While active, the calls of a forward pass backpropagate LRP relevance (see module doc).

    ``first_input`` (optional): the box rule's bounds were given for the model's input, so the
    first layer must receive it unchanged (checked). Counters: ``layers`` (rule layers seen),
    ``merged`` / ``unmerged`` (batch norms merged into a layer / passed through), ``outside``
    (the first layer's input left the box). In a plain pass (``rewrite.py``) every call runs as
    it is; the same decisions are taken, so the same tensors are saved.
    """

    def __init__(self, rules: Rules, first_input: Tensor | None = None) -> None:
        super().__init__()
        self.rules = rules
        self.first_input = first_input
        self.layers = self.merged = self.unmerged = 0
        self.outside = False
        # The latest rule layer's (output, its version, layer, input, what its rule reads,
        # transposed?): a batch norm applied to exactly that tensor, unmodified, is merged into
        # the layer.
        self._last: tuple[Tensor, int, _Layer, Tensor, Tensor, bool] | None = None

    def fresh(self) -> LRPMode:
        return LRPMode(self.rules, self.first_input)

    def handle(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if func in CONVOLUTIONS or func in LINEAR or func in TRANSPOSED:
            return self._layer(func, args, kwargs)
        if func is F.batch_norm:
            return self._batch_norm(func, args, kwargs)
        if func in AVG_POOLS:
            seen = self.saved(args[0])
            if self.plain:
                return func(*args, **kwargs)
            return _Norm.apply(args[0], seen, lambda t: func(t, *args[1:], **kwargs),
                               self.rules.stabilizer)
        if func in ELEMENTWISE and args and isinstance(args[0], Tensor):
            if self.plain:
                return func(*args, **kwargs)
            return _Pass.apply(args[0], out_of_place(func, args, kwargs))
        if (func in ADDS or func in ADDS_IN_PLACE) and _two_activations(args, kwargs):
            in_place = func in ADDS_IN_PLACE
            seen_a, seen_b = self.saved(args[0]), self.saved(args[1])
            if self.plain:
                return func(*args, **kwargs)
            if in_place and seen_a is args[0]:
                seen_a = args[0].detach().clone()  # the value before the update
            return _SumSplit.apply(args[0], args[1], seen_a, seen_b, in_place,
                                   self.rules.stabilizer)
        return PASS

    def _rule_for(self, func: Callable[..., Any]) -> tuple[str, bool]:
        first = self.layers == 0
        self.layers += 1
        if first and self.rules.first != "same":
            return self.rules.first, True
        return (self.rules.linear if func in LINEAR else self.rules.conv), first

    def _layer(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Tensor:
        x, w, b, call = _split_call(func, args, kwargs)
        rule, first = self._rule_for(func)
        if first and rule == "box":
            self._check_box(x)
        layer = _Layer(call=call, weight=w.detach(), bias=None if b is None else b.detach(),
                       rule=rule)
        seen = self.saved(x)
        out = call(x, w, b) if self.plain else \
            _Rule.apply(x, seen, layer, self.rules, lambda t: call(t, w, b))
        self._last = (out, out._version, layer, x, seen, func in TRANSPOSED)
        return out

    def _batch_norm(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Tensor:
        names = ("input", "running_mean", "running_var", "weight", "bias", "training",
                 "momentum", "eps")
        given = dict(zip(names, args), **kwargs)
        t = given["input"]
        made, self._last = self._last, None
        mean, var = given.get("running_mean"), given.get("running_var")
        if (made is None or made[0] is not t or made[1] != t._version or made[5]
                or given.get("training", False) or mean is None or var is None
                or t.dim() < 2 or t.shape[1] != made[2].weight.shape[0]):
            self.unmerged += 1  # not merged: relevance passes through, as zennit's Pass
            if self.plain:
                return func(*args, **kwargs)
            return _Pass.apply(t, lambda u: func(u, *args[1:], **kwargs))
        _, _, layer, x, seen, _ = made
        # The canonical merge (zennit's MergeBatchNorm), on copies: never on the user's weights.
        eps = given.get("eps", 1e-5)
        weight, bias = given.get("weight"), given.get("bias")
        scale = (torch.ones_like(var) if weight is None else weight) / (var + eps) ** .5
        w = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
        b0 = torch.zeros_like(mean) if layer.bias is None else layer.bias
        b = (b0 - mean) * scale + (0 if bias is None else bias)
        merged = _Layer(call=layer.call, weight=w, bias=b, rule=layer.rule)
        self.merged += 1
        if self.plain:
            return func(*args, **kwargs)
        conv_out = t.detach()
        return _Rule.apply(x, seen, merged, self.rules,
                           lambda _: func(conv_out, *args[1:], **kwargs))

    def _check_box(self, x: Tensor) -> None:
        if self.rules.low is None or self.rules.high is None:
            raise SaliencyError("lrp: the box rule needs the input's bounds")
        if self.first_input is not None and not (
                x.shape == self.first_input.shape and torch.equal(x, self.first_input)):
            raise SaliencyError(
                "lrp: the box rule's bounds come from normalization= and describe the model's "
                "input, but the first conv/linear layer receives a transformed input (e.g. the "
                "model normalizes inside forward). Pass bounds=(low, high) in that layer's "
                "input space, or first_layer='flat'")
        tol = 1e-6 * float((self.rules.high - self.rules.low).abs().max())
        low, high = self.rules.low.to(x), self.rules.high.to(x)
        if bool(((x < low - tol) | (x > high + tol)).any()):
            self.outside = True


def _two_activations(args: tuple, kwargs: dict) -> bool:
    """``a + b`` where both are same-shape activations (tensors carrying gradient): a residual
    sum. Adding a constant or a parameter (biases, position embeddings) is left alone."""
    if kwargs or len(args) != 2:
        return False
    a, b = args
    return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.requires_grad
            and b.requires_grad and a.shape == b.shape and a.dtype == b.dtype
            and a.dtype.is_floating_point)
