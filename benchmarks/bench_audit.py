#!/usr/bin/env python
"""Speed of ``sw.audit`` against the method alone on the same batches, and images per second.

Two contenders per model, in ONE process, as interleaved rounds (the order alternates):

* ``alone``   ``sw.attribute(model, x[k·b : k·b+b], labels[...], method=...)`` for every batch k,
              data in memory: the work any audit has to do;
* ``audit``   ``sw.audit(model, (x, labels), methods=(method,), batch_size=b, out=<new folder>)``:
              the same maps plus predictions, losses, top-k, small maps and thumbnails, written
              crash-safely (fsynced shards, one SQLite transaction per batch), indexed at the end.

The goal (issue 12): ResNet-18 at 224², Grad-CAM, batch 32: audit ≤ 1.3× the method alone.
The report (markdown on stdout and ``--out``, JSON with ``--json``) gives medians, spreads,
images per second, and the CPU time other processes took during the samples ("load").

    python benchmarks/bench_audit.py                       # resnet18 224² and the demo model
    python benchmarks/bench_audit.py --quick               # fewer images: a ~1 min check
    python benchmarks/bench_audit.py --out docs/bench_audit_cpu.md --json docs/bench_audit_cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torchvision

import saliency_widgets as sw
from _common import fmt_s, log, sync
from _env import cpu_name, cpu_stat, foreign_load

GOAL = 1.3


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    labels: torch.Tensor
    method: str
    batch: int
    samples: dict[str, list[tuple[float, float | None, float, float]]] = \
        field(default_factory=dict)


def build_cases(args: argparse.Namespace, device: torch.device) -> list[Case]:
    cases = []
    if "resnet18" in args.models:
        torch.manual_seed(0)
        net = torchvision.models.resnet18(weights=None).eval().to(device)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.n_resnet, 3, 224, 224, generator=g).to(device)
        labels = torch.randint(0, 1000, (args.n_resnet,), generator=g).to(device)
        cases.append(Case("resnet18 224²", net, x, labels, args.method, args.batch))
    if "demo" in args.models:
        data = sw.demo.sample(args.n_demo, seed=0)
        cases.append(Case("demo shapes 64²", sw.demo.load_model("shapes").to(device),
                          data.x.to(device), data.labels.to(device), args.method,
                          args.demo_batch))
    return cases


def method_alone(case: Case) -> None:
    b = case.batch
    for i in range(0, len(case.x), b):
        sw.attribute(case.model, case.x[i:i + b], case.labels[i:i + b].tolist(),
                     method=case.method)


ENGINE_S = [0.0]  # seconds the audit spent inside sw.attribute (see audit())


def audit(case: Case, root: str) -> None:
    """The audit, with the time its engine calls take recorded in ENGINE_S: the rest is the
    audit's own overhead, measured in the same run (robust to load that changes over time)."""
    import saliency_widgets.api as api
    original = api.attribute

    def timed_attribute(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            ENGINE_S[0] += time.perf_counter() - t0

    out = tempfile.mkdtemp(dir=root)
    api.attribute = timed_attribute
    try:
        sw.audit(case.model, (case.x, case.labels), methods=(case.method,), batch_size=case.batch,
                 out=out, progress=False)
    finally:
        api.attribute = original
        shutil.rmtree(out, ignore_errors=True)


def timed(fn: Callable[[], None], device: torch.device) -> tuple[float, float | None, float,
                                                               float]:
    """(wall s, foreign load, our CPU s, s inside the engine's sw.attribute during an audit)."""
    st0, cpu0 = cpu_stat(), time.process_time()
    ENGINE_S[0] = 0.0
    t0 = time.perf_counter()
    fn()
    sync(device)
    wall = time.perf_counter() - t0
    return wall, foreign_load(st0, cpu0, wall), time.process_time() - cpu0, ENGINE_S[0]


def run_case(case: Case, rounds: int, device: torch.device, root: str) -> None:
    contenders = {"alone": lambda: method_alone(case), "audit": lambda: audit(case, root)}
    log(f"{case.name}: warm-up")
    for fn in contenders.values():
        fn()
    for r in range(rounds):
        order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
        for name in order:
            case.samples.setdefault(name, []).append(timed(contenders[name], device))
        log(f"{case.name}: round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {case.samples[n][-1][0]:.2f} s" for n in contenders))


