"""Timing one item: warm-up, interleaved rounds with retakes under foreign load, peak memory
(CUDA always; CPU in a fresh process per contender with ``--memory``), and the agreement of each
peer's map with ours (a check that both compute the same thing)."""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

from _common import fmt_s, log, sync
from _contenders import Contender, Item, Setup
from _env import LoadMeter

SLOW = {"occlusion", "score_cam", "ablation_cam", "rise", "guided_ig", "xrai", "lime",
        "kernel_shap", "blur_ig"}  # fewer rounds (--slow-rounds)


def timed(c: Contender, device: torch.device, k: int) -> tuple[float, float, float | None]:
    """Seconds per call over ``k`` back-to-back calls, own CPU seconds per call, and the
    foreign CPU load meanwhile."""
    gc.collect()
    meter = LoadMeter()
    meter.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    out = None
    for _ in range(k):
        out = c.fn()
    sync(device)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    foreign = meter.stop()
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
    from saliency_widgets.work import auto_chunk
    shapes = {1, *item.chunks}
    for kind in ("fwd", "fb"):
        shapes.add(auto_chunk(s.device, s.x[0].numel(), "backward" if kind == "fb" else "forward"))
    shapes |= {c.batch for c in item.contenders if c.batch}
    for b in sorted(shapes):
        s.passes.one("fwd", b)()
    sync(s.device)


def measure(item: Item, s: Setup, args: argparse.Namespace,
            deadline: float | None = None) -> None:
    """Warm up (or pre-warm) and run ``item``'s interleaved rounds; past ``deadline``
    (``time.perf_counter()``) no new round starts (at least one runs)."""
    tag = f"[{item.model_name} b{item.batch} {item.method}]"
    item.warmed = item.est_s <= args.warmup_limit
    if item.warmed:
        for c in list(item.contenders):
            try:
                if s.device.type == "cuda":
                    cuda_peak(c, s.device)  # the warm-up call also measures peak memory
                c.warm_s, _, _ = timed(c, s.device, 1)
            except Exception as err:
                if c.role != "peer":
                    raise
                drop(item, c, err, s.device)  # e.g. a peer default out of memory at batch 32
                continue
            c.k = max(1, min(100, math.ceil(args.min_sample / max(c.warm_s, 1e-6))))
    else:
        log(f"{tag} no warm-up call (floor estimated at {item.est_s:.1f} s per call): model "
            f"pre-warmed at the contenders' batch shapes instead")
        prewarm(item, s)
    cs = item.contenders
    item.rounds = args.slow_rounds if item.method in SLOW else args.rounds
    for i in range(item.rounds):
        if i and deadline is not None and time.perf_counter() + last > deadline:
            log(f"{tag} stopped after {i} round(s): the time budget")
            item.rounds = i
            break
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
        last = time.perf_counter() - t0
        log(f"{tag} round {i + 1}/{item.rounds} ({last:.1f} s): "
            + ", ".join(f"{c.key} {fmt_s(c.samples[-1])}" for c in cs))
    if s.device.type == "cuda" and not item.warmed:
        for c in cs:
            cuda_peak(c, s.device)
    agreement(item)


def drop(item: Item, c: Contender, err: Exception, device: torch.device) -> None:
    """Leave out a peer contender that failed, saying so in the item's note."""
    item.contenders.remove(c)
    what = f"{c.key}: failed ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    item.note = f"{item.note}; {what}" if item.note else what
    log(f"[{item.model_name} b{item.batch} {item.method}] {what}")
    c.output = None
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def as_map(v: Any) -> torch.Tensor | None:
    """Any method's output as a float (H, W) map of the first example, on the CPU."""
    if isinstance(v, (tuple, list)):
        v = v[0] if v else None
    if v is None:
        return None
    v = torch.as_tensor(v).detach().float().cpu()
    if v.dim() == 4:
        v = v[0].sum(0)
    elif v.dim() == 3:
        v = v[0] if v.shape[0] != v.shape[1] or v.shape[-1] not in (1, 3) else v.sum(-1)
    return v


def agreement(item: Item) -> None:
    """Pearson r between our map and each peer's (checks the peers are called alike)."""
    ours = as_map(item.get("ours")[0].output)
    for c in item.get("peer"):
        try:
            other = as_map(c.output)
        except (TypeError, ValueError, RuntimeError):
            other = None
        if ours is None or other is None or other.dim() != 2:
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


# --- peak memory on CPU: one fresh process per contender (peak RSS is per process) ------------
def memory_probe(item: Item, s: Setup, args: argparse.Namespace, script: str) -> None:
    floor_best = {k: {str(b): v for b, v in d.items()} for k, d in s.passes.per_image.items()}
    for c in item.contenders:
        spec = {"model": s.model_name, "method": item.method, "key": c.key,
                "batch": item.batch, "floor_best": floor_best}
        cmd = [sys.executable, script, "--_probe", json.dumps(spec), *args.probe_argv]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            c.mem_mb, c.mem_note = res["extra_mb"], res.get("note", "")
        except (IndexError, ValueError, KeyError):
            log(f"memory probe failed for {item.model_name} {item.method} {c.key}:\n"
                f"{proc.stderr[-2000:]}")


def run_probe(c: Contender, s: Setup) -> None:
    """In the probe process: one call of ``c``, its peak RSS above the RSS before it."""
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


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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
