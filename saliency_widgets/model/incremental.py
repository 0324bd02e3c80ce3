"""Exact incremental inference for occlusion (Nakandala et al., SIGMOD 2019, arXiv:1810.08303).

Occluding a small window changes only a small box of each early feature map. An
:class:`Occluder` computes the network once per image, caches its feature maps, and for every
window recomputes only the box of each layer that the window can reach — the box grows layer by
layer with the receptive field — reading the unchanged surroundings from the cache. All windows
of a chunk are computed together, each box at its own place (``patches.py``).

Boxes have one size per layer for all windows (the largest region any window reaches), shifted
inward at the borders, so a chunk is one batched call per layer. Where boxes cover so much of a
layer that patching costs more than recomputing (the *crossover*, chosen by a cost model), or at
an operation without a patch rule (``graph.py``: global pooling, the head, unknown modules), the
patched maps are written into full copies and the rest runs as the model would. The result
equals a full forward pass of each occluded image up to float rounding.

Memory: one image's cached feature maps plus one chunk's patches and full tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from . import patches as P
from .graph import Merge, Pointwise, Untraceable, Window, label, rule_for, run_node, trace

# The cost model, in FLOP-equivalents per occluded image (1 ≈ 1/7e10 s: resnet18's plain forward
# on one core of the 2-core CI machine). Measured there, one thread:
# * a patched convolution costs its FLOPs (_SLOW = 1): 3×3 convolutions on 24 channels-last
#   patches ran at 77-103 GFLOP/s against 81-97 on NCHW maps of four images (64-512 channels);
# * gathering, laying over and copying into full maps ran at ~5 ns per element (_MEM);
# * Python, index building and dispatch: ~100 µs per patched operation and chunk (_CALL, per
#   image at ~24 per chunk) and ~20 µs per plain module call and chunk of 4 (_CALL_PLAIN);
# * a call pays once: tracing and planning (_FIXED, ~10 ms) and three full forward passes
#   (probing the shapes, the cached pass, and checking the graph against the model).
# The model is conservative there: modelled 2.0×, measured ≥ 2.5× per window for resnet18 at
# 224 px (benchmarks/bench_occlusion_incremental.py), and of the crossovers 0.3 / 0.5 / 1.0 and
# its own choice (0.86: up to layer3.1.conv1) its own measured fastest.
_SLOW = 1.0
_MEM = 300.0
_CALL = 7e6 / 24
_CALL_PLAIN = 1.4e6 / 4
_FIXED = 7e8


class _Flops(TorchDispatchMode):
    """Counts the FLOPs of convolutions and matrix products (torch's own formulas). Not
    FlopCounterMode: its module tracker installs global hooks, which reach other threads."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **(kwargs or {}), out_val=out)
        return out


@dataclass
class _Read:
    """How a patched node reads one input over its box: a window of the input around the box
    (or the input's own patch, when the window is exactly the input's box)."""

    src: fx.Node
    aligned: bool
    size: tuple[int, int]
    start: torch.Tensor | None    # (windows, 2) window origin in the input's coordinates
    fill: float = 0.0
    origin: torch.Tensor | None = None   # (windows, 2) in the padded table's coordinates
    offset: torch.Tensor | None = None   # (windows, 2) the input's box within the gathered read
    gathered: tuple[int, int] = (0, 0)   # size gathered: the window, widened to hold the box
    crop: tuple[int, int] | None = None  # where the window starts in the gathered read
    table: tuple = ()             # key of the padded channels-last cache: (src, pad, fill)


@dataclass
class _Node:
    node: fx.Node
    mode: str = "static"          # "static" | "patch" | "full"
    rule: Any = None
    reason: str = ""
    shape: tuple[int, ...] = ()
    flops: float = 0.0            # per image, full map
    region: torch.Tensor | None = None   # (windows, 4): y0, y1, x0, x1 that may change
    patchable: bool = False       # it has a rule and all its inputs have regions
    size: tuple[int, int] = (0, 0)
    box: torch.Tensor | None = None      # (windows, 2) origin of the recomputed box
    frac: float = 1.0             # box area / map area
    sources: list[fx.Node] = field(default_factory=list)  # input-dependent tensors it reads
    reads: list[_Read] = field(default_factory=list)


class Occluder:
    """Model outputs for occluded copies of one image at a time, computed incrementally.

    Parameters
    ----------
    model : nn.Module
        Our structural copy (never the user's module).
    probe : Tensor ``(1, C, H, W)``
        One input, for the shapes of every feature map.
    window : (h, w)
    origins : LongTensor ``(windows, 2)``
        Top-left corner of every window.
    crossover : float or None
        Patch layers whose box covers at most this fraction; None lets the cost model choose.
    """

    def __init__(self, model: nn.Module, probe: torch.Tensor, window: tuple[int, int],
                 origins: torch.Tensor, crossover: float | None = None) -> None:
        self.model = model
        self.graph = trace(model)
        self.device = probe.device
        self.window = window
        self.windows = origins.shape[0]
        places = [n for n in self.graph.nodes if n.op == "placeholder"]
        if not places or any(not p.args for p in places[1:]):
            raise Untraceable("forward takes more than one required argument")
        self.input = places[0]
        self.nodes = {n: _Node(n) for n in self.graph.nodes}
        self.static: dict[fx.Node, Any] = {}
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        self._last: dict[int, list[fx.Node]] = {}  # after which node each value is dead
        for n in self.graph.nodes:
            if n.users:
                self._last.setdefault(max(order[u] for u in n.users), []).append(n)
        self._probe(probe)
        self._regions(origins.cpu())
        self.crossover = self._choose() if crossover is None else float(crossover)
        self._assign(self.crossover)
        self._place()
        self._image: Any = None

    # --- planning ----------------------------------------------------------------------------
    def _probe(self, x: torch.Tensor) -> None:
        """Run once plainly: shapes, FLOPs, which nodes depend on the input, constant values."""
        vals: dict[fx.Node, Any] = {}
        dep: set[fx.Node] = set()
        for node in self.graph.nodes:
            info = self.nodes[node]
            if node.op == "output":
                info.mode = "full"
                break
            if node.op == "placeholder":
                vals[node] = x if node is self.input else node.args[0]
                if node is self.input:
                    dep.add(node)
            else:
                args, kwargs = fx.node.map_arg((node.args, node.kwargs), vals.__getitem__)
                with torch.no_grad(), _Flops() as counter:
                    vals[node] = run_node(self.model, node, args, kwargs)
                info.flops = float(counter.total)
                if any(a in dep for a in node.all_input_nodes):
                    dep.add(node)
            value = vals[node]
            if isinstance(value, torch.Tensor):
                info.shape = tuple(value.shape)
                info.flops += value.numel()
            if node in dep:
                info.mode = "full"
            else:
                self.static[node] = value
        shapes = {n: i.shape for n, i in self.nodes.items() if i.shape}
        for node, info in self.nodes.items():
            if info.mode != "full" or node is self.input or node.op == "output":
                continue
            rule = rule_for(self.model, node, dep, shapes, self.static)
            info.rule, info.reason = (None, rule) if isinstance(rule, str) else (rule, "")
            if isinstance(rule, Merge):
                info.sources = list(rule.inputs)
            elif info.rule is not None:
                info.sources = [a for a in node.all_input_nodes if a in dep]
                if len(info.sources) != 1:
                    info.rule, info.reason = None, "it reads several feature maps"
            if isinstance(info.rule, Window) and info.flops <= _numel(info.shape):
                info.flops += (info.rule.macs - 1) * _numel(info.shape)  # pooling: k·k reads

    def _regions(self, origins: torch.Tensor) -> None:
        """For every window and node: the positions the window can change, and the box (one
        size per node) recomputed for them; for every input of the node, the window read."""
        wh, ww = self.window
        x = self.nodes[self.input]
        x.region = torch.stack([origins[:, 0], origins[:, 0] + wh,
                                origins[:, 1], origins[:, 1] + ww], 1)
        x.size, x.box, x.frac = (wh, ww), origins, wh * ww / (x.shape[2] * x.shape[3])
        for info in self.nodes.values():
            if info.rule is None:
                continue
            srcs = [self.nodes[s] for s in info.sources]
            regions = [s.region for s in srcs if s.region is not None]
            if len(regions) < len(srcs):
                info.reason = "an input is not patched"
                continue
            rule = info.rule
            if isinstance(rule, Pointwise):
                src = srcs[0]
                info.region, info.size, info.box, info.frac = (src.region, src.size, src.box,
                                                               src.frac)
                info.patchable = True
                info.reads = [_Read(src.node, True, src.size, src.box)]
                continue
            if isinstance(rule, Window):
                info.region = _window_region(regions[0], rule, info.shape[2:])
            else:
                info.region = _union(regions)
            info.patchable = True
            h, w = info.shape[2:]
            extent = info.region[:, 1::2] - info.region[:, 0::2]
            bh, bw = (max(1, min(int(extent[:, i].max()), lim)) for i, lim in enumerate((h, w)))
            info.size, info.frac = (bh, bw), bh * bw / (h * w)
            info.box = torch.stack([info.region[:, 0].clamp(0, h - bh),
                                    info.region[:, 2].clamp(0, w - bw)], 1)
            if isinstance(rule, Window):
                sh, sw = ((b - 1) * s + (k - 1) * d + 1 for b, s, k, d in
                          zip(info.size, rule.stride, rule.kernel, rule.dilation))
                start = info.box * torch.tensor(rule.stride) - torch.tensor(rule.padding)
                info.reads = [_Read(srcs[0].node, False, (sh, sw), start, rule.fill)]
            else:
                info.reads = [_Read(s.node, s.size == info.size and _planned(s.box).equal(info.box),
                                    info.size, info.box) for s in srcs]

    def _assign(self, crossover: float) -> None:
        """Patch a node if it has a rule, its inputs are patched and its box is small enough."""
        for node, info in self.nodes.items():
            if info.mode == "static":
                continue
            if node is self.input:
                info.mode = "patch"
                continue
            ok = (info.patchable and info.frac <= crossover
                  and all(self.nodes[s].mode == "patch" for s in info.sources))
            info.mode = "patch" if ok else "full"

    def _cost(self) -> tuple[float, float, float]:
        """(modelled cost, FLOPs, modelled plain cost) per occluded image."""
        cost = flops = plain = 0.0
        for node, info in self.nodes.items():
            if info.mode == "static" or node is self.input:
                continue
            plain += info.flops + _CALL_PLAIN
            if info.mode == "patch":
                f = info.flops * info.frac
                reads = sum(self.nodes[r.src].shape[1] * math.prod(r.size)
                            for r in info.reads if not r.aligned)
                flops += f
                cost += f * (_SLOW if isinstance(info.rule, Window) else 1.0) + \
                    reads * _MEM + _CALL
            else:
                copies = sum(_numel(self.nodes[s].shape) for s in set(node.all_input_nodes)
                             if self.nodes[s].mode == "patch")
                flops += info.flops
                cost += info.flops + copies * _MEM + _CALL_PLAIN
        return cost, flops, plain

    def _choose(self) -> float:
        """The crossover fraction with the least modelled cost (0: patch nothing)."""
        candidates = [0.0] + sorted({i.frac for i in self.nodes.values() if i.patchable})
        best, best_cost = 0.0, float("inf")
        for frac in candidates:
            self._assign(frac)
            cost = self._cost()[0]
            if cost < best_cost * (1 - 1e-9):
                best, best_cost = frac, cost
        return best

    def _place(self) -> None:
        """Index tensors on the device for the patched nodes: where each read sits in its
        input's padded table, and where the input's own box sits in the read. Where that box
        sticks out of the window (a strided 1×1 convolution skips positions), the read is
        widened to hold it and cropped after the overlay: no data-dependent indexing, so a
        chunk never waits for the device."""
        dev = self.device
        for node, info in self.nodes.items():
            info.region = None  # planning is done: only the patched nodes' indices stay
            if info.mode != "patch":
                info.box, info.reads = None, []
                continue
            info.box = _planned(info.box).to(dev)
            if node is self.input:
                continue
            for r in info.reads:
                if r.aligned:
                    continue
                src = self.nodes[r.src]
                first = _planned(r.start)
                offset = _planned(src.box).cpu() - first
                lo = (-offset.min(0).values).clamp(min=0)
                hi = (offset.max(0).values + torch.tensor(src.size)
                      - torch.tensor(r.size)).clamp(min=0)
                start = first - lo
                size = torch.tensor(r.size) + lo + hi
                pad_lo = (-start.min(0).values).clamp(min=0)
                pad_hi = (start.max(0).values + size - torch.tensor(src.shape[2:])).clamp(min=0)
                pad = tuple(int(v) for v in (*pad_lo, *pad_hi))
                r.gathered = (int(size[0]), int(size[1]))
                r.crop = (int(lo[0]), int(lo[1])) if bool((lo + hi).any()) else None
                r.origin = (start + pad_lo).to(dev)
                r.offset, r.table = (offset + lo).to(dev), (r.src, pad, r.fill)
                r.start = None

    # --- a description for the record ----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Where patching ended, the FLOP ratio (one image: the cached pass plus every window's
        patches against a full pass per window) and the modelled speed-up of the whole call."""
        cost, flops, plain = self._cost()
        total = sum(i.flops for i in self.nodes.values() if i.mode != "static")
        n = self.windows
        ends = []
        for node, info in self.nodes.items():
            if info.mode == "full" and node.op != "output" and any(
                    self.nodes[s].mode == "patch" for s in node.all_input_nodes):
                if not info.patchable:
                    why = info.reason
                elif info.frac > self.crossover:
                    why = (f"box {info.frac:.0%} of {info.shape[2]}×{info.shape[3]} > crossover "
                           f"{self.crossover:.0%}")
                else:
                    why = "an input runs on full maps"
                ends.append(f"{label(node)} ({why})")
        patched = sum(1 for node, i in self.nodes.items()
                      if i.mode == "patch" and node is not self.input)
        return {"flop_ratio": (n + 1) * total / (total + n * flops),
                "cost_ratio": (n + 1) * plain / (4 * plain + n * cost + _FIXED),
                "patched_ops": patched, "crossover": self.crossover, "region_end": ends}

    @property
    def item_numel(self) -> int:
        """The largest tensor one occluded image holds at a time (for the chunk size)."""
        sizes = [_numel(i.shape) for i in self.nodes.values() if i.mode == "full" and i.shape]
        sizes += [self.nodes[r.src].shape[1] * math.prod(r.gathered)
                  for i in self.nodes.values() if i.mode == "patch" for r in i.reads
                  if not r.aligned]
        return max(sizes + [1])

    # --- execution ----------------------------------------------------------------------------
    def prime(self, image: torch.Tensor, base: torch.Tensor, key: Any) -> Any:
        """Cache the feature maps of ``image`` ``(1, C, H, W)`` and the fill ``base`` for its
        windows; return the model's output for the image. Done once per ``key``."""
        if self._image is not None and self._image[0] == key:
            return self._image[1]
        self._image = None
        vals: dict[fx.Node, Any] = {self.input: image}
        out = None
        with torch.no_grad():
            for i, node in enumerate(self.graph.nodes):
                info = self.nodes[node]
                if node.op == "output":
                    out = fx.node.map_arg(node.args[0], lambda a: self._plain_arg(a, vals))
                elif info.mode == "patch" and node is not self.input:
                    if isinstance(info.rule, Window):  # convolution/pooling: never in place
                        args, kwargs = fx.node.map_arg((node.args, node.kwargs), vals.get)
                        vals[node] = run_node(self.model, node, args, kwargs)
                    else:  # out of place, unlike e.g. ReLU(inplace=True): the cache must stay
                        vals[node] = info.rule.fn(*(vals[s] for s in info.sources))
                elif info.mode == "full":
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs),
                                                   lambda a: self._plain_arg(a, vals))
                    vals[node] = run_node(self.model, node, args, kwargs)
                for dead in self._last.get(i, ()):
                    if self.nodes[dead].mode == "full":
                        vals.pop(dead, None)
        tables: dict[Any, torch.Tensor] = {"base": P.hwc(base.expand_as(image))}
        for info in self.nodes.values():
            if info.mode != "patch":
                continue
            for r in info.reads:
                if not r.aligned and r.table not in tables:
                    tables[r.table] = P.hwc(vals[r.src], r.table[1], r.fill)
            if isinstance(info.rule, Window) and info.rule.divisor is not None:
                tables[("div", info.node)] = P.hwc(info.rule.divisor.to(image))
        caches = {s: vals[s] for n, i in self.nodes.items() if i.mode == "full"
                  for s in n.all_input_nodes if self.nodes[s].mode == "patch"}
        self._image = (key, out, caches, tables)
        return out

    def _plain_arg(self, a: fx.Node, vals: dict[fx.Node, Any]) -> Any:
        if a in self.static:
            return self.static[a]
        if self.nodes[a].mode == "patch":  # a fresh copy: an in-place op here must not reach it
            return vals[a].clone()
        return vals[a]

    def __call__(self, index: torch.Tensor) -> Any:
        """The model's output for the occluded copies ``index`` (window numbers) of the image."""
        _, _, caches, tables = self._image
        patches: dict[fx.Node, torch.Tensor] = {}
        fulls: dict[fx.Node, Any] = {}

        def arg(a: fx.Node) -> Any:
            if a in self.static:
                return self.static[a]
            if self.nodes[a].mode == "patch" and a not in fulls:
                fulls[a] = P.materialize(caches[a], patches[a],
                                         _planned(self.nodes[a].box)[index])
            return fulls[a]

        out = None
        with torch.no_grad():
            for i, node in enumerate(self.graph.nodes):
                info = self.nodes[node]
                if node is self.input:
                    patches[node] = P.gather(tables["base"], _planned(info.box)[index],
                                             self.window)
                elif node.op == "output":
                    out = fx.node.map_arg(node.args[0], arg)
                elif info.mode == "patch":
                    patches[node] = self._patch(info, index, patches, tables)
                elif info.mode == "full":
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs), arg)
                    fulls[node] = run_node(self.model, node, args, kwargs)
                for dead in self._last.get(i, ()):
                    patches.pop(dead, None)
                    fulls.pop(dead, None)
        return out

    def _patch(self, info: _Node, index: torch.Tensor, patches: dict[fx.Node, torch.Tensor],
               tables: dict) -> torch.Tensor:
        reads = []
        for r in info.reads:
            if r.aligned:
                reads.append(patches[r.src])
                continue
            win = P.overlay(P.gather(tables[r.table], _planned(r.origin)[index], r.gathered),
                            patches[r.src], _planned(r.offset)[index])
            if r.crop is not None:
                win = win[:, :, r.crop[0]:r.crop[0] + r.size[0], r.crop[1]:r.crop[1] + r.size[1]]
            reads.append(win)
        rule = info.rule
        if isinstance(rule, Window):
            out = rule.patch(reads[0])
            if rule.divisor is not None:
                out = out / P.gather(tables[("div", info.node)], _planned(info.box)[index],
                                     info.size)
            return out
        return rule.fn(*reads)


