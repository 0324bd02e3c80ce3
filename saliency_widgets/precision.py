"""Arithmetic precision of a call: ``"fp32"`` (IEEE), ``"tf32"`` or ``"bf16"`` (autocast).

* ``"fp32"`` — IEEE float32 everywhere: TF32 off for cuBLAS matmuls and cuDNN convolutions, and
  float32 matmuls at ``"highest"`` precision (oneDNN too). A map then equals the CPU's up to
  rounding. PyTorch's own default on a GPU is *not* this: cuDNN convolutions use TF32.
* ``"tf32"`` — TensorFloat-32 (10-bit mantissa products, float32 sums) for CUDA matmuls and
  convolutions; faster on Ampere and later GPUs. The CPU has no TF32: there it is ``"fp32"``.
* ``"bf16"`` — the model's forward passes run under ``torch.autocast(dtype=torch.bfloat16)``
  (and so do their backward passes); the method's own arithmetic stays in the input's dtype,
  and the flags are as for ``"fp32"``.

The TF32 switches are process-wide, so a call sets them and puts back exactly what it found when
it ends (also after an exception). While it runs, another thread of the same process sees them
too; calls in different threads that need different settings wait for each other, calls that
need the same ones run together.
"""

from __future__ import annotations

import contextlib
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from .errors import SaliencyError

MODES = ("fp32", "tf32", "bf16")

# The fp32 precision switches of torch ≥ 2.9, generic before specific (a generic one overwrites
# the specific ones below it). Older versions have only the legacy allow_tf32 booleans.
_NEW_API = (("fp32_precision",), ("cuda", "matmul", "fp32_precision"),
            ("cudnn", "fp32_precision"), ("cudnn", "conv", "fp32_precision"),
            ("cudnn", "rnn", "fp32_precision"), ("mkldnn", "fp32_precision"),
            ("mkldnn", "matmul", "fp32_precision"), ("mkldnn", "conv", "fp32_precision"),
            ("mkldnn", "rnn", "fp32_precision"))


def check_mode(precision: Any) -> str:
    if precision not in MODES:
        raise SaliencyError(f"precision must be one of {', '.join(map(repr, MODES))}, got "
                            f"{precision!r}: 'fp32' is IEEE float32 (TF32 off), 'tf32' lets CUDA "
                            f"matmuls and convolutions use TensorFloat-32, 'bf16' runs the model "
                            f"under bfloat16 autocast")
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None


def _get(path: tuple[str, ...]) -> Any:
    obj: Any = torch.backends
    for part in path:
        obj = getattr(obj, part)
    return obj


def _set(path: tuple[str, ...], value: Any) -> None:
    obj: Any = torch.backends
    for part in path[:-1]:
        obj = getattr(obj, part)
    setattr(obj, path[-1], value)


def _probe_new_api() -> bool:
    try:
        _get(("cuda", "matmul", "fp32_precision"))
        _get(("cudnn", "conv", "fp32_precision"))
        return True
    except (AttributeError, RuntimeError):
        return False


_HAS_NEW_API = _probe_new_api()


def _available() -> frozenset[str]:
    found = set()
    for path in _NEW_API:
        with contextlib.suppress(AttributeError, RuntimeError):
            _get(path)
            found.add(".".join(path))
    return frozenset(found)


_AVAILABLE = _available() if _HAS_NEW_API else frozenset()


def _new_api() -> bool:
    return _HAS_NEW_API


def _read(keys: Any) -> dict[str, Any]:
    """The current values of the switches ``keys`` (snapshot keys)."""
    out: dict[str, Any] = {}
    for key in keys:
        if key == "matmul":
            out[key] = torch.get_float32_matmul_precision()
        else:
            try:
                out[key] = _get(tuple(key.split(".")))
            except (AttributeError, RuntimeError):
                out[key] = None
    return out


