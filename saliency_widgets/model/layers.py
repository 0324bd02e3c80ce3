"""Which layer a CAM method reads: a name (``"layer4"``, ``"features.-1"``), a module, or automatic.

Automatic choices for torchvision architectures (by class name, so no import is needed):

* ResNet → ``layer4``; VGG, DenseNet, MobileNet, EfficientNet, ConvNeXt → ``features`` (the
  last convolutional block's output); RegNet → ``trunk_output``;
* VisionTransformer → ``encoder.layers.-1.ln_1``, its tokens (CLS + patches) reshaped to the
  patch grid. The last block's *output* cannot be used: the head reads only the CLS token, so
  the patch tokens' gradients there are exactly zero.
* anything else → the last module (in execution order) whose output is 4-D, preferring one
  with more than 1×1 positions (not a global pool).

:func:`list_layers` names the layers worth offering in a menu (``sw.list_layers``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import SaliencyError
from .copy import unwrap
from .hooks import record_module_outputs

KNOWN_LAYERS = {
    "ResNet": "layer4",
    "VGG": "features",
    "DenseNet": "features",
    "MobileNetV2": "features",
    "MobileNetV3": "features",
    "EfficientNet": "features",
    "ConvNeXt": "features",
    "RegNet": "trunk_output",
    "VisionTransformer": "encoder.layers.-1.ln_1",
}


# Public classes only (every convolution module, lazy ones included, derives from one of these).
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d,
                nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class ResolvedLayer:
    name: str
    module: nn.Module  # in our copy of the model
    to_grid: Callable[[torch.Tensor], torch.Tensor]  # (B, …) activation → (B, K, h, w)


def get_submodule(root: nn.Module, name: str) -> nn.Module:
    """``root.get_submodule`` that also accepts negative indices (``"features.-1"``)."""
    module = root
    for part in name.split("."):
        children = module._modules
        if part in children and children[part] is not None:
            module = children[part]  # type: ignore[assignment]
            continue
        if part.lstrip("-").isdigit() and isinstance(module, (nn.Sequential, nn.ModuleList)):
            try:
                module = module[int(part)]
                continue
            except IndexError:
                pass
        raise SaliencyError(f"layer {name!r} not found: {type(module).__name__} has no child "
                            f"{part!r} (children: {', '.join(children) or 'none'})")
    return module


def _known_layers(root: nn.Module) -> set[str]:
    """The known layer of ``root``'s architecture; a rule naming one block (``encoder.layers.-1.
    ln_1``) names that layer in every block of the container."""
    rule = KNOWN_LAYERS.get(type(root).__name__)
    if rule is None:
        return set()
    parts = rule.split(".")
    index = next((i for i, p in enumerate(parts) if p.lstrip("-").isdigit()), None)
    try:
        if index is None:
            return {_name_of(root, get_submodule(root, rule))}
        container = get_submodule(root, ".".join(parts[:index])) if index else root
        found = set()
        for child in container.children():
            rest = ".".join(parts[index + 1:])
            found.add(_name_of(root, get_submodule(child, rest) if rest else child))
        return found
    except SaliencyError:  # a model named like a torchvision one, built differently
        return set()


def list_layers(model: nn.Module, limit: int = 64) -> list[str]:
    """Return the names of the modules worth explaining at, shallow (input side) first.

    Those are the modules at most two levels deep that are, or contain, a convolution (public
    ``nn.Conv*d`` / ``nn.ConvTranspose*d`` classes), and the layer the automatic choice knows for
    the architecture, in every block (torchvision's ViT: each encoder block's ``ln_1``), in the
    order the model defines its modules, at most ``limit`` of them. Every name is accepted by
    ``layer=``.
    """
    root = unwrap(model)
    known = _known_layers(root)
    names = []
    for name, module in root.named_modules():
        if not name:
            continue
        if name in known or (name.count(".") <= 1 and any(
                isinstance(m, CONVOLUTIONS) for m in module.modules())):
            names.append(name)
    return names[:limit]


def _grid_from_tokens(model: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    patch = getattr(model, "patch_size", None)

    def to_grid(a: torch.Tensor) -> torch.Tensor:
        if a.dim() == 4:
            return a
        if a.dim() != 3:
            raise SaliencyError(f"layer {name!r} has a {a.dim()}-D output {tuple(a.shape)}; "
                                f"CAM methods need (B, K, h, w) maps or (B, tokens, dim) tokens")
        tokens = a.shape[1]
        for drop in (1, 0):  # a leading CLS token, or none
            side = math.isqrt(tokens - drop)
            if side * side == tokens - drop and side > 0:
                grid = a[:, drop:, :]
                return grid.transpose(1, 2).reshape(a.shape[0], a.shape[2], side, side)
        hint = f" (patch size {patch})" if patch else ""
        raise SaliencyError(f"layer {name!r} has {tokens} tokens, which is not a square grid "
                            f"with or without one CLS token{hint}; pass layer= a layer with a "
                            f"4-D output")

    return to_grid


def _name_of(original: nn.Module, module: nn.Module) -> str:
    for name, m in original.named_modules():
        if m is module:
            return name
    raise SaliencyError(f"layer module {type(module).__name__} is not part of the model; "
                        f"pass a submodule of the model or its name")


def resolve_layer(spec: str | nn.Module | None, original: nn.Module, copy: nn.Module,
                  probe: Callable[[], None]) -> ResolvedLayer:
    """Resolve ``spec`` on ``original`` and return the matching module of ``copy``.

    ``probe`` runs one forward pass of ``copy``; it is used only for unknown architectures.
    """
    if isinstance(spec, nn.Module):
        name = _name_of(original, spec)
        if name == "":
            raise SaliencyError("layer= is the whole model; pass one of its submodules")
    elif isinstance(spec, str):
        name = spec
    elif spec is None:
        name = KNOWN_LAYERS.get(type(original).__name__, "")
        if not name:
            with record_module_outputs(copy) as seen:
                probe()
            four_d = [n for n, shape in seen if len(shape) == 4]
            # a global pool's (B, K, 1, 1) output would give a spatially constant map
            spatial = [n for n, shape in seen if len(shape) == 4 and shape[2] * shape[3] > 1]
            if not four_d:
                raise SaliencyError(
                    f"could not choose a layer automatically: no submodule of "
                    f"{type(original).__name__} returns a 4-D (B, K, h, w) tensor; pass layer= "
                    f"a module or its name, e.g. layer='features'")
            name = (spatial or four_d)[-1]
    else:
        raise SaliencyError(f"layer must be a module, its name, or None, got {spec!r}")
    module = get_submodule(copy, name)
    name = _name_of(copy, module)  # canonical: "encoder.layers.-1.ln_1" → "…encoder_layer_11.ln_1"
    return ResolvedLayer(name=name, module=module, to_grid=_grid_from_tokens(original, name))
