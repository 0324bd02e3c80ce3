"""Immutable records returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch


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
    layer : str or None
        Name of the resolved layer for layer-based methods.
    seed : int
    normalization : tuple or None
        ``(mean, std)`` used for pixel-space named baselines.
    seconds : float
        Wall time of the computation.
    extras : Mapping
        Method-specific diagnostics, e.g. IG's ``completeness_gap`` or occlusion's
        ``uncovered_pixels``.
    """

    values: torch.Tensor
    method: str
    target: tuple[int, ...]
    contrast: tuple[int, ...] | None
    params: Mapping[str, Any] = field(default_factory=dict)
    layer: str | None = None
    seed: int = 0
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    seconds: float = 0.0
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "extras", _frozen(self.extras))

    def __repr__(self) -> str:  # tensors make the default repr unreadable
        vs = tuple(self.values.shape)
        con = "" if self.contrast is None else f", contrast={self.contrast}"
        return (f"Attribution(method={self.method!r}, values={vs} {self.values.dtype}, "
                f"target={self.target}{con}, layer={self.layer!r}, seconds={self.seconds:.3f})")
