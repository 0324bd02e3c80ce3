"""Registries of named methods and metrics: specs that own every parameter.

A spec's parameters and defaults come from the keyword-only arguments of its function; the
decorator declares what the signature cannot say: the allowed values of a choice (``choices=``),
a rule for the values (``validators=``, see :mod:`.checks`), parameters the widget cannot edit
(``python_only=``), the ``layer`` of layer methods, and for a method that wraps another
(SmoothGrad) which parameters belong to the base. :meth:`Spec.check_params` enforces all of it
once, before the function runs, and :meth:`Spec.describe` hands it to ``list_methods()`` and the
widget's parameter editor, so the documentation, the checks and the editor cannot drift apart.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .checks import EDITABLE_TYPES, Check, Open, boolean
from .errors import SaliencyError

Choices = tuple[Any, ...] | Open | Callable[[], tuple[Any, ...]]

LAYER_NOTE = ("a module name from sw.list_layers(model), a module, or None to choose the last "
              "convolutional block (ViT: the last block's ln_1) automatically")
_PLAIN = {"int", "float", "bool", "str"}


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default and everything the registry knows about its values."""

    name: str
    default: Any
    type: str  # "int", "float", "bool", "str", "int_pair", "layer", "dict" or "any"
    check: Check | None = None
    choices: Choices | None = None
    editable: bool = True
    note: str = ""
    call: bool = False  # an argument of the call (sw.attribute's layer=), not of the function

    def allowed(self) -> tuple[Any, ...] | None:
        """The declared choices (names only, for open ones), or None."""
        if self.choices is None:
            return None
        if isinstance(self.choices, Open):
            return self.choices.names
        return tuple(self.choices() if callable(self.choices) else self.choices)

    @property
    def also(self) -> str:
        """What an open choice accepts besides its names, in words ("" for closed ones)."""
        return self.choices.also if isinstance(self.choices, Open) else ""

    @property
    def nullable(self) -> bool:
        """Whether None is accepted (the method then resolves it: "auto")."""
        allowed = self.allowed() or ()
        return self.default is None or None in allowed or bool(self.check and self.check.none)

    def validate(self, owner: str, value: Any) -> Any:
        """Return the checked value, or raise a :class:`SaliencyError` naming the fix."""
        allowed = self.allowed()
        if value is None and self.nullable:
            return value
        if allowed is not None and (not self.also or isinstance(value, str)):
            if _member(value, allowed):
                return value
            if self.check is None or isinstance(value, str):
                raise SaliencyError(choice_message(owner, self.name, value, allowed, self.also))
        if self.check is not None:
            return self.check(owner, self.name, value)
        return value

    def describe(self) -> dict[str, Any]:
        """Plain data for the widget's editor."""
        allowed = self.allowed()
        return {"default": self.default, "type": self.type, "nullable": self.nullable,
                "choices": None if allowed is None else list(allowed),
                "also": self.also or None,
                "bounds": self.check.bounds() if self.check is not None else None,
                "editable": self.editable, "note": self.note, "call": self.call}


