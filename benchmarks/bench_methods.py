#!/usr/bin/env python
"""Speed of saliency_widgets' methods against the peers and against each method's floor.

For each (model, batch size, method) the script builds *contenders* that do the same job
(``benchmarks/_contenders.py``): ``ours`` (``sw.attribute``), the peers with their defaults and
their fastest batching settings (``_peers.py``: Captum, pytorch-grad-cam, zennit, TorchCAM, PAIR
saliency), and the ``floor``: the passes the map needs as plain PyTorch on a frozen copy of the
model (``_floor.py``). All contenders of an item run in ONE process as interleaved rounds (round
i runs each once, the order rotated by i) after a warm-up call each (``_measure.py``); the report
(``_report.py``) gives medians, spreads, ratios and the goals' verdicts, misses as plainly as
passes. Every output records its date, machine, versions, load and precision mode
(``_env.py``). See ``benchmarks/README.md`` for the columns and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any, Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's ScoreCAM prints a tqdm bar
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import saliency_widgets as sw  # noqa: E402
from _common import log  # noqa: E402
from _contenders import VIT_METHODS, Item, Setup, build_item, build_model, build_setup  # noqa: E402,E501
from _env import run_header, write_outputs  # noqa: E402
from _measure import measure, memory_probe, run_probe  # noqa: E402
from _peers import peers_for  # noqa: E402
from _report import record, report  # noqa: E402
from saliency_widgets.precision import MODES, switches  # noqa: E402

ALL = [m["name"] for m in sw.list_methods()]
# The original ten first: a time budget cuts the list from the end.
ORDER = ["gradient", "input_x_gradient", "guided_backprop", "integrated_gradients",
         "smoothgrad", "grad_cam", "grad_cam_plusplus", "guided_grad_cam", "occlusion",
         "score_cam"]
METHODS = ORDER + [m for m in ALL if m not in ORDER]


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a check that every contender runs: resnet18, 64 px, 2 rounds (1 for "
                        "slow items), RISE 200 samples; minutes, not figures")
    p.add_argument("--models", type=name_list, default=None,
                   help="torchvision model names (default resnet18,resnet50; --quick resnet18); "
                        "a ViT (vit_b_16) runs the transformer methods")
    p.add_argument("--methods", type=name_list, default=None,
                   help="methods, comma-separated (default: every registered method)")
    p.add_argument("--batches", type=int_list, default=[1],
                   help="batch sizes (default 1)")
    p.add_argument("--size", type=int, default=None, help="image side (default 224; quick 64)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per item (default 5; --quick 2)")
    p.add_argument("--slow-rounds", type=int, default=None,
                   help="rounds of the slow items: occlusion, Score-CAM, Ablation-CAM, RISE, "
                        "Guided IG, XRAI, Blur IG, LIME, KernelSHAP (default 2; --quick 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--precision", default="fp32", choices=MODES,
                   help="ours: precision=; the floor and the peers run with the same process "
                        "switches (bf16: under the same autocast). Default %(default)s")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads on CPU (default %(default)s)")
    p.add_argument("--out", default=None, help="write the markdown report to this file")
    p.add_argument("--json", default=None, help="write every sample to this JSON file")
    p.add_argument("--memory", action="store_true",
                   help="measure each contender's peak extra memory (CPU: one extra call per "
                        "contender in a fresh process; CUDA: always on)")
    p.add_argument("--window", type=int, default=16, help="occlusion window (default 16)")
    p.add_argument("--stride", type=int, default=8, help="occlusion stride (default 8)")
    p.add_argument("--rise-samples", type=int, default=None,
                   help="RISE's masks (default 1000; --quick 200; ours defaults to 4000)")
    p.add_argument("--cam-layer", default="layer4",
                   help="layer of the CAM methods (default %(default)s)")
    p.add_argument("--floor-batches", type=int_list, default=None,
                   help="batch sizes tried for the floor (default 1,2,4,8,16; CUDA up to 128)")
    p.add_argument("--peer-batches", type=int_list, default=None,
                   help="peer batching settings to try besides the default (default: the "
                        "floor's best batch size and 10 for fb / 16 for fwd peers)")
    p.add_argument("--no-peers", action="store_true", help="time ours and the floor only")
    p.add_argument("--floor-goal", type=float, default=None,
                   help="ours ≤ this × the floor (default 1.1 on CUDA, 1.2 on CPU)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds: items whose estimated time no longer fits are listed as not "
                        "measured (a GPU lease has minutes)")
    p.add_argument("--min-sample", type=float, default=None,
                   help="a timed sample repeats a fast call until it lasts about this long, "
                        "in s (default 0.2; CUDA 0.05)")
    p.add_argument("--calib-time", type=float, default=0.6,
                   help="seconds per batch size and pass kind in the floor calibration")
    p.add_argument("--warmup-limit", type=float, default=8.0,
                   help="items whose floor exceeds this many seconds get no warm-up call (the "
                        "model is pre-warmed at their batch shapes instead)")
    p.add_argument("--max-load", type=float, default=0.10,
                   help="retake a sample when other processes used more than this share of "
                        "the CPUs meanwhile (Linux /proc/stat; default %(default)s)")
    p.add_argument("--retakes", type=int, default=1, help="retakes per sample at most")
    p.add_argument("--retake-limit", type=float, default=30.0,
                   help="samples longer than this many seconds are never retaken")
    p.add_argument("--_probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.models is None:
        args.models = ["resnet18"] if args.quick else ["resnet18", "resnet50"]
    if args.size is None:
        args.size = 64 if args.quick else 224
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.slow_rounds is None:
        args.slow_rounds = 1 if args.quick else min(2, args.rounds)
    if args.rise_samples is None:
        args.rise_samples = 200 if args.quick else 1000
    if args.min_sample is None:
        args.min_sample = 0.05 if (cuda or args.quick) else 0.2
    if args.floor_goal is None:
        args.floor_goal = 1.1 if cuda else 1.2
    if args.floor_batches is None:
        args.floor_batches = [1, 2, 4, 8, 16, 32, 64, 128] if cuda else [1, 2, 4, 8, 16]
    if args.methods is None:
        args.methods = METHODS
    unknown = [m for m in args.methods if m not in ALL]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {', '.join(ALL)}")
    if args.window > args.size or args.stride < 1:
        p.error("occlusion window must fit the image and stride be ≥ 1")
    args.probe_argv = ["--size", str(args.size), "--threads", str(args.threads),
                       "--cam-layer", args.cam_layer, "--window", str(args.window),
                       "--stride", str(args.stride), "--rise-samples", str(args.rise_samples),
                       "--precision", args.precision,
                       "--floor-batches", ",".join(map(str, args.floor_batches))]
    if args.peer_batches:
        args.probe_argv += ["--peer-batches", ",".join(map(str, args.peer_batches))]
    return args


def applicable(method: str, s: Setup) -> bool:
    return (method in VIT_METHODS) == s.vit


def in_autocast(item: Item, device: torch.device) -> None:
    """bf16: the floor and the peers run under the autocast ours uses for its model."""
    for c in item.contenders:
        if c.role != "ours":
            fn = c.fn

            def run(fn: Callable[[], Any] = fn) -> Any:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    return fn()
            c.fn = run


def estimate(item: Item, args: argparse.Namespace) -> float:
    """Seconds the item will take, roughly: each peer at twice the floor, ours at the floor."""
    from _measure import SLOW
    rounds = args.slow_rounds if item.method in SLOW else args.rounds
    calls = rounds + (1 if item.est_s <= args.warmup_limit else 0)
    per_round = item.est_s * (2 + 2 * len(item.get("peer")))
    return calls * max(per_round, args.min_sample * len(item.contenders))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # peers' hook warnings would bury the table
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available")
    # The floor and the peers run under the switches of the precision mode too: the whole run
    # holds them (our calls ask for the same ones and join).
    with switches(args.precision, device):
        if args._probe:
            spec = json.loads(args._probe)
            s = build_setup(spec["model"], spec["batch"], args, device)
            s.passes.per_image = {k: {int(b): v for b, v in d.items()}
                                  for k, d in spec["floor_best"].items()}
            item = build_item(spec["method"], s, args, peers_for)
            (c,) = [c for c in item.contenders if c.key == spec["key"]]
            run_probe(c, s)
            return 0
        return run(args, device)


def run(args: argparse.Namespace, device: torch.device) -> int:
    started = time.perf_counter()
    head = run_header("benchmarks/bench_methods.py", device, args.precision,
                      threads=args.threads if device.type == "cpu" else None)
    log(f"{head['date']} {head['machine']} {head['device']} precision {args.precision}")
    items: list[Item] = []
    setups: dict[str, Setup] = {}
    models: dict[str, Any] = {}
    passes: dict[str, Any] = {}
    # batch sizes outer: under a time budget every model gets its batch-1 items first
    for batch in args.batches:
        for name in args.models:
            if name not in models:
                log(f"[{name}] building the model")
                models[name] = build_model(name, device)
            s = build_setup(name, batch, args, device, model=models[name],
                            passes=passes.get(name))
            passes[name] = s.passes
            setups[name] = s
            for method in args.methods:
                if not applicable(method, s):
                    continue
                items.append(run_item(method, s, args, device, started))
                if args.out or args.json:  # partial results survive an interrupted run
                    _write(items, setups, args, head, started)
    text = _write(items, setups, args, head, started)
    print(text)
    return 0


def run_item(method: str, s: Setup, args: argparse.Namespace, device: torch.device,
             started: float) -> Item:
    """Build and measure one item (or record why it was not measured)."""
    item = build_item(method, s, args, peers_for)
    if args.precision == "bf16":
        in_autocast(item, device)
    need = estimate(item, args)
    left = None if args.budget is None else args.budget - (time.perf_counter() - started)
    tag = f"[{s.model_name} b{s.batch} {method}]"
    if left is not None and need > left:
        item.skipped = f"time budget: about {need:.0f} s estimated, {max(left, 0):.0f} s left"
        log(f"{tag} skipped: {item.skipped}")
        return item
    try:
        measure(item, s, args, None if args.budget is None else started + args.budget)
    except Exception as err:  # a peer failing must not lose the whole run
        item.skipped = f"failed: {type(err).__name__}: {str(err)[:200]}"
        log(f"{tag} {item.skipped}")
        return item
    if args.memory and device.type == "cpu":
        memory_probe(item, s, args, os.path.abspath(__file__))
    return item


def _write(items: list[Item], setups: dict[str, Setup], args: argparse.Namespace,
           head: dict[str, Any], started: float) -> str:
    elapsed = time.perf_counter() - started
    text = report(items, setups, args, head, elapsed)
    write_outputs(text, record(items, setups, args, head, elapsed), args.out, args.json)
    return text


if __name__ == "__main__":
    sys.exit(main())
