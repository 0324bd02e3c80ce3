"""What every benchmark output records about its run: date, machine, versions, load, mode.

A figure is only worth its conditions: on 2 shared cores another process makes a 2-thread run
1.5–2.5× slower, and on a GPU the precision mode decides what the arithmetic is. Every script
writes the same header into its markdown and JSON (:func:`run_header`), measures the CPU time
other processes took during each sample (:class:`LoadMeter`), and writes both files at once
(:func:`write_outputs`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

PEERS = ("captum", "grad-cam", "zennit", "torchcam", "saliency", "quantus")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NCPU = os.cpu_count() or 1


def cpu_stat() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            parts = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts[:8]) - idle, sum(parts[:8])


def foreign_load(st0: tuple[int, int] | None, cpu0: float, wall: float) -> float | None:
    """Share of all CPUs that other processes used since ``st0`` (a :func:`cpu_stat`) and
    ``cpu0`` (our own ``time.process_time()``), over ``wall`` seconds; None off Linux."""
    cpu1, st1 = time.process_time(), cpu_stat()
    if st0 is None or st1 is None or wall <= 0:
        return None
    busy = (st1[0] - st0[0]) / _CLK_TCK
    return max(0.0, min(1.0, (busy - (cpu1 - cpu0)) / (wall * NCPU)))


class LoadMeter:
    """Share of all CPUs that *other* processes used between :meth:`start` and :meth:`stop`."""

    def start(self) -> None:
        self.st0, self.cpu0, self.t0 = cpu_stat(), time.process_time(), time.perf_counter()

    def stop(self) -> float | None:
        return foreign_load(self.st0, self.cpu0, time.perf_counter() - self.t0)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def package_versions(names: tuple[str, ...] = PEERS) -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("torchvision", "saliency_widgets", *names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the saliency_widgets that runs (``+dirty`` with uncommitted changes):
    the checkout it is imported from, which need not be this script's; ``SW_CODE_LABEL`` names
    code that is not a git checkout (an exported tree measured as a baseline)."""
    import subprocess

    import saliency_widgets
    label = os.environ.get("SW_CODE_LABEL")
    if label:
        return label
    root = os.path.dirname(os.path.dirname(os.path.abspath(saliency_widgets.__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return f"? (not a git checkout: {root})"
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def run_header(script: str, device: torch.device, mode: str, threads: int | None = None,
               **extra: Any) -> dict[str, Any]:
    """Date, machine, versions, load average, device, precision ``mode`` and the command line."""
    if device.type == "cuda":
        dev = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        dev = f"CPU, {threads or torch.get_num_threads()} torch threads"
    return {
        "script": script,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": f"{NCPU} × {cpu_name()}",
        "device": dev,
        "versions": package_versions(),
        "commit": git_commit(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()]
        if hasattr(os, "getloadavg") else None,
        "precision": mode,
        "command": "python " + " ".join([script, *sys.argv[1:]]),
        **extra,
    }


def header_markdown(title: str, head: dict[str, Any]) -> list[str]:
    """The header as markdown lines (a title and one paragraph per fact group)."""
    v = head["versions"]
    peers = ", ".join(f"{k} {v[k]}" for k in PEERS if v.get(k, "not installed") != "not installed")
    load = head.get("load_average_at_start")
    lines = [f"# {title}", "",
             f"{head['date']}; {head['host']}: {head['machine']}; device {head['device']}; "
             f"commit {head['commit']}.",
             f"python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}, "
             f"saliency_widgets {v['saliency_widgets']}" + (f"; peers: {peers}." if peers else "."),
             f"Precision mode: **{head['precision']}**. Load average at start: "
             + (", ".join(f"{x:.2f}" for x in load) if load else "?") + ".",
             f"Command: `{head['command']}`"]
    if head.get("load_note"):
        lines.append(head["load_note"])
    return lines


def write_outputs(markdown: str, data: dict[str, Any], out: str | None,
                  json_path: str | None) -> None:
    """Write the markdown report and the JSON record (``header`` + data) where asked."""
    for path, text in ((out, markdown), (json_path, None)):
        if not path:
            continue
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            if text is not None:
                f.write(text if text.endswith("\n") else text + "\n")
            else:
                json.dump(data, f, indent=1, default=str)
                f.write("\n")