def _member(value: Any, allowed: tuple[Any, ...]) -> bool:
    """``value in allowed`` for plain values; never compares tensors or arrays elementwise."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return any(type(value) is type(a) and value == a for a in allowed)
    return False


def choice_message(owner: str, name: str, value: Any, allowed: tuple[Any, ...],
                   also: str = "") -> str:
    listed = ", ".join(map(repr, allowed))
    if also:
        listed += f", or {also}"
    names = [a for a in allowed if isinstance(a, str)]
    close = (difflib.get_close_matches(value, names, n=1, cutoff=0.5)
             if isinstance(value, str) else [])
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{owner}: {name}={value!r} is not supported; use one of {listed}.{hint}"


@dataclass(frozen=True)
class Spec:
    """A registered method or metric: its function, how it is shown, and its parameters."""

    name: str
    fn: Callable[..., Any]
    label: str
    family: str
    output: str  # methods: "input" (B, C, H, W) or "map" (B, 1, H, W); metrics: "score"
    params: Mapping[str, Param] = field(default_factory=dict)
    stochastic: bool = False
    doc: str = ""
    higher_is_better: bool | None = None  # metrics only
    class_agnostic: bool = False  # methods whose map ignores the target: contrast= is refused
    # (parameter naming the wrapped method, parameter holding the base's own parameters)
    wraps: tuple[str, str] | None = None
    # methods whose map sums to f(x) − f(baseline), so the completeness metric applies
    sums_to_baseline: bool = False
    # methods that paint per-segment values, kept in the record's extras["segment_values"]
    segment_values: bool = False

    @property
    def uses_layer(self) -> bool:
        """Whether the method reads a layer (declares the ``layer`` parameter)."""
        return "layer" in self.params

    # Where an attack (sw.attack) gets its step direction: "direct" (the map varies with x through
    # the activations), "surrogate" (only through ∇ₓf, piecewise constant on ReLU networks: a
    # softplus copy's derivative), or "none: <why>" (no direction at all; the attack says why).
    derivative: str = "direct"

    @property
    def no_derivative(self) -> str | None:
        """Why the map has no input derivative an attack could follow (None: it has one)."""
        return self.derivative[len("none: "):] if self.derivative.startswith("none: ") else None

    @property
    def defaults(self) -> dict[str, Any]:
        """Each function parameter's default, in signature order (``layer`` is the call's)."""
        return {n: p.default for n, p in self.params.items() if not p.call}

    @property
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """The closed choices: parameters that take one of a fixed set of values."""
        out = {}
        for n, p in self.params.items():
            allowed = p.allowed()
            if allowed is not None and not p.also:
                out[n] = allowed
        return out

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` checked, with defaults filled in.

        Unknown names fail with the accepted list and a close match, a value outside declared
        choices with the choices and a close match, and a value breaking a declared rule with
        the rule. A wrapping method's other parameters are checked against its base method and
        returned nested under the base's parameter dict.
        """
        own = {n: p for n, p in self.params.items() if not p.call}
        for key in params:
            if key in self.params and self.params[key].call:
                raise SaliencyError(f"{self.name}: {key}= is an argument of the call, not a "
                                    f"parameter of the method; pass it as sw.attribute(..., "
                                    f"{key}=...)")
            if key not in own and self.wraps is None:
                raise SaliencyError(unknown_param_message(self.name, key, list(self.params)))
        full = {**self.defaults, **{k: own[k].validate(self.name, v)
                                    for k, v in params.items() if k in own}}
        if self.wraps is None:
            return full
        into = self.wraps[1]
        base = self.base(full)
        assert base is not None
        extra = {**{k: v for k, v in params.items() if k not in own}, **(full[into] or {})}
        for key in extra:
            if key not in base.defaults:
                raise SaliencyError(unknown_param_message(
                    f"{self.name} (base {base.name!r})", key, list(own) + list(base.defaults)))
        # The base's parameters stay nested: a name may be both ours and the base's (samples).
        return {**full, into: base.check_params(extra)}

    def base(self, full: Mapping[str, Any]) -> Spec | None:
        """The method a wrapping method runs for checked parameters ``full`` (None: no wrap)."""
        if self.wraps is None:
            return None
        return METHODS.get(full.get(self.wraps[0], self.params[self.wraps[0]].default))

    def acting(self, full: Mapping[str, Any]) -> Spec:
        """The spec whose nature (layer, class-agnostic) a call with ``full`` has: the wrapped
        base for SmoothGrad, else this one."""
        return self.base(full) or self

    def describe(self) -> dict[str, Any]:
        """A plain-data description (for ``list_methods``/``list_metrics`` and the widget).

        ``params`` maps each parameter to its default and ``choices`` each closed-choice
        parameter to its values; ``parameters`` has everything the widget's editor needs per
        parameter (default, type, nullable, choices and what else an open choice accepts,
        bounds, whether the widget can edit it, a note); ``wraps`` names the parameter that
        selects a wrapped method and the one that holds that method's own parameters.
        """
        out: dict[str, Any] = {
            "name": self.name, "label": self.label, "family": self.family,
            "output": self.output, "uses_layer": self.uses_layer,
            "stochastic": self.stochastic, "class_agnostic": self.class_agnostic,
            "derivative": self.derivative,
            "params": {n: p.default for n, p in self.params.items()},
            "choices": {k: list(v) for k, v in self.choices.items()},
            "parameters": {n: p.describe() for n, p in self.params.items()},
            "wraps": (None if self.wraps is None
                      else {"param": self.wraps[0], "params": self.wraps[1]}),
            "doc": self.doc}
        if self.output != "score":
            out["sums_to_baseline"] = self.sums_to_baseline
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


def _type_of(default: Any, annotation: Any, check: Check | None, choices: Any) -> str:
    if check is not None:
        return check.type
    if choices is not None:
        return "str"
    text = str(annotation).replace(" | None", "").replace("Optional[", "").rstrip("]")
    if text in _PLAIN:
        return text
    if isinstance(default, bool):
        return "bool"
    for kind in (int, float, str):
        if isinstance(default, kind):
            return kind.__name__
    return "any"


