"""The model as a graph (torch.fx), and which of its operations can be computed on a patch.

Incremental occlusion (``incremental.py``) recomputes, for each occluded window, only the part
of each feature map that the window can reach. That needs the network as a graph of operations
rather than an opaque ``forward``; ``torch.fx`` records one by running ``forward`` on proxies.
Each operation is then classified by how an output patch depends on its inputs:

* :class:`Window` — convolution and max/avg pooling: an output position reads a ``k×k`` window
  of its input (any stride, padding, dilation, groups);
* :class:`Pointwise` — eval-mode batch norm, element-wise activations, arithmetic with constants:
  an output position reads the same position of its one input;
* :class:`Merge` — residual sums, products and channel concatenation of several feature maps of
  the same size: position-wise over all inputs.

Anything else (global pooling, flatten, the head, unknown modules) gets no rule and is run on
full tensors. A rule only applies to an exact, known type (a subclass may override ``forward``).
"""

from __future__ import annotations

import operator
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.operator_schemas import normalize_function

_FORWARD_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
                  "_forward_pre_hooks_with_kwargs")
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks")


_TRACE_LOCK = threading.Lock()


class Untraceable(Exception):
    """The model cannot be computed incrementally; the message says why (recorded for users)."""


# --- tracing ---------------------------------------------------------------------------------
def trace(model: nn.Module) -> fx.Graph:
    """Return the fx graph of ``model`` (our structural copy), or raise :class:`Untraceable`."""
    for name, m in model.named_modules():
        if any(getattr(m, d, None) for d in _FORWARD_HOOKS):
            # fx records no hooks, and a hook may change what the module returns
            raise Untraceable(f"module {name or type(model).__name__!r} has forward hooks")
    mod = torch.nn.modules.module
    if any(getattr(mod, d, None) for d in _GLOBAL_HOOKS):
        raise Untraceable("global module forward hooks are registered")
    try:
        with _TRACE_LOCK:  # two of our traces at once would each bypass the other's patch
            graph = _Tracer().trace(model)
    except Exception as err:
        raise Untraceable(f"torch.fx could not trace the model ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})") from err
    for node in graph.nodes:
        mutated = _mutated_arg(model, node)
        if isinstance(mutated, fx.Node) and len(mutated.users) > 1:
            # computed out of place here, so another reader would see other values than eagerly
            raise Untraceable(f"in-place operation {label(node)!r} changes a tensor that "
                              f"{len(mutated.users) - 1} other operation(s) also read")
    return graph


class _Tracer(fx.Tracer):
    """fx's tracer, safe for other threads and through containers built in ``forward``.

    While it traces, fx replaces ``nn.Module.__call__`` and ``__getattr__`` for the whole
    process, so a cell training or running the model in another thread would be traced too (and
    fail). Calls from other threads are passed straight to the original methods here. Containers
    built during ``forward`` (``self.features[:3]``) are traced through: their children are
    installed modules, so the graph records those and never the slice.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple,
                    kwargs: dict) -> Any:
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def path_of_module(self, mod: nn.Module) -> str:
        try:
            return super().path_of_module(mod)
        except NameError:
            if self.is_leaf_module(mod, ""):
                raise
            return f"<{type(mod).__name__} built in forward>"


def _mutated_arg(root: nn.Module, node: fx.Node) -> Any:
    """The argument an in-place operation overwrites, else None."""
    if not node.args:
        return None
    target = node.target
    if node.op == "call_module":
        inplace = bool(getattr(submodule(root, node), "inplace", False))
    elif node.op == "call_function" and callable(target):
        name = getattr(target, "__name__", "")
        try:  # ``inplace`` may be passed by position: F.relu(x, True)
            named = normalize_function(target, node.args, node.kwargs,
                                       normalize_to_only_use_kwargs=True)
        except Exception:
            named = None
        flags = named.kwargs if named is not None else node.kwargs
        inplace = (flags.get("inplace") is True or name.endswith("_")
                   or name in ("iadd", "isub", "imul", "itruediv", "iand", "ior", "ixor"))
    elif node.op == "call_method":
        inplace = str(node.target).endswith("_")
    else:
        inplace = False
    return node.args[0] if inplace else None


def label(node: fx.Node) -> str:
    """A readable name: the module path, or the function/method name."""
    if node.op in ("call_module", "get_attr"):
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def submodule(root: nn.Module, node: fx.Node) -> nn.Module:
    """The module a ``call_module`` node calls (fx records it by its path)."""
    if not isinstance(node.target, str):
        raise TypeError(f"{node.op} node {node.name!r} has no module path: {node.target!r}")
    return root.get_submodule(node.target)


def fetch(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def run_node(root: nn.Module, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Evaluate one node as the eager model would (for the parts that run on full tensors)."""
    target = node.target  # fx: a callable for call_function, else a name or module path
    if node.op == "call_module":
        return submodule(root, node)(*args, **kwargs)
    if node.op == "call_function" and callable(target):
        return target(*args, **kwargs)
    if node.op == "call_method" and isinstance(target, str):
        return getattr(args[0], target)(*args[1:], **kwargs)
    if node.op == "get_attr" and isinstance(target, str):
        return fetch(root, target)
    raise RuntimeError(f"run_node cannot evaluate a {node.op} node with target {target!r}")


