"""The image the widget shows: exactly the pixels the model saw, normalization undone.

``prepare`` turns a PIL image, an ``(H, W, 3)`` uint8 array or a float tensor into the model's
input ``(1, C, H, W)`` (after the user's preprocess: resize, crop, normalize) and the ``(H, W, 3)``
uint8 picture of that same input. Every map has the input's ``H × W``, so maps and picture are
aligned by construction.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SaliencyError, SaliencyWarning
from ..api import model_placement

Norm = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Prepared:
    """The model's input, its picture, and the normalization between them."""

    x: torch.Tensor            # (1, C, H, W) on the model's device, in the model's dtype
    display: np.ndarray        # (H, W, 3) uint8: the pixels the model saw
    normalization: Norm | None  # (mean, std) per channel, or None (input taken as [0, 1] pixels)


def _numbers(value: Any) -> tuple[float, ...] | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().reshape(-1).tolist()
    if isinstance(value, Real) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, Sequence) and not isinstance(value, str) and 0 < len(value) <= 4 \
            and all(isinstance(v, Real) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    return None


def find_normalization(preprocess: Any) -> Norm | None:
    """Return ``(mean, std)`` of the last normalization inside ``preprocess``, or None.

    Understands torchvision ``Normalize`` (v1 and v2), the weights presets returned by
    ``weights.transforms()`` (they carry ``mean``/``std``), ``Compose`` (``.transforms``) and
    ``nn.Sequential`` / module containers.
    """
    found: list[Norm] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if obj is None or id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        mean, std = _numbers(getattr(obj, "mean", None)), _numbers(getattr(obj, "std", None))
        if mean is not None and std is not None and not callable(obj.mean):
            found.append((mean, std))
            return
        children = getattr(obj, "transforms", None)
        if isinstance(children, Sequence) and not isinstance(children, str):
            for child in children:
                visit(child, depth + 1)
            return
        if isinstance(obj, nn.Module):
            for child in obj.children():
                visit(child, depth + 1)

    visit(preprocess, 0)
    return found[-1] if found else None


def _norm(mean: Any, std: Any, detected: Norm | None) -> Norm | None:
    if mean is None and std is None:
        return detected
    if mean is None or std is None:
        raise SaliencyError("give both mean= and std= (the model's input normalization), e.g. "
                            "mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)")
    m, s = _numbers(mean), _numbers(std)
    if m is None or s is None:
        raise SaliencyError(f"mean and std must be numbers or one number per channel, got "
                            f"mean={mean!r}, std={std!r}")
    if any(v <= 0 for v in s):
        raise SaliencyError(f"std must be positive, got {s}")
    return m, s


def _to_chw_float(image: Any, preprocess: Callable[[Any], Any] | None) -> torch.Tensor:
    """The model's input for one image, before moving it to the model's device."""
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
        if preprocess is not None:
            return _check_output(preprocess(pil))
        pixels = np.asarray(pil, dtype=np.uint8).copy()
        return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise SaliencyError(
                f"an image array must be (H, W, 3) uint8, got {image.shape} {image.dtype}; for "
                f"floats pass a (3, H, W) tensor: torch.from_numpy(a).permute(2, 0, 1)")
        if preprocess is not None:
            return _check_output(preprocess(Image.fromarray(image, "RGB")))
        return torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3:
            raise SaliencyError(f"an image tensor must be (C, H, W) or (1, C, H, W), got shape "
                                f"{tuple(image.shape)}; the widget explains one image")
        if not t.dtype.is_floating_point:
            if t.dtype != torch.uint8:
                raise SaliencyError(f"an image tensor must be float (or uint8), got {t.dtype}")
            t = t.float() / 255
        if preprocess is not None:
            return _check_output(preprocess(t))
        return t
    raise SaliencyError(f"image must be a PIL image, an (H, W, 3) uint8 array or a (3, H, W) / "
                        f"(1, 3, H, W) float tensor, got {type(image).__name__}")


def _check_output(out: Any) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise SaliencyError(f"preprocess must return a tensor (C, H, W), got {type(out).__name__}; "
                            f"end it with transforms.ToTensor() or use weights.transforms()")
    t = out.detach()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or not t.dtype.is_floating_point:
        raise SaliencyError(f"preprocess must return a float (C, H, W) tensor, got "
                            f"{tuple(out.shape)} {out.dtype}")
    return t


def _display(x: torch.Tensor, norm: Norm | None) -> np.ndarray:
    """(H, W, 3) uint8 of the model's input with its normalization undone."""
    t = x.detach().to("cpu", torch.float32)
    c = t.shape[0]
    if norm is not None:
        mean = torch.tensor(norm[0]).reshape(-1, 1, 1)
        std = torch.tensor(norm[1]).reshape(-1, 1, 1)
        if mean.shape[0] not in (1, c) or std.shape[0] not in (1, c):
            raise SaliencyError(f"the normalization has {mean.shape[0]} means and {std.shape[0]} "
                                f"stds but the input has {c} channels")
        t = t * std + mean
    else:
        lo, hi = float(t.min()), float(t.max())
        if lo < -0.02 or hi > 1.02:
            warnings.warn(
                f"the model's input has values in [{lo:.2f}, {hi:.2f}], not [0, 1], and no "
                f"normalization was found; pass mean= and std= to sw.show so the image is shown "
                f"as the model saw it (shown min-max scaled for now)", SaliencyWarning,
                stacklevel=3)
            t = (t - lo) / (hi - lo if hi > lo else 1.0)
    if c == 1:
        t = t.expand(3, -1, -1)
    elif c != 3:
        t = t.mean(0, keepdim=True).expand(3, -1, -1)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def prepare(model: nn.Module, image: Any, preprocess: Callable[[Any], Any] | None = None,
            mean: Any = None, std: Any = None) -> Prepared:
    """Return the model's input and its display picture (see the module docstring)."""
    if preprocess is not None and not callable(preprocess):
        raise SaliencyError(f"preprocess must be callable (e.g. weights.transforms()), got "
                            f"{type(preprocess).__name__}")
    norm = _norm(mean, std, find_normalization(preprocess))
    x = _to_chw_float(image, preprocess)
    device, dtype = model_placement(model)
    display = _display(x, norm)
    return Prepared(x=x.unsqueeze(0).to(device=device, dtype=dtype), display=display,
                    normalization=norm)
