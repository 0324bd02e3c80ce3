#!/usr/bin/env python
"""Speed of saliency_widgets' methods against Captum, pytorch-grad-cam and the floor.

For each (model, method) the script builds a set of *contenders* that do the same job:

* ``ours``      ``sw.attribute(model, x, target, method=...)`` with automatic chunking;
* peers         Captum / pytorch-grad-cam with their default settings and with the batching
                settings most likely to be fastest (Captum ``internal_batch_size``,
                ``nt_samples_batch_size``, ``perturbations_per_eval``; pytorch-grad-cam
                ScoreCAM ``batch_size``); "peer best" is whichever peer contender is fastest;
* ``floor``     the same number of plain forward (``fwd``) or forward + backward-to-the-input
                (``fb``, ``torch.autograd.grad``) passes of the model, in chunks of the batch
                size that is fastest per image on this machine (calibrated at start-up).

All contenders of one item run in ONE process as interleaved rounds (round i runs every
contender once, in an order rotated by i), after a warm-up call each; the table reports the
median over rounds and the spread (min-max). Run ``--help`` for the options and
``benchmarks/README.md`` for what the columns mean.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's ScoreCAM prints a tqdm bar

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

import saliency_widgets as sw  # noqa: E402
from _common import fmt_s, log, sync  # noqa: E402
from saliency_widgets.work import auto_chunk  # noqa: E402

METHODS = ["gradient", "input_x_gradient", "guided_backprop", "integrated_gradients",
           "smoothgrad", "grad_cam", "grad_cam_plusplus", "guided_grad_cam", "occlusion",
           "score_cam"]
SLOW = {"occlusion", "score_cam"}           # fewer rounds (--slow-rounds)
FLOOR_GOAL = {"integrated_gradients": 1.2, "smoothgrad": 1.2, "occlusion": 1.2,
              "score_cam": 1.2, "grad_cam": 1.2, "grad_cam_plusplus": 1.2}
STEPS = 50          # IG steps and SmoothGrad samples
NOISE = 0.15        # SmoothGrad noise level, as a fraction of the input's (max - min)
RESEARCH_BATCH = {"fb": 10, "fwd": 16}  # best peer settings found in earlier measurements
CALIB_PASSES = 3     # interleaved passes of the floor calibration


# ------------------------------------------------------------------------------------------
# small utilities
# ------------------------------------------------------------------------------------------

def fmt_ratio(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}×"


def cpu_stat() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            parts = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts[:8]) - idle, sum(parts[:8])


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NCPU = os.cpu_count() or 1


def foreign_load(st0: tuple[int, int] | None, cpu0: float, wall: float) -> float | None:
    """Share of all CPUs that other processes used since ``st0`` / ``cpu0`` (our own
    process_time), over ``wall`` seconds; None where /proc/stat is missing."""
    cpu1, st1 = time.process_time(), cpu_stat()
    if st0 is None or st1 is None or wall <= 0:
        return None
    busy = (st1[0] - st0[0]) / _CLK_TCK
    return max(0.0, min(1.0, (busy - (cpu1 - cpu0)) / (wall * _NCPU)))


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# ------------------------------------------------------------------------------------------
# setup: model, input, target, floor calibration
# ------------------------------------------------------------------------------------------

@dataclass
class Setup:
    model_name: str
    model: torch.nn.Module
    x: torch.Tensor
    t: int
    device: torch.device
    size: int
    layer_name: str
    channels: int          # channels of the CAM layer (Score-CAM does channels + 1 forwards)
    window: int
    stride: int
    n_windows: int
    floor: "FloorTable"


def build_model(name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    return model.eval().to(device)


def build_setup(name: str, args: argparse.Namespace, device: torch.device,
                floor_best: dict[str, dict[str, float]] | None = None) -> Setup:
    model = build_model(name, device)
    x = torch.randn(1, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        t = int(model(x).argmax(1))
    layer = model.get_submodule(args.cam_layer)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    handle.remove()
    channels = int(seen[0].shape[1])
    w, s = args.window, args.stride
    per_side = (args.size - w) // s + 1
    floor = FloorTable(model, x, t, device, args.floor_batches, args.calib_time,
                       args.max_load, args.retakes)
    if floor_best is not None:
        floor.per_image = {k: {int(b): v for b, v in d.items()} for k, d in floor_best.items()}
    return Setup(name, model, x, t, device, args.size, args.cam_layer, channels, w, s,
                 per_side * per_side, floor)


class FloorTable:
    """Per-image seconds of plain fwd / fb passes at each batch size (calibrated lazily)."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, t: int, device: torch.device,
                 batches: list[int], calib_time: float, max_load: float = 1.0,
                 retakes: int = 0) -> None:
        self.model, self.x, self.t, self.device = model, x, t, device
        self.batches = batches
        self.calib_time = calib_time
        self.max_load, self.retakes = max_load, retakes
        self.per_image: dict[str, dict[int, float]] = {}

    def passes(self, kind: str, b: int) -> Callable[[], None]:
        """One plain pass of ``kind`` at batch ``b`` (input prepared outside the timing)."""
        xb = self.x.expand(b, *self.x.shape[1:]).contiguous()
        model, t = self.model, self.t
        if kind == "fwd":
            def run() -> None:
                with torch.no_grad():
                    model(xb)
        else:
            def run() -> None:
                xi = xb.detach().requires_grad_(True)
                out = model(xi)
                torch.autograd.grad(out[:, t].sum(), xi)
        return run

    def calibrate(self, kind: str) -> dict[int, float]:
        """Per-image seconds at each batch size: ``CALIB_PASSES`` interleaved passes over the
        batch sizes, the fastest pass of each (a burst of foreign load only slows a pass down;
        a pass during which other processes took over ``max_load`` of the CPUs is retaken)."""
        if kind in self.per_image:
            return self.per_image[kind]
        runs = {b: self.passes(kind, b) for b in self.batches}
        reps: dict[int, int] = {}
        for b, run in runs.items():  # warm-up call; sets the calls per sample
            t0 = time.perf_counter()
            run()
            sync(self.device)
            one = time.perf_counter() - t0
            reps[b] = max(1, min(50, round(self.calib_time / CALIB_PASSES / max(one, 1e-6))))
        samples: dict[int, list[float]] = {b: [] for b in runs}
        for _ in range(CALIB_PASSES):
            for b, run in runs.items():
                for attempt in range(self.retakes + 1):
                    st0, cpu0, t0 = cpu_stat(), time.process_time(), time.perf_counter()
                    for _ in range(reps[b]):
                        run()
                    sync(self.device)
                    wall = time.perf_counter() - t0
                    foreign = foreign_load(st0, cpu0, wall)
                    if foreign is None or foreign <= self.max_load or attempt == self.retakes:
                        break
                    time.sleep(0.5)
                samples[b].append(wall / reps[b] / b)
        self.per_image[kind] = {b: min(v) for b, v in samples.items()}
        return self.per_image[kind]

    def best(self, kind: str, n: int) -> tuple[int, float]:
        """Best batch size for ``n`` passes (batch ≤ n) and its per-image seconds."""
        table = self.calibrate(kind)
        options = {b: v for b, v in table.items() if b <= n} or {min(table): table[min(table)]}
        b = min(options, key=options.get)
        return b, options[b]

    def call(self, kind: str, n: int, b: int) -> Callable[[], None]:
        """``n`` passes in chunks of ``b`` (the last one smaller)."""
        full = self.passes(kind, b) if n >= b else None
        rest = self.passes(kind, n % b) if n % b else None
        count = n // b

        def run() -> None:
            for _ in range(count):
                full()
            if rest is not None:
                rest()
        return run


