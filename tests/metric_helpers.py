"""Helpers shared by the metric test files (``test_metrics_*.py``): float64 inputs, the
objective computed directly with the model, and a one-pixel model."""

from __future__ import annotations

import torch
from torch import nn

import saliency_widgets as sw

try:
    from .models import Lambda
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda

F64 = torch.float64
METRICS = {m["name"]: m for m in sw.list_metrics()}


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=F64)


def objective(model: nn.Module, x: torch.Tensor, target, contrast=None) -> torch.Tensor:
    """``logit[target] − logit[contrast]`` computed directly with the model (float64)."""
    with torch.no_grad():
        out = model(x)
    t = torch.as_tensor(target).view(-1, 1)
    s = out.gather(1, t)[:, 0]
    if contrast is not None:
        s = s - out.gather(1, torch.as_tensor(contrast).view(-1, 1))[:, 0]
    return s


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def one_pixel_model(i0: int, j0: int, channels: int = 1) -> nn.Module:
    """``f(x) = x[0, i0, j0]`` (class 0) and its negative (class 1)."""
    return Lambda(lambda x: torch.stack([x[:, 0, i0, j0], -x[:, 0, i0, j0]], 1))
