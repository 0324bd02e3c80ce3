"""Tiny, deterministic test models shared by the test files.

Every builder takes a ``seed`` (weights come from a private ``torch.Generator``, so the global RNG
is never touched) and a ``dtype`` (float64 by default: the analytic identities are checked to
~1e-12). Models accept any spatial size unless noted. Keep this module small and stable: other
test files import from it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fill_", "linear_model", "bias_free_relu_cnn", "gap_head_cnn", "smooth_cnn",
           "Lambda"]


def fill_(module: nn.Module, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """Re-draw every parameter of ``module`` as ``scale · N(0, 1/fan_in)``, deterministically.

    Biases get ``scale · N(0, 0.25)``, large enough that a model "with biases" is measurably
    different from its bias-free version.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith("bias"):
                p.copy_(scale * 0.5 * r)
            else:
                fan_in = max(1, p[0].numel()) if p.dim() > 1 else 1
                p.copy_(scale * r / fan_in ** 0.5)
    return module


def linear_model(c: int, h: int, w: int, k: int, dtype: torch.dtype = torch.float64,
                 seed: int = 0, bias: bool = True) -> nn.Sequential:
    """``f(x) = W·flatten(x) + b``: ``nn.Sequential(Flatten, Linear(c·h·w, k))``.

    ``model[1].weight[t].view(c, h, w)`` is the gradient of logit ``t``. Fixed input size.
    """
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k, bias=bias))
    return fill_(model, seed).to(dtype).eval()


def bias_free_relu_cnn(c: int = 3, k: int = 4, width: int = 6, *, bias: bool = False,
                       dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    """conv3×3 → ReLU → maxpool2 (ceil) → conv3×3 → ReLU → global avg pool → linear.

    With ``bias=False`` the network is positively homogeneous of degree 1 (Euler: Σ x⊙∇f = f).
    ``bias=True`` is the negative control. Any input size ≥ 1×1.
    """
    model = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1, bias=bias), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(width, width, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, k, bias=bias))
    return fill_(model, seed).to(dtype).eval()


def gap_head_cnn(c: int = 3, channels: int = 5, k: int = 4, *, stride: int = 1,
                 dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    """conv3×3 (padding 1, ``stride``) → ReLU → global avg pool → flatten → linear (CAM's head).

    Layer ``"1"`` (the ReLU) holds the activations ``A``; ``model[4]`` is the head (weights
    ``w_ck``, bias ``b_c``). With ``stride=1`` the layer grid equals the input size.
    """
    model = nn.Sequential(nn.Conv2d(c, channels, 3, padding=1, stride=stride), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, k))
    return fill_(model, seed).to(dtype).eval()


def smooth_cnn(c: int = 3, k: int = 3, width: int = 4, *, act: str = "tanh",
               dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    """conv3×3 → tanh/softplus → conv3×3 → tanh/softplus → global avg pool → linear.

    Smooth (C^∞), no ReLU: guided backprop equals the plain gradient on it. Any input size.
    """
    acts = {"tanh": nn.Tanh, "softplus": nn.Softplus}
    model = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), acts[act](),
        nn.Conv2d(width, width, 3, padding=1), acts[act](),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, k))
    return fill_(model, seed).to(dtype).eval()


class Lambda(nn.Module):
    """Wrap a function ``x -> logits`` (optionally around a submodule named ``inner``)."""

    def __init__(self, fn, inner: nn.Module | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.inner = inner
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) if self.inner is None else self.fn(self.inner, x)
