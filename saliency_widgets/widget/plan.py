"""From the widget's selection to work: a typed cache key and the engine's arguments, per method.

Pure: it reads a :class:`Selection` snapshot and the registry's defaults, never the widget, so
what a panel shows depends on nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..api import method_params
from .panel import PanelKey
from .params import coerce, freeze


@dataclass(frozen=True)
class Selection:
    """What the maths depends on, as the widget holds it now."""

    params: Mapping[str, Mapping[str, Any]]
    """``{method: {param: value}}`` as the editor sent them (JSON types), with the values only
    Python can give (tensors, reference sets) merged in."""
    target: int
    contrast_mode: str          # "none", "runner_up" or "class"
    contrast: int | None        # the resolved class (the runner-up under the current weights)
    model: tuple[int, int]      # the weights' fingerprint and the refresh epoch


def plan(selection: Selection, method: str, registry: Mapping[str, Mapping[str, Any]]
         ) -> tuple[PanelKey, dict[str, Any]]:
    """Return ``method``'s cache key under ``selection`` and the keyword arguments of
    ``sw.attribute`` that compute it. ``registry`` maps each method's name to its description
    (``list_methods()``). Bad parameter values raise ``SaliencyError`` in words."""
    info = registry[method]["parameters"]
    given = dict(selection.params.get(method, {}))
    layer = given.pop("layer", None) or None
    typed = {k: coerce(info.get(k), method, k, v) for k, v in given.items()}
    wraps = registry[method].get("wraps")
    if wraps and isinstance(typed.get(wraps["params"]), Mapping):
        # a wrapper's nested parameters (SmoothGrad's base_params) typed by the base's own
        base = str(typed.get(wraps["param"], info[wraps["param"]]["default"]))
        base_info = registry[base]["parameters"] if base in registry else {}
        typed[wraps["params"]] = {k: coerce(base_info.get(k), base, k, v)
                                  for k, v in typed[wraps["params"]].items()}
    full = method_params(method, typed)  # fills defaults: equal settings share a cache key
    contrast = None if selection.contrast_mode == "none" else selection.contrast
    key = PanelKey(method=method, params=freeze(full), layer=freeze(layer),
                   target=selection.target,
                   contrast=contrast, model=selection.model)
    # the engine resolves the runner-up itself, from the weights it explains
    engine_contrast = "runner_up" if selection.contrast_mode == "runner_up" else contrast
    kwargs = {"method": method, "target": selection.target, "contrast": engine_contrast,
              "layer": layer, **typed}
    return key, kwargs
