"""numpy → ``{view, dtype, shape}``: how arrays travel to the browser (binary buffers, never JSON).

ipywidgets lifts every ``memoryview`` nested in a trait value out of the JSON message and sends it
as a binary buffer; it arrives in JavaScript as a ``DataView`` at the same place in the value.
``js/src/codecs.ts`` turns it back into a typed array (respecting ``byteOffset``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The dtypes js/src/codecs.ts can decode. float64 is sent as float32 (canvas maths is float32).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")


def to_payload(array: Any) -> dict[str, Any]:
    """Return ``{"view": memoryview, "dtype": str, "shape": list[int]}`` for a numeric array.

    The array is made C-contiguous (row-major, as JS indexes it) and float64 becomes float32.
    """
    a = np.asarray(array)
    if a.dtype == np.float64 or a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.dtype.name not in DTYPES:
        raise TypeError(f"cannot send an array of dtype {a.dtype} to the widget; "
                        f"supported: {', '.join(DTYPES)} (and float64, sent as float32)")
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return {"view": a.data.cast("B"), "dtype": a.dtype.name,
            "shape": [int(s) for s in a.shape]}


def from_payload(payload: dict[str, Any]) -> np.ndarray:
    """Return the array a payload describes (a read-only view; for tests and saved state)."""
    view = payload["view"]
    buf = view.tobytes() if not isinstance(view, (bytes, bytearray)) else bytes(view)
    flat: np.ndarray = np.frombuffer(buf, dtype=np.dtype(payload["dtype"]))
    shaped: np.ndarray = flat.reshape(tuple(int(s) for s in payload["shape"]))
    return shaped


def payload_nbytes(value: Any) -> int:
    """Total bytes of the binary buffers inside a (nested) payload value."""
    if isinstance(value, dict):
        return sum(payload_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(payload_nbytes(v) for v in value)
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0