# ------------------------------------------------------------------------------------------
# contenders
# ------------------------------------------------------------------------------------------

@dataclass
class Contender:
    key: str                      # unique within an item, e.g. "captum ibs=10"
    role: str                     # "ours" | "peer" | "floor"
    fn: Callable[[], Any]
    default: bool = False         # the peer library's default call
    batch: int | None = None      # batching setting (peers, floor)
    k: int = 1                    # calls per timed sample
    warm_s: float | None = None
    samples: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)   # own CPU seconds per call
    retaken: int = 0              # samples discarded for foreign load
    output: Any = None
    agree: float | None = None    # Pearson r of the map with ours
    mem_mb: float | None = None   # peak extra memory of one call
    mem_note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


@dataclass
class Item:
    method: str
    model_name: str
    kind: str                     # floor pass kind: "fb" or "fwd"
    n: int                        # number of passes of the floor
    floor_batch: int
    est_s: float                  # floor estimate from the calibration
    work: str
    contenders: list[Contender]
    rounds: int = 0
    warmed: bool = True
    ours_params: dict[str, Any] = field(default_factory=dict)

    def get(self, role: str) -> list[Contender]:
        return [c for c in self.contenders if c.role == role]


def peer_batches(args: argparse.Namespace, kind: str, floor_b: int,
                 default: int | None) -> list[int]:
    if args.peer_batches:
        return sorted(set(args.peer_batches) - {default})
    cands = {floor_b, RESEARCH_BATCH[kind]} - {default}
    return sorted(cands or {8})


