#!/usr/bin/env python
"""Per-call overhead of ``sw.attribute``: its time minus the floor's, in µs, per method.

On a GPU a batch-1 call of a ResNet takes 2–15 ms, so fixed per-call work on the host (the
structural copy, input checks, layer lookup, host–device syncs, guided backprop's ReLU
interception) decides whether a method reaches its floor. That work is the same Python code on
every device, so it is measured here on the CPU with models whose arithmetic is negligible: a
tiny CNN at 16 px and torchvision ResNets at 32 px (their module trees are full size, which is
what the copy and the interception scale with). ``--device cuda`` runs the same on a GPU.

For each (model, method): ``ours`` = ``sw.attribute(model, x, target, method=...)``; ``floor``
= the passes the map needs, as plain PyTorch on a frozen copy of the model
(``benchmarks/_floor.py``). Interleaved rounds; each sample repeats a call until it lasts
``--min-sample`` s. Overhead = median(ours) − median(floor); "min" columns use the fastest
sample of each, which other processes disturb least.

A second table times the pieces of the fixed work on their own. ``--baseline FILE`` adds the
columns of an earlier run (e.g. the code before a change) to the report.

    python benchmarks/bench_overhead.py --out docs/bench/overhead_cpu.md \\
        --json docs/bench/overhead_cpu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable

import torch
import torchvision
from torch import nn

import saliency_widgets as sw
from _common import log, sync
from _env import LoadMeter, header_markdown, run_header, write_outputs
from _floor import ModelInfo, Passes, recipe

METHODS = ["gradient", "input_x_gradient", "guided_backprop", "deconvolution", "grad_cam",
           "grad_cam_plusplus", "hires_cam", "xgrad_cam", "layer_cam", "guided_grad_cam",
           "cam", "eigen_cam", "fullgrad", "lrp", "deeplift", "integrated_gradients"]
PARAMS = {"integrated_gradients": {"steps": 8}}


class TinyCNN(nn.Module):
    """Two conv/BN/ReLU blocks, global average pooling and a linear head (CAM-compatible)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def build(name: str, device: torch.device) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    if name == "tiny":
        return TinyCNN().eval().to(device), "features"
    return getattr(torchvision.models, name)(weights=None).eval().to(device), "layer4"


def sampler(fn: Callable[[], Any], device: torch.device, min_sample: float
            ) -> Callable[[], tuple[float, float | None]]:
    """A timed sample: ``fn`` repeated until it lasts ``min_sample`` s; (s per call, load)."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    one = max(time.perf_counter() - t0, 1e-6)
    k = max(1, min(2000, round(min_sample / one)))
    meter = LoadMeter()

    def sample() -> tuple[float, float | None]:
        gc.collect()
        meter.start()
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        sync(device)
        wall = time.perf_counter() - t0
        return wall / k, meter.stop()
    return sample


def interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, rounds: int,
                min_sample: float) -> dict[str, dict[str, Any]]:
    """Median and min seconds per call of each function, over interleaved rounds."""
    for fn in fns.values():  # warm-up
        fn()
    samplers = {k: sampler(fn, device, min_sample) for k, fn in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    loads: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t, load = samplers[k]()
            times[k].append(t)
            if load is not None:
                loads[k].append(load)
    return {k: {"median": statistics.median(v), "min": min(v), "samples": v,
                "load": statistics.median(loads[k]) if loads[k] else None}
            for k, v in times.items()}


def components(net: nn.Module, x: torch.Tensor, target: int, device: torch.device,
               args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The pieces of a call's fixed work, each on its own (only APIs both old and new code
    have, so a baseline run of earlier code measures the same things)."""
    from saliency_widgets.api import check_input
    from saliency_widgets.model.copy import explainable
    from saliency_widgets.model.hooks import guided_relus
    from saliency_widgets.model.objective import Objective

    def copy_model() -> None:
        with explainable(net):
            pass

    with explainable(net) as copy:
        pass

    def forward() -> None:
        with torch.enable_grad():
            copy(x)

    def guided_forward() -> None:
        with torch.enable_grad(), guided_relus(True):
            copy(x)

    def hooked_forward() -> None:  # guided ReLUs by module hooks (code that has them)
        with torch.enable_grad(), guided_relus(True, copy):  # type: ignore[call-arg]
            copy(x)

    fns = {"structural copy (enter + exit)": copy_model,
           "input checks": lambda: check_input(net, x),
           "objective (explicit target)": lambda: Objective(target, None, x.shape[0], device),
           "fingerprint (not on the call path)": lambda: sw.fingerprint(net),
           "forward with graph": forward,
           "forward with guided ReLUs (mode)": guided_forward}
    try:  # the mode's first pass decides whether this copy may use module hooks
        with torch.enable_grad(), guided_relus(True, copy):  # type: ignore[call-arg]
            copy(x)
        with torch.enable_grad(), guided_relus(True, copy) as g:  # type: ignore[call-arg]
            copy(x)
        if type(g).__name__ == "GuidedReLUHooks":
            fns["forward with guided ReLUs (module hooks)"] = hooked_forward
    except TypeError:  # earlier code: the mode only
        pass
    return interleaved(fns, device, args.rounds, args.min_sample)


