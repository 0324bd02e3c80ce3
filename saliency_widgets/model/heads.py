"""Find a "global average pool → one nn.Linear" head behind a layer, by checking it numerically.

The original CAM needs the logits to be ``W · mean_ij A_ij + b`` for the layer's activation
``A``. Rather than guess from module names, one forward pass records the input and output of every
``nn.Linear`` call; the head is the one whose output *is* the logits, and it qualifies only if its
input equals the spatial mean of ``A`` (to rounding). Anything else (max pooling, a ReLU or an
MLP between, a pooled layer other than ``A``) fails that check and is refused in words.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import SaliencyError

HEAD_NEEDED = ("cam needs the logits to be one nn.Linear applied to the global average pool of "
               "layer {layer!r}'s output (Zhou et al. 2016: conv features → GAP → linear)")


@contextmanager
def record_linear_calls(root: nn.Module) -> Iterator[list[tuple[nn.Linear, torch.Tensor,
                                                                  torch.Tensor]]]:
    calls: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(module, nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor) \
                and isinstance(output, torch.Tensor):
            calls.append((module, inputs[0].detach(), output.detach()))

    handles = [m.register_forward_hook(hook) for m in root.modules()
               if isinstance(m, nn.Linear)]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _close(a: torch.Tensor, b: torch.Tensor, terms: int) -> bool:
    """Equal up to the rounding of a sum of ``terms`` values in ``a``'s dtype."""
    if a.shape != b.shape:
        return False
    eps = torch.finfo(a.dtype).eps
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(((a - b).abs() <= 8 * max(terms, 16) * eps * (scale + 1e-30)).all())


def gap_linear_head(calls: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]],
                    logits: torch.Tensor, raw: torch.Tensor, grid: torch.Tensor,
                    layer: str) -> torch.Tensor:
    """Return the head's weight ``(classes, K)`` or raise, saying what the model does instead."""
    need = HEAD_NEEDED.format(layer=layer)
    if raw.dim() != 4:
        raise SaliencyError(f"{need}; that layer returns {tuple(raw.shape)}, not a (B, K, h, w) "
                            f"map. Pass layer= the convolutional layer whose output is pooled")
    heads = [(m, i) for m, i, o in calls
             if o.numel() == logits.numel() and _close(o.reshape(logits.shape), logits, 1)]
    if not heads:
        raise SaliencyError(f"{need}; no nn.Linear produces the logits of this model. Use "
                            f"grad_cam, which equals CAM up to a constant on such heads")
    module, given = heads[-1]
    pooled = grid.mean(dim=(2, 3))
    if not _close(given.reshape(pooled.shape) if given.numel() == pooled.numel() else given,
                  pooled, grid.shape[2] * grid.shape[3]):
        raise SaliencyError(f"{need}; the input of its last linear layer (shape "
                            f"{tuple(given.shape)}) is not the spatial mean of that layer's "
                            f"output {tuple(grid.shape)}. Pass layer= the module whose output is "
                            f"pooled, or use grad_cam, which needs no such head")
    return module.weight.detach()