def gc_call(cls_name: str, s: Setup, **attrs: Any) -> Callable[[], Any]:
    """A pytorch-grad-cam call. The CAM object is created and released *inside* the call:
    while one is alive its hooks run on every forward of the model (also the other
    contenders'), so it must not outlive the call."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cls = getattr(pgc, cls_name)
    layer = s.model.get_submodule(s.layer_name)
    target_layer = layer[-1] if isinstance(layer, torch.nn.Sequential) else layer

    def run() -> Any:
        with cls(model=s.model, target_layers=[target_layer]) as cam:
            for k, v in attrs.items():
                setattr(cam, k, v)
            return cam(input_tensor=s.x, targets=[ClassifierOutputTarget(s.t)])
    return run


def build_item(method: str, s: Setup, args: argparse.Namespace) -> Item:
    model, x, t = s.model, s.x, s.t
    layer = s.model.get_submodule(s.layer_name)
    peers: list[Contender] = []

    def ours(**params: Any) -> Contender:
        def run() -> Any:
            return sw.attribute(model, x, target=t, method=method, **params).values
        return Contender("ours", "ours", run)

    if method in ("gradient", "input_x_gradient", "guided_backprop"):
        from captum.attr import GuidedBackprop, InputXGradient, Saliency
        kind, n, params = "fb", 1, {}
        if method == "gradient":
            peers.append(Contender("captum Saliency", "peer", lambda: Saliency(model).attribute(
                x, target=t, abs=False), default=True))
        elif method == "input_x_gradient":
            peers.append(Contender("captum InputXGradient", "peer", lambda: InputXGradient(
                model).attribute(x, target=t), default=True))
        else:
            peers.append(Contender("captum GuidedBackprop", "peer", lambda: GuidedBackprop(
                model).attribute(x, target=t), default=True))
    elif method == "integrated_gradients":
        from captum.attr import IntegratedGradients
        kind, n, params = "fb", STEPS, {"steps": STEPS, "rule": "gauss_legendre"}

        def ig(b: int | None) -> Callable[[], Any]:
            return lambda: IntegratedGradients(model).attribute(
                x, target=t, n_steps=STEPS, method="gausslegendre", internal_batch_size=b)
        peers.append(Contender("captum ibs=None", "peer", ig(None), default=True))
        for b in peer_batches(args, kind, s.floor.best(kind, n)[0], None):
            peers.append(Contender(f"captum ibs={b}", "peer", ig(b), batch=b))
    elif method == "smoothgrad":
        from captum.attr import NoiseTunnel, Saliency
        kind, n, params = "fb", STEPS, {"samples": STEPS, "noise": NOISE}
        stdev = float(NOISE * (x.max() - x.min()))  # ours: noise × (max − min) per example

        def nt(b: int | None) -> Callable[[], Any]:
            return lambda: NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=STEPS, nt_samples_batch_size=b,
                stdevs=stdev, target=t, abs=False)
        peers.append(Contender("captum bs=None", "peer", nt(None), default=True))
        for b in peer_batches(args, kind, s.floor.best(kind, n)[0], None):
            peers.append(Contender(f"captum bs={b}", "peer", nt(b), batch=b))
    elif method == "grad_cam":
        from captum.attr import LayerAttribution, LayerGradCam
        kind, n, params = "fwd", 1, {"layer": s.layer_name}

        def lgc() -> Any:
            a = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
            return LayerAttribution.interpolate(a, tuple(x.shape[-2:]), "bilinear")
        peers.append(Contender("captum LayerGradCam", "peer", lgc, default=True))
        peers.append(Contender("grad-cam GradCAM", "peer", gc_call("GradCAM", s), default=True))
    elif method == "grad_cam_plusplus":
        kind, n, params = "fwd", 1, {"layer": s.layer_name}
        peers.append(Contender("grad-cam GradCAMPlusPlus", "peer",
                               gc_call("GradCAMPlusPlus", s), default=True))
    elif method == "guided_grad_cam":
        from captum.attr import GuidedGradCam
        kind, n, params = "fb", 1, {"layer": s.layer_name}
        peers.append(Contender("captum GuidedGradCam", "peer", lambda: GuidedGradCam(
            model, layer).attribute(x, target=t), default=True))
    elif method == "occlusion":
        from captum.attr import Occlusion
        kind, n = "fwd", s.n_windows + 1
        params = {"window": s.window, "stride": s.stride}
        c = x.shape[1]

        def occ(b: int) -> Callable[[], Any]:
            return lambda: Occlusion(model).attribute(
                x, sliding_window_shapes=(c, s.window, s.window), strides=(c, s.stride, s.stride),
                target=t, perturbations_per_eval=b)
        peers.append(Contender("captum ppe=1", "peer", occ(1), default=True, batch=1))
        for b in peer_batches(args, kind, s.floor.best(kind, n)[0], 1):
            peers.append(Contender(f"captum ppe={b}", "peer", occ(b), batch=b))
    elif method == "score_cam":
        kind, n = "fwd", s.channels + 1
        # channel_softmax=True gives pytorch-grad-cam's map (same cost as our default).
        params = {"layer": s.layer_name, "channel_softmax": True}
        peers.append(Contender("grad-cam bs=16", "peer", gc_call("ScoreCAM", s), default=True,
                               batch=16))
        for b in peer_batches(args, kind, s.floor.best(kind, n)[0], 16):
            peers.append(Contender(f"grad-cam bs={b}", "peer",
                                   gc_call("ScoreCAM", s, batch_size=b), batch=b))
    else:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")

    fb, per_image = s.floor.best(kind, n)
    floor = Contender("floor", "floor", s.floor.call(kind, n, fb), batch=fb)
    work = f"{n} {kind} @b{fb}"
    ours_c = ours(**params)
    return Item(method, s.model_name, kind, n, fb, n * per_image, work,
                [ours_c, *peers, floor], ours_params=params)


# ------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------

def timed(c: Contender, device: torch.device, k: int) -> tuple[float, float, float | None]:
    """Seconds per call over ``k`` back-to-back calls, own CPU seconds per call, and the
    foreign CPU load meanwhile."""
    gc.collect()
    st0, cpu0 = cpu_stat(), time.process_time()
    t0 = time.perf_counter()
    out = None
    for _ in range(k):
        out = c.fn()
    sync(device)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    foreign = foreign_load(st0, cpu0, wall)
    if c.output is None:
        c.output = out
    del out
    return wall / k, cpu / k, foreign


def cuda_peak(c: Contender, device: torch.device) -> None:
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = c.fn()
    torch.cuda.synchronize(device)
    c.mem_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if c.output is None:
        c.output = out


def prewarm(item: Item, s: Setup) -> None:
    """Instead of a full warm-up call of an expensive item: run the model once at every batch
    shape the contenders use (oneDNN/cuDNN pick their kernels per shape on first use)."""
    shapes = {1, item.floor_batch, item.n % item.floor_batch or item.floor_batch}
    ours_b = auto_chunk(s.device, s.x[0].numel(), "backward" if item.kind == "fb" else "forward")
    for b in [ours_b, *(c.batch for c in item.contenders if c.batch)]:
        shapes |= {min(b, item.n), item.n % b or b}
    for b in sorted(shapes):
        s.floor.passes(item.kind, b)()
    sync(s.device)


def measure(item: Item, s: Setup, args: argparse.Namespace) -> None:
    cs = item.contenders
    tag = f"[{item.model_name} {item.method}]"
    item.warmed = item.est_s <= args.warmup_limit
    if item.warmed:
        for c in cs:
            if s.device.type == "cuda":
                cuda_peak(c, s.device)  # the warm-up call also measures peak memory
            c.warm_s, _, _ = timed(c, s.device, 1)
            c.k = max(1, min(100, math.ceil(args.min_sample / max(c.warm_s, 1e-6))))
    else:
        log(f"{tag} no warm-up call (estimated {item.est_s:.1f} s per call): model pre-warmed "
            f"at the contenders' batch shapes instead")
        prewarm(item, s)
    item.rounds = args.slow_rounds if item.method in SLOW else args.rounds
    for i in range(item.rounds):
        order = cs[i % len(cs):] + cs[:i % len(cs)]
        t0 = time.perf_counter()
        for c in order:
            for attempt in range(args.retakes + 1):
                sec, cpu, foreign = timed(c, s.device, c.k)
                if (foreign is None or foreign <= args.max_load or attempt == args.retakes
                        or sec * c.k > args.retake_limit):
                    break
                c.retaken += 1  # another process took CPU time meanwhile: measure again
                time.sleep(0.5)
            c.samples.append(sec)
            c.cpu.append(cpu)
            if foreign is not None:
                c.foreign.append(foreign)
        log(f"{tag} round {i + 1}/{item.rounds} ({time.perf_counter() - t0:.1f} s): "
            + ", ".join(f"{c.key} {fmt_s(c.samples[-1])}" for c in cs))
    if s.device.type == "cuda" and not item.warmed:
        for c in cs:
            cuda_peak(c, s.device)
    agreement(item)


def as_map(v: Any) -> torch.Tensor | None:
    """Any method's output as a float (H, W) map of the first example, on the CPU."""
    if isinstance(v, tuple):
        v = v[0]
    if v is None:
        return None
    v = torch.as_tensor(v).detach().float().cpu()
    if v.dim() == 4:
        v = v[0].sum(0)
    elif v.dim() == 3:
        v = v[0]
    return v