def declare(fn: Callable[..., Any], *, choices: Mapping[str, Choices] | None = None,
            validators: Mapping[str, Check] | None = None,
            python_only: Mapping[str, str] | None = None,
            notes: Mapping[str, str] | None = None, layer: bool = False) -> dict[str, Param]:
    """Every parameter of ``fn`` (its keyword-only arguments) with its declarations.

    Raises ``ValueError`` at registration for a declaration naming no parameter, a default that
    breaks its own rule, or an editable parameter whose type the widget cannot edit.
    """
    choices, validators = dict(choices or {}), dict(validators or {})
    python_only, notes = dict(python_only or {}), dict(notes or {})
    sig = inspect.signature(fn)
    names = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    every = set(names) | ({"layer"} if layer else set())
    for declared in (choices, validators, python_only, notes):
        stray = set(declared) - every
        if stray:
            raise ValueError(f"{fn.__name__}: declarations for unknown parameters {sorted(stray)}")
    out: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        check = validators.get(p.name)
        kind = _type_of(p.default, p.annotation, check, choices.get(p.name))
        if check is None and kind == "bool":  # the signature says bool: refuse "no", 0.5, …
            check = boolean
        if check is not None and p.default is None:  # None is the default: "automatic"
            check = check.or_none()
        out[p.name] = Param(p.name, p.default, kind, check, choices.get(p.name),
                            editable=p.name not in python_only,
                            note=(f"Python only: {python_only[p.name]}" if p.name in python_only
                                  else notes.get(p.name, "")))
    if layer:
        out["layer"] = Param("layer", None, "layer", note=notes.get("layer", LAYER_NOTE),
                             call=True)
    for param in out.values():
        if param.editable and param.type not in EDITABLE_TYPES:
            raise ValueError(f"{fn.__name__}: parameter {param.name!r} has no type the widget "
                             f"can edit ({param.type}); declare a validator or choices, or "
                             f"python_only with a note")
        if not param.call and param.default is not None:
            try:
                param.validate(fn.__name__, param.default)
            except SaliencyError as err:
                raise ValueError(f"{fn.__name__}: the default breaks its own rule: {err}") \
                    from None
    return out


METHODS = Registry("method")


def method(*, label: str, family: str, output: str, uses_layer: bool = False,
           stochastic: bool = False, choices: Mapping[str, Choices] | None = None,
           validators: Mapping[str, Check] | None = None,
           python_only: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None,
           class_agnostic: bool = False, wraps: tuple[str, str] | None = None,
           sums_to_baseline: bool = False, segment_values: bool = False,
           derivative: str = "direct") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, x, **params)`` under its own name (registry key = function name).

    ``uses_layer`` declares the call's ``layer`` parameter; ``wraps=("base", "base_params")``
    says the method runs the method named by ``base`` with the parameters in ``base_params``
    (or passed flat); ``derivative`` says where an attack gets its step direction (see
    :class:`Spec`); the rest is described in :func:`declare` and :class:`Spec`.
    """
    if output not in ("input", "map"):
        raise ValueError(f"output must be 'input' or 'map', got {output!r}")
    if derivative not in ("direct", "surrogate") and not (
            derivative.startswith("none: ") and len(derivative) > len("none: ")):
        raise ValueError(f"derivative must be 'direct', 'surrogate' or 'none: <why>', got "
                         f"{derivative!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        params = declare(fn, choices=choices, validators=validators, python_only=python_only,
                         notes=notes, layer=uses_layer)
        METHODS.add(Spec(name=fn.__name__, fn=fn, label=label, family=family, output=output,
                         params=params, stochastic=stochastic, doc=doc.split("\n\n")[0],
                         class_agnostic=class_agnostic, wraps=wraps,
                         sums_to_baseline=sums_to_baseline, segment_values=segment_values,
                         derivative=derivative))
        return fn

    return register


METRICS = Registry("metric")


def metric(*, label: str, family: str, higher_is_better: bool, stochastic: bool = False,
           choices: Mapping[str, Choices] | None = None,
           validators: Mapping[str, Check] | None = None,
           python_only: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(mc, x, values, **params) -> Scored`` under its own name."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        params = declare(fn, choices=choices, validators=validators, python_only=python_only,
                         notes=notes)
        METRICS.add(Spec(name=fn.__name__, fn=fn, label=label, family=family, output="score",
                         params=params, stochastic=stochastic, doc=doc.split("\n\n")[0],
                         higher_is_better=higher_is_better))
        return fn

    return register
