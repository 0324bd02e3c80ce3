#!/usr/bin/env python
"""How soon the widget's metric badges appear after the map (issue 13), on one kernel thread.

Setup: torchvision ``resnet18(weights=None)`` (weights drawn with seed 0, eval mode), one
seeded ``--size`` px image (224 by default) with ImageNet normalization, ``torch`` on one thread
(as a Jupyter kernel in the browser tests). For each method (gradient, Grad-CAM) and each trial a
fresh widget is opened (``sw.show``, no browser) with the badges ``sparseness`` and
``complexity`` (the map alone) and the four defaults (deletion, insertion, infidelity,
max-sensitivity). Observers on the panel's traits record when its map is ready and when each
badge gets its value (in the worker thread, as the trait is written): the times reported are
from the map to the badges. The trivial maps' scores (random, edge) come after the panel's
badges and are not timed here.

    python benchmarks/bench_badges.py                      # writes docs/bench_badges.md
    python benchmarks/bench_badges.py --quick --out -      # 112 px, 2 trials, to stdout
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torchvision

import saliency_widgets as sw
from _common import log  # noqa: E402
from _env import cpu_name, run_header, write_outputs  # noqa: E402

MAP_ONLY = ("sparseness", "complexity")
FOUR = ("deletion", "insertion", "infidelity", "max_sensitivity")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def image(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 255 // (size - 1), yy * 255 // (size - 1), (xx + yy) % 64 * 4], -1)
    img = img.astype(np.uint8)
    img[(yy - size * 0.45) ** 2 + (xx - size * 0.58) ** 2 < (size * 0.18) ** 2] = (250, 220, 40)
    return img


def one_trial(model: torch.nn.Module, img: np.ndarray, method: str) -> dict[str, float]:
    """Seconds from the map to each badge (and the map's own time), one fresh widget."""
    times: dict[str, float] = {}
    w = sw.show(model, img, methods=(method,), mean=MEAN, std=STD,
                metrics=MAP_ONLY + FOUR)
    panel = w._board.slots[method]

    def seen(_change: object) -> None:
        now = time.perf_counter()
        if panel.state == "ready" and "map" not in times:
            times["map"] = now
        for b in panel.badges:
            if b["state"] == "ready" and b["metric"] not in times:
                times[b["metric"]] = now

    panel.observe(seen, names=["state", "badges"])
    start = time.perf_counter()
    seen(None)
    try:
        deadline = time.monotonic() + 600
        while not all(m in times for m in MAP_ONLY + FOUR):
            if time.monotonic() > deadline:
                raise TimeoutError(f"badges of {method} did not all appear in 600 s: {times}")
            time.sleep(0.01)
    finally:
        w.close()
        thread = w._worker._thread  # let a cancelled job reach its next chunk and stop
        if thread is not None:
            thread.join(60)
    out = {m: times[m] - times["map"] for m in MAP_ONLY + FOUR}
    out["map_seconds"] = times["map"] - start
    out["map_only"] = max(out[m] for m in MAP_ONLY)
    out["four"] = max(out[m] for m in FOUR)
    return out


def spread(values: list[float], scale: float, unit: str, digits: int) -> str:
    med = statistics.median(values) * scale
    return (f"{med:.{digits}f} {unit} ({min(values) * scale:.{digits}f}–"
            f"{max(values) * scale:.{digits}f})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="112 px, 2 trials (a smoke run)")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs",
                                                  "bench_badges.md"),
                   help="Markdown report path ('-': stdout)")
    p.add_argument("--json", default=None,
                   help="JSON record of every trial (default: --out with .json)")
    args = p.parse_args(argv)
    size = args.size or (112 if args.quick else 224)
    trials = args.trials or (2 if args.quick else 5)
    torch.set_num_threads(1)
    header = run_header("benchmarks/bench_badges.py", torch.device("cpu"), "fp32", threads=1,
                        size=size, trials=trials)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    img = image(size)
    load_before = os.getloadavg()
    rows = {}
    for method in ("gradient", "grad_cam"):
        runs = []
        one_trial(model, img, method)  # warm-up (allocator, first calls)
        for k in range(trials):
            runs.append(one_trial(model, img, method))
            log(f"{method} trial {k + 1}/{trials}: map-only {runs[-1]['map_only'] * 1e3:.0f} ms,"
                f" four defaults {runs[-1]['four']:.2f} s")
        rows[method] = runs
    load_after = os.getloadavg()
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"# Badge timings ({when})",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()}; torch "
        f"{torch.__version__} on 1 thread. Load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after: other processes shared the cores, so these are upper bounds.",
        f"resnet18(weights=None, seed 0), one {size}×{size} image, ImageNet normalization, a fresh "
        f"widget per trial; median (min–max) of {trials} trials after a warm-up. Times are from "
        f"the panel's map being ready to the badge's value being written (the browser draws it "
        f"in the next frame). Written by `benchmarks/bench_badges.py` (commit {header['commit']}; "
        f"every trial in the JSON beside this file).",
        "",
        "| method | map | sparseness + complexity after the map | deletion, insertion, "
        "infidelity, max-sensitivity after the map | " + " | ".join(FOUR) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(FOUR),
    ]
    for method, runs in rows.items():
        cells = [spread([r["map_seconds"] for r in runs], 1, "s", 2),
                 spread([r["map_only"] for r in runs], 1e3, "ms", 0),
                 spread([r["four"] for r in runs], 1, "s", 2)]
        cells += [f"{statistics.median(r[m] for r in runs):.2f} s" for m in FOUR]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "The four are computed one after the other in the widget's one worker, so each "
              "column is the time until that badge (they finish in the order listed)."]
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
        return
    json_path = args.json or os.path.splitext(args.out)[0] + ".json"
    header["load_average_at_end"] = [round(v, 2) for v in load_after]
    write_outputs(text, {"header": header, "trials": rows}, args.out, json_path)
    log(f"wrote {os.path.normpath(args.out)} and {os.path.normpath(json_path)}")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
