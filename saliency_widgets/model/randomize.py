"""Randomized copies of a model for the sanity checks (Adebayo et al. 2018, arXiv:1810.03292).

Everything happens on structural copies (``copy.py``): the user's modules, parameters, hooks,
``training`` flags and the global RNG are never touched. A randomized copy is a structural copy
whose chosen modules have *new* tensors in the copy's own ``_parameters`` dicts.

Blocks. By default a block is a top-level child module that has parameters; a model whose only
such child is a container (``Model.features = Sequential(...)``) is looked into until there are
several. Parameters held directly by the top module (e.g. a ViT's position embedding) belong to
no block and are never randomized. Blocks are ordered by when their forward first runs, recorded
with hooks on a throw-away copy during one forward pass, not by registration order.

Re-draw. Every parameter tensor of a randomized block (weights, biases, and normalisation
affine weights and biases alike) is redrawn i.i.d. from a zero-mean normal truncated at ±2σ,
with σ the original tensor's root-mean-square. This keeps each layer's scale, so activations
neither explode nor vanish, while making the values independent of training (the paper
re-initialises from a truncated normal; PyTorch's ``reset_parameters`` would instead set
normalisation weights to exactly 1 and biases to 0). An all-zero tensor stays zero. Buffers
(BatchNorm running statistics) are kept. Draws come from a private CPU ``torch.Generator``
seeded per block, so a block gets the same random values whether it is randomized alone or in a
cascade, on any device. Tied parameters (one storage in several modules) are redrawn together.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import SaliencyError
from .copy import structural_copy, unwrap


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _check_eager(model: nn.Module) -> nn.Module:
    model = unwrap(model)
    if isinstance(model, torch.jit.ScriptModule):
        raise SaliencyError("model randomization needs an eager model (TorchScript modules "
                            "cannot be copied); pass the nn.Module the script was made from")
    return model


def parameter_blocks(model: nn.Module) -> list[str]:
    """Qualified names of the default blocks, in registration order (see the module doc)."""
    model = _check_eager(model)
    prefix, node = "", model
    while True:
        kids = [(name, child) for name, child in node.named_children()
                if child is not None and _has_params(child)]
        if len(kids) == 1 and any(_has_params(g) for g in kids[0][1].children()) \
                and not any(p is not None for p in node._parameters.values()):
            prefix, node = f"{prefix}{kids[0][0]}.", kids[0][1]
            continue
        return [prefix + name for name, _ in kids]


def execution_order(model: nn.Module, names: Sequence[str],
                    run: Callable[[nn.Module], Any]) -> tuple[list[str], list[str]]:
    """``(names in the order their forward first runs, names that never ran)``.

    ``run(copy)`` must call the copy once (e.g. ``lambda net: net(x[:1])``); the hooks live on
    that throw-away copy only.
    """
    model = _check_eager(model)
    probe = structural_copy(model)
    seen: list[str] = []
    handles = []
    try:
        for name in names:
            try:
                module = probe.get_submodule(name)
            except AttributeError as err:
                raise SaliencyError(f"model randomization: the model has no module {name!r}; "
                                    f"blocks= takes qualified names from "
                                    f"model.named_modules()") from err

            def hook(_m: nn.Module, _inputs: Any, name: str = name) -> None:
                if name not in seen:
                    seen.append(name)
            handles.append(module.register_forward_pre_hook(hook))
        with torch.no_grad():
            run(probe)
    finally:
        for h in handles:
            h.remove()
    return seen, [n for n in names if n not in seen]


def _redraw(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A new tensor like ``p``: truncated-normal(0, rms(p)², ±2σ) i.i.d. entries."""
    sigma = float(p.detach().double().pow(2).mean().sqrt()) if p.numel() else 0.0
    lo = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))  # Φ(−2)
    u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
    z = math.sqrt(2) * torch.erfinv(2 * (lo + u * (1 - 2 * lo)) - 1)  # Φ⁻¹ on [Φ(−2), Φ(2)]
    return (sigma * z).to(device=p.device, dtype=p.dtype)


def _key(p: torch.Tensor) -> tuple:
    return (p.device, p.dtype, p.data_ptr(), tuple(p.shape), tuple(p.stride()))


class Randomizer:
    """Makes structural copies of ``model`` with chosen blocks randomized.

    ``seeds[name]`` seeds block ``name``'s draws; each parameter is drawn once and reused by
    later copies, so a cascade costs one draw per parameter in all.
    """

    def __init__(self, model: nn.Module, seeds: dict[str, int]) -> None:
        self.model = _check_eager(model)
        self.seeds = dict(seeds)
        self._drawn: dict[tuple, torch.Tensor] = {}

    def _draw_block(self, name: str) -> set[tuple]:
        module = self.model.get_submodule(name)
        generator = torch.Generator().manual_seed(int(self.seeds[name]))
        keys: set[tuple] = set()
        for _, p in module.named_parameters(remove_duplicate=True):
            k = _key(p)
            if k not in self._drawn:
                self._drawn[k] = _redraw(p, generator)
            keys.add(k)
        return keys

    def copy(self, names: Sequence[str]) -> nn.Module:
        """A structural copy with the blocks ``names`` randomized (the user's model untouched)."""
        keys: set[tuple] = set()
        for name in names:
            keys |= self._draw_block(name)
        new = structural_copy(self.model)
        for module in new.modules():
            params = module.__dict__["_parameters"]  # the copy's own dict (see copy.py)
            for pname, p in params.items():
                if p is not None and _key(p) in keys:
                    params[pname] = self._drawn[_key(p)]
        return new
