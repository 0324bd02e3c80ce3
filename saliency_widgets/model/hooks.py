"""Every hook we place, each inside a context manager that removes it in ``finally``.

All hooks go on *our* structural copy of the model (see ``copy.py``), never on the user's modules.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import SaliencyError
from .rewrite import PASS, RewriteMode


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients through positive inputs
    (Springenberg et al. 2014, arXiv:1412.6806), read at ``seen`` (``x``, or its twin from a
    plain pass: see ``rewrite.py``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seen: torch.Tensor  # type: ignore[override]
                ) -> torch.Tensor:
        ctx.save_for_backward(seen)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype), None


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward passes the positive part of the gradient, wherever the input was
    (Zeiler & Fergus 2014, arXiv:1311.2901: the deconvnet rectifies the backward signal)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seen: torch.Tensor  # type: ignore[override]
                ) -> torch.Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None]:
        return grad.clamp(min=0), None


_RELUS = frozenset({F.relu, F.relu_, torch.relu, torch.relu_,
                    torch.Tensor.relu, torch.Tensor.relu_})


class GuidedReLUMode(RewriteMode):
    """Routes every ReLU call to the guided ReLU while active.

    Intercepting the *call* rather than ``nn.ReLU`` modules makes guided backprop right for
    ``nn.ReLU(inplace=True)``, functional ``F.relu``/``x.relu()``, and one ReLU module used
    twice — the cases where module-hook implementations silently return plain gradients or fail.
    The mode stack is thread-local, so other threads using the model are unaffected.
    In-place ReLUs are computed out of place; callers use the returned tensor, as
    ``nn.ReLU(inplace=True)`` callers do. In a plain pass (``rewrite.py``) ReLUs run as they are.
    """

    relu: Any = _GuidedReLU
    smooths = True  # a softplus copy's ReLUs, smoothed inside this mode, are guided too

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.depth = 0    # > 0 while an nn.ReLU module runs (tracked by guided_relus)
        self.outside = 0  # ReLU calls made outside any nn.ReLU module (functional ones)

    def fresh(self) -> GuidedReLUMode:
        return type(self)()

    def __enter__(self) -> GuidedReLUMode:
        if self.smooths:  # the guided mode active in this thread (see _ACTIVE)
            self._previous = getattr(_ACTIVE, "guided", None)
            _ACTIVE.guided = self
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        if self.smooths:
            _ACTIVE.guided = self._previous
        return super().__exit__(*exc)

    def handle(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if func in _RELUS:
            self.calls += 1
            if self.depth == 0:
                self.outside += 1
            seen = self.saved(args[0])
            if self.plain:
                return func(*args, **kwargs)
            return self.relu.apply(args[0], seen)
        return PASS


class DeconvReLUMode(GuidedReLUMode):
    """Routes every ReLU call to the deconvnet ReLU (backward: the gradient's positive part),
    with the same call interception, thread-locality and in-place handling as guided ReLUs."""

    relu = _DeconvReLU
    smooths = False


# The guided mode active in this thread, so a smooth-ReLU mode stacked above it (a softplus copy's
# forward runs inside the method's guided context) can guide its softplus instead of hiding it.
_ACTIVE = threading.local()


class GuidedReLUHooks:
    """Guided backprop by forward hooks on the model's ``nn.ReLU`` modules.

    Each ReLU output's gradient is clamped at zero before the ReLU's own backward multiplies it
    by ``1[x > 0]``: exactly the guided rule. Python then runs once per ReLU call and once per
    ReLU in the backward pass, instead of on every operation of the forward pass as under
    :class:`GuidedReLUMode` (whose dispatch doubled a batch-1 GPU call). Only right when every
    ReLU call comes from an ``nn.ReLU`` module: :func:`guided_relus` checks that first.
    """

    def __init__(self) -> None:
        self.calls = 0

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.calls += 1
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(_positive)


def _positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


# Copies of models whose ReLU calls all came from nn.ReLU modules in a guided pass under the
# mode: later guided passes of that copy (the pool reuses it) use module hooks instead.
_MODULE_RELUS_ONLY: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _relu_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


@contextmanager
def guided_relus(enabled: bool = True, model: nn.Module | None = None
                 ) -> Iterator[GuidedReLUMode | GuidedReLUHooks | None]:
    """Guided ReLUs while active: the mode (every ReLU call), or, for a ``model`` (our copy)
    whose guided passes have shown that all its ReLU calls come from ``nn.ReLU`` modules, hooks
    on those modules (the same gradients, far less Python per call). Under another function
    mode (a softplus copy) the mode is used: it guides the smoothed ReLUs too."""
    if not enabled:
        yield None
        return
    outer = bool(torch.overrides._get_current_function_mode_stack())
    if model is not None and not outer and _MODULE_RELUS_ONLY.get(model, False):
        hooks = GuidedReLUHooks()
        handles = [m.register_forward_hook(hooks.hook) for m in _relu_modules(model)]
        try:
            yield hooks
        finally:
            for h in handles:
                h.remove()
        return
    with GuidedReLUMode() as mode:
        if model is None or outer:
            yield mode
            return
        handles = []
        for m in _relu_modules(model):
            handles.append(m.register_forward_pre_hook(lambda *a: _enter(mode)))
            handles.append(m.register_forward_hook(lambda *a: _leave(mode)))
        try:
            yield mode
        finally:
            for h in handles:
                h.remove()
    if mode.calls and not mode.outside:
        _MODULE_RELUS_ONLY[model] = True


def _enter(mode: GuidedReLUMode) -> None:
    mode.depth += 1


def _leave(mode: GuidedReLUMode) -> None:
    mode.depth -= 1


class _GuidedSoftplus(torch.autograd.Function):
    """softplus(βx) whose backward passes only positive gradients, weighted by σ(βx): guided
    backprop on the smoothed network, read at ``seen`` (``x``, or its twin from a plain pass).
    The backward is made of differentiable operations, so a second derivative
    (``create_graph=True``) exists."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, seen: torch.Tensor,  # type: ignore[override]
                beta: float) -> torch.Tensor:
        ctx.save_for_backward(seen)
        ctx.beta = beta
        return F.softplus(x, beta=beta)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * torch.sigmoid(ctx.beta * x), None, None