def _planned(t: torch.Tensor | None) -> torch.Tensor:
    """``t``, an index tensor that planning sets for every patched node and unaligned read
    (None only on the others, which never ask for it)."""
    if t is None:
        raise RuntimeError("incremental occlusion: an index tensor was read before planning set it")
    return t


# --- geometry ----------------------------------------------------------------------------------
def _window_region(region: torch.Tensor, rule: Window, out_hw: tuple[int, ...]) -> torch.Tensor:
    """Output positions whose k×k input window meets the input region (per axis)."""
    cols = []
    for axis in (0, 1):
        a, b = region[:, 2 * axis], region[:, 2 * axis + 1]
        k, s, p, d = (rule.kernel[axis], rule.stride[axis], rule.padding[axis],
                      rule.dilation[axis])
        lo = -((-(a + p - (k - 1) * d)) // s)
        hi = (b - 1 + p) // s + 1
        cols += [lo.clamp(0, out_hw[axis]), hi.clamp(0, out_hw[axis])]
    out = torch.stack(cols, 1)
    empty = ((region[:, 0] >= region[:, 1]) | (region[:, 2] >= region[:, 3])
             | (out[:, 0] >= out[:, 1]) | (out[:, 2] >= out[:, 3]))
    return torch.where(empty[:, None], torch.zeros_like(out), out)


def _union(regions: list[torch.Tensor]) -> torch.Tensor:
    stack = torch.stack(regions)                      # (inputs, windows, 4)
    full = (stack[..., 0] < stack[..., 1]) & (stack[..., 2] < stack[..., 3])
    big = torch.iinfo(stack.dtype).max
    lo = torch.where(full[..., None], stack[..., 0::2], big).min(0).values
    hi = torch.where(full[..., None], stack[..., 1::2], -big).max(0).values
    out = torch.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], 1)
    return torch.where(full.any(0)[:, None], out, torch.zeros_like(out))


def _numel(shape: tuple[int, ...]) -> int:
    """Elements per image of a probed shape (its first dimension is the batch of 1)."""
    return math.prod(shape[1:])
