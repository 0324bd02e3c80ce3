"""Registries of named methods (and later metrics): specs built from function signatures.

A spec's parameters and defaults come from the keyword-only arguments of its function, so the
documentation, ``list_methods()`` and the widget's parameter editor can never drift from the code.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import SaliencyError


@dataclass(frozen=True)
class Spec:
    """A registered method or metric: its function, how it is shown, and its parameters."""

    name: str
    fn: Callable[..., Any]
    label: str
    family: str
    output: str  # methods: "input" (B, C, H, W) or "map" (B, 1, H, W); metrics: "score"
    uses_layer: bool = False
    stochastic: bool = False
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    doc: str = ""
    higher_is_better: bool | None = None  # metrics only
    class_agnostic: bool = False  # methods whose map ignores the target: contrast= is refused

    @property
    def defaults(self) -> dict[str, Any]:
        """Each parameter's default, in signature order (a fresh dict)."""
        return dict(self._signature_defaults)

    @functools.cached_property
    def _signature_defaults(self) -> dict[str, Any]:
        # inspect.signature costs tens of µs, on every call otherwise
        sig = inspect.signature(self.fn)
        return {p.name: p.default for p in sig.parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` with defaults filled in; unknown names fail with the accepted list."""
        defaults = self.defaults
        for key in params:
            if key not in defaults:
                raise SaliencyError(unknown_param_message(self.name, key, list(defaults)))
        for key, allowed in self.choices.items():
            if key in params and params[key] not in allowed:
                raise SaliencyError(
                    f"{self.name}: {key}={params[key]!r} is not supported; "
                    f"use one of {', '.join(map(repr, allowed))}")
        return {**defaults, **params}

    def describe(self) -> dict[str, Any]:
        """A plain-data description (for ``list_methods`` and the widget)."""
        out = {"name": self.name, "label": self.label, "family": self.family,
               "output": self.output, "uses_layer": self.uses_layer,
               "stochastic": self.stochastic, "class_agnostic": self.class_agnostic,
               "params": self.defaults,
               "choices": {k: list(v) for k, v in self.choices.items()},
               "doc": self.doc}
        if self.higher_is_better is not None:
            out["higher_is_better"] = self.higher_is_better
        return out


def unknown_param_message(owner: str, key: str, accepted: list[str]) -> str:
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(accepted) if accepted else "none"
    return f"{owner} got an unknown parameter {key!r}; accepted parameters: {listed}.{hint}"


class Registry:
    """Name → spec, with close-match suggestions for typos."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, Spec] = {}

    def add(self, spec: Spec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def get(self, name: str) -> Spec:
        if not isinstance(name, str):
            raise SaliencyError(f"{self.kind} must be a name (str), got {type(name).__name__}")
        if name in self._specs:
            return self._specs[name]
        close = difflib.get_close_matches(name, list(self._specs), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise SaliencyError(f"unknown {self.kind} {name!r}{hint} "
                            f"Available: {', '.join(sorted(self._specs))}.")

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs


METHODS = Registry("method")


def method(*, label: str, family: str, output: str, uses_layer: bool = False,
           stochastic: bool = False, choices: Mapping[str, tuple[Any, ...]] | None = None,
           class_agnostic: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, x, **params)`` under its own name (registry key = function name)."""
    if output not in ("input", "map"):
        raise ValueError(f"output must be 'input' or 'map', got {output!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        METHODS.add(Spec(name=fn.__name__, fn=fn, label=label, family=family, output=output,
                         uses_layer=uses_layer, stochastic=stochastic,
                         choices=dict(choices or {}), doc=doc.split("\n\n")[0],
                         class_agnostic=class_agnostic))
        return fn

    return register


METRICS = Registry("metric")


def metric(*, label: str, family: str, higher_is_better: bool, stochastic: bool = False,
           choices: Mapping[str, tuple[Any, ...]] | None = None
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(mc, x, values, **params) -> Scored`` under its own name."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        METRICS.add(Spec(name=fn.__name__, fn=fn, label=label, family=family, output="score",
                         stochastic=stochastic, choices=dict(choices or {}),
                         doc=doc.split("\n\n")[0], higher_is_better=higher_is_better))
        return fn

    return register
