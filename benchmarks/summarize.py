#!/usr/bin/env python
"""Write the speed summaries from the committed benchmark outputs, so no figure is typed by hand.

    python benchmarks/summarize.py            # docs/benchmarks.md and README.md's Speed block
    python benchmarks/summarize.py --check    # exit 1 if either is out of date
    python benchmarks/summarize.py --gpu out/gpu --out out/gpu/gpu_check.md   # GPU verdicts

It reads ``docs/bench/*.json`` (each written by a ``benchmarks/bench_*.py`` run with ``--json``,
beside its markdown report) and rewrites the text between ``<!-- bench:begin -->`` and
``<!-- bench:end -->`` in ``docs/benchmarks.md`` and between ``<!-- speed:begin -->`` and
``<!-- speed:end -->`` in ``README.md``. A missing output is said to be missing, with the command
that makes it; misses are listed as plainly as passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import textwrap
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "docs", "bench")
PINNED_TORCH = "2.14.1"

COMMANDS = {
    "methods_cpu": ("python benchmarks/bench_methods.py --threads 2 "
                    "--out docs/bench/methods_cpu.md --json docs/bench/methods_cpu.json",
                    "about 100 minutes on 2 quiet cores (100.7 min on 2026-12-02): resnet18 "
                    "and resnet50 at 224 px, every method; Score-CAM and Ablation-CAM on "
                    "resnet50 (2049 forward passes a call) take a third of it; --memory adds "
                    "about half again"),
    "methods_vit_cpu": ("python benchmarks/bench_methods.py --threads 2 --models vit_b_16 "
                        "--methods attention_rollout,gradient_rollout,legrad --floor-batches "
                        "1,2,4 --out docs/bench/methods_vit_cpu.md --json "
                        "docs/bench/methods_vit_cpu.json",
                        "about 1 minute on 2 quiet cores: the methods that need a vision "
                        "transformer"),
    "metrics_cpu": ("python benchmarks/bench_metrics.py --threads 2 "
                    "--out docs/bench/metrics_cpu.md --json docs/bench/metrics_cpu.json",
                    "about 30 minutes on 2 quiet cores, most of it Quantus' MPRT"),
    "overhead_cpu": ("python benchmarks/bench_overhead.py --baseline "
                     "docs/bench/overhead_cpu_before.json --out docs/bench/overhead_cpu.md "
                     "--json docs/bench/overhead_cpu.json",
                     "about 10 minutes on a quiet machine"),
    "precision_cpu": ("python benchmarks/bench_precision.py --out docs/bench/precision_cpu.md "
                      "--json docs/bench/precision_cpu.json", "about 10 minutes"),
}


def load(name: str, folder: str = BENCH) -> dict[str, Any] | None:
    path = os.path.join(folder, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def fmt_s(v: float | None) -> str:
    if v is None or v != v:
        return "-"
    if v >= 10:
        return f"{v:.1f} s"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 0.01:
        return f"{v * 1e3:.0f} ms"
    return f"{v * 1e3:.2f} ms"


def conditions(head: dict[str, Any]) -> str:
    v = head["versions"]
    load_avg = head.get("load_average_at_start")
    torch_note = "" if v["torch"].startswith(PINNED_TORCH) else \
        f" (not the pinned torch {PINNED_TORCH})"
    return (f"{head['date'][:10]}, {head['machine']}, {head['device']}, torch {v['torch']}"
            f"{torch_note}, precision {head['precision']}, commit {head['commit']}, load "
            f"average at start {', '.join(f'{x:.1f}' for x in load_avg) if load_avg else '?'}")


def median_load(items: list[dict[str, Any]]) -> float | None:
    loads = [x for it in items for c in it.get("contenders", []) for x in c["foreign_load"]]
    return statistics.median(loads) if loads else None


def missing(name: str) -> list[str]:
    cmd, how_long = COMMANDS[name]
    return [f"Not measured yet. `{cmd}` ({how_long}) writes it; then rerun "
            f"`python benchmarks/summarize.py`."]


# --- the methods benchmark ----------------------------------------------------------------------
def method_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for it in data["items"]:
        if it.get("skipped"):
            continue
        cs = {c["role"]: c for c in it["contenders"] if c["role"] != "peer"}
        peers = [c for c in it["contenders"] if c["role"] == "peer"]
        best = min(peers, key=lambda c: c["median_s"]) if peers else None
        out.append({"method": it["method"], "model": it["model"], "batch": it["batch"],
                    "ours": cs["ours"]["median_s"], "floor": cs["floor"]["median_s"],
                    "ratio": it["ours_over_floor"], "best": best,
                    "floor_goal": it["floor_goal"], "peer_goal": it["peer_goal"],
                    "work": it["work"]})
    return out


def methods_section(data: dict[str, Any] | None, name: str, title: str) -> list[str]:
    lines = [f"## {title} — [full report](bench/{name}.md)", ""]
    if data is None:
        return lines + missing(name) + [""]
    rows = method_rows(data)
    load = median_load(data["items"])
    goal = data["settings"]["floor_goal"]
    lines += [f"{conditions(data['header'])}; median foreign CPU load during the samples "
              f"{'?' if load is None else f'{load:.0%}'}. Ours/floor ≤ {goal}× is the goal; "
              f"ours/peer < 1 means ours is faster than the fastest peer setting.", ""]
    models = sorted({(r["model"], r["batch"]) for r in rows})
    cols = ["method"] + [f"{m} b{b}: ours (÷ floor, ÷ best peer)" for m, b in models]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = [method]
        for m, b in models:
            r = next((r for r in rows if (r["method"], r["model"], r["batch"]) == (method, m, b)),
                     None)
            if r is None:
                cells.append("-")
                continue
            peer = "no peer" if r["best"] is None else f"{r['ours'] / r['best']['median_s']:.2f}×"
            cells.append(f"{fmt_s(r['ours'])} ({r['ratio']:.2f}×, {peer})")
        lines.append("| " + " | ".join(cells) + " |")
    fails = [r for r in rows if r["floor_goal"].startswith("MISS")]
    pfails = [r for r in rows if r["peer_goal"].startswith("MISS")]
    with_peer = [r for r in rows if not r["peer_goal"].startswith("-")]
    lines += ["", f"Floor goal: {len(rows) - len(fails)} of {len(rows)} pass"
              + (": misses " + ", ".join(f"{r['method']} ({r['model']} b{r['batch']}, "
                                         f"{r['ratio']:.2f}×)" for r in fails) if fails else "")
              + ".",
              f"Peer goal: {len(with_peer) - len(pfails)} of {len(with_peer)} pass"
              + (": slower than the fastest peer setting: " + ", ".join(
                  f"{r['method']} ({r['model']} b{r['batch']}, {r['best']['key']}"
                  f"{', within the spread' if 'overlap' in r['peer_goal'] else ''})"
                  for r in pfails) if pfails else "") + "."]
    skipped = [it for it in data["items"] if it.get("skipped")]
    if skipped:
        lines.append("Not measured: " + "; ".join(f"{it['method']} ({it['model']} b"
                                                  f"{it['batch']}): {it['skipped']}"
                                                  for it in skipped) + ".")
    return lines + [""]


# --- metrics, overhead, precision ---------------------------------------------------------------
def metrics_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Metrics on this CPU — [full report](bench/metrics_cpu.md)", ""]
    if data is None:
        return lines + missing("metrics_cpu") + [""]
    med = {(r["metric"], r["explanation"], r["who"]): r["median_s"] for r in data["rows"]}
    lines += [conditions(data["header"]) + ".", "",
              "| metric | ours (gradient) | ours/Captum | ours/Quantus | ours (grad_cam) | "
              "ours/Captum | ours/Quantus |", "|---|---|---|---|---|---|---|"]
    for metric in dict.fromkeys(r["metric"] for r in data["rows"]):
        cells = [metric]
        for e in ("gradient", "grad_cam"):
            ours = med.get((metric, e, "ours"))
            cells.append(fmt_s(ours))
            for who in ("captum", "quantus"):
                theirs = med.get((metric, e, who))
                cells.append("-" if ours is None or not theirs else f"{ours / theirs:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    if data.get("failed"):
        lines += ["", "Peers that failed on this input (not timed): "
                  + "; ".join(f"{k}: {v}" for k, v in data["failed"].items()) + "."]
    return lines + [""]


def overhead_section(data: dict[str, Any] | None, before: dict[str, Any] | None) -> list[str]:
    lines = ["## Per-call overhead — [full report](bench/overhead_cpu.md)", ""]
    if data is None:
        return lines + missing("overhead_cpu") + [""]
    lines += [f"µs of fixed work per `sw.attribute` call above the floor (median; the fastest "
              f"samples' difference in brackets), CPU, models whose arithmetic is negligible: "
              f"{conditions(data['header'])}."
              + (f" Before: commit {before['header']['commit']} ({before['header']['date'][:10]})."
                 if before else ""), ""]
    prior = {}
    if before:
        prior = {(r["model"], r["method"]): r for m in before["models"] for r in m["rows"]}
    cols = ["model", "method", "floor µs"] + (["before: overhead µs"] if before else []) + \
           ["overhead µs", "ours/floor"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m in data["models"]:
        for r in m["rows"]:
            b = prior.get((r["model"], r["method"]))
            cells = [f"{r['model']} ({m['size']} px)", r["method"],
                     f"{r['floor_s']['median'] * 1e6:.0f}"]
            if before:
                cells.append("-" if b is None else
                             f"{b['overhead_us']:.0f} ({b['overhead_min_us']:.0f})")
            cells += [f"{r['overhead_us']:.0f} ({r['overhead_min_us']:.0f})",
                      f"{r['ratio']:.2f}×"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def precision_section(data: dict[str, Any] | None) -> list[str]:
    lines = ["## Precision modes — [full report](bench/precision_cpu.md)", ""]
    if data is None:
        return lines + missing("precision_cpu") + [""]
    modes = [m for m in data["modes"] if m != "fp32"]
    rows = [r for r in data["rows"] if "errors" in r]
    lines.append(f"Error of each mode's map against fp32 (max|Δ| / max|a₃₂|; L2 in brackets): "
                 f"{conditions(data['header'])}.")
    for mode in modes:
        errs = sorted((r["errors"][mode][0], r["method"]) for r in rows
                      if r["errors"][mode][0] == r["errors"][mode][0])
        if errs:
            lines.append(f"{mode}: from {errs[0][0]:.1e} ({errs[0][1]}) to {errs[-1][0]:.1e} "
                         f"({errs[-1][1]}), median {statistics.median(e for e, _ in errs):.1e}.")
    failed = [r for r in data["rows"] if "failed" in r]
    if failed:
        lines.append("Failed: " + "; ".join(f"{r['method']}: {r['failed']}" for r in failed))
    return lines + [""]


def gpu_section(folder: str) -> list[str]:
    lines = ["## On a GPU — [the check's report](bench/gpu/gpu_check.md)", ""]
    data = load("methods", folder)
    if data is None:
        return lines + ["No GPU run of the current code is committed. `scripts/gpu_check.sh` "
                        "(under 8 minutes on one H200) measures every goal below; until it "
                        "runs, all of them are unmeasured: every method ≤ 1.1× its floor at "
                        "batch 1 and 32 on resnet18/50 and no slower than the fastest peer "
                        "setting; IG-50 and SmoothGrad-50 on resnet50 at 224² under 30 ms; "
                        "occlusion 16/8 under 0.1 s; the precision modes' errors on CUDA.", ""]
    return lines + gpu_verdicts(folder)[2:]


# --- GPU verdicts ---------------------------------------------------------------------------------
def gpu_verdicts(folder: str) -> list[str]:
    lines = ["# GPU check", ""]
    data = load("methods", folder)
    targets = load("targets_tf32", folder)
    if data is None:
        return lines + ["methods.json is missing: the methods step did not finish."]
    lines += [conditions(data["header"]) + ".", ""]
    rows = method_rows(data)
    goal = data["settings"]["floor_goal"]
    for b in sorted({r["batch"] for r in rows}):
        sub = [r for r in rows if r["batch"] == b]
        miss = [r for r in sub if r["floor_goal"].startswith("MISS")]
        lines.append(f"* batch {b}: {len(sub) - len(miss)} of {len(sub)} items ≤ {goal}× "
                     f"their floor" + (": misses " + ", ".join(
                         f"{r['method']} {r['model']} {r['ratio']:.2f}×" for r in miss)
                                       if miss else ""))
    with_peer = [r for r in rows if not r["peer_goal"].startswith("-")]
    slower = [r for r in with_peer if r["peer_goal"].startswith("MISS")]
    lines.append(f"* peers: {len(with_peer) - len(slower)} of {len(with_peer)} items no slower "
                 f"than the fastest peer setting" + (": slower " + ", ".join(
                     f"{r['method']} {r['model']} b{r['batch']} "
                     f"({r['ours'] / r['best']['median_s']:.2f}×"
                     f"{', within the spread' if 'overlap' in r['peer_goal'] else ''})"
                     for r in slower) if slower else ""))
    for label, d in (("fp32", data), ("tf32", targets)):
        if d is None:
            lines.append(f"* targets in {label}: not measured")
            continue
        got = {(r["method"], r["model"], r["batch"]): r for r in method_rows(d)}
        for method, limit in (("integrated_gradients", 0.030), ("smoothgrad", 0.030),
                              ("occlusion", 0.1)):
            r = got.get((method, "resnet50", 1))
            if r is None:
                lines.append(f"* {method} resnet50 b1 ({label}): not measured")
            else:
                verdict = "PASS" if r["ours"] < limit else "MISS"
                lines.append(f"* {method} resnet50 b1 ({label}): {fmt_s(r['ours'])} "
                             f"(< {fmt_s(limit)}: {verdict})")
    skipped = [it for it in data["items"] if it.get("skipped")]
    if skipped:
        lines.append(f"* not measured: {len(skipped)} items ("
                     + ", ".join(f"{it['method']} {it['model']} b{it['batch']}"
                                 for it in skipped) + ")")
    prec = load("precision", folder)
    if prec is not None:
        lines += [""] + precision_section(prec)[2:]
    over = load("overhead", folder)
    if over is not None:
        lines += [""] + overhead_section(over, None)[2:]
    return lines


# --- rewriting the files --------------------------------------------------------------------------
def wrap(text: str, width: int = 100) -> str:
    """Paragraphs wrapped at ``width`` columns; tables, lists' first lines kept, comments kept."""
    out = []
    for para in text.split("\n\n"):
        if para.startswith(("|", "<!--", "#")) or "\n|" in para:
            out.append(para)
            continue
        lead = "* " if para.startswith("* ") else ""
        lines = [textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False,
                               subsequent_indent="  " if line.startswith("* ") else "")
                 for line in para.split("\n")]
        out.append("\n".join(lines) if lead or len(lines) > 1 else lines[0])
    return "\n\n".join(out)


