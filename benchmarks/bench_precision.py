#!/usr/bin/env python
"""Each precision mode's error against fp32, and its time, per method.

``sw.attribute(..., precision=mode)`` for ``mode`` in fp32 (IEEE float32, the reference),
tf32 (CUDA only: on the CPU it is fp32, so it is not repeated there) and bf16 (the model under
bfloat16 autocast, on the CPU too). For every method: the relative max error
``max|a − a₃₂| / max|a₃₂|`` and the relative L2 error ``‖a − a₃₂‖ / ‖a₃₂‖`` of each mode's map,
and the median time of each mode over ``--rounds`` interleaved calls. Same seed in every mode,
so stochastic methods draw the same noise and the error is the arithmetic's alone.

Guided IG picks features and XRAI ranks regions by comparing near-equal values: a rounding
change can flip a choice, so their errors are large by nature (marked "discontinuous").

    python benchmarks/bench_precision.py --out docs/bench/precision_cpu.md \
        --json docs/bench/precision_cpu.json
    python benchmarks/bench_precision.py --device cuda --models resnet50 --size 224
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torchvision  # noqa: E402

import saliency_widgets as sw  # noqa: E402
from _common import fmt_s, log, sync  # noqa: E402
from _env import LoadMeter, header_markdown, run_header, write_outputs  # noqa: E402

VIT_ONLY = ("attention_rollout", "gradient_rollout", "legrad")
DISCONTINUOUS = ("guided_ig", "xrai")
# Cheap settings: the error does not depend on how many steps are averaged
PARAMS = {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 8},
          "occlusion": {"window": 16, "stride": 16}, "rise": {"samples": 256},
          "blur_ig": {"steps": 16}, "guided_ig": {"steps": 16}, "xrai": {"steps": 8},
          "gradient_shap": {"samples": 8}, "lime": {"samples": 128},
          "kernel_shap": {"samples": 128}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default="resnet18")
    p.add_argument("--size", type=int, default=None, help="default 112 (CPU), 224 (CUDA)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--methods", default=None, help="default: every method that applies")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="64 px, 1 round, a few methods")
    p.add_argument("--out", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.size is None:
        args.size = 64 if args.quick else (224 if cuda else 112)
    if args.quick:
        args.rounds = 1
    args.modes = ["fp32", "tf32", "bf16"] if cuda else ["fp32", "bf16"]
    return args


def errors(a: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    a, ref = a.double(), ref.double()
    scale = ref.abs().max()
    if not bool(torch.isfinite(a).all()) or float(scale) == 0:
        return float("nan"), float("nan")
    return (float((a - ref).abs().max() / scale),
            float((a - ref).norm() / ref.norm().clamp(min=1e-300)))


def run_model(name: str, args: argparse.Namespace, device: torch.device,
              done: Any = None) -> list[dict]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval().to(device)
    vit = isinstance(model, torchvision.models.VisionTransformer)
    x = torch.randn(args.batch, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        targets = model(x).argmax(1).tolist()
    names = args.methods or [m["name"] for m in sw.list_methods()]
    slow = ("rise", "occlusion", "lime", "kernel_shap", "guided_ig", "xrai")  # last: a time
    names = [n for n in names if n not in slow] + [n for n in names if n in slow]  # limit cuts
    rows: list[dict] = []
    for method in names:
        if (method in VIT_ONLY) != vit:
            continue
        params = PARAMS.get(method, {})
        if args.quick:
            params = {k: max(2, v // 4) if isinstance(v, int) else v for k, v in params.items()}
        calls = {mode: (lambda mode=mode: sw.attribute(model, x, targets, method=method,
                                                       precision=mode, **params))
                 for mode in args.modes}
        log(f"[{name}] {method}")
        try:
            maps = {mode: call().values for mode, call in calls.items()}
        except Exception as err:  # a mode a method cannot run in is a finding, not a crash
            rows.append({"model": name, "method": method, "failed": f"{type(err).__name__}: "
                         f"{str(err)[:200]}"})
            continue
        times: dict[str, list[float]] = {mode: [] for mode in calls}
        meter, loads = LoadMeter(), []
        for r in range(args.rounds):
            order = list(calls)[r % len(calls):] + list(calls)[:r % len(calls)]
            for mode in order:
                sync(device)
                meter.start()
                t0 = time.perf_counter()
                calls[mode]()
                sync(device)
                times[mode].append(time.perf_counter() - t0)
                load = meter.stop()
                if load is not None:
                    loads.append(load)
        ref = maps["fp32"]
        rows.append({"model": name, "method": method, "params": {k: str(v) for k, v in
                                                                  params.items()},
                     "errors": {mode: errors(m, ref) for mode, m in maps.items()
                                if mode != "fp32"},
                     "seconds": {mode: statistics.median(v) for mode, v in times.items()},
                     "load": statistics.median(loads) if loads else None})
        if done is not None:
            done(rows)  # written after every method: a time limit keeps what was measured
    return rows


def report(head: dict[str, Any], rows: list[dict], args: argparse.Namespace) -> str:
    lines = header_markdown("Precision modes: error against fp32, and time", head)
    others = [m for m in args.modes if m != "fp32"]
    lines += ["", f"Batch of {args.batch} seeded randn images, {args.size} px, torchvision models "
              "with weights=None after torch.manual_seed(0); targets = the predicted classes. "
              "max = max|a − a₃₂| / max|a₃₂|, L2 = ‖a − a₃₂‖ / ‖a₃₂‖. Each mode's time: median "
              f"of {args.rounds} interleaved call(s). " + ("" if "tf32" in args.modes else
                                                          "TF32 exists only on CUDA: on this "
                                                          "CPU precision='tf32' is fp32."), ""]
    cols = ["model", "method"]
    for m in others:
        cols += [f"{m} max", f"{m} L2"]
    cols += [f"{m} s" for m in args.modes] + ["load"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['model']} | {r['method']} | failed: {r['failed']} |")
            continue
        name = r["method"] + (" (discontinuous)" if r["method"] in DISCONTINUOUS else "")
        cells = [r["model"], name]
        for m in others:
            e_max, e_l2 = r["errors"][m]
            cells += [f"{e_max:.1e}", f"{e_l2:.1e}"]
        cells += [fmt_s(r["seconds"][m]) for m in args.modes]
        cells.append("-" if r["load"] is None else f"{r['load']:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.methods:
        args.methods = [m for m in args.methods.split(",") if m]
    elif args.quick:
        args.methods = ["gradient", "guided_backprop", "integrated_gradients", "grad_cam",
                        "occlusion", "lrp"]
    head = run_header("benchmarks/bench_precision.py", device, "/".join(args.modes),
                      threads=args.threads if device.type == "cpu" else None)
    rows: list[dict] = []

    def write(more: list[dict]) -> str:
        text = report(head, rows + more, args)
        write_outputs(text, {"header": head, "rows": rows + more, "modes": args.modes},
                      args.out, args.json)
        return text

    for name in args.models.split(","):
        rows += run_model(name, args, device, write)
    print(write([]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