# --- rules -----------------------------------------------------------------------------------
@dataclass
class Window:
    """Output position ``o`` reads input rows ``o·s − p … o·s − p + (k−1)·d`` (per axis)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]        # top, left (the bottom/right side follows from the shapes)
    dilation: tuple[int, int]
    fill: float                      # value of the padding: 0 (conv, avg pool) or −inf (max)
    patch: Callable[[torch.Tensor], torch.Tensor]  # on a window already padded: padding=0
    macs: int = 0                    # multiply-adds per output element (cost model)
    divisor: torch.Tensor | None = None  # avg pool: (1, 1, H', W') divisor per output position


@dataclass
class Pointwise:
    fn: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Merge:
    fn: Callable[..., torch.Tensor]
    inputs: list[fx.Node] = field(default_factory=list)


Rule = Window | Pointwise | Merge

# Keyed by exact type, so each entry is given an instance of its key: a dict's type cannot say
# that, hence ``Any`` for the module.
_UNARY_MODULES: dict[type, Callable[[Any], Callable[[torch.Tensor], torch.Tensor]]] = {
    nn.ReLU: lambda m: torch.relu,
    nn.ReLU6: lambda m: F.relu6,
    nn.LeakyReLU: lambda m: lambda t: F.leaky_relu(t, m.negative_slope),
    nn.ELU: lambda m: lambda t: F.elu(t, m.alpha),
    nn.GELU: lambda m: lambda t: F.gelu(t, approximate=m.approximate),
    nn.SiLU: lambda m: F.silu,
    nn.Mish: lambda m: F.mish,
    nn.Hardswish: lambda m: F.hardswish,
    nn.Hardsigmoid: lambda m: F.hardsigmoid,
    nn.Hardtanh: lambda m: lambda t: F.hardtanh(t, m.min_val, m.max_val),
    nn.Sigmoid: lambda m: torch.sigmoid,
    nn.Tanh: lambda m: torch.tanh,
    nn.Softplus: lambda m: lambda t: F.softplus(t, m.beta, m.threshold),
    nn.PReLU: lambda m: lambda t: F.prelu(t, m.weight),
    nn.Identity: lambda m: lambda t: t,
    nn.Dropout: lambda m: lambda t: t,      # our copy is in eval mode: dropout is the identity
    nn.Dropout2d: lambda m: lambda t: t,
}
# Functions whose only tensor argument is the input, with an optional ``inplace`` flag that we
# drop: everything here is computed out of place (the cached activations must stay intact).
_UNARY_FUNCTIONS = {torch.relu, torch.relu_, F.relu, F.relu_, F.relu6, F.hardswish,
                    F.hardsigmoid, F.silu, F.gelu, F.leaky_relu, F.elu, F.mish, torch.sigmoid,
                    torch.tanh, F.sigmoid, F.tanh, F.hardtanh}
_OUT_OF_PLACE = {torch.relu_: torch.relu, F.relu_: F.relu}
_UNARY_METHODS = {"relu": torch.relu, "relu_": torch.relu, "sigmoid": torch.sigmoid,
                  "tanh": torch.tanh}
_BINARY: dict[Callable[..., Any] | str, Callable[..., torch.Tensor]] = {  # function or method
    operator.add: torch.add, torch.add: torch.add, operator.iadd: torch.add,
    operator.sub: torch.sub, torch.sub: torch.sub, operator.mul: torch.mul,
    torch.mul: torch.mul, operator.imul: torch.mul, operator.truediv: torch.div,
    torch.div: torch.div, "add": torch.add, "add_": torch.add, "mul": torch.mul,
    "mul_": torch.mul, "sub": torch.sub}


def rule_for(root: nn.Module, node: fx.Node, dep: set[fx.Node],
             shapes: dict[fx.Node, tuple[int, ...]], static: dict[fx.Node, Any]
             ) -> Rule | str:
    """The patch rule of an input-dependent node, or the reason it has none."""
    out = shapes.get(node)
    if out is None or len(out) != 4:
        return "its output is not a (B, C, H, W) tensor"
    tensors = [a for a in _flat(node.args) + _flat(node.kwargs) if isinstance(a, fx.Node)]
    inputs = [a for a in tensors if a in dep]
    if node.op == "call_module":
        return _module_rule(submodule(root, node), node, shapes)
    if node.op == "call_function" and node.target in _UNARY_FUNCTIONS:
        x = node.args[0]
        if len(tensors) != 1 or not isinstance(x, fx.Node) or x not in dep or shapes[x] != out:
            return "it takes more than one tensor"
        fn = _OUT_OF_PLACE.get(node.target, node.target)
        rest, kwargs = node.args[1:], {k: v for k, v in node.kwargs.items() if k != "inplace"}
        if fn in (F.relu, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.mish):
            rest = ()  # the only positional extra is ``inplace``
        elif fn in (F.leaky_relu, F.elu, F.hardtanh):
            rest = rest[:{F.leaky_relu: 1, F.elu: 1, F.hardtanh: 2}[fn]]
        return Pointwise(lambda t: fn(t, *rest, **kwargs))
    key = node.target if node.op == "call_function" else (
        str(node.target) if node.op == "call_method" else None)
    if node.op == "call_method" and key in _UNARY_METHODS and len(node.args) == 1:
        return Pointwise(_UNARY_METHODS[key])
    if key is not None and key in _BINARY and len(node.args) == 2 and not node.kwargs:
        return _binary_rule(_BINARY[key], node, dep, shapes, static)
    if node.op == "call_function" and node.target is torch.cat:
        seq = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim not in (1, -3) or not isinstance(seq, (list, tuple)) or not all(
                isinstance(a, fx.Node) and a in dep and len(shapes.get(a, ())) == 4
                and shapes[a][2:] == out[2:] for a in seq):
            return "it is not a channel concatenation of feature maps"
        return Merge(lambda *ts: torch.cat(ts, 1), list(seq))
    if not inputs:
        return "it does not depend on the input"
    return "no patch rule for this operation"


def _flat(a: Any) -> list:
    if isinstance(a, (list, tuple)):
        return [v for item in a for v in _flat(item)]
    if isinstance(a, dict):
        return [v for item in a.values() for v in _flat(item)]
    return [a]


def _binary_rule(fn: Callable, node: fx.Node, dep: set[fx.Node],
                 shapes: dict[fx.Node, tuple[int, ...]], static: dict[fx.Node, Any]
                 ) -> Rule | str:
    a, b = node.args
    out = shapes[node]
    if isinstance(a, fx.Node) and isinstance(b, fx.Node) and a in dep and b in dep:
        if shapes.get(a) != out or shapes.get(b) != out:
            return "it broadcasts one feature map over another"
        return Merge(fn, [a, b])
    first = a in dep if isinstance(a, fx.Node) else False
    x, other = (a, b) if first else (b, a)
    if not isinstance(x, fx.Node) or shapes.get(x) != out:
        return "it broadcasts over the spatial positions"
    const = static.get(other, other) if isinstance(other, fx.Node) else other
    if isinstance(const, torch.Tensor) and ((const.dim() >= 2 and tuple(const.shape[-2:])
                                            != (1, 1)) or const.dim() > 4):
        return "its other operand varies over the spatial positions"
    if not isinstance(const, (torch.Tensor, int, float)):
        return "its other operand is not a constant"
    return Pointwise((lambda t: fn(t, const)) if first else (lambda t: fn(const, t)))


def _module_rule(m: nn.Module, node: fx.Node, shapes: dict[fx.Node, tuple[int, ...]]
                 ) -> Rule | str:
    kind = type(m)
    if len(node.args) != 1 or node.kwargs:
        return f"{kind.__name__} called with extra arguments"
    if kind in _UNARY_MODULES:
        return Pointwise(_UNARY_MODULES[kind](m))
    # ``type(m) is`` (not ``kind is``): the same test, but it also narrows ``m`` for the checker
    if type(m) is nn.BatchNorm2d:
        if m.training or m.running_mean is None:
            return "BatchNorm2d without running statistics uses batch statistics"
        return Pointwise(lambda t: F.batch_norm(t, m.running_mean, m.running_var, m.weight,
                                                m.bias, False, 0.0, m.eps))
    if type(m) is nn.Conv2d:
        if m.padding_mode != "zeros":
            return f"Conv2d with padding_mode={m.padding_mode!r}"
        if isinstance(m.padding, str):  # "same": PyTorch pads total//2 before, the rest after
            pad = (0, 0) if m.padding == "valid" else _pair(
                [d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size)])
        else:
            pad = _pair(m.padding)
        cin = m.in_channels // m.groups
        return Window(_pair(m.kernel_size), _pair(m.stride), pad, _pair(m.dilation), 0.0,
                      lambda t: F.conv2d(t, m.weight, m.bias, m.stride, 0, m.dilation, m.groups),
                      macs=cin * m.kernel_size[0] * m.kernel_size[1])
    if type(m) is nn.MaxPool2d:
        if m.return_indices:
            return "MaxPool2d returns indices"
        k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding,
                                          m.dilation))
        return Window(k, s, p, d, float("-inf"),
                      lambda t: F.max_pool2d(t, k, s, 0, d), macs=k[0] * k[1])
    if type(m) is nn.AvgPool2d:
        src = node.args[0]
        if not isinstance(src, fx.Node) or len(shapes.get(src, ())) != 4:
            return "AvgPool2d input is not a feature map"
        k, s, p = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
        ones = torch.ones((1, 1, *shapes[src][2:]), dtype=torch.float64)
        mean = F.avg_pool2d(ones, k, s, p, m.ceil_mode, m.count_include_pad, m.divisor_override)
        out = shapes[node][2:]
        bottom = max(0, (out[0] - 1) * s[0] + k[0] - p[0] - ones.shape[2])
        right = max(0, (out[1] - 1) * s[1] + k[1] - p[1] - ones.shape[3])
        padded = F.pad(ones, (p[1], right, p[0], bottom))
        total = F.avg_pool2d(padded, k, s, 0, divisor_override=1)[..., :out[0], :out[1]]
        divisor = (torch.full_like(mean, float(m.divisor_override)) if m.divisor_override
                   else total / mean)  # the count PyTorch divides by, per output position
        return Window(k, s, p, (1, 1), 0.0,
                      lambda t: F.avg_pool2d(t, k, s, 0, divisor_override=1),
                      macs=k[0] * k[1], divisor=divisor)
    return f"no patch rule for {kind.__name__}"


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
