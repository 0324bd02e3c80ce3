"""A model bound to an objective: the primitives every method and metric is built from.

Methods never see the model: they ask an :class:`Explainee` for scores, input gradients and
layer activations/gradients of a batch whose row ``r`` explains example ``rows[r]`` (``None``:
row ``r`` is example ``r``). ``original=True`` says the rows are the unperturbed input: their
logits resolve ``target=None`` / ``"runner_up"`` (no extra pass) and are checked for NaN/Inf.

Checks that would make the host wait for the device (finite logits, a blank layer gradient) are
queued with :meth:`Explainee.later` and judged together by :meth:`Explainee.settle` when the call
ends, where the API waits for the result anyway: a GPU call then never stops between its
forward and backward passes. ``autocast`` (bf16 precision) runs the model's forward passes
under ``torch.autocast``; the method's own arithmetic stays in the input's dtype.

``differentiable=True`` (set by ``api.attribute_graph`` for the attacks) keeps every primitive's
result in the autograd graph of its input: gradients are taken with ``create_graph=True``, layer
activations are not cut from the input, and nothing is detached. Any method built from these
primitives then returns a map that can itself be differentiated with respect to the input,
without a second implementation of its maths. Primitives whose backward pass is rewritten
(guided ReLUs, LRP, DeepLIFT, deconvnet) run a plain and a rewritten forward pass for that, so
the derivative follows the network rather than the rules (``rewrite.py``).
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Callable

import torch
from torch import nn

from ..errors import SaliencyError, SaliencyWarning
from ..work import Work
from .attention import attention_blocks, explicit_attention, token_head
from .bias import bias_layers
from .graph import Untraceable
from .heads import gap_linear_head, record_linear_calls
from .hooks import (GuidedReLUMode, ablate_channels, capture_layer, capture_outputs,
                    fresh_inputs, guided_relus)
from .incremental import Occluder
from .layers import ResolvedLayer, resolve_layer
from .objective import Objective
from .rewrite import RewriteMode, rewritten_pass

OutputSelector = Callable[[Any], torch.Tensor] | str | int | None

# Per copy of a model: the layers resolved from a name or from None (see Explainee._resolve).
_RESOLVED: weakref.WeakKeyDictionary[nn.Module, dict[str | None, ResolvedLayer]] = \
    weakref.WeakKeyDictionary()


def select_output(out: Any, selector: OutputSelector) -> torch.Tensor:
    """Pick the logits out of whatever the model returned."""
    if selector is not None:
        if callable(selector):
            out = selector(out)
        elif isinstance(out, dict) or hasattr(out, "keys") or isinstance(out, (tuple, list)):
            out = out[selector]
        else:
            out = getattr(out, str(selector))
    elif not isinstance(out, torch.Tensor):
        if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
            out = out.logits  # Hugging Face style outputs
        elif isinstance(out, dict) or hasattr(out, "keys"):
            raise SaliencyError(f"the model returned a dict with keys {list(out.keys())}; pass "
                                f"output= the key of the logits (e.g. output='logits'), an "
                                f"index, or a callable")
        elif isinstance(out, (tuple, list)):
            raise SaliencyError(f"the model returned a {type(out).__name__} of {len(out)} items;"
                                f" pass output= the index of the logits (e.g. output=0) or a "
                                f"callable")
    if not isinstance(out, torch.Tensor):
        raise SaliencyError(f"the selected model output is a {type(out).__name__}, not a "
                            f"tensor of logits; pass output= a key, index or callable")
    return out


def _nan_logits() -> None:
    raise SaliencyError("the model produced NaN or Inf logits for this input; check the input's "
                        "scale and the model's weights")


def warn_no_relu() -> None:
    warnings.warn("guided backpropagation saw no ReLU call in the forward pass (a model without "
                  "ReLUs, or TorchScript, whose calls cannot be intercepted), so it equals the "
                  "plain gradient", SaliencyWarning, stacklevel=4)


class Explainee:
    """Our copy of the model, the objective, and the call's work settings."""

    def __init__(self, model: nn.Module, original: nn.Module, objective: Objective, work: Work,
                 *, output: OutputSelector = None, layer: Any = None,
                 generator: torch.Generator,
                 normalization: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.model = model
        self.original = original
        self.objective = objective
        self.work = work
        self.output = output
        self.layer_spec = layer
        self.generator = generator
        self.normalization = normalization
        self._layer: ResolvedLayer | None = None
        self._layers: list[ResolvedLayer] | None = None
        self.differentiable = False
        self.autocast: torch.dtype | None = None
        self.notes: dict[str, Any] = {}
        self.resolved: dict[str, Any] = {}
        self.trace: Callable[..., None] | None = None
        """``trace(method, **step)``: set by ``api.attribution_path`` to receive a method's
        per-step values (IG's nodes, SmoothGrad's samples, occlusion's windows); None otherwise."""
        # Logits of the original rows, kept as the method computes them (for Attribution.logits).
        # Only the top-level explainee keeps them: with_rows() explainees see perturbed copies.
        self._logits: torch.Tensor | None = None
        self._logits_seen: torch.Tensor | None = None
        self._keep_logits = True
        # (flag on the device, what to do when it is True, a warning?), judged by settle();
        # shared by every with_rows() view of this call
        self.pending: list[tuple[torch.Tensor, Callable[[], None], bool]] = []

    # --- checks that wait until the end of the call ------------------------------------------
    def later(self, flag: torch.Tensor, action: Callable[[], None], *,
              warning: bool = False) -> None:
        """Run ``action`` (raise, or warn if ``warning``) at :meth:`settle` if the 0-dim bool
        ``flag`` is True."""
        self.pending.append((flag.detach().reshape(()), action, warning))

    def settle(self, warn: bool = True) -> None:
        """Judge the queued checks with one wait for the device, in the order they were queued
        (``warn=False``: errors only)."""
        if not self.pending:
            return
        pending = list(self.pending)
        self.pending.clear()
        device = pending[0][0].device
        flags = torch.stack([f.to(device) for f, _, _ in pending]).tolist()
        for hit, (_, action, warning) in zip(flags, pending):
            if hit and (warn or not warning):
                action()

    # --- logits and scores -------------------------------------------------------------------
    def logits(self, xb: torch.Tensor) -> torch.Tensor:
        if self.autocast is not None:
            with torch.autocast(xb.device.type, dtype=self.autocast):
                out = self._checked(self.model(xb), xb.shape[0])
            return out.to(xb.dtype)  # scores (and what methods build from them) in x's dtype
        return self._checked(self.model(xb), xb.shape[0])

    def _checked(self, out: Any, n: int) -> torch.Tensor:
        """The logits selected from a model output for a batch of ``n``, shape-checked."""
        out = select_output(out, self.output)
        if out.dim() == 1 and n == 1:
            raise SaliencyError(f"the model returned shape {tuple(out.shape)} for a batch of 1: "
                                f"it looks squeezed; remove .squeeze() from the model's forward "
                                f"so it returns (B, classes) logits")
        if out.dim() != 2 or out.shape[0] != n:
            raise SaliencyError(f"the model must return (B, classes) logits; for a batch of "
                                f"{n} it returned shape {tuple(out.shape)}. Select "
                                f"the logits with output=, or flatten extra dimensions")
        self.objective.check_classes(out.shape[1])
        return out

    def _scores(self, logits: torch.Tensor, rows: torch.Tensor | None,
                original: bool) -> torch.Tensor:
        if rows is None:
            rows = torch.arange(logits.shape[0], device=logits.device)
        if original:
            self.later(~torch.isfinite(logits.detach()).all(), _nan_logits)
            self.objective.resolve(logits, rows)
            if self._keep_logits:
                self._keep(logits, rows)
        return self.objective.score(logits, rows)

    def _keep(self, logits: torch.Tensor, rows: torch.Tensor) -> None:
        if self._logits is None or self._logits_seen is None:
            self._logits = torch.zeros(self.objective.batch, logits.shape[1], dtype=logits.dtype,
                                       device=logits.device)
            self._logits_seen = torch.zeros(self.objective.batch, dtype=torch.bool,
                                            device=logits.device)
        self._logits[rows] = logits.detach()
        self._logits_seen[rows] = True

    def original_logits(self) -> torch.Tensor | None:
        """``(B, classes)`` logits of the unperturbed input, or None unless every row was seen."""
        if self._logits is None or self._logits_seen is None or not bool(self._logits_seen.all()):
            return None
        return self._logits

    # --- primitives --------------------------------------------------------------------------
    def scores(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
               original: bool = False) -> torch.Tensor:
        """``(n,)`` objective values, without gradients (in the graph when differentiable)."""
        with torch.enable_grad() if self.differentiable else torch.no_grad():
            return self._scores(self.logits(xb), rows, original)

    def _grad_input(self, xb: torch.Tensor) -> torch.Tensor:
        """``xb`` ready to differentiate with respect to: a fresh leaf, unless the map must stay
        differentiable and ``xb`` already depends on the caller's input."""
        if self.differentiable and xb.requires_grad:
            return xb
        return xb.detach().requires_grad_(True)

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.differentiable else t.detach()

    def _keeps(self, xb: torch.Tensor) -> bool:
        """Whether results must stay in the graph of ``xb`` (a differentiable map of it)."""
        return self.differentiable and xb.requires_grad

    def _rewritten(self, xb: torch.Tensor, mode: RewriteMode,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """``(plain logits, rewritten logits, leaf, keep)`` of ``forward`` (the logits) under a
        backward-rewriting ``mode``; see ``rewrite.py`` for why a differentiable map runs two
        passes."""
        keep = self._keeps(xb)
        with torch.enable_grad():
            plain, out, leaf = rewritten_pass(mode, keep, forward or self.logits, xb)
        return plain, out, leaf, keep

    def _plain_model(self) -> nn.Module | None:
        """The model for guided ReLUs by module hooks, or None (the mode: differentiable maps)."""
        return None if self.differentiable else self.model

    def _row_index(self, n: int, rows: torch.Tensor | None, device: torch.device
                   ) -> torch.Tensor:
        return torch.arange(n, device=device) if rows is None else rows

    def input_grad(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                   original: bool = False, guided: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (n,), d score / d input (n, C, H, W))``; ``guided`` uses guided ReLUs."""
        if guided and self._keeps(xb):
            mode = GuidedReLUMode()
            plain, logits, leaf, _ = self._rewritten(xb, mode)
            with torch.enable_grad():
                s = self._scores(plain, rows, original)
                score = self.objective.score(logits, self._row_index(xb.shape[0], rows,
                                                                     xb.device))
                (g,) = torch.autograd.grad(score.sum(), leaf, create_graph=True)
            if mode.calls == 0:
                warn_no_relu()
            return s, g
        xb = self._grad_input(xb)
        with torch.enable_grad(), guided_relus(guided, self._plain_model()) as guide:
            s = self._scores(self.logits(xb), rows, original)
        if guide is not None and guide.calls == 0:
            warn_no_relu()
        with torch.enable_grad():  # create_graph records the backward pass itself
            (g,) = torch.autograd.grad(s.sum(), xb, create_graph=self.differentiable)
        return self._out(s), g

    def input_grad_under(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                         mode: RewriteMode, reference: torch.Tensor | None = None,
                         relevance: bool = False, original: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(scores (n,), reference scores (n,) or None, input "gradient" (n, C, H, W))`` with
        the backward pass rewritten by ``mode`` (LRP rules, DeepLIFT multipliers, deconvnet).

        ``reference`` rows run in the same forward pass right after ``xb`` (DeepLIFT compares
        each row with its reference); they are scored but not differentiated. ``relevance=True``
        starts the backward pass from ``logits ⊙ ∂score/∂logits`` (LRP: the score split over
        the logits, so relevance sums to the score) instead of ``∂score/∂logits``. For a
        differentiable map, the scores and the starting relevance come from the plain pass.
        """
        if isinstance(self.model, torch.jit.ScriptModule):
            raise SaliencyError("this method rewrites the backward pass of each call inside the "
                                "model, which TorchScript hides; pass the eager model")
        n = xb.shape[0]
        index = self._row_index(n, rows, xb.device)
        ref = None if reference is None else reference.detach().to(xb.dtype)

        def forward(inp: torch.Tensor) -> torch.Tensor:
            return self.logits(inp if ref is None else torch.cat([inp, ref]))

        plain, logits, leaf, keep = self._rewritten(xb, mode, forward)
        with torch.enable_grad():
            s = self._scores(plain[:n], rows, original)
            ref_s = None
            if reference is not None:
                with torch.no_grad():
                    ref_s = self.objective.score(plain[n:], index)
            if relevance:
                # ∂score/∂logits on a detached copy: ±1 at target/contrast, so a self-contrast
                # starts from exact zeros and every rule keeps them zero.
                held = logits.detach()[:n].requires_grad_(True)
                (w,) = torch.autograd.grad(self.objective.score(held, index).sum(), held)
                start = torch.zeros_like(logits)
                start[:n] = self._out(plain[:n]) * w
                (g,) = torch.autograd.grad(logits, leaf, start, create_graph=keep)
            else:
                score = s if not keep else self.objective.score(logits[:n], index)
                (g,) = torch.autograd.grad(score.sum(), leaf, create_graph=keep)
        return self._out(s), ref_s, g

    def _resolve(self, spec: Any, probe_input: torch.Tensor) -> ResolvedLayer:
        def probe() -> None:
            with torch.no_grad():
                self.model(probe_input[:1])
        if spec is not None and not isinstance(spec, str):
            return resolve_layer(spec, self.original, self.model, probe)
        # A name or the automatic choice resolves the same way for as long as our copy of the
        # model lives (the pool rebuilds it when the module tree changes): look it up once.
        known = _RESOLVED.setdefault(self.model, {})
        if spec not in known:
            known[spec] = resolve_layer(spec, self.original, self.model, probe)
        return known[spec]

    def layer(self, probe_input: torch.Tensor) -> ResolvedLayer:
        """The resolved layer (probing the model once with ``probe_input[:1]`` if needed)."""
        if self._layer is None:
            spec = self.layer_spec
            if isinstance(spec, (list, tuple)):
                if len(spec) != 1:
                    raise SaliencyError(f"this method reads one layer, got a list of {len(spec)}"
                                        f" ({list(map(str, spec))}); only layer_cam combines "
                                        f"several layers")
                spec = spec[0]
            self._layer = self._resolve(spec, probe_input)
        return self._layer

    def layers(self, probe_input: torch.Tensor) -> list[ResolvedLayer]:
        """The resolved layers: each of a list/tuple ``layer=``, or the one layer."""
        if self._layers is None:
            spec = self.layer_spec
            if not isinstance(spec, (list, tuple)):
                self._layers = [self.layer(probe_input)]
            elif not spec:
                raise SaliencyError("layer= is an empty list; pass one or more layers or None")
            else:
                self._layers = [self._resolve(one, probe_input) for one in spec]
                names = [r.name for r in self._layers]
                if len(set(names)) != len(names):
                    raise SaliencyError(f"layer= names a layer twice: {names}")
        return self._layers

    def layer_record(self) -> str | tuple[str, ...] | None:
        """The resolved layer name, or a tuple of names for a list of layers
        (``Attribution.layer``)."""
        if self._layers is not None and isinstance(self.layer_spec, (list, tuple)):
            return tuple(r.name for r in self._layers)
        return self._layer.name if self._layer is not None else None

    def layer_grad(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                   original: bool = False, with_input_grad: bool = False, guided: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        """Scores, layer activation ``A`` and ``d score / d A`` (both ``(n, K, h, w)``).

        With ``with_input_grad`` also the input gradient, from the same pass. The last value says
        whether ReLUs ran after the layer: then guided and plain layer gradients differ.
        """
        layer = self.layer(xb)
        if guided and self._keeps(xb):
            return self._guided_layer_grad(xb, rows, original, with_input_grad, layer)
        if with_input_grad:
            xb = self._grad_input(xb)
        # Differentiable maps keep the activation in the input's graph (the map depends on x
        # through it); otherwise the graph starts at the layer, cheaper.
        keep = with_input_grad or (self.differentiable and xb.requires_grad)
        with torch.enable_grad(), guided_relus(guided, self._plain_model()) as mode, \
                capture_layer(layer.module, "keep" if keep else "cut", layer.name,
                              mode) as cap:
            s = self._scores(self.logits(xb), rows, original)
        if cap.output is None:
            raise SaliencyError(f"layer {layer.name!r} did not run in the forward pass; choose a "
                                f"layer the model uses")
        if mode is not None and mode.calls == 0:
            warn_no_relu()
        relus_after = mode is not None and mode.calls > cap.relu_calls_at_capture
        wrt = [cap.output, xb] if with_input_grad else [cap.output]
        with torch.enable_grad():
            grads = torch.autograd.grad(s.sum(), wrt, allow_unused=True,
                                        create_graph=self.differentiable)
        ga = grads[0] if grads[0] is not None else torch.zeros_like(cap.output)
        gx = grads[1] if with_input_grad else None
        a = layer.to_grid(self._out(cap.output))
        return self._out(s), a, layer.to_grid(ga), gx, relus_after

    def _guided_layer_grad(self, xb: torch.Tensor, rows: torch.Tensor | None, original: bool,
                           with_input_grad: bool, layer: ResolvedLayer
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                      torch.Tensor | None, bool]:
        """:meth:`layer_grad` with guided ReLUs for a differentiable map: the activation from the
        plain pass, the guided gradients from the rewritten one (``rewrite.py``)."""
        mode = GuidedReLUMode()
        caps = []
        acts: list[torch.Tensor] = []  # the captured activation of each pass (plain, rewritten)

        def forward(inp: torch.Tensor) -> torch.Tensor:
            with capture_layer(layer.module, "keep", layer.name, mode) as cap:
                out = self.logits(inp)
            if cap.output is None:
                raise SaliencyError(f"layer {layer.name!r} did not run in the forward pass; "
                                    f"choose a layer the model uses")
            caps.append(cap)
            acts.append(cap.output)
            return out

        plain, logits, leaf, _ = self._rewritten(xb, mode, forward)
        true_act, act = acts
        if mode.calls == 0:
            warn_no_relu()
        relus_after = mode.calls > caps[1].relu_calls_at_capture
        with torch.enable_grad():
            s = self._scores(plain, rows, original)
            score = self.objective.score(logits, self._row_index(xb.shape[0], rows, xb.device))
            wrt = [act, leaf] if with_input_grad else [act]
            grads = torch.autograd.grad(score.sum(), wrt, allow_unused=True, create_graph=True)
        ga = grads[0] if grads[0] is not None else torch.zeros_like(act)
        gx = grads[1] if with_input_grad else None
        return s, layer.to_grid(true_act), layer.to_grid(ga), gx, relus_after

    def layer_value(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                    original: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and the layer activation ``(n, K, h, w)``, without gradients."""
        layer = self.layer(xb)
        grad = self.differentiable and xb.requires_grad
        with torch.enable_grad() if grad else torch.no_grad(), \
                capture_layer(layer.module, "keep" if grad else "value", layer.name) as cap:
            s = self._scores(self.logits(xb), rows, original)
        if cap.output is None:
            raise SaliencyError(f"layer {layer.name!r} did not run in the forward pass")
        return s, layer.to_grid(cap.output)

    def occluder(self, x: torch.Tensor, window: tuple[int, int],
                 origins: torch.Tensor) -> Occluder:
        """An incremental evaluator of ``x``'s images occluded by windows at ``origins``
        (``model/incremental.py``); raises :class:`~.graph.Untraceable` where there is none."""
        return Occluder(self.model, x[:1], window, origins)

    def occluded_logits(self, occ: Occluder, x: torch.Tensor, base: torch.Tensor, b: int,
                        index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of image ``b`` of ``x`` (``index=None``) or of its copies with the windows
        ``index`` filled with ``base`` (broadcastable to ``x``), computed incrementally."""
        base_b = base[b:b + 1] if base.shape[0] > 1 else base
        out = occ.prime(x[b:b + 1], base_b, key=b)
        if index is not None:
            out = occ(index)
        return self._checked(out, 1 if index is None else index.numel())

    def occluded_scores(self, occ: Occluder, x: torch.Tensor, base: torch.Tensor, b: int,
                        index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``(n,)`` objective of image ``b`` with the windows ``index`` filled (incrementally)."""
        with torch.no_grad():
            return self._scores(self.occluded_logits(occ, x, base, b, index), rows, False)

    def occluder_reference(self, occ: Occluder, x: torch.Tensor,
                           base: torch.Tensor) -> torch.Tensor:
        """``(B,)`` objective of each unoccluded image as ``occ`` computes it, after checking
        that its logits equal the model's; raises :class:`~.graph.Untraceable` otherwise (a
        traced graph can differ from ``forward``, e.g. where Python code depends on values)."""
        refs = []
        with torch.no_grad():
            for b in range(x.shape[0]):
                self.work.check_cancel()
                got = self.occluded_logits(occ, x, base, b)
                want = self.logits(x[b:b + 1])
                scale = float(want.abs().max()) or 1.0
                gap = float((got - want).abs().max())
                if not gap <= torch.finfo(x.dtype).eps ** 0.5 * scale:
                    raise Untraceable(f"the traced graph's logits differ from the model's by "
                                      f"{gap:.3g} (image {b}): the forward depends on more than "
                                      f"torch.fx records")
                refs.append(self._scores(got, torch.tensor([b], device=x.device), False))
        return torch.cat(refs)

    def layers_grad(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                    original: bool = False
                    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Scores and ``(A, d score / d A)`` at every layer of :meth:`layers`, from one pass."""
        layers = self.layers(xb)
        # (a differentiable map's xb requires grad, so every captured output stays in its graph)
        with torch.enable_grad(), capture_outputs([(r.name, r.module) for r in layers],
                                                  "layer_cam") as caps:
            s = self._scores(self.logits(xb), rows, original)
        outs: list[torch.Tensor] = []
        for r, cap in zip(layers, caps):
            if cap.output is None:
                raise SaliencyError(f"layer {r.name!r} did not run in the forward pass; choose "
                                    f"layers the model uses")
            outs.append(cap.output)
        with torch.enable_grad():
            grads = torch.autograd.grad(s.sum(), outs, allow_unused=True,
                                        create_graph=self.differentiable)
        pairs = [(r.to_grid(self._out(o)), r.to_grid(torch.zeros_like(o) if g is None else g))
                 for r, o, g in zip(layers, outs, grads)]
        return self._out(s), pairs

    def ablated_scores(self, xb: torch.Tensor, rows: torch.Tensor,
                       channels: torch.Tensor) -> torch.Tensor:
        """``(n,)`` objective with channel ``channels[r]`` of the layer zeroed for row ``r``."""
        layer = self.layer(xb)
        with torch.enable_grad() if self.differentiable else torch.no_grad(), \
                ablate_channels(layer.module, channels):
            return self._scores(self.logits(xb), rows, False)

    def cam_head(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                 original: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, the layer activation ``A`` and the objective's head weights ``(n, K)``.

        Raises unless the logits are one ``nn.Linear`` of the global average pool of ``A``.
        """
        layer = self.layer(xb)
        grad = self._keeps(xb)
        with torch.enable_grad() if grad else torch.no_grad(), \
                capture_layer(layer.module, "keep" if grad else "value", layer.name) as cap, \
                record_linear_calls(self.model) as calls:
            logits = self.logits(xb)
            s = self._scores(logits, rows, original)
        if cap.output is None:
            raise SaliencyError(f"layer {layer.name!r} did not run in the forward pass")
        a = layer.to_grid(cap.output)
        weight = gap_linear_head(calls, logits, cap.output, a, layer.name)
        if rows is None:
            rows = torch.arange(xb.shape[0], device=xb.device)
        n, (classes, k) = rows.shape[0], weight.shape
        # the objective is linear in the logits, so its head weights are the objective of Wᵀ
        per_channel = weight.T.to(a.dtype).expand(n, k, classes).reshape(n * k, classes)
        w = self.objective.score(per_channel, rows.repeat_interleave(k)).view(n, k)
        return s, a, w

    def bias_grads(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                   original: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Scores, the input gradient, and ``(d score / d output, bias)`` of every biased 2-D
        layer (FullGrad's decomposition), from one forward and one backward pass."""
        found = bias_layers(self.model)
        xb = self._grad_input(xb)
        with torch.enable_grad(), capture_outputs([(n, m) for n, m, _ in found],
                                                  "fullgrad") as caps:
            s = self._scores(self.logits(xb), rows, original)
        used = [(cap.output, b) for cap, (_, _, b) in zip(caps, found)
                if cap.output is not None and cap.output.dim() == 4]
        with torch.enable_grad():
            grads = torch.autograd.grad(s.sum(), [xb] + [o for o, _ in used], allow_unused=True,
                                        create_graph=self.differentiable)
        terms = [(torch.zeros_like(o) if g is None else g, b)
                 for (o, b), g in zip(used, grads[1:])]
        gx = torch.zeros_like(xb) if grads[0] is None else grads[0]
        return self._out(s), gx, terms

    def attention(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                  original: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Scores and each self-attention call's probabilities ``(n, heads, T, T)``, in order."""
        with torch.enable_grad() if self.differentiable else torch.no_grad(), \
                explicit_attention(self.model) as attn:
            s = self._scores(self.logits(xb), rows, original)
        return s, list(attn)

    def attention_grads(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                        original: bool = False
                        ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Scores, the attention probabilities ``A_l`` and ``d score / d A_l`` (total
        derivatives: through every later block), from one forward and one backward pass."""
        xb = self._grad_input(xb)
        with torch.enable_grad(), explicit_attention(self.model) as attn:
            s = self._scores(self.logits(xb), rows, original)
        with torch.enable_grad():
            grads = torch.autograd.grad(s.sum(), attn, allow_unused=True,
                                        create_graph=self.differentiable)
        return (self._out(s), [self._out(a) for a in attn],
                [torch.zeros_like(a) if g is None else g for a, g in zip(attn, grads)])

    def block_attention_grads(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                              original: bool = False, last: int | None = None
                              ) -> list[torch.Tensor]:
        """LeGrad's ``d s_l / d A_l`` for the ``last`` blocks (all when None), ``s_l`` the
        objective of block ``l``'s tokens read through the final norm and head."""
        blocks = attention_blocks(self.model)
        head = token_head(self.model)
        chosen = blocks if last is None else blocks[len(blocks) - min(last, len(blocks)):]
        outputs: list[torch.Tensor] = []
        spans: list[tuple[int, int]] = []
        # A differentiable map keeps every block in the input's graph; then each block needs a
        # backward pass of its own (one over Σ_l s_l would add the later blocks' terms).
        keep = self._keeps(xb)
        with torch.enable_grad(), explicit_attention(self.model) as attn, \
                fresh_inputs([m for _, m in chosen], outputs, attn, spans, cut=not keep):
            self._scores(self.logits(xb), rows, original)
            if len(outputs) != len(chosen) or any(j - i != 1 for i, j in spans):
                raise SaliencyError(f"legrad needs each attention block it reads "
                                    f"({', '.join(n for n, _ in chosen)}) to run once per "
                                    f"forward pass, with one attention call inside; saw "
                                    f"{len(outputs)} block calls with {[j - i for i, j in spans]}"
                                    f" attention calls")
            per_block = [self._scores(head(z), rows, False).sum() for z in outputs]
        mine = [attn[i] for i, _ in spans]
        with torch.enable_grad():
            if keep:
                grads = [torch.autograd.grad(s_l, a, allow_unused=True, create_graph=True)[0]
                         for s_l, a in zip(per_block, mine)]
            else:
                grads = list(torch.autograd.grad(torch.stack(per_block).sum(), mine,
                                                 allow_unused=True))
        return [torch.zeros_like(a) if g is None else g for a, g in zip(mine, grads)]

    def warn_if_blank(self, grads: torch.Tensor, rows: torch.Tensor, what: str) -> None:
        """Warn when a layer's gradients vanish for an example that is not a self-contrast
        (judged at :meth:`settle`, so the device is not waited for here)."""
        blank = grads.flatten(1).any(1).logical_not()
        name = self._layer.name if self._layer else "?"

        def warn() -> None:
            hit = blank & ~self.objective.self_contrast()[rows]
            if not bool(hit.any()):
                return
            idx = rows[hit].tolist()
            warnings.warn(f"{what}: the gradients at layer {name} are all zero for example(s) "
                          f"{idx}, so the map is blank. The output may not depend on this layer "
                          f"(e.g. a ViT's last block, whose patch tokens the head ignores); pass "
                          f"another layer=", SaliencyWarning, stacklevel=7)
        self.later(blank.any(), warn, warning=True)

    def with_rows(self, index: torch.Tensor) -> Explainee:
        """An explainee for a batch whose row ``r`` is a variant of example ``index[r]``."""
        new = object.__new__(Explainee)
        new.__dict__.update(self.__dict__)
        new.objective = self.objective.take(index)
        new.notes, new.resolved = {}, {}
        new._logits = new._logits_seen = None
        new._keep_logits = False
        return new

    def note(self, key: str, value: Any) -> None:
        """Record a diagnostic in the result's ``extras``."""
        self.notes[key] = value

    def resolve_param(self, key: str, value: Any) -> None:
        """Record the value an automatic parameter (``None``) resolved to."""
        self.resolved[key] = value
