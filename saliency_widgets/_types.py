"""Immutable records returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch

from .errors import SaliencyError


def runner_up(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the highest-scoring class other than ``target`` (ties: the lowest index).

    The one definition of the runner-up contrast (the engine's objective uses it too).
    """
    others = logits.scatter(1, target[:, None].to(logits.device), float("-inf"))
    return others.argmax(1)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Attribution:
    """An attribution map and everything needed to reproduce it.

    Attributes
    ----------
    values : Tensor
        ``(B, C, H, W)`` for input-space methods, ``(B, 1, H, W)`` for CAM-like and
        perturbation maps. Detached; float32 for half-precision inputs, else the input dtype.
    method : str
        Registry name of the method.
    target, contrast : tuple of int (contrast may be None)
        Resolved class per example; the objective is ``logit[target] - logit[contrast]``.
    params : Mapping
        Every method parameter, defaults filled in and resolved (e.g. the automatic window size).
    layer : str, tuple of str, or None
        Name of the resolved layer for layer-based methods (a tuple when ``layer_cam`` was given
        a list of layers).
    seed : int
    normalization : tuple or None
        ``(mean, std)`` used for pixel-space named baselines.
    seconds : float
        Wall time of the computation.
    extras : Mapping
        Method-specific diagnostics, e.g. IG's ``completeness_gap`` or occlusion's
        ``uncovered_pixels``.
    logits : Tensor ``(B, classes)`` or None
        The model's logits for the unperturbed input, from the method's own forward pass (every
        method makes one), so predictions and probabilities cost nothing extra. Detached.
    precision : str
        The arithmetic: ``"fp32"`` (IEEE), ``"tf32"`` or ``"bf16"`` (see ``sw.attribute``).
    """

    values: torch.Tensor
    method: str
    target: tuple[int, ...]
    contrast: tuple[int, ...] | None
    params: Mapping[str, Any] = field(default_factory=dict)
    layer: str | tuple[str, ...] | None = None
    seed: int = 0
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    seconds: float = 0.0
    extras: Mapping[str, Any] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "extras", _frozen(self.extras))

    def __repr__(self) -> str:  # tensors make the default repr unreadable
        vs = tuple(self.values.shape)
        con = "" if self.contrast is None else f", contrast={self.contrast}"
        return (f"Attribution(method={self.method!r}, values={vs} {self.values.dtype}, "
                f"target={self.target}{con}, layer={self.layer!r}, seconds={self.seconds:.3f})")


@dataclass(frozen=True)
class MetricResult:
    """One metric's verdict on one attribution, per example.

    Attributes
    ----------
    metric : str
    scores : Tensor ``(B,)``
        NaN where the metric is undefined for an example (a warning says why).
    curve : Tensor ``(B, steps)`` or None
        E.g. the deletion curve or the per-step randomization similarity.
    curve_x : Tensor ``(steps,)`` or None
        The curve's x-axis (fraction of pixels removed, randomization step…).
    higher_is_better : bool
    params : Mapping
        Every parameter, defaults filled in and resolved.
    extras : Mapping
        Metric-specific details (e.g. every similarity measure of a randomization test).
    precision : str
        The arithmetic of the metric's model passes (see ``sw.evaluate``).
    """

    metric: str
    scores: torch.Tensor
    curve: torch.Tensor | None = None
    curve_x: torch.Tensor | None = None
    higher_is_better: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "extras", _frozen(self.extras))

    @property
    def mean(self) -> float:
        """Mean score over the examples where it is defined (NaN if none)."""
        s = self.scores.double()
        ok = ~torch.isnan(s)
        return float(s[ok].mean()) if bool(ok.any()) else float("nan")

    def __repr__(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        return (f"MetricResult({self.metric!r} {arrow}, mean={self.mean:.4g}, "
                f"B={self.scores.numel()})")


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for a batch, computed with the same output selection and model
    hygiene as :func:`~saliency_widgets.attribute`.

    Attributes
    ----------
    logits : Tensor ``(B, K)``
        float64, on the CPU (small; what a display or a table needs).
    probs : Tensor ``(B, K)``
        ``softmax(logits)`` in float64.
    top_classes, top_probs : Tensor ``(B, k)``
        The ``k`` most probable classes per example, most probable first.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    top_classes: torch.Tensor
    top_probs: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    def runner_up(self, target: Any = None) -> tuple[int, ...]:
        """The best class other than ``target`` (default: the predicted class), per example.

        The rule of ``contrast="runner_up"`` in :func:`~saliency_widgets.attribute`.
        """
        batch, classes = self.logits.shape
        if classes < 2:
            raise SaliencyError("a runner-up class needs a model with at least 2 classes")
        if target is None:
            t = self.logits.argmax(1)
        else:
            given = [target] * batch if isinstance(target, int) else list(target)
            if len(given) != batch or not all(isinstance(v, int) and not isinstance(v, bool)
                                              and 0 <= v < classes for v in given):
                raise SaliencyError(f"target must be one class index in 0–{classes - 1} or one "
                                    f"per example ({batch}), got {target!r}")
            t = torch.tensor(given, dtype=torch.long)
        return tuple(int(v) for v in runner_up(self.logits, t).tolist())

    def __repr__(self) -> str:
        return (f"Prediction(B={self.logits.shape[0]}, classes={self.num_classes}, "
                f"top={self.top_classes[:, 0].tolist()})")
