"""Selections as data: parameter values from the editor, cache keys, registry descriptions."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import SaliencyError
from ..model.copy import unwrap


def freeze(value: Any) -> Any:
    """A hashable, order-independent form of a parameter dict (tensors by identity)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    return value


def coerce(defaults: dict[str, Any], method: str, name: str, value: Any) -> Any:
    """A parameter value from the editor (JSON) in the type of its default."""
    if name not in defaults:
        return value  # check_params names the accepted parameters
    default = defaults[name]
    try:
        if value is None or default is None or isinstance(value, torch.Tensor):
            return value
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            return str(value)
    except (TypeError, ValueError):
        raise SaliencyError(f"{method}: {name}={value!r} is not a valid "
                            f"{type(default).__name__} (default {default!r})") from None
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def layer_choices(model: nn.Module, limit: int = 64) -> list[str]:
    """Names of modules worth explaining at (those containing a convolution), shallow first."""
    names = []
    for name, module in unwrap(model).named_modules():
        if not name or name.count(".") > 1:
            continue
        if isinstance(module, nn.modules.conv._ConvNd) or any(
                isinstance(m, nn.modules.conv._ConvNd) for m in module.modules()):
            names.append(name)
    return names[:limit]
