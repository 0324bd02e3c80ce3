"""A cheap fingerprint of a model's weights: has the model changed since we last looked?

The widget keys its cache and its predictions on it, so a cell that trains the model or loads
other weights never leaves a stale map on screen. It reads each parameter's and buffer's identity,
storage address and version counter (``Tensor._version``, bumped by every in-place write through
autograd-visible ops: optimizer steps, ``load_state_dict``, ``copy_`` under ``no_grad``). Writes
through ``.data`` bump nothing and are not seen.
"""

from __future__ import annotations

from itertools import chain

from torch import nn

from .copy import unwrap


def fingerprint(model: nn.Module) -> int:
    """Return an int that changes whenever a parameter or buffer is replaced or written in place
    (except through ``.data``). About 1 µs per tensor."""
    net = unwrap(model)
    return hash(tuple((id(t), t.data_ptr(), t._version)
                      for t in chain(net.parameters(), net.buffers())))