def run_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    net, layer = build(name, device)
    size = 16 if name == "tiny" else args.size
    x = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0)
                    ).to(device)
    with torch.no_grad():
        target = int(net(x[:1]).argmax(1))
    passes = Passes(net, x, target, device, batches=[args.batch])
    info = ModelInfo(batch=args.batch, size=size, cam_layer=layer)
    rows = []
    for method in args.methods:
        params = PARAMS.get(method, {})
        full = {**next(m["params"] for m in sw.list_methods() if m["name"] == method), **params}
        floor_run, _, _ = passes.call(recipe(method, full, info), calibrated=False)
        kw = {"layer": layer} if method in {m["name"] for m in sw.list_methods()
                                            if m["uses_layer"]} else {}

        def ours(method: str = method, kw: dict = kw, params: dict = params) -> Any:
            return sw.attribute(net, x, target, method=method, **kw, **params).values
        log(f"[{name}] {method}")
        res = interleaved({"ours": ours, "floor": floor_run}, device, args.rounds,
                          args.min_sample)
        o, f = res["ours"], res["floor"]
        rows.append({"model": name, "method": method, "work": recipe(method, full, info).words(),
                     "ours_s": o, "floor_s": f,
                     "overhead_us": (o["median"] - f["median"]) * 1e6,
                     "overhead_min_us": (o["min"] - f["min"]) * 1e6,
                     "ratio": o["median"] / f["median"]})
    comp = components(net, x, target, device, args) if args.components else {}
    return {"model": name, "size": size, "rows": rows, "components": comp}


def report(head: dict[str, Any], models: list[dict[str, Any]],
           baseline: dict[str, Any] | None) -> str:
    lines = header_markdown("Per-call overhead of sw.attribute", head)
    base_rows = {}
    base_comp = {}
    if baseline is not None:
        bh = baseline["header"]
        lines += ["", f"Baseline (\"before\"): commit {bh['commit']}, {bh['date']}, load average "
                  f"at start {bh.get('load_average_at_start')}."]
        for m in baseline["models"]:
            for r in m["rows"]:
                base_rows[(r["model"], r["method"])] = r
            for k, v in m["components"].items():
                base_comp[(m["model"], k)] = v
    lines += ["", "µs per call: median of the interleaved rounds (min = the fastest sample). "
              "Overhead = ours − floor; the floor is the passes the map needs on a frozen copy "
              "(benchmarks/_floor.py). Load = CPU time other processes took during the samples, "
              "as a share of all cores (median).", ""]
    for m in models:
        lines += [f"## {m['model']} ({args_size(m)} px, batch {head['batch']})", ""]
        cols = ["method", "floor", "floor µs", "ours µs", "overhead µs (min)", "ours/floor",
                "load"]
        if baseline is not None:
            cols[4:4] = ["before: ours µs", "before: overhead µs (min)"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in m["rows"]:
            load = r["ours_s"]["load"]
            cells = [r["method"], r["work"], f"{r['floor_s']['median'] * 1e6:.0f}",
                     f"{r['ours_s']['median'] * 1e6:.0f}",
                     f"{r['overhead_us']:.0f} ({r['overhead_min_us']:.0f})",
                     f"{r['ratio']:.2f}×", "-" if load is None else f"{load:.0%}"]
            if baseline is not None:
                b = base_rows.get((r["model"], r["method"]))
                cells[4:4] = (["-", "-"] if b is None else [
                    f"{b['ours_s']['median'] * 1e6:.0f}",
                    f"{b['overhead_us']:.0f} ({b['overhead_min_us']:.0f})"])
            lines.append("| " + " | ".join(cells) + " |")
        if m["components"]:
            lines += ["", f"Pieces of the fixed work ({m['model']}), µs per call:", ""]
            cols = ["piece", "median µs", "min µs"] + (["before: median µs", "before: min µs"]
                                                      if baseline is not None else [])
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for k, v in m["components"].items():
                cells = [k, f"{v['median'] * 1e6:.1f}", f"{v['min'] * 1e6:.1f}"]
                if baseline is not None:
                    b = base_comp.get((m["model"], k))
                    cells += (["-", "-"] if b is None else
                              [f"{b['median'] * 1e6:.1f}", f"{b['min'] * 1e6:.1f}"])
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def args_size(m: dict[str, Any]) -> int:
    return m["size"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default=None,
                   help="tiny and/or torchvision names (default tiny,resnet18,resnet50)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--size", type=int, default=None,
                   help="image side of the torchvision models (default 32 on CPU, 224 on CUDA)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--min-sample", type=float, default=0.05,
                   help="seconds per timed sample (calls repeat until then)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-components", dest="components", action="store_false")
    p.add_argument("--quick", action="store_true", help="tiny model, 3 rounds (a smoke run)")
    p.add_argument("--baseline", default=None, help="JSON of an earlier run to compare with")
    p.add_argument("--out", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.models = (args.models or ("tiny" if args.quick else "tiny,resnet18,resnet50")).split(",")
    args.methods = [m for m in args.methods.split(",") if m]
    if args.quick:
        args.rounds = min(args.rounds, 3)
    if args.size is None:
        args.size = 224 if args.device.startswith("cuda") else 32
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    head = run_header("benchmarks/bench_overhead.py", device, "fp32", threads=args.threads,
                      batch=args.batch)
    known = {m["name"] for m in sw.list_methods()}
    args.methods = [m for m in args.methods if m in known]
    baseline = None
    if args.baseline:
        with open(args.baseline) as f:
            baseline = json.load(f)
    models: list[dict[str, Any]] = []
    for name in args.models:
        models.append(run_model(name, args, device))
        text = report(head, models, baseline)  # after each model: a time limit keeps the rest
        write_outputs(text, {"header": head, "models": models,
                             "baseline": baseline["header"] if baseline else None},
                      args.out, args.json)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
