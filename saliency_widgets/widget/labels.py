"""Class names for the widget: a list, a torchvision weights enum, or None (class indices)."""

from __future__ import annotations

import enum
from typing import Any, Mapping, Sequence

from ..errors import SaliencyError


def _categories(weights: Any) -> list[str] | None:
    """``meta["categories"]`` of a torchvision weights member (or of an enum class's default)."""
    if isinstance(weights, type) and issubclass(weights, enum.Enum):
        member = getattr(weights, "DEFAULT", None) or next(iter(weights), None)
        weights = member
    meta = getattr(weights, "meta", None)
    if isinstance(meta, Mapping) and "categories" in meta:
        return [str(c) for c in meta["categories"]]
    return None


def resolve_labels(labels: Any, num_classes: int) -> list[str]:
    """Return exactly ``num_classes`` display names.

    ``labels`` may be None (the class indices as text), a sequence of names, a mapping from
    index to name (missing indices show the index), or a torchvision weights enum member or
    class such as ``ResNet18_Weights.DEFAULT`` (its ``meta["categories"]``, no download needed).
    """
    if labels is None:
        return [str(i) for i in range(num_classes)]
    from_weights = _categories(labels)
    if from_weights is not None:
        names = from_weights
        source = f"{type(labels).__name__}.meta['categories']"
    elif isinstance(labels, Mapping):
        out = [str(i) for i in range(num_classes)]
        for key, name in labels.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < num_classes:
                raise SaliencyError(f"labels has key {key!r}, but class indices of this model "
                                    f"are 0–{num_classes - 1}")
            out[key] = str(name)
        return out
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        names = [str(c) for c in labels]
        source = "labels"
    else:
        raise SaliencyError(f"labels must be None, a list of class names, a dict index → name, "
                            f"or a torchvision weights enum (e.g. ResNet18_Weights.DEFAULT); "
                            f"got {type(labels).__name__}")
    if len(names) != num_classes:
        raise SaliencyError(f"{source} has {len(names)} names but the model has {num_classes} "
                            f"classes; give one name per class (or labels=None for indices)")
    return names
