"""Cache keys of the trust views: everything a badge, a trivial baseline, a sanity check or a
path depends on. Each has ``method`` (the board forgets failures and cancels by method) and
``label`` (the status line says what is being computed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..panel import PanelKey


def mask_hash(masks: Any) -> str:
    """A short digest of the masks' shape and bits ("" without masks)."""
    if masks is None:
        return ""
    a = np.ascontiguousarray(masks.detach().cpu().numpy().astype(np.bool_))
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class MetricKey:
    """One badge: a metric (with its parameters) of one panel's map, on these masks."""

    panel: PanelKey
    metric: str
    params: tuple[Any, ...]
    masks: str
    seed: int
    label: str = field(default="", compare=False)

    @property
    def method(self) -> str:
        return self.panel.method


@dataclass(frozen=True)
class TrivialKey:
    """A trivial map's score (``kind``: random or edge) under one objective and model."""

    kind: str
    metric: str
    params: tuple[Any, ...]
    target: int
    contrast: int | None
    model: tuple[int, int]
    masks: str
    seed: int
    label: str = field(default="", compare=False)
    method: str = ""  # belongs to no panel


@dataclass(frozen=True)
class _PanelWork:
    """Work on one panel's method with one seed (dataclass equality also compares the class, so
    the subclasses' keys never collide)."""

    panel: PanelKey
    seed: int
    label: str = field(default="", compare=False)

    @property
    def method(self) -> str:
        return self.panel.method


class SanityKey(_PanelWork):
    """The cascading randomization of one panel's method."""


class PathKey(_PanelWork):
    """The attribution path of one panel's map."""