def summary(case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {"case": case.name, "method": case.method, "batch": case.batch,
                           "images": len(case.x)}
    for name, samples in case.samples.items():
        walls = [w for w, _, _, _ in samples]
        loads = [ld for _, ld, _, _ in samples if ld is not None]
        cpus = [c for _, _, c, _ in samples]
        out[name] = {"median_s": statistics.median(walls), "min_s": min(walls),
                     "max_s": max(walls), "samples_s": walls,
                     "images_per_s": len(case.x) / statistics.median(walls),
                     "cpu_s": statistics.median(cpus), "samples_cpu_s": cpus,
                     "load": statistics.median(loads) if loads else None}
    audits = case.samples["audit"]
    out["ratio"] = out["audit"]["median_s"] / out["alone"]["median_s"]
    out["ratio_per_round"] = [a[0] / m[0] for a, m in zip(audits, case.samples["alone"])]
    out["cpu_ratio"] = out["audit"]["cpu_s"] / out["alone"]["cpu_s"]
    # the audit's own time (outside its engine calls) over the engine's, in the same runs
    out["overhead_per_round"] = [(w - e) / e for w, _, _, e in audits]
    out["overhead"] = statistics.median(out["overhead_per_round"])
    return out


def report(results: list[dict[str, Any]], args: argparse.Namespace, env: dict[str, Any]) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    lines = ["# sw.audit speed: the audit against the method alone on the same batches", "",
             f"{env['date']}; {env['machine']}; {env['threads']} torch threads; "
             f"load average at start {env['loadavg']}.",
             f"python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
             f"numpy {env['numpy']}, saliency_widgets {env['saliency_widgets']}.",
             f"Command: `{env['command']}`", "",
             "Seconds for all images, median of the rounds (min–max); images/s from the median; "
             "load = CPU time other processes used during the samples, as a share of all cores "
             "(above ~10 % a 2-thread CPU run slows down noticeably). Data in memory, random "
             "inputs (ResNet-18 with weights=None, seed 0), target = the label. CPU s ratio: "
             "our process's CPU seconds (all threads), audit over alone: less sensitive to other "
             "processes than wall time. Audit outside the engine: the audit's wall time minus "
             "the time inside its own sw.attribute calls, over the latter (median of the "
             "rounds; measured within each run, so slow drifts of the load cancel).", "",
             "| case | method | batch | images | method alone s | audit s | audit/method "
             "(per round) | goal | CPU s ratio | audit outside the engine | images/s (audit) "
             "| load (audit / alone) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m, a = r["alone"], r["audit"]
        goal = ("PASS" if r["ratio"] <= GOAL else "MISS") + f" (≤{GOAL}×)" \
            if r["case"].startswith("resnet18") else "-"
        rounds = ", ".join(f"{v:.2f}" for v in r["ratio_per_round"])
        lines.append(f"| {r['case']} | {r['method']} | {r['batch']} | {r['images']} | "
                     f"{fmt_s(m['median_s'])} ({fmt_s(m['min_s'])}–{fmt_s(m['max_s'])}) | "
                     f"{fmt_s(a['median_s'])} ({fmt_s(a['min_s'])}–{fmt_s(a['max_s'])}) | "
                     f"{r['ratio']:.2f}× ({rounds}) | {goal} | {r['cpu_ratio']:.2f}× | "
                     f"+{100 * r['overhead']:.1f}% | {a['images_per_s']:.1f} | "
                     f"{pct(a['load'])} / {pct(m['load'])} |")
    lines += ["", "The audit's extra work per batch: softmax, top-k and the loss from the "
              "method's own logits (no second forward pass), a channel sum and area resize of "
              "the map, a thumbnail, two fsynced .npy files and one SQLite transaction (written "
              "by a background thread while the next batch computes); once per run: hashing "
              "the model's state_dict and the first batch, one forward pass of one image (the "
              "number of classes), and building the indexes."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,demo")
    p.add_argument("--method", default="grad_cam")
    p.add_argument("--batch", type=int, default=32, help="audit batch for resnet18")
    p.add_argument("--demo-batch", type=int, default=256)
    p.add_argument("--n-resnet", type=int, default=256)
    p.add_argument("--n-demo", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="128 / 1024 images, 2 rounds")
    p.add_argument("--out", help="also write the markdown report here")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args()
    if args.quick:
        args.n_resnet, args.n_demo, args.rounds = 128, 1024, 2
    args.models = args.models.split(",")
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": f"{platform.node()}: {os.cpu_count()} × {cpu_name()}"
                      + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda"
                         else ""),
           "threads": args.threads, "device": str(device),
           "loadavg": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
           "python": platform.python_version(), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "numpy": np.__version__,
           "saliency_widgets": sw.__version__,
           "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}
    root = tempfile.mkdtemp(prefix="bench-audit-")
    results = []
    try:
        for case in build_cases(args, device):
            run_case(case, args.rounds, device, root)
            results.append(summary(case))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(results, args, env)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
