"""Declared rules for parameter values, checked once by the registry and described to the widget.

A method or metric declares ``validators={"steps": positive_int}``; :meth:`Spec.check_params`
runs the check before the function is called, so method bodies hold no type checks of their own,
and ``describe()`` hands the same rule (type, bounds, whether ``None`` means "automatic") to the
widget's parameter editor. A refused value reads ``"{owner}: {name} must be {words}, got
{value!r}"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Integral, Real
from typing import Any, Callable

from .errors import SaliencyError

# Parameter types the widget's editor can show: a number field, a checkbox, a text or choice
# field, or a module menu. Anything else must be declared Python-only.
EDITABLE_TYPES = ("int", "float", "bool", "str", "int_pair", "layer")


@dataclass(frozen=True)
class Check:
    """One parameter's rule: what the value is (``type``), its bounds, and its error wording."""

    type: str  # one of EDITABLE_TYPES, or "dict" / "any"
    words: str  # "an int ≥ 1"
    test: Callable[[Any], bool]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: bool = False  # None is accepted: the method resolves it ("auto")

    def __call__(self, owner: str, name: str, value: Any) -> Any:
        """Return ``value`` (an int as a Python int) or raise a :class:`SaliencyError`."""
        if value is None and self.none:
            return None
        if not self.test(value):
            also = " or None" if self.none else ""
            raise SaliencyError(f"{owner}: {name} must be {self.words}{also}, got {value!r}")
        if self.type == "int":
            return int(value)
        if self.type == "bool":
            return bool(value)
        return value

    def or_none(self) -> Check:
        """The same rule, with ``None`` accepted too (a default the method resolves)."""
        return replace(self, none=True)

    def bounds(self) -> dict[str, Any] | None:
        """``{"min", "max", "min_inclusive", "max_inclusive"}`` or None when unbounded."""
        if self.low is None and self.high is None:
            return None
        return {"min": self.low, "max": self.high, "min_inclusive": not self.low_open,
                "max_inclusive": not self.high_open}


@dataclass(frozen=True)
class Open:
    """Named choices that also admit other values (numbers, tensors): only strings are checked
    against the names; ``also`` says in words what else is accepted."""

    names: tuple[Any, ...]
    also: str


def is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int) -> Check:
    """An int ≥ ``minimum`` (bools refused)."""
    return Check("int", f"an int ≥ {minimum}", lambda v: is_int(v) and v >= minimum,
                 low=minimum)


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, words: str) -> Check:
    """A finite real number within the bounds (bools refused)."""

    def test(v: Any) -> bool:
        if not is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return Check("float", words, test, low=low, high=high, low_open=low_open,
                 high_open=high_open)


def int_pair(what: str) -> Check:
    """A positive int, or a pair of them (``what`` names the pair, e.g. ``(height, width)``)."""

    def test(v: Any) -> bool:
        pair = (v, v) if is_int(v) else v
        return (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(is_int(p) and p >= 1 for p in pair))

    return Check("int_pair", f"a positive int or {what}", test, low=1)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool too


positive_int = integer(1)
nonnegative_int = integer(0)
positive = number(0, low_open=True, words="a positive number")
nonnegative = number(0, words="a number ≥ 0")
unit_interval = number(0, 1, words="a number in [0, 1]")
probability = number(0, 1, low_open=True, words="a probability in (0, 1]")
fraction = number(0, 1, low_open=True, words="a fraction in (0, 1]")
boolean = Check("bool", "True or False", _is_bool)
mapping = Check("dict", "a dict", lambda v: isinstance(v, dict))
