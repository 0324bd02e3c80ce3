"""The methods benchmark's report: a summary per item (ours against the floor and the peers, with
the goals' verdicts), every contender's samples, the floor calibration, and a JSON record."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from _common import fmt_s
from _contenders import Item, Setup
from _env import header_markdown


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.2f}×"


def spread(samples: list[float]) -> str:
    if len(samples) < 2:
        return "n=1"
    return f"{fmt_s(min(samples))}–{fmt_s(max(samples))}"


def goals(item: Item, floor_goal: float) -> tuple[str, str]:
    """``(floor verdict, peer verdict)``: ours ≤ ``floor_goal`` × the floor, and ours no slower
    than the fastest peer contender ("spreads overlap" when the rounds' min–max ranges do)."""
    ours, floor = item.get("ours")[0], item.get("floor")[0]
    fg = ("PASS" if ours.median <= floor_goal * floor.median else "MISS") + f" (≤{floor_goal}×)"
    peers = item.get("peer")
    if not peers:
        return fg, "- (no peer)"
    best = min(peers, key=lambda c: c.median)
    if ours.median <= best.median:
        pg = "PASS"
    elif min(ours.samples) <= max(best.samples):
        pg = "MISS (spreads overlap)"
    else:
        pg = "MISS"
    return fg, pg


def mem_str(c: Any) -> str:
    return "-" if c.mem_mb is None else f"{c.mem_note}{c.mem_mb:.0f}"


def report(items: list[Item], setups: dict[str, Setup], args: argparse.Namespace,
           head: dict[str, Any], elapsed: float) -> str:
    lines = header_markdown("saliency_widgets speed vs the peers and the floor", head)
    lines += ["", f"Inputs: batches of seeded randn images {args.size}×{args.size}, fp32 tensors; "
              f"torchvision models with weights=None after torch.manual_seed(0), eval(); target = "
              f"each image's predicted class. IG 50 steps Gauss-Legendre, SmoothGrad 50 samples "
              f"(noise 0.15 × range), occlusion window {args.window} stride {args.stride}, RISE "
              f"{args.rise_samples} samples, CAM layer {args.cam_layer}; other methods at their "
              f"defaults. Floor goal: ours ≤ {args.floor_goal}× the floor."]
    measured = [it for it in items if not it.skipped]
    have_mem = any(c.mem_mb is not None for it in measured for c in it.contenders)
    lines += ["", "## Summary", "",
              "Seconds per call, median of the rounds; ratio = ours ÷ that contender "
              "(< 1: ours is faster). Spread = min–max over the rounds. The floor is the passes "
              "the map needs, on a frozen copy of the model (benchmarks/_floor.py).", ""]
    cols = ["method", "model", "batch", "rounds", "ours s (spread)", "floor s (work)",
            "ours/floor", "peer default s (ours/peer)", "peer best s (ours/peer)"]
    if have_mem:
        cols.append("extra MB ours / peer default / peer best")
    cols += ["floor goal", "peer goal"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for it in measured:
        ours, floor = it.get("ours")[0], it.get("floor")[0]
        peers = it.get("peer")
        fg, pg = goals(it, args.floor_goal)
        rounds = f"{it.rounds}" + ("" if it.warmed else " (no warm-up)")
        if peers:
            default = [c for c in peers if c.default][0]
            best = min(peers, key=lambda c: c.median)
            dcell = (f"{fmt_s(default.median)} {default.key} "
                     f"({fmt_ratio(ours.median / default.median)})")
            bcell = f"{fmt_s(best.median)} {best.key} ({fmt_ratio(ours.median / best.median)})"
        else:
            default = best = None
            dcell = bcell = "-"
        row = [it.method, it.model_name, str(it.batch), rounds,
               f"{fmt_s(ours.median)} ({spread(ours.samples)})",
               f"{fmt_s(floor.median)} ({it.work})", fmt_ratio(ours.median / floor.median),
               dcell, bcell]
        if have_mem:
            row.append(" / ".join(mem_str(c) if c is not None else "-"
                                  for c in (ours, default, best)))
        row += [fg, pg]
        lines.append("| " + " | ".join(row) + " |")

    notes = [it for it in measured if it.note or it.extras]
    if notes:
        lines += ["", "Notes:", ""]
        for it in notes:
            extra = ", ".join(f"{k} {v}" for k, v in it.extras.items())
            text = "; ".join(t for t in (it.note, extra) if t)
            lines.append(f"* {it.model_name} b{it.batch} {it.method}: {text}")

    skipped = [it for it in items if it.skipped]
    if skipped:
        lines += ["", "## Not measured", ""]
        lines += [f"* {it.model_name} b{it.batch} {it.method}: {it.skipped}" for it in skipped]

    lines += ["", "## Every contender", "",
              "k = calls per timed sample; load = CPU time other processes used during the kept "
              "samples, as a share of all cores (median; > ~8 % makes a 2-thread run noticeably "
              f"slower; a sample above {args.max_load:.0%} was retaken at most {args.retakes}×, "
              f"unless longer than {args.retake_limit:.0f} s); cpu s = our process's CPU seconds "
              "per call (median; all threads); r = Pearson correlation of the peer's map with "
              "ours (channel-summed, resized), a check that both compute the same thing.", ""]
    cols = ["model", "batch", "method", "contender", "median s", "min–max s", "rounds×k",
            "vs ours", "cpu s", "load", "r"]
    if have_mem:
        cols.append("extra MB")
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for it in measured:
        ours = it.get("ours")[0]
        for c in it.contenders:
            label = c.key + (" (default)" if c.default else "")
            if c.role == "floor":
                label = f"floor: {it.work}"
            load = f"{statistics.median(c.foreign) * 100:.0f}%" if c.foreign else "-"
            row = [it.model_name, str(it.batch), it.method, label, fmt_s(c.median),
                   spread(c.samples),
                   f"{len(c.samples)}×{c.k}" + (f" ({c.retaken} retaken)" if c.retaken else ""),
                   fmt_ratio(c.median / ours.median),
                   fmt_s(statistics.median(c.cpu)) if c.cpu else "-", load,
                   "-" if c.agree is None else f"{c.agree:.3f}"]
            if have_mem:
                row.append(mem_str(c))
            lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Floor calibration", "",
              "Per-image seconds of plain passes on the frozen model at each batch size (fastest "
              "of 3 interleaved samples); a floor uses the fastest batch size ≤ its passes.", ""]
    bs = args.floor_batches
    lines += ["| model | pass | " + " | ".join(f"b={b}" for b in bs) + " |",
              "|" + "---|" * (len(bs) + 2)]
    for name, s in setups.items():
        for kind, table in sorted(s.passes.per_image.items()):
            lines.append(f"| {name} | {kind} | "
                         + " | ".join(fmt_s(table[b]) if b in table else "-" for b in bs) + " |")

    verdicts = [(it, *goals(it, args.floor_goal)) for it in measured]
    n_f = sum(1 for _, fg, _ in verdicts if fg.startswith("MISS"))
    with_peer = [v for v in verdicts if not v[2].startswith("-")]
    n_p = sum(1 for _, _, pg in with_peer if pg.startswith("MISS"))
    lines += ["", "## Goals (informative; the exit code is 0 either way)", "",
              f"* floor goal (every method ≤ {args.floor_goal}× its floor): "
              f"{len(verdicts) - n_f} PASS, {n_f} MISS",
              f"* peer goal (never slower than the fastest peer setting): "
              f"{len(with_peer) - n_p} PASS, {n_p} MISS ({len(verdicts) - len(with_peer)} "
              f"items without a peer)"]
    for it, fg, pg in verdicts:
        if fg.startswith("MISS") or pg.startswith("MISS"):
            lines.append(f"  * {it.model_name} b{it.batch} {it.method}: floor {fg}, peer {pg}")
    if skipped:
        lines.append(f"* not measured: {len(skipped)} items (listed above)")
    slow = [it for it in measured if it.rounds < args.rounds or not it.warmed]
    if slow:
        lines += ["", "Fewer rounds or no warm-up call (slow items): "
                  + ", ".join(f"{it.model_name} b{it.batch} {it.method} ({it.rounds} rounds"
                              + ("" if it.warmed else ", no warm-up call") + ")"
                              for it in slow) + "."]
    lines += ["", f"Total time {elapsed / 60:.1f} min.", ""]
    return "\n".join(lines)


def record(items: list[Item], setups: dict[str, Setup], args: argparse.Namespace,
           head: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """Every sample, for the JSON file."""
    out = []
    for it in items:
        entry: dict[str, Any] = {"model": it.model_name, "method": it.method,
                                 "batch": it.batch, "work": it.work, "note": it.note,
                                 "skipped": it.skipped, "ours_params": it.ours_params,
                                 "extras": {k: str(v) for k, v in it.extras.items()},
                                 "rounds": it.rounds, "warmed": it.warmed}
        if not it.skipped:
            fg, pg = goals(it, args.floor_goal)
            ours, floor = it.get("ours")[0], it.get("floor")[0]
            entry.update({"floor_goal": fg, "peer_goal": pg,
                          "ours_over_floor": ours.median / floor.median,
                          "contenders": [{"key": c.key, "role": c.role, "default": c.default,
                                          "batch": c.batch, "k": c.k, "median_s": c.median,
                                          "samples": c.samples, "cpu_s": c.cpu,
                                          "retaken": c.retaken, "foreign_load": c.foreign,
                                          "agree": c.agree, "extra_mb": c.mem_mb}
                                         for c in it.contenders]})
        out.append(entry)
    return {"header": head, "settings": {k: v for k, v in vars(args).items()
                                         if not k.startswith("_") and k != "probe_argv"},
            "items": out, "elapsed_s": elapsed,
            "floor": {n: s.passes.per_image for n, s in setups.items()}}
