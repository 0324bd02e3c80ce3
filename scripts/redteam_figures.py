"""The numbers of notebook 06 ("red-teaming and expert alignment") and of the README's
"Can a map be fooled?", on the bundled demo model and generated images (no downloads).

* attack: every method attacked under the same budget (untargeted, keep the label): how far its
  maps move, beside random ±ε sign noise of the same size, and the time each attack took;
* sweep: the gradient attack at ε = 1, 2, 4, 8 / 255;
* defence: the same attack on maps explained through the softplus(β) network;
* agreement: each method's agreement with the generator's exact masks and with their bounding
  boxes (a stand-in for a quickly painted mask until the widget's paint mode exists).

Run: ``python scripts/redteam_figures.py --out docs/redteam.md --json docs/redteam.json``
(``--images 32 --steps 10`` by default). Markdown tables go to stdout (and ``--out``), progress
to stderr. Timings depend on the machine's load, which the
report states (load average before and after, and the share of the CPUs other processes used).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import saliency_widgets as sw

# Cheaper settings for the expensive methods (every attack step recomputes the map, twice).
METHODS: dict[str, dict[str, Any]] = {
    "gradient": {}, "input_x_gradient": {}, "guided_backprop": {},
    "integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 8}, "grad_cam": {},
    "grad_cam_plusplus": {}, "guided_grad_cam": {}, "score_cam": {},
    "occlusion": {"window": 8, "stride": 8}}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            parts = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / tick, sum(parts) / tick


def row(name: str, r: sw.AttackResult) -> dict[str, Any]:
    s = r.summary()
    return {"name": name, "seconds": r.seconds, **{k: round(v, 4) for k, v in s.items()}}


def attack_table(model, x, methods, epsilon, steps, seed) -> list[dict[str, Any]]:
    rows = []
    for name, params in methods.items():
        log(f"attack {name} ...")
        r = sw.attack(model, x, method=name, params=params, epsilon=epsilon, steps=steps,
                      seed=seed)
        rows.append({**row(name, r), "surrogate": r.params["surrogate"]})
    return rows


def sweep_table(model, x, epsilons, steps, seed) -> list[dict[str, Any]]:
    log("sweep ...")
    runs = sw.attack_sweep(model, x, method="gradient", epsilons=epsilons, steps=steps, seed=seed)
    return [row(f"{r.params['epsilon'] * 255:.0f}/255", r) for r in runs]


def defence_table(model, x, betas, epsilon, steps, seed) -> list[dict[str, Any]]:
    rows = []
    for beta in betas:
        log(f"defence β={beta} ...")
        r = sw.attack(model, x, method="gradient", epsilon=epsilon, steps=steps, seed=seed,
                      defence=beta)
        rows.append(row("none" if beta is None else f"softplus β={beta:g}", r))
    return rows


def boxes(masks: torch.Tensor) -> torch.Tensor:
    """Each mask's bounding box (what a quick painted rectangle would cover)."""
    out = torch.zeros_like(masks)
    for b, m in enumerate(masks):
        rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
        out[b, rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    return out


def agreement_table(model, data, methods) -> list[dict[str, Any]]:
    log("agreement ...")
    attrs = {name: sw.attribute(model, data.x, method=name, **params)
             for name, params in methods.items()}
    rows = []
    for label, masks in (("exact", data.masks), ("box", boxes(data.masks))):
        for name, res in sw.agreement(attrs, masks).items():
            rows.append({"masks": label, "name": name,
                         **{metric: round(r.mean, 4) for metric, r in res.items()}})
    return rows


def markdown(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    body = "".join("| " + " | ".join(
        f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |\n"
        for r in rows)
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--seed", type=int, default=77, help="image seed (held out: < 10**6)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=8 / 255)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write every figure here")
    parser.add_argument("--out", default=None, help="also write the markdown report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = {m: METHODS.get(m, {}) for m in args.methods.split(",") if m}
    warnings.simplefilter("ignore", sw.SaliencyWarning)
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(args.images, seed=args.seed)
    load0, busy0, own0, t0 = os.getloadavg(), cpu_busy(), time.process_time(), time.time()
    report = {
        "attack": attack_table(model, data.x, methods, args.epsilon, args.steps, 0),
        "sweep": sweep_table(model, data.x, (1 / 255, 2 / 255, 4 / 255, 8 / 255), args.steps, 0),
        "defence": defence_table(model, data.x, (None, 2.0, 3.0), args.epsilon, args.steps, 0),
        "agreement": agreement_table(model, data, methods),
    }
    wall, busy1, own1 = time.time() - t0, cpu_busy(), time.process_time()
    foreign = None
    if busy0 and busy1:
        foreign = max(0.0, (busy1[0] - busy0[0]) - (own1 - own0)) / (wall * (os.cpu_count() or 1))
    report["machine"] = {
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "loadavg_before": load0, "loadavg_after": os.getloadavg(), "wall_s": wall,
        "foreign_cpu_share": foreign, "images": args.images, "image_seed": args.seed,
        "steps": args.steps, "epsilon": args.epsilon}
    report["run"] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(), "torch": torch.__version__,
        "saliency_widgets": sw.__version__, "commit": _commit(),
        "command": "python scripts/redteam_figures.py " + " ".join(sys.argv[1:])}
    lines: list[str] = []
    say = lines.append  # the report is collected, then written
    m, run = report["machine"], report["run"]
    say(f"# Red-teaming the demo model's maps\n\n{run['date']}; python {run['python']}, "
          f"torch {run['torch']}, saliency_widgets {run['saliency_widgets']}, commit "
          f"{run['commit']}. Command: `{run['command']}`\n")
    say(f"Demo model 'shapes', {args.images} images (seed {args.seed}), ε = "
          f"{args.epsilon * 255:.3g}/255, {args.steps} steps, keep the label. Machine: "
          f"{m['cpus']} CPUs, {m['torch_threads']} torch threads, load average "
          f"{load0[0]:.1f} before and {m['loadavg_after'][0]:.1f} after; other processes used "
          f"{'?' if foreign is None else f'{foreign:.0%}'} of the CPUs during the "
          f"{wall:.0f} s run.\n")
    shift = ["top_k_intersection", "noise_top_k_intersection", "spearman", "noise_spearman",
             "com_distance", "noise_com_distance", "kept"]
    say("Untargeted attack per method (top-k ∩ and Spearman: 1 = unmoved; centre of mass "
          "moved, px):\n")
    say(markdown(report["attack"], ["name", "surrogate", *shift, "seconds"]))
    say("Gradient maps, ε sweep:\n")
    say(markdown(report["sweep"], ["name", *shift, "seconds"]))
    say("Gradient maps under Dombrowski's defence (maps of the softplus network):\n")
    say(markdown(report["defence"], ["name", *shift, "seconds"]))
    say("Agreement with the exact masks and with their bounding boxes:\n")
    say(markdown(report["agreement"], ["masks", "name", "pointing_game", "relevance_mass",
                                         "relevance_rank", "top_k_iou"]))
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    for path, body in ((args.out, text + "\n"), (args.json, json.dumps(report, indent=1))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(body)


def _commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes to tracked files)."""
    import subprocess

    root = Path(sw.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


if __name__ == "__main__":
    main()
