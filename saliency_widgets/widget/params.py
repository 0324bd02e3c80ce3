"""Parameter values from the editor (JSON) in the types the registry declares; cache-key forms.

The registry describes every parameter (``list_methods()[i]["parameters"]``): its type, its
choices (which may mix types, e.g. ``False, True, "auto"``), whether None means automatic, and
whether the widget can edit it. A value typed in the browser arrives as JSON (a select's value is
a string); ``coerce`` turns it back into what ``sw.attribute`` takes. Values the widget cannot
edit (tensors, reference sets) come from Python and are passed through untouched:
``split_params`` sorts what ``sw.show(params=...)`` gives into the two.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..api import describe_method
from ..errors import SaliencyError


def freeze(value: Any) -> Any:
    """A hashable, order-independent form of a parameter dict (tensors by identity)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    return value


def coerce(info: Mapping[str, Any] | None, method: str, name: str, value: Any) -> Any:
    """``value`` from the editor in the type the registry declares for ``method``'s ``name``.

    ``info`` is that parameter's description (None: unknown name, left for the engine's check
    to name the accepted parameters). Invalid text raises a :class:`SaliencyError` in words.
    """
    if info is None or value is None or isinstance(value, torch.Tensor):
        return value
    choices = info.get("choices")
    if choices:
        for choice in choices:  # a select sends str(choice); JS writes true/false in lower case
            if choice == value or str(choice).lower() == str(value).strip().lower():
                return choice
        if not info.get("also"):
            return value  # not one of them: the registry refuses it with the list
    kind = info.get("type")
    try:
        if kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "int":
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "float":
            return float(value)
        if kind == "int_pair" and isinstance(value, str):
            parts = [int(p) for p in value.replace("×", ",").replace("x", ",").split(",") if p]
            return parts[0] if len(parts) == 1 else tuple(parts)
        if kind == "str" and not isinstance(value, str):
            return value  # e.g. a number for an open choice (a baseline value)
        if kind == "str" and info.get("also"):
            try:  # an open choice given as text: a number means a number
                return float(value)
            except ValueError:
                return value
    except (TypeError, ValueError):
        raise SaliencyError(f"{method}: {name}={value!r} is not a valid {kind} "
                            f"(default {info.get('default')!r})") from None
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def split_params(registry: dict[str, dict[str, Any]], params: dict[str, dict[str, Any]],
                 references: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``params`` given to :func:`show`, split into what the editor can show (JSON: the
    ``params`` trait) and what only Python holds (tensors, reference sets, lists of layers).
    ``references`` goes to every method that takes a reference set."""
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise SaliencyError("params must map method names to dicts of parameters, e.g. "
                            "{'integrated_gradients': {'steps': 64}}")
    editable: dict[str, dict[str, Any]] = {}
    python: dict[str, dict[str, Any]] = {}
    for method, given in params.items():
        if method not in registry:
            describe_method(method)  # raises with a "did you mean"
        info = registry[method]["parameters"]
        for name, value in given.items():
            p = info.get(name)
            plain = value is None or isinstance(value, (bool, int, float, str))
            if p is not None and p["editable"] and plain:
                editable.setdefault(method, {})[name] = value
            else:
                python.setdefault(method, {})[name] = value
    if references is not None:
        takers = [m for m, d in registry.items() if "references" in d["parameters"]]
        for method in takers:
            python.setdefault(method, {}).setdefault("references", references)
    return editable, python


def describe_value(value: Any) -> str:
    """A value only Python holds, in words for the editor's note."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        return f"a {'×'.join(map(str, value.shape))} {dtype} tensor"
    if isinstance(value, (list, tuple)):
        return f"{', '.join(map(str, value))}"
    return repr(value)
