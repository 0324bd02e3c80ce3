"""The speed summaries in README.md and docs/benchmarks.md are generated from the committed
benchmark outputs (docs/bench/*.json) by benchmarks/summarize.py: they must be up to date, so no
figure outlives its run and none is typed by hand."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_speed_summaries_match_the_committed_outputs():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "summarize.py"),
                           "--check"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, (f"{proc.stderr.strip()}: run python benchmarks/summarize.py "
                                  f"after committing new benchmark outputs")


def test_every_committed_report_has_its_json_record():
    bench = os.path.join(ROOT, "docs", "bench")
    for folder, _, files in os.walk(bench):
        if "history" in folder:
            continue
        for f in files:
            if f.endswith(".md") and f != "gpu_check.md":
                assert os.path.exists(os.path.join(folder, f[:-3] + ".json")), \
                    f"{f}: a report without its JSON record (date, machine, load, mode)"