def agreement(item: Item) -> None:
    """Pearson r between our map and each peer's (checks the peers are called alike)."""
    ours = as_map(item.get("ours")[0].output)
    for c in item.get("peer"):
        other = as_map(c.output)
        if ours is None or other is None:
            continue
        if other.shape != ours.shape:
            other = F.interpolate(other[None, None], size=tuple(ours.shape), mode="bilinear",
                                  align_corners=False)[0, 0]
        a, b = ours.flatten().double(), other.flatten().double()
        a, b = a - a.mean(), b - b.mean()
        denom = float(a.norm() * b.norm())
        c.agree = float(a @ b) / denom if denom > 0 else float("nan")
    for c in item.contenders:
        c.output = None


# ------------------------------------------------------------------------------------------
# peak memory on CPU: one fresh process per contender (peak RSS is per process)
# ------------------------------------------------------------------------------------------

def memory_probe(item: Item, s: Setup, args: argparse.Namespace) -> None:
    floor_best = {k: {str(b): v for b, v in d.items()} for k, d in s.floor.per_image.items()}
    for c in item.contenders:
        spec = {"model": s.model_name, "method": item.method, "key": c.key,
                "floor_best": floor_best}
        cmd = [sys.executable, os.path.abspath(__file__), "--_probe", json.dumps(spec),
               "--size", str(args.size), "--threads", str(args.threads),
               "--cam-layer", args.cam_layer, "--window", str(args.window),
               "--stride", str(args.stride), "--floor-batches",
               ",".join(map(str, args.floor_batches))]
        if args.peer_batches:
            cmd += ["--peer-batches", ",".join(map(str, args.peer_batches))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            c.mem_mb, c.mem_note = res["extra_mb"], res.get("note", "")
        except (IndexError, ValueError, KeyError):
            log(f"memory probe failed for {item.model_name} {item.method} {c.key}:\n"
                f"{proc.stderr[-2000:]}")


def run_probe(args: argparse.Namespace) -> None:
    spec = json.loads(args._probe)
    s = build_setup(spec["model"], args, torch.device("cpu"), floor_best=spec["floor_best"])
    item = build_item(spec["method"], s, args)
    (c,) = [c for c in item.contenders if c.key == spec["key"]]
    with torch.no_grad():
        s.model(s.x)  # first-use allocations of the model itself
    gc.collect()
    rss0 = current_rss()
    # VmHWM is the peak RSS of this process image (ru_maxrss is not: it inherits the parent's
    # peak across fork + exec). Writing 5 to clear_refs resets it to the current RSS.
    reset = reset_peak_rss()
    before = peak_rss()
    c.fn()
    after = peak_rss()
    note = "" if reset or after > before else "≤"  # never above the set-up's own peak
    print(json.dumps({"extra_mb": max(0, after - rss0) / 2**20, "note": note}))


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------

def spread(c: Contender) -> str:
    if len(c.samples) < 2:
        return "n=1"
    return f"{fmt_s(min(c.samples))}–{fmt_s(max(c.samples))}"


def goals(item: Item) -> tuple[str, str]:
    ours, floor = item.get("ours")[0], item.get("floor")[0]
    peers = item.get("peer")
    if item.method in FLOOR_GOAL:
        lim = FLOOR_GOAL[item.method]
        fg = ("PASS" if ours.median <= lim * floor.median else "MISS") + f" (≤{lim}×)"
    else:
        fg = "-"
    best = min(peers, key=lambda c: c.median)
    if ours.median <= best.median:
        pg = "PASS"
    elif min(ours.samples) <= max(best.samples):
        pg = "MISS (spreads overlap)"
    else:
        pg = "MISS"
    return fg, pg


def report(items: list[Item], setups: dict[str, Setup], args: argparse.Namespace,
           header: list[str], elapsed: float) -> str:
    lines = list(header)
    have_mem = any(c.mem_mb is not None for it in items for c in it.contenders)
    lines += ["", "## Summary", "",
              "Seconds per call, median of the rounds; ratio = ours ÷ that contender "
              "(< 1 means ours is faster). Spread = min–max over the rounds.", ""]
    cols = ["method", "model", "rounds", "ours s (spread)", "floor s (work)", "ours/floor",
            "peer default s (ours/peer)", "peer best s (ours/peer)"]
    if have_mem:
        cols.append("extra MB ours / peer default / peer best")
    cols += ["floor goal", "peer goal"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for it in items:
        ours, floor = it.get("ours")[0], it.get("floor")[0]
        peers = it.get("peer")
        default = [c for c in peers if c.default][0]
        best = min(peers, key=lambda c: c.median)
        fg, pg = goals(it)
        rounds = f"{it.rounds}" + ("" if it.warmed else " (no warm-up)")
        row = [it.method, it.model_name, rounds,
               f"{fmt_s(ours.median)} ({spread(ours)})",
               f"{fmt_s(floor.median)} ({it.work})",
               fmt_ratio(ours.median / floor.median),
               f"{fmt_s(default.median)} {default.key} ({fmt_ratio(ours.median / default.median)})",
               f"{fmt_s(best.median)} {best.key} ({fmt_ratio(ours.median / best.median)})"]
        if have_mem:
            row.append(" / ".join(mem_str(c) for c in (ours, default, best)))
        row += [fg, pg]
        lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Every contender", "",
              "k = calls per timed sample; load = CPU time used by other processes during "
              "the kept samples, as a share of all cores (median; > ~8 % makes a 2-thread run "
              f"noticeably slower; a sample above {args.max_load:.0%} was retaken at most "
              f"{args.retakes}×, unless longer than {args.retake_limit:.0f} s); cpu s = our "
              "process's CPU seconds per call (median; all threads, so up to threads × wall; "
              "less sensitive to foreign load than wall time, but OpenMP spin-waiting counts "
              "too); r = Pearson correlation of the peer's map with ours (channel-summed, "
              "resized to the input), a check that both compute the same thing.", ""]
    cols = ["model", "method", "contender", "median s", "min–max s", "rounds×k", "vs ours",
            "cpu s", "load", "r"]
    if have_mem:
        cols.append("extra MB")
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for it in items:
        ours = it.get("ours")[0]
        for c in it.contenders:
            label = c.key + (" (default)" if c.default else "")
            if c.role == "floor":
                label = f"floor: {it.work}"
            load = f"{statistics.median(c.foreign) * 100:.0f}%" if c.foreign else "-"
            row = [it.model_name, it.method, label, fmt_s(c.median), spread(c),
                   f"{len(c.samples)}×{c.k}" + (f" ({c.retaken} retaken)" if c.retaken else ""),
                   fmt_ratio(c.median / ours.median),
                   fmt_s(statistics.median(c.cpu)) if c.cpu else "-", load,
                   "-" if c.agree is None else f"{c.agree:.3f}"]
            if have_mem:
                row.append(mem_str(c))
            lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Floor calibration", "",
              f"Per-image seconds of plain passes at each batch size (fastest of "
              f"{CALIB_PASSES} interleaved samples); "
              "the floor uses the fastest batch size ≤ the number of passes.", ""]
    bs = args.floor_batches
    lines += ["| model | pass | " + " | ".join(f"b={b}" for b in bs) + " |",
              "|" + "---|" * (len(bs) + 2)]
    for name, s in setups.items():
        for kind, table in sorted(s.floor.per_image.items()):
            lines.append(f"| {name} | {kind} | "
                         + " | ".join(fmt_s(table[b]) if b in table else "-" for b in bs) + " |")

    misses = [(it, *goals(it)) for it in items]
    n_f = sum(1 for _, fg, _ in misses if fg.startswith("MISS"))
    n_p = sum(1 for _, _, pg in misses if pg.startswith("MISS"))
    lines += ["", "## Goals (informative; the exit code is 0 either way)", "",
              f"* floor goals (IG, SmoothGrad, occlusion, Score-CAM ≤ 1.2× their floor; "
              f"Grad-CAM, Grad-CAM++ ≤ 1.2× one forward): "
              f"{sum(1 for _, fg, _ in misses if fg != '-') - n_f} PASS, {n_f} MISS",
              f"* peer goal (never slower than the fastest peer setting): "
              f"{len(items) - n_p} PASS, {n_p} MISS"]
    for it, fg, pg in misses:
        if fg.startswith("MISS") or pg.startswith("MISS"):
            lines.append(f"  * {it.model_name} {it.method}: floor {fg}, peer {pg}")
    slow = [it for it in items if it.rounds < args.rounds or not it.warmed]
    if slow:
        lines += ["", "Fewer rounds or no warm-up call (slow items): "
                  + ", ".join(f"{it.model_name} {it.method} ({it.rounds} rounds"
                              + ("" if it.warmed else ", no warm-up call") + ")"
                              for it in slow) + "."]
    lines += ["", f"Total time {elapsed / 60:.1f} min.", ""]
    return "\n".join(lines)