class SoftplusReLUMode(TorchFunctionMode):
    """Replaces every ReLU call by ``softplus(βx) = log(1 + exp(βx)) / β`` while active.

    The smoothed network of Dombrowski et al. 2019 (arXiv:1906.07983): its input gradient varies
    smoothly with the input, so second derivatives exist where a ReLU network's are zero. Calls
    are intercepted like the guided mode's (in-place, functional and reused ReLUs alike; in-place
    calls are computed out of place). Under an enclosing guided mode the softplus is guided too
    and counted as that mode's ReLU call.
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = float(beta)
        self.calls = 0

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if func in _RELUS:
            self.calls += 1
            guided = getattr(_ACTIVE, "guided", None)
            if guided is not None:  # a ReLU the guided mode would have rewritten
                guided.calls += 1
                seen = guided.saved(args[0])
                if not guided.plain:
                    return _GuidedSoftplus.apply(args[0], seen, self.beta)
            return F.softplus(args[0], beta=self.beta)
        return func(*args, **(kwargs or {}))


@contextmanager
def softplus_relus(beta: float) -> Iterator[SoftplusReLUMode]:
    with SoftplusReLUMode(beta) as mode:
        yield mode


@dataclass
class LayerCapture:
    """What a layer produced in one forward pass.

    ``mode``:
      * ``"cut"`` — the graph starts at the layer (only the layer gradient is needed), so the part
        of the network before the layer runs without autograd bookkeeping;
      * ``"keep"`` — the layer output stays in the input's graph (input and layer gradients);
      * ``"value"`` — only the detached output is kept.
    The output is handed downstream as a clone, so in-place operations after the layer cannot
    overwrite the captured tensor.
    """

    mode: str
    output: torch.Tensor | None = None
    calls: int = 0
    relu_calls_at_capture: int = 0


@contextmanager
def capture_layer(layer: nn.Module, mode: str, name: str,
                  guided: GuidedReLUMode | GuidedReLUHooks | None = None
                  ) -> Iterator[LayerCapture]:
    cap = LayerCapture(mode=mode)

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise SaliencyError(f"layer {name!r} returns {type(output).__name__}, not a tensor; "
                                f"choose a layer whose output is a tensor")
        cap.calls += 1
        if cap.calls > 1:
            raise SaliencyError(f"layer {name!r} runs more than once per forward pass, so its "
                                f"activation is ambiguous; pass layer= a module that runs once")
        if guided is not None:
            cap.relu_calls_at_capture = guided.calls
        if mode == "value":  # a copy: in-place ops after the layer (ReLU(inplace)) would edit it
            cap.output = output.detach().clone()
            return None
        if mode == "cut":
            cap.output = output.detach().requires_grad_(True)
        else:
            cap.output = output
        return cap.output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield cap
    finally:
        handle.remove()


@contextmanager
def record_module_outputs(root: nn.Module) -> Iterator[list[tuple[str, tuple[int, ...]]]]:
    """Record ``(name, output shape)`` of every submodule in the order their forwards finish."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    for name, module in root.named_modules():
        if module is root:
            continue

        def hook(m: nn.Module, i: Any, o: Any, name: str = name) -> None:
            if isinstance(o, torch.Tensor):
                seen.append((name, tuple(o.shape)))

        handles.append(module.register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_outputs(layers: list[tuple[str, nn.Module]], owner: str
                    ) -> Iterator[list[LayerCapture]]:
    """Capture the outputs of several modules in one forward pass, each in the autograd graph.

    An output that does not require grad (everything before it runs without bookkeeping) becomes
    a leaf that does, so the graph starts at the first captured module; later outputs stay
    connected to earlier ones. Each output is handed downstream as a clone, like
    :func:`capture_layer`, so in-place operations after it cannot edit the captured tensor.
    """
    caps = [LayerCapture(mode="keep") for _ in layers]
    handles = []

    def make(cap: LayerCapture, name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            if not isinstance(output, torch.Tensor):
                raise SaliencyError(f"{owner}: layer {name!r} returns {type(output).__name__}, "
                                    f"not a tensor; choose layers whose output is a tensor")
            cap.calls += 1
            if cap.calls > 1:
                raise SaliencyError(f"{owner}: layer {name!r} runs more than once per forward "
                                    f"pass, so its activation is ambiguous; choose layers that "
                                    f"run once")
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
            cap.output = output
            return output.clone()
        return hook

    try:
        for cap, (name, module) in zip(caps, layers):
            handles.append(module.register_forward_hook(make(cap, name)))
        yield caps
    finally:
        for h in handles:
            h.remove()


@contextmanager
def ablate_channels(layer: nn.Module, channels: torch.Tensor) -> Iterator[None]:
    """Zero channel ``channels[r]`` of row ``r`` of the layer's output (Ablation-CAM).

    Channels are dimension 1 of a ``(n, K, h, w)`` map and the last dimension of ``(n, T, K)``
    tokens (every token, the class token included).
    """
    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        out = output.clone()
        rows = torch.arange(out.shape[0], device=out.device)
        if out.dim() == 3:
            out[rows, :, channels] = 0
        else:
            out[rows, channels] = 0
        return out

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def fresh_inputs(modules: list[nn.Module], outputs: list[torch.Tensor],
                 store: list[torch.Tensor], spans: list[tuple[int, int]],
                 cut: bool = True) -> Iterator[None]:
    """Each module gets its first input as a new leaf (``cut``) and appends its output to
    ``outputs``, and the range of ``store`` entries (attention maps) appended while it ran to
    ``spans``.

    Cutting the graph at every block's input makes one backward pass of ``Σ_l s_l(output_l)``
    give each ``d s_l / d (anything inside block l)`` alone (LeGrad's per-layer gradients).
    """
    starts: list[int] = []

    def pre(module: nn.Module, args: tuple) -> tuple | None:
        starts.append(len(store))
        if not cut:
            return None
        return (args[0].detach().requires_grad_(True), *args[1:])

    def post(module: nn.Module, args: Any, output: Any) -> None:
        outputs.append(output)
        spans.append((starts.pop(), len(store)))

    handles = []
    try:
        for m in modules:
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
