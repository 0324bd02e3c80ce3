"""What every metric gets (:class:`MetricContext`) and the helpers several metrics share."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._types import Attribution
from ..errors import SaliencyError, SaliencyWarning
from ..model.explainee import Explainee
from ..reduce import reduce_channels
from ..work import Work

Explain = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs, example rows) → maps


@dataclass
class MetricContext:
    """The bound model and what a metric may need besides the map itself."""

    explainee: Explainee
    explain: Explain | None = None  # re-explains perturbed inputs (stability, randomization)
    explain_on: Callable[..., torch.Tensor] | None = None  # (model, inputs, rows) → maps
    masks: torch.Tensor | None = None  # (B, H, W) bool
    record: Attribution | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # diagnostics → MetricResult.extras
    resolved: dict[str, Any] = field(default_factory=dict)  # → MetricResult.params

    def note(self, key: str, value: Any) -> None:
        """Record a diagnostic in the result's ``extras``."""
        self.extras[key] = value

    def resolve_param(self, key: str, value: Any) -> None:
        """Record the value an automatic parameter (``None``) resolved to, in ``params``."""
        self.resolved[key] = value

    @property
    def work(self) -> Work:
        return self.explainee.work

    def require_explain(self, metric: str) -> Explain:
        if self.explain is None:
            raise SaliencyError(f"{metric} re-explains perturbed inputs, but the attribution is a "
                                f"plain tensor: pass the Attribution record from sw.attribute, "
                                f"or explain=callable(model, x) -> tensor")
        return self.explain

    def require_masks(self, metric: str, x: torch.Tensor) -> torch.Tensor:
        if self.masks is None:
            raise SaliencyError(f"{metric} needs ground-truth masks: pass masks= a (B, H, W) "
                                f"bool tensor")
        return self.masks


@dataclass(frozen=True)
class Scored:
    """A metric function's result, before the API adds the name, params and timing."""

    scores: torch.Tensor
    curve: torch.Tensor | None = None
    curve_x: torch.Tensor | None = None


def pixel_map(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """``(B, H, W)`` float64 map: the shared channel reduction, as the display uses it.

    Reduced in float64 (a float32 sum over channels can cancel to nothing)."""
    return reduce_channels(values.detach().double(), reduction)


def on_input(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a ``(B, 1, H, W)`` map over the input's channels."""
    return values.expand_as(x) if values.shape[1] == 1 else values


def warn_nan(metric: str, where: torch.Tensor, why: str) -> None:
    if bool(where.any()):
        idx = where.nonzero()[:, 0].tolist()
        warnings.warn(f"{metric}: undefined (NaN) for example(s) {idx}: {why}",
                      SaliencyWarning, stacklevel=4)


def record_generator(mc: MetricContext, x: torch.Tensor) -> torch.Generator:
    """The generator that rebuilds the record's own random baseline (``uniform``): seeded with
    the record's seed, as in the call that made the map (baselines are drawn first)."""
    if mc.record is None:
        return mc.explainee.generator
    return torch.Generator(device=x.device).manual_seed(mc.record.seed)


def noise_scale(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """``(B, 1, 1, 1)``: ``fraction`` of each example's value range (the glossary's ``noise``)."""
    flat = x.flatten(1)
    return (fraction * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)


def draws(ctx: Explainee, shape: tuple[int, ...], samples: int, kind: str,
          like: torch.Tensor) -> torch.Tensor:
    """``(samples, *shape)`` seeded draws, one sample at a time (chunk-size independent)."""
    fn = torch.randn if kind == "normal" else torch.rand
    return torch.stack([fn(shape, generator=ctx.generator, device=like.device, dtype=like.dtype)
                        for _ in range(samples)])


def scores_of(ctx: Explainee, total: int, build: Callable[[int, int], tuple[torch.Tensor,
              torch.Tensor]], numel: int) -> torch.Tensor:
    """Objective values of ``total`` perturbed inputs, built and scored chunk by chunk."""
    out: list[torch.Tensor] = []

    def step(i: int, j: int) -> None:
        xb, rows = build(i, j)
        out.append(ctx.scores(xb, rows))

    ctx.work.run(total, step, item_numel=numel, kind="forward")
    return torch.cat(out) if out else torch.zeros(0)
