"""A model bound to an objective: the primitives every method and metric is built from.

Methods never see the model: they ask an :class:`Explainee` for scores, input gradients and
layer activations/gradients of a batch whose row ``r`` explains example ``rows[r]`` (``None``:
row ``r`` is example ``r``). ``original=True`` says the rows are the unperturbed input: their
logits resolve ``target=None`` / ``"runner_up"`` (no extra pass) and are checked for NaN/Inf.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..errors import SaliencyError, SaliencyWarning
from ..work import Work
from .hooks import capture_layer, guided_relus
from .graph import Untraceable
from .incremental import Occluder
from .layers import ResolvedLayer, resolve_layer
from .objective import Objective

OutputSelector = Callable[[Any], torch.Tensor] | str | int | None


def select_output(out: Any, selector: OutputSelector) -> torch.Tensor:
    """Pick the logits out of whatever the model returned."""
    if selector is not None:
        if callable(selector):
            out = selector(out)
        elif isinstance(out, dict) or hasattr(out, "keys"):
            out = out[selector]
        elif isinstance(out, (tuple, list)):
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


def warn_no_relu() -> None:
    warnings.warn("guided backpropagation saw no ReLU call in the forward pass (a model without "
                  "ReLUs, or TorchScript, whose calls cannot be intercepted), so it equals the "
                  "plain gradient", SaliencyWarning, stacklevel=4)


class Explainee:
    """Our copy of the model, the objective, and the call's work settings."""

    def __init__(self, model: nn.Module, original: nn.Module, objective: Objective, work: Work,
                 *, output: OutputSelector = None, layer: Any = None,
                 generator: torch.Generator | None = None,
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
        self.notes: dict[str, Any] = {}
        self.resolved: dict[str, Any] = {}

    # --- logits and scores -------------------------------------------------------------------
    def logits(self, xb: torch.Tensor) -> torch.Tensor:
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
            if not bool(torch.isfinite(logits).all()):
                raise SaliencyError("the model produced NaN or Inf logits for this input; check "
                                    "the input's scale and the model's weights")
            self.objective.resolve(logits, rows)
        return self.objective.score(logits, rows)

    # --- primitives --------------------------------------------------------------------------
    def scores(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
               original: bool = False) -> torch.Tensor:
        """``(n,)`` objective values, without gradients."""
        with torch.no_grad():
            return self._scores(self.logits(xb), rows, original)

    def input_grad(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                   original: bool = False, guided: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (n,), d score / d input (n, C, H, W))``; ``guided`` uses guided ReLUs."""
        xb = xb.detach().requires_grad_(True)
        with torch.enable_grad(), guided_relus(guided) as mode:
            s = self._scores(self.logits(xb), rows, original)
        if mode is not None and mode.calls == 0:
            warn_no_relu()
        (g,) = torch.autograd.grad(s.sum(), xb)
        return s.detach(), g

    def layer(self, probe_input: torch.Tensor) -> ResolvedLayer:
        """The resolved layer (probing the model once with ``probe_input[:1]`` if needed)."""
        if self._layer is None:
            def probe() -> None:
                with torch.no_grad():
                    self.model(probe_input[:1])
            self._layer = resolve_layer(self.layer_spec, self.original, self.model, probe)
        return self._layer

    def layer_grad(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                   original: bool = False, with_input_grad: bool = False, guided: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        """Scores, layer activation ``A`` and ``d score / d A`` (both ``(n, K, h, w)``).

        With ``with_input_grad`` also the input gradient, from the same pass. The last value says
        whether ReLUs ran after the layer: then guided and plain layer gradients differ.
        """
        layer = self.layer(xb)
        if with_input_grad:
            xb = xb.detach().requires_grad_(True)
        with torch.enable_grad(), guided_relus(guided) as mode, \
                capture_layer(layer.module, "keep" if with_input_grad else "cut", layer.name,
                              mode) as cap:
            s = self._scores(self.logits(xb), rows, original)
        if cap.output is None:
            raise SaliencyError(f"layer {layer.name!r} did not run in the forward pass; choose a "
                                f"layer the model uses")
        if mode is not None and mode.calls == 0:
            warn_no_relu()
        relus_after = mode is not None and mode.calls > cap.relu_calls_at_capture
        wrt = [cap.output, xb] if with_input_grad else [cap.output]
        grads = torch.autograd.grad(s.sum(), wrt, allow_unused=True)
        ga = grads[0] if grads[0] is not None else torch.zeros_like(cap.output)
        gx = grads[1] if with_input_grad else None
        a = layer.to_grid(cap.output.detach())
        return s.detach(), a, layer.to_grid(ga), gx, relus_after

    def layer_value(self, xb: torch.Tensor, rows: torch.Tensor | None = None, *,
                    original: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and the layer activation ``(n, K, h, w)``, without gradients."""
        layer = self.layer(xb)
        with torch.no_grad(), capture_layer(layer.module, "value", layer.name) as cap:
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

    def warn_if_blank(self, grads: torch.Tensor, rows: torch.Tensor, what: str) -> None:
        """Warn when a layer's gradients vanish for an example that is not a self-contrast."""
        blank = (grads.flatten(1) == 0).all(1) & ~self.objective.self_contrast()[rows]
        if bool(blank.any()):
            idx = blank.nonzero()[:, 0].tolist()
            warnings.warn(f"{what}: the gradients at layer {self._layer.name if self._layer else '?'}"
                          f" are all zero for example(s) {idx}, so the map is blank. The output "
                          f"may not depend on this layer (e.g. a ViT's last block, whose patch "
                          f"tokens the head ignores); pass another layer=", SaliencyWarning,
                          stacklevel=3)

    def with_rows(self, index: torch.Tensor) -> "Explainee":
        """An explainee for a batch whose row ``r`` is a variant of example ``index[r]``."""
        new = object.__new__(Explainee)
        new.__dict__.update(self.__dict__)
        new.objective = self.objective.take(index)
        new.notes, new.resolved = {}, {}
        return new

    def note(self, key: str, value: Any) -> None:
        """Record a diagnostic in the result's ``extras``."""
        self.notes[key] = value

    def resolve_param(self, key: str, value: Any) -> None:
        """Record the value an automatic parameter (``None``) resolved to."""
        self.resolved[key] = value
