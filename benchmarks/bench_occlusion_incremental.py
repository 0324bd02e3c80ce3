#!/usr/bin/env python
"""Incremental occlusion against the plain floor: N forward passes, timed in the same process.

For each torchvision model (``weights=None`` after ``torch.manual_seed(0)``, eval) and one seeded
``randn`` image, occlusion with ``window`` / ``stride`` needs N = windows + 1 model evaluations.
Contenders, run as interleaved rounds (round i runs each once, the order rotated by i):

* ``floor``       N plain forward passes under ``no_grad`` in chunks of the batch size that is
                  fastest per image here (calibrated at start), the model as given (NCHW);
* ``floor_cl``    the same with model and input in ``channels_last`` (a lower floor: our
                  patches are gathered channels-last, so this separates layout from algorithm);
* ``plain``       ``sw.attribute(..., method="occlusion", incremental=False)``;
* ``incremental`` ``sw.attribute(..., method="occlusion", incremental=True)``.

Reported beside the measured speed-up (floor ÷ incremental) is the theoretical FLOP ratio of
the plan that ran (``attr.extras["incremental_flop_ratio"]``: the FLOPs of N full passes over
those of one full pass plus every window's patches) and the cost model's prediction. The maps
of ``plain`` and ``incremental`` are compared (max difference over the logit scale).

    python benchmarks/bench_occlusion_incremental.py            # resnet18, resnet50, vgg16
    python benchmarks/bench_occlusion_incremental.py --quick    # resnet18, 1 round

Tables go to stdout and ``docs/bench_occlusion_incremental[_quick].md`` (+ ``.json``), progress to
stderr. Run on a quiet machine: the "load" column is the CPU time other processes used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

import torch
import torchvision

import saliency_widgets as sw
from _common import fmt_s, log, sync
from _env import NCPU, cpu_name, cpu_stat, foreign_load

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")


def timed(fn: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """Wall and own CPU seconds of one call, and the share of all cores other processes used."""
    st0, cpu0 = cpu_stat(), time.process_time()
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    wall = time.perf_counter() - t0
    load = foreign_load(st0, cpu0, wall)
    return {"s": wall, "cpu_s": time.process_time() - cpu0, "load": load, "out": out}


def best_batch(model: torch.nn.Module, x: torch.Tensor, batches: list[int],
               device: torch.device) -> tuple[int, dict[int, float]]:
    """The batch size with the lowest per-image forward time (fastest of 3 short samples)."""
    per: dict[int, float] = {}
    for b in batches:
        xb = x.expand(b, *x.shape[1:]).contiguous(memory_format=_format(x))
        with torch.no_grad():
            model(xb)
            times = []
            for _ in range(3):
                times.append(timed(lambda: model(xb), device)["s"] / b)
        per[b] = min(times)
    return min(per, key=per.__getitem__), per


def _format(x: torch.Tensor) -> torch.memory_format:
    return (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous() else torch.contiguous_format)


def floor_call(model: torch.nn.Module, x: torch.Tensor, n: int, b: int) -> Callable[[], None]:
    xb = x.expand(b, *x.shape[1:]).contiguous(memory_format=_format(x))

    def run() -> None:
        with torch.no_grad():
            done = 0
            while done < n:
                k = min(b, n - done)
                model(xb[:k])
                done += k
    return run


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval().to(device)
    x = torch.randn(1, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax(1))
    per_side = (args.size - args.window) // args.stride + 1
    n = per_side * per_side + 1
    occ = dict(method="occlusion", window=args.window, stride=args.stride)
    b, per_image = best_batch(model, x, args.floor_batches, device)
    log(f"{name}: {n} model evaluations; floor batch {b} ({per_image[b] * 1e3:.1f} ms/img)")
    contenders: dict[str, Callable[[], Any]] = {
        "floor": floor_call(model, x, n, b),
        "plain": lambda: sw.attribute(model, x, target, incremental=False, **occ),
        "incremental": lambda: sw.attribute(model, x, target, incremental=True, **occ),
    }
    if args.channels_last:
        model_cl = getattr(torchvision.models, name)(weights=None).eval().to(device)
        model_cl.load_state_dict(model.state_dict())
        model_cl = model_cl.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        b_cl, _ = best_batch(model_cl, x_cl, args.floor_batches, device)
        contenders["floor_cl"] = floor_call(model_cl, x_cl, n, b_cl)
    # warm-up: every kernel shape once (few windows), without paying a full call each
    quick = dict(occ, stride=max(args.stride, args.size // 2))
    sw.attribute(model, x, target, incremental=True, **quick)
    sw.attribute(model, x, target, incremental=False, **quick)
    floor_call(model, x, b, b)()
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in contenders}
    names = list(contenders)
    outputs: dict[str, Any] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for key in order:
            log(f"  round {r + 1}/{args.rounds}: {key}")
            rec = timed(contenders[key], device)
            outputs[key] = rec.pop("out")
            samples[key].append(rec)
            log(f"    {rec['s']:.2f} s (load {rec['load'] if rec['load'] is None else round(rec['load'], 3)})")
    inc, plain = outputs["incremental"], outputs["plain"]
    diff = float((inc.values - plain.values).abs().max()) / float(logits.abs().max())
    med = {k: statistics.median(s["s"] for s in v) for k, v in samples.items()}
    cpu = {k: statistics.median(s["cpu_s"] for s in v) for k, v in samples.items()}
    loads = [s["load"] for v in samples.values() for s in v if s["load"] is not None]
    return {
        "model": name, "size": args.size, "window": args.window, "stride": args.stride,
        "evaluations": n, "floor_batch": b, "floor_per_image_s": per_image,
        "median_s": med, "samples": samples,
        "speedup_vs_floor": med["floor"] / med["incremental"],
        "cpu_speedup_vs_floor": cpu["floor"] / cpu["incremental"],
        "speedup_vs_floor_cl": (med["floor_cl"] / med["incremental"]
                                if "floor_cl" in med else None),
        "speedup_vs_plain": med["plain"] / med["incremental"],
        "flop_ratio": inc.extras.get("incremental_flop_ratio"),
        "modelled_speedup": inc.extras.get("incremental_modelled_speedup"),
        "crossover": inc.extras.get("incremental_crossover"),
        "region_end": inc.extras.get("incremental_region_end"),
        "path": inc.extras.get("occlusion_path"),
        "max_diff_over_logit_scale": diff,
        "load_median": statistics.median(loads) if loads else None,
    }


def report(items: list[dict[str, Any]], header: list[str]) -> str:
    lines = ["# Incremental occlusion vs the plain floor", "", *header, "",
             "Seconds per call (median over the rounds; spread min–max). speed-up = floor ÷ "
             "incremental (> 1: incremental is faster). FLOP ratio = FLOPs of N full passes ÷ "
             "FLOPs of one full pass plus every window's patches (the plan that ran); "
             "modelled = the cost model's predicted speed-up (what `incremental=\"auto\"` "
             "uses). cpu = the same ratio of our own CPU seconds (less sensitive to other "
             "processes). Δ = max |incremental − plain| over max |logit|. load = CPU time "
             "other processes used during the samples, as a share of all cores (median).", "",
             "| model | N | floor s | floor_cl s | plain s | incremental s | speed-up vs floor "
             "| FLOP ratio | modelled | cpu | vs floor_cl | vs plain | Δ | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(it: dict[str, Any], key: str) -> str:
        s = it["samples"].get(key)
        if not s:
            return "-"
        v = [x["s"] for x in s]
        return f"{fmt_s(statistics.median(v))} ({fmt_s(min(v))}–{fmt_s(max(v))})"

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}×"

    for it in items:
        load = it["load_median"]
        lines.append(
            f"| {it['model']} | {it['evaluations']} | {cell(it, 'floor')} @b{it['floor_batch']} "
            f"| {cell(it, 'floor_cl')} | {cell(it, 'plain')} | {cell(it, 'incremental')} "
            f"| **{ratio(it['speedup_vs_floor'])}** | {ratio(it['flop_ratio'])} "
            f"| {ratio(it['modelled_speedup'])} | {ratio(it['cpu_speedup_vs_floor'])} "
            f"| {ratio(it['speedup_vs_floor_cl'])} "
            f"| {ratio(it['speedup_vs_plain'])} | {it['max_diff_over_logit_scale']:.1e} "
            f"| {'-' if load is None else f'{load:.0%}'} |")
    lines += ["", "Where patching ended (the rest ran on full maps):", ""]
    for it in items:
        lines.append(f"* {it['model']}: crossover {it['crossover']}; "
                     + "; ".join(it["region_end"] or ["-"]))
    goal = [it for it in items if it["model"] == "resnet18"]
    if goal:
        ok = goal[0]["speedup_vs_floor"] >= 1.5
        lines += ["", f"Goal (resnet18 ≥ 1.5× faster than the floor): "
                      f"{'PASS' if ok else 'MISS'} ({goal[0]['speedup_vs_floor']:.2f}×)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="resnet18 only, 1 round (~1.5 min on 2 quiet cores)")
    p.add_argument("--models", default=None, help="default resnet18,resnet50,vgg16")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--rounds", type=int, default=None, help="default 3 (--quick: 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--floor-batches", default="1,2,4,8")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="markdown file (default docs/…md)")
    p.add_argument("--json", default=None, help="JSON file (default docs/…json)")
    args = p.parse_args(argv)
    args.models = (args.models or ("resnet18" if args.quick else "resnet18,resnet50,vgg16")
                   ).split(",")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.floor_batches = [int(v) for v in args.floor_batches.split(",")]
    stem = os.path.join(DOCS, "bench_occlusion_incremental" + ("_quick" if args.quick else ""))
    args.out, args.json = args.out or stem + ".md", args.json or stem + ".json"
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    header = [
        f"{datetime.datetime.now().isoformat(timespec='seconds')}; {platform.node()}: "
        f"{NCPU} × {cpu_name()}; device {device.type}, {torch.get_num_threads()} torch threads.",
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, saliency_widgets {sw.__version__}.",
        f"Mode: {'quick' if args.quick else 'full'}; {args.rounds} round(s); input 1×3×"
        f"{args.size}×{args.size} randn (seed 0), fp32; window {args.window}, stride "
        f"{args.stride}; target = predicted class. Load average at start: "
        f"{', '.join(f'{v:.2f}' for v in load0) if load0 else '?'}.",
        "Command: `python " + " ".join(["benchmarks/bench_occlusion_incremental.py"]
                                       + (argv if argv is not None else sys.argv[1:])) + "`",
    ]
    items = [measure(name, args, device) for name in args.models]
    text = report(items, header)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    with open(args.json, "w") as f:
        json.dump({"header": header, "mode": "quick" if args.quick else "full",
                   "load_average_start": load0, "items": items}, f, indent=1, default=str)
    log(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