def mem_str(c: Contender) -> str:
    if c.mem_mb is None:
        return "-"
    return f"{c.mem_note}{c.mem_mb:.0f}"


def header_lines(args: argparse.Namespace, device: torch.device) -> list[str]:
    import captum
    try:
        from importlib.metadata import version
        gcv = version("grad-cam")
    except Exception:  # pragma: no cover
        gcv = "?"
    if device.type == "cuda":
        dev = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        dev = f"CPU, {args.threads} torch threads"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return [
        "# saliency_widgets speed vs Captum / pytorch-grad-cam / floor",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')}; {platform.node()}: "
        f"{_NCPU} × {cpu_name()}; device {dev}.",
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, captum {captum.__version__}, grad-cam {gcv}, "
        f"saliency_widgets {sw.__version__}.",
        f"Input 1×3×{args.size}×{args.size} randn (seed 0), fp32; torchvision models with "
        f"weights=None, torch.manual_seed(0), eval(); target = predicted class. "
        f"IG {STEPS} steps Gauss-Legendre, SmoothGrad {STEPS} samples (noise {NOISE} × range), "
        f"occlusion window {args.window} stride {args.stride}, CAM layer {args.cam_layer}. "
        "Load average at start: "
        + ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in load) + ".",
        "Command: `" + " ".join(["python", "benchmarks/bench_methods.py", *sys.argv[1:]]) + "`",
    ]


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------