def snapshot() -> dict[str, Any]:
    """Every process-wide switch the modes touch, as it is now.

    With torch ≥ 2.9 these are the ``fp32_precision`` switches alone: the legacy getters
    (``allow_tf32``, ``get_float32_matmul_precision``) are views of them that refuse to answer
    once both APIs were used, and setting the legacy ones would write state the new ones cannot
    read back.
    """
    if _new_api():
        state: dict[str, Any] = {}
        for path in _NEW_API:
            with contextlib.suppress(AttributeError, RuntimeError):  # a switch this torch lacks
                state[".".join(path)] = _get(path)
        return state
    return {"matmul": torch.get_float32_matmul_precision(),
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}


def restore(state: dict[str, Any]) -> None:
    """Put back a :func:`snapshot`, in its order (generic switches before specific ones)."""
    for key, value in state.items():
        if key == "matmul":
            torch.set_float32_matmul_precision(value)
        else:
            _set(tuple(key.split(".")), value)


def _wanted(precision: str, device: str) -> dict[str, Any]:
    """The switches ``precision`` needs on a ``device`` ("cpu" or "cuda"), in :func:`snapshot`'s
    keys. A CPU call leaves the CUDA switches alone and a CUDA call oneDNN's."""
    tf32 = precision == "tf32" and device == "cuda"
    if not _new_api():
        wanted: dict[str, Any] = {"matmul": "high" if tf32 else "highest"}
        if device == "cuda":
            wanted.update({"cuda.matmul.allow_tf32": tf32, "cudnn.allow_tf32": tf32})
        return wanted
    wanted = {}
    if device == "cuda":
        value = "tf32" if tf32 else "ieee"
        wanted.update({"cuda.matmul.fp32_precision": value, "cudnn.conv.fp32_precision": value,
                       "cudnn.rnn.fp32_precision": value})
    else:
        wanted.update({f"mkldnn.{op}.fp32_precision": "ieee" for op in ("matmul", "conv", "rnn")})
    # a switch this torch build lacks is not asked for
    return {k: v for k, v in wanted.items() if k in _AVAILABLE}


def _satisfied(state: dict[str, Any], wanted: dict[str, Any]) -> bool:
    # "none" is "not set": the default, IEEE for cuBLAS matmuls and oneDNN (cuDNN's is TF32)
    def same(key: str, value: Any) -> bool:
        have = state.get(key)
        return have == value or (value == "ieee" and have == "none"
                                 and not key.startswith("cudnn"))
    return all(same(k, v) for k, v in wanted.items())


class _Switches:
    """Who holds the process-wide switches, with which settings, and what to put back."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.wanted: dict[str, Any] | None = None
        self.holders: dict[int, int] = {}  # thread id → blocks it holds
        self.saved: dict[str, Any] | None = None


_SWITCHES = _Switches()


@contextmanager
def switches(precision: str, device: torch.device | str) -> Iterator[None]:
    """Set the switches ``precision`` needs on ``device`` for the duration of the block.

    A nested block in a thread that already holds the switches, with other settings, applies
    them on top and restores the outer ones when it ends; another thread that needs other
    settings waits until no block holds the switches.
    """
    wanted = _wanted(precision, torch.device(device).type)
    sw, me = _SWITCHES, threading.get_ident()
    with sw.cond:
        nested = sw.holders.get(me, 0) > 0 and sw.wanted != wanted
        if not nested:
            while sw.holders and sw.wanted != wanted:
                sw.cond.wait()
            if not sw.holders:
                # usually the switches are already right: read only those first
                sw.saved = None if _satisfied(_read(wanted), wanted) else snapshot()
                if sw.saved is not None:
                    _apply(wanted)
                sw.wanted = wanted
            sw.holders[me] = sw.holders.get(me, 0) + 1
    if nested:  # same thread, other settings: a stack (the other holders see them meanwhile)
        outer = snapshot()
        _apply(wanted)
        try:
            yield
        finally:
            restore(outer)
        return
    try:
        yield
    finally:
        with sw.cond:
            sw.holders[me] -= 1
            if not sw.holders[me]:
                del sw.holders[me]
            if not sw.holders:
                if sw.saved is not None:
                    restore(sw.saved)
                sw.wanted = sw.saved = None
                sw.cond.notify_all()


def _apply(wanted: dict[str, Any]) -> None:
    restore(wanted)  # the same writes, in the same order
