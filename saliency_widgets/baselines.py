"""Baselines (IG's start, occlusion's fill, deletion's substrate) and input normalization.

Named baselines speak in *pixel* space: ``black`` is pixel value 0 *before* the model's
normalization, not 0 after it (a zero in normalized space is mid-grey for ImageNet statistics, a
mistake users of other libraries trip over). They therefore need ``normalization=(mean, std)``
and fail without it. Numbers and tensors are taken in the model's input space as given.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F

from .checks import Open
from .errors import SaliencyError

NAMED_BASELINES = ("black", "blur", "uniform", "mean")
# A baseline parameter's declared choices: the names, or a number or tensor in input space.
BASELINE = Open(NAMED_BASELINES, "a number or a tensor in the model's input space")
# A reference set: a tensor (R, C, H, W), or one reference as a baseline.
REFERENCES = Open(NAMED_BASELINES, "a number, or a tensor (R, C, H, W) of references")
REFERENCES_NOTE = ("a reference set is a tensor (R, C, H, W) in the model's input space; "
                   "pass references= to sw.attribute (the widget uses the default)")

Normalization = tuple[torch.Tensor, torch.Tensor]
NormalizationRecord = tuple[tuple[float, ...], tuple[float, ...]]


def parse_normalization(spec: Any, channels: int, device: torch.device, dtype: torch.dtype
                        ) -> tuple[Normalization | None, NormalizationRecord | None]:
    """Return ``((mean, std) as (1, C, 1, 1) tensors, the plain-float record)`` or
    ``(None, None)``."""
    if spec is None:
        return None, None
    try:
        mean, std = spec
        mean_t = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise SaliencyError(f"normalization must be (mean, std), each a number or one value per "
                            f"channel, e.g. ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)); "
                            f"got {spec!r}") from err
    for name, t in (("mean", mean_t), ("std", std_t)):
        if t.numel() not in (1, channels):
            raise SaliencyError(f"normalization {name} has {t.numel()} values but the input has "
                                f"{channels} channels; give 1 or {channels} values")
    if not bool((std_t > 0).all()) or not bool(torch.isfinite(mean_t).all()):
        raise SaliencyError(f"normalization std must be positive and mean finite, got {spec!r}")
    mean_t, std_t = mean_t.expand(channels), std_t.expand(channels)
    record = (tuple(mean_t.tolist()), tuple(std_t.tolist()))
    shape = (1, channels, 1, 1)
    return ((mean_t.to(device, dtype).reshape(shape), std_t.to(device, dtype).reshape(shape)),
            record)


def to_model_space(pixels: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    mean, std = normalization
    return (pixels - mean) / std


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders; linear, so it commutes with normalization."""
    radius = max(1, min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return x.clone()
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(y, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def default_blur_sigma(height: int, width: int) -> float:
    """A blur that erases object detail at any size: σ = 5% of the longer side (11 px at 224)."""
    return 0.05 * max(height, width)


def resolve_baseline(spec: Any, x: torch.Tensor, normalization: Normalization | None,
                     generator: torch.Generator | None, *, owner: str) -> tuple[torch.Tensor, Any]:
    """Return ``(baseline broadcastable to x, the resolved spec for the record)``.

    ``None`` means ``black`` when ``normalization`` is known, else ``0.0`` in input space.
    """
    if spec is None:
        spec = "black" if normalization is not None else 0.0
    if isinstance(spec, bool):
        raise SaliencyError(f"{owner}: baseline must be a number, a tensor or a name, got {spec}")
    if isinstance(spec, Real):
        return torch.full((1, 1, 1, 1), float(spec), dtype=x.dtype, device=x.device), float(spec)
    if isinstance(spec, torch.Tensor):
        b = spec.to(device=x.device, dtype=x.dtype)
        try:
            torch.broadcast_shapes(b.shape, x.shape)
        except RuntimeError as err:
            raise SaliencyError(f"{owner}: baseline tensor of shape {tuple(spec.shape)} does not "
                                f"broadcast to the input's {tuple(x.shape)}") from err
        return b, "tensor"
    if isinstance(spec, str):
        if spec not in NAMED_BASELINES:
            raise SaliencyError(f"{owner}: unknown baseline {spec!r}; use a number, a tensor, or "
                                f"one of {', '.join(NAMED_BASELINES)}")
        if normalization is None:
            raise SaliencyError(
                f"{owner}: baseline={spec!r} is defined in pixel space, so it needs the model's "
                f"input normalization: pass normalization=(mean, std), e.g. ImageNet's "
                f"((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), or ((0,), (1,)) if the model "
                f"takes raw [0, 1] pixels; or give a number/tensor baseline in input space")
        if spec == "black":
            return to_model_space(torch.zeros_like(x[:1]), normalization), spec
        if spec == "uniform":  # one draw shared by the batch: an example's map ignores the others
            pixels = torch.rand((1, *x.shape[1:]), generator=generator, device=x.device,
                                dtype=x.dtype)
            return to_model_space(pixels, normalization), spec
        if spec == "blur":
            return gaussian_blur(x, default_blur_sigma(x.shape[-2], x.shape[-1])), spec
        return x.mean(dim=(2, 3), keepdim=True), spec  # "mean": each image's channel means
    raise SaliencyError(f"{owner}: baseline must be a number, a tensor or one of "
                        f"{', '.join(NAMED_BASELINES)}; got {type(spec).__name__}")




def resolve_references(spec: Any, x: torch.Tensor, normalization: Normalization | None,
                       generator: torch.Generator | None, *, owner: str
                       ) -> tuple[torch.Tensor, Any]:
    """Return ``(references (P, R, C, H, W), the resolved spec for the record)``.

    A tensor ``(R, C, H, W)`` is a set of ``R`` references shared by every example (``P = 1``).
    Anything else is one reference, resolved as a ``baseline`` (``None``: black with a known
    normalization, else 0): ``P = 1``, or ``P = B`` for per-example ones (``blur``, ``mean``).
    """
    if isinstance(spec, torch.Tensor):
        shape = tuple(spec.shape)
        if spec.dim() != 4 or shape[1:] != tuple(x.shape[1:]) or shape[0] == 0:
            hint = (" (one reference: add a leading dimension with ref.unsqueeze(0))"
                    if spec.dim() == 3 else "")
            raise SaliencyError(
                f"{owner}: references must be a tensor of shape (R, C, H, W) = (R, "
                f"{', '.join(map(str, x.shape[1:]))}) matching the input, R ≥ 1; got shape "
                f"{shape}{hint}")
        if not spec.dtype.is_floating_point:
            raise SaliencyError(f"{owner}: references have dtype {spec.dtype}; give them in the "
                                f"model's input space, as floats, like x")
        refs = spec.detach().to(device=x.device, dtype=x.dtype)
        if not bool(torch.isfinite(refs).all()):
            raise SaliencyError(f"{owner}: references contain NaN or Inf values")
        return refs[None], spec
    try:
        base, resolved = resolve_baseline(spec, x, normalization, generator, owner=owner)
    except SaliencyError as err:
        raise SaliencyError(f"{err} (references= takes a tensor (R, C, H, W) of references, or "
                            f"one reference as a number or a name)") from None
    base = base.expand(base.shape[0], *x.shape[1:])
    return base[:, None], resolved