def replace_block(path: str, begin: str, end: str, body: str) -> str:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {begin} … {end} block")
    return pattern.sub(lambda m: f"{begin}\n{wrap(body.rstrip())}\n{end}", text)


def benchmarks_block() -> str:
    lines = ["<!-- Generated by benchmarks/summarize.py from docs/bench/*.json: edit those runs, "
             "not this text. -->", ""]
    lines += methods_section(load("methods_cpu"), "methods_cpu",
                             "Methods on this CPU, 224 × 224, batch 1")
    lines += methods_section(load("methods_vit_cpu"), "methods_vit_cpu",
                             "Transformer methods on this CPU, vit_b_16, 224 × 224, batch 1")
    lines += metrics_section(load("metrics_cpu"))
    lines += overhead_section(load("overhead_cpu"), load("overhead_cpu_before"))
    lines += precision_section(load("precision_cpu"))
    lines += gpu_section(os.path.join(BENCH, "gpu"))
    return "\n".join(lines)


def readme_block() -> str:
    """Two paragraphs for README.md, every figure from the committed outputs."""
    out = ["<!-- Generated by benchmarks/summarize.py from docs/bench/*.json. -->", ""]
    methods = load("methods_cpu")
    if methods is None:
        out.append("The CPU benchmark of the current code at 224 px has not been run yet (the "
                   "commands are in [docs/benchmarks.md](docs/benchmarks.md)), so this README "
                   "quotes no method timings.")
    else:
        rows = method_rows(methods)
        ratios = [r["ratio"] for r in rows]
        miss = [r for r in rows if r["floor_goal"].startswith("MISS")]
        faster = [r for r in rows if r["best"] and r["ours"] < r["best"]["median_s"]]
        with_peer = [r for r in rows if r["best"]]
        low = min(rows, key=lambda r: r["ratio"])
        high = max(rows, key=lambda r: r["ratio"])
        out.append(f"On a 2-core CPU at 224 × 224 ({methods['header']['date'][:10]}; "
                   f"[full table](docs/bench/methods_cpu.md)), our maps took "
                   f"{low['ratio']:.2f}× ({low['method']} on {low['model']}"
                   + (f", below its floor of {low['work']}" if low["ratio"] < 1 else "")
                   + f") to {high['ratio']:.2f}× ({high['method']} on {high['model']}) their "
                   f"floor (median {statistics.median(ratios):.2f}×); "
                   f"{len(rows) - len(miss)} of {len(rows)} "
                   f"items met the ≤ {methods['settings']['floor_goal']}× goal"
                   + (" (misses: " + ", ".join(f"{r['method']} on {r['model']} "
                                               f"{r['ratio']:.2f}×" for r in miss) + ")"
                      if miss else "")
                   + f", and {len(faster)} of {len(with_peer)} ran faster than the fastest "
                     f"peer setting.")
    over, before = load("overhead_cpu"), load("overhead_cpu_before")
    if over is not None:
        comp = {m["model"]: m["components"] for m in over["models"]}.get("resnet50", {})
        was = {m["model"]: m["components"] for m in (before or {}).get("models", [])}.get(
            "resnet50", {})

        def ms(table: dict[str, Any], key: str) -> float | None:
            return table[key]["min"] * 1e3 if key in table else None

        copy_now, copy_was = ms(comp, "structural copy (enter + exit)"), \
            ms(was, "structural copy (enter + exit)")
        plain = ms(comp, "forward with graph")
        mode, hooks = ms(comp, "forward with guided ReLUs (mode)"), \
            ms(comp, "forward with guided ReLUs (module hooks)")
        parts = []
        if copy_now is not None:
            parts.append("the structural copy of a ResNet-50 takes "
                         + (f"{copy_was:.2f} → " if copy_was is not None else "")
                         + f"{copy_now:.2f} ms")
        if plain is not None and mode is not None and hooks is not None:
            def added(t: float) -> str:  # within 3 % of the forward: not measurable here
                return (f"{t - plain:+.2f} ms" if abs(t - plain) > 0.03 * plain else
                        f"nothing measurable ({t - plain:+.2f} ms)")
            parts.append(f"guided ReLUs add {added(mode)} to its {plain:.1f} ms forward pass "
                         f"under the interception mode and {added(hooks)} by module hooks")
        if parts:
            loads = [c["load"] for m in over["models"] for c in m["components"].values()
                     if c.get("load") is not None]
            quiet = (f"other processes took {statistics.median(loads):.0%} of the CPUs"
                     if loads else "load not recorded")
            then = (before or {}).get("header", {}).get("load_average_at_start")
            if copy_was is not None and then:
                quiet += f"; the earlier run's load average was {then[0]:.1f} at its start"
            out += ["", "Fixed work per call, measured on the CPU where it is the same Python "
                    "as on a GPU ([docs/bench/overhead_cpu.md](docs/bench/overhead_cpu.md), "
                    f"{over['header']['date'][:10]}, fastest samples; {quiet}): "
                    + "; ".join(parts) + ". The host–device waits before a call's end are gone "
                    "(checks are judged once, when it ends). On a GPU that work decides how "
                    "close a batch-1 call gets to its floor."]
    gpu = load("methods", os.path.join(BENCH, "gpu"))
    out.append("")
    if gpu is None:
        out.append("No GPU figure of the current code is committed: the GPU goals (≤ 1.1× the "
                   "floor at batch 1 and 32, IG-50 and SmoothGrad-50 on ResNet-50 under 30 ms, "
                   "occlusion 16/8 under 0.1 s) are unmeasured; `scripts/gpu_check.sh` measures "
                   "them in under 8 minutes.")
    else:
        out.append("On a GPU: see [the check's report](docs/bench/gpu/gpu_check.md) ("
                   f"{conditions(gpu['header'])}).")
    out.append("")
    out.append("Every figure, its conditions and how to rerun it: "
               "[docs/benchmarks.md](docs/benchmarks.md).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    p.add_argument("--gpu", default=None, help="a gpu_check.sh output folder: its verdicts")
    p.add_argument("--out", default=None, help="with --gpu: write the verdicts here")
    args = p.parse_args(argv)
    if args.gpu:
        text = "\n".join(gpu_verdicts(args.gpu)) + "\n"
        print(text)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        return 0
    stale = []
    for path, begin, end, body in (
            (os.path.join(ROOT, "docs", "benchmarks.md"), "<!-- bench:begin -->",
             "<!-- bench:end -->", benchmarks_block()),
            (os.path.join(ROOT, "README.md"), "<!-- speed:begin -->", "<!-- speed:end -->",
             readme_block())):
        new = replace_block(path, begin, end, body)
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if new != old:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
    if args.check and stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    print("updated: " + (", ".join(stale) if stale else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