def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="resnet18 only, 112 px, 3 rounds: a 2-4 minute check on 2 cores")
    p.add_argument("--models", type=name_list, default=None,
                   help="torchvision model names (default resnet18,resnet50; --quick resnet18)")
    p.add_argument("--methods", type=name_list, default=METHODS,
                   help="methods to run, comma-separated (default: all ten)")
    p.add_argument("--size", type=int, default=None, help="image side (default 224; --quick 112)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per item (default 5; --quick 3)")
    p.add_argument("--slow-rounds", type=int, default=None,
                   help="rounds for occlusion and score_cam (default 3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads on CPU (default %(default)s)")
    p.add_argument("--out", default=None, help="also write the markdown report to this file")
    p.add_argument("--json", default=None, help="also write every sample to this JSON file")
    p.add_argument("--memory", action="store_true",
                   help="measure each contender's peak extra memory (CPU: one extra call per "
                        "contender in a fresh process; CUDA: always on)")
    p.add_argument("--window", type=int, default=16,
                   help="occlusion window in px (default %(default)s)")
    p.add_argument("--stride", type=int, default=8,
                   help="occlusion stride in px (default %(default)s)")
    p.add_argument("--cam-layer", default="layer4",
                   help="layer of the CAM methods (default %(default)s)")
    p.add_argument("--floor-batches", type=int_list, default=None,
                   help="batch sizes tried for the floor (default 1,2,4,8,16; CUDA up to 128)")
    p.add_argument("--peer-batches", type=int_list, default=None,
                   help="peer batching settings to try besides the default (default: the "
                        "floor's best batch size and 10 for fb / 16 for fwd peers)")
    p.add_argument("--min-sample", type=float, default=0.2,
                   help="a timed sample repeats a fast call until it lasts about this long, "
                        "in s (default %(default)s)")
    p.add_argument("--calib-time", type=float, default=0.6,
                   help="seconds spent per batch size and pass kind in the floor "
                        "calibration (default %(default)s)")
    p.add_argument("--warmup-limit", type=float, default=8.0,
                   help="items whose floor exceeds this many seconds get no warm-up call "
                        "(the model is pre-warmed at their batch shapes instead; "
                        "default %(default)s)")
    p.add_argument("--max-load", type=float, default=0.10,
                   help="retake a sample when other processes used more than this share of "
                        "the CPUs meanwhile (Linux /proc/stat; default %(default)s)")
    p.add_argument("--retakes", type=int, default=1,
                   help="retakes per sample at most (default %(default)s)")
    p.add_argument("--retake-limit", type=float, default=30.0,
                   help="samples longer than this many seconds are never retaken "
                        "(default %(default)s)")
    p.add_argument("--_probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.models is None:
        args.models = ["resnet18"] if args.quick else ["resnet18", "resnet50"]
    if args.size is None:
        args.size = 112 if args.quick else 224
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.slow_rounds is None:
        args.slow_rounds = min(3, args.rounds)
    if args.floor_batches is None:
        args.floor_batches = ([1, 2, 4, 8, 16, 32, 64, 128] if args.device.startswith("cuda")
                              else [1, 2, 4, 8, 16])
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.window > args.size or args.stride < 1:
        p.error("occlusion window must fit the image and stride be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # peers' hook warnings would bury the table
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args._probe:
        run_probe(args)
        return 0
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available")
    started = time.perf_counter()
    header = header_lines(args, device)
    log("\n".join(header))
    items: list[Item] = []
    setups: dict[str, Setup] = {}
    for name in args.models:
        log(f"[{name}] building the model and calibrating the floor ...")
        s = build_setup(name, args, device)
        setups[name] = s
        for method in args.methods:
            item = build_item(method, s, args)
            measure(item, s, args)
            if args.memory and device.type == "cpu":
                memory_probe(item, s, args)
            items.append(item)
    text = report(items, setups, args, header, time.perf_counter() - started)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        raw = [{"model": it.model_name, "method": it.method, "work": it.work,
                "ours_params": {k: str(v) for k, v in it.ours_params.items()},
                "rounds": it.rounds, "warmed": it.warmed,
                "contenders": [{"key": c.key, "role": c.role, "default": c.default,
                                "batch": c.batch, "k": c.k, "samples": c.samples,
                                "cpu_s": c.cpu, "retaken": c.retaken,
                                "foreign_load": c.foreign, "agree": c.agree,
                                "extra_mb": c.mem_mb} for c in it.contenders]}
               for it in items]
        with open(args.json, "w") as f:
            json.dump({"header": header, "items": raw,
                       "floor": {n: s.floor.per_image for n, s in setups.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
