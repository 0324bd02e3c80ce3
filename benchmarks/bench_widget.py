#!/usr/bin/env python
"""The widget's browser timings, measured in a real JupyterLab 4 / Notebook 7 in headless
chromium, for one or more checkouts of the project (e.g. before and after a change).

For each checkout (``--run LABEL=PATH``; PATH holds ``saliency_widgets/`` with its JS built) the
kernel imports that checkout's package (``PYTHONPATH``) and the script measures, each over
``--trials`` samples (medians are reported):

* toggle → pixels, uncached: a gradient panel on resnet18 (random weights) at 224², for a new
  target each time (the map is computed in the kernel);
* toggle → pixels, cached: the same panel toggled off and on again;
* a display change at 1024²: opacity with two panels, in Notebook 7 (no kernel round trip);
* wheel → redraw at 1024²;
* the explorer (where the checkout has ``sw.explore``): a page change and a sort on a synthetic
  50 000-row audit store.

The DOM is observed, never instrumented: a MutationObserver sees the canvas get its
``data-drawn`` id (toggles) or its ``data-zoom`` (wheel); a display change is done when every
canvas's pixels changed. Writes ``OUT.json`` and ``OUT.md`` (date, machine, versions, load) and
judges each "after" against "before" by the issue's rule: slower by more than 10 % *and*
10 ms is a regression.

Usage::

    python benchmarks/bench_widget.py --run before=/tmp/base --run after=. \\
        --trials 20 --out docs/bench_widget
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from lab_harness import jupyter_server, launch_chromium, notebook, notebook_page  # noqa: E402
from test_explorer_browser import JS_CLICK_TO_GALLERY, JS_SORT_TO_GALLERY  # noqa: E402
from test_widget_browser import (JS_RESTYLE_TIME, JS_TOGGLE_TO_PIXELS,  # noqa: E402
                                 JS_ZOOM_FRAME_TIME, NB7_OPEN, SETUP)

# The panels' states, read the same way from any version of the widget (panels were dicts, are
# child models now).
STATE = r'''
def _pv(p, k):
    return p[k] if isinstance(p, dict) else getattr(p, k)
def _show(*args, **kw):
    # like for like: the badges (on by default since issue 13) are off in every checkout; a
    # checkout from before them has no `metrics` argument at all
    try:
        return sw.show(*args, **kw)
    except sw.SaliencyError as e:
        if "'metrics'" not in str(e):
            raise
        kw.pop("metrics")
        return sw.show(*args, **kw)
def state():
    print(json.dumps({"methods": w.methods_selected, "target": w.target, "status": w.status,
                      "panels": [[_pv(p, "method"), _pv(p, "state")] for p in w.panels]}))
'''
OPEN = ('w = _show(model, image, labels=labels, methods=("grad_cam",), mean=MEAN, std=STD, '
        'metrics=())')
NB7 = NB7_OPEN.replace("sw.show(", "_show(")
assert NB7 != NB7_OPEN and "metrics=()" in NB7
READY = ("() => document.querySelector('.saliency-widget [data-testid=panel]"
         "[data-method=grad_cam] canvas[data-drawn]')")


def _poll(nb, ok, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        value = json.loads(nb.python("state()").strip().splitlines()[-1])
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {value}")
        time.sleep(0.2)


def toggles(browser, base: str, root: Path, trials: int) -> dict[str, list[float]]:
    (root / "timing.ipynb").write_text(json.dumps(notebook([SETUP + STATE, OPEN, "state()"])))
    with notebook_page(browser, f"{base}/lab/tree/timing.ipynb") as nb:
        top = int(nb.run(0).split()[-1])
        nb.run(1)
        nb.page.wait_for_function(READY, timeout=180_000)
        _poll(nb, lambda s: s["status"] == "idle")
        toggle = nb.page.locator(".saliency-widget [data-testid=method-toggle]"
                                 "[data-method=gradient]")
        uncached, cached = [], []
        for k in range(trials):
            nb.python(f"w.target = {(top + 7 * (k + 1)) % 1000}; w.wait(); state()")
            uncached.append(nb.page.evaluate(JS_TOGGLE_TO_PIXELS, "gradient"))  # computed
            toggle.click()  # off
            _poll(nb, lambda s: s["methods"] == ["grad_cam"])
            cached.append(nb.page.evaluate(JS_TOGGLE_TO_PIXELS, "gradient"))  # from the cache
            toggle.click()  # off again, for the next round
            _poll(nb, lambda s: s["methods"] == ["grad_cam"])
    return {"toggle_uncached_ms": uncached, "toggle_cached_ms": cached}


def display_1024(browser, base: str, root: Path, trials: int) -> dict[str, list[float]]:
    (root / "nb7.ipynb").write_text(json.dumps(notebook([SETUP + STATE, NB7, "state()"])))
    with notebook_page(browser, f"{base}/notebooks/nb7.ipynb", keep=lambda e: False) as nb:
        nb.run(0)
        nb.run(1)
        nb.page.locator(".saliency-widget [data-testid=method-toggle]"
                        "[data-method=grad_cam]").click()
        _poll(nb, lambda s: s["status"] == "idle" and len(s["panels"]) == 2
              and all(p[1] == "ready" for p in s["panels"]))
        nb.page.wait_for_function(
            "() => document.querySelectorAll("
            "'.saliency-widget [data-testid=panel] canvas[data-drawn]').length === 2",
            timeout=180_000)
        restyle = [nb.page.evaluate(JS_RESTYLE_TIME, 0.3 if i % 2 == 0 else 0.6)
                   for i in range(trials)]
        zoom = nb.page.evaluate(JS_ZOOM_FRAME_TIME, trials)["times"]
    return {"opacity_1024_ms": restyle, "wheel_1024_ms": zoom}


EXPLORER = r'''
import tempfile
import saliency_widgets as sw
if hasattr(sw, "explore"):
    from saliency_widgets.audit import synthetic_audit
    big = synthetic_audit(tempfile.mkdtemp() + "/store", 50_000)
    eb = sw.explore(big, page_size=24)
    print("EXPLORER", len(big))
else:
    print("NO EXPLORER")
'''


def explorer(browser, base: str, root: Path, trials: int) -> dict[str, list[float]]:
    (root / "explorer.ipynb").write_text(json.dumps(notebook([EXPLORER])))
    with notebook_page(browser, f"{base}/lab/tree/explorer.ipynb") as nb:
        if "NO EXPLORER" in nb.run(0, timeout_ms=300_000):
            return {}
        ex = nb.page.locator(".saliency-explorer").first
        ex.locator("[data-testid=gallery-item]").first.wait_for(timeout=120_000)
        root_el = ex.element_handle()
        pages = [nb.page.evaluate(JS_CLICK_TO_GALLERY, [root_el, "[data-testid=page-next]"])
                 for _ in range(trials)]
        columns = ("loss", "confidence", "idx")
        sorts = [nb.page.evaluate(JS_SORT_TO_GALLERY, [root_el, columns[i % 3]])
                 for i in range(trials)]
    return {"explorer_page_ms": pages, "explorer_sort_ms": sorts}


def measure(path: Path, trials: int) -> dict:
    from playwright.sync_api import sync_playwright

    os.environ["PYTHONPATH"] = str(path.resolve())  # the kernel imports this checkout
    with jupyter_server() as (base, root, _), sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            out = toggles(browser, base, root, trials)
            out.update(display_1024(browser, base, root, trials))
            out.update(explorer(browser, base, root, trials))
        finally:
            browser.close()
    return out


def judge(before: float, after: float) -> str:
    """The issue's rule: a regression is slower by more than 10 % and by more than 10 ms."""
    worse = after - before
    return "slower" if worse > 10 and worse > 0.1 * before else "ok"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=PATH",
                    help="a checkout to measure (repeat; the first is the reference)")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out", default="docs/bench_widget")
    args = ap.parse_args(argv)
    runs = {}
    load_before = os.getloadavg()
    for spec in args.run:
        label, _, path = spec.partition("=")
        print(f"measuring {label} ({path}) …", file=sys.stderr, flush=True)
        runs[label] = measure(Path(path), args.trials)
    import playwright
    import torch

    from importlib.metadata import version

    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()})",
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "jupyterlab": version("jupyterlab"), "notebook": version("notebook"),
                         "playwright": version("playwright"), "anywidget": version("anywidget")},
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "trials": args.trials, "kernel_threads": 1,
            "command": " ".join(["python", "benchmarks/bench_widget.py", *sys.argv[1:]])}
    del playwright
    medians = {label: {k: statistics.median(v) for k, v in r.items()} for label, r in runs.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs, "medians": medians},
                                                   indent=1))
    labels = list(runs)
    rows = ["| measurement | " + " | ".join(f"{lab} median (ms)" for lab in labels)
            + (" | verdict |" if len(labels) > 1 else " |"),
            "|---|" + "---|" * len(labels) + ("---|" if len(labels) > 1 else "")]
    names = {"toggle_uncached_ms": "toggle → pixels, uncached (resnet18, 224²)",
             "toggle_cached_ms": "toggle → pixels, cached",
             "opacity_1024_ms": "opacity change → pixels, 1024², 2 panels",
             "wheel_1024_ms": "wheel → redraw, 1024²",
             "explorer_page_ms": "explorer: page change, 50 000 rows",
             "explorer_sort_ms": "explorer: sort, 50 000 rows"}
    for key, name in names.items():
        cells = [f"{medians[lab][key]:.1f}" if key in medians[lab] else "—" for lab in labels]
        both = all(key in medians[lab] for lab in (labels[0], labels[-1]))
        verdict = (" | " + (judge(medians[labels[0]][key], medians[labels[-1]][key]) if both
                            else "new")
                   if len(labels) > 1 else "")
        rows.append(f"| {name} | " + " | ".join(cells) + verdict + " |")
    md = [f"# The widget's browser timings ({', '.join(labels)})", "",
          f"{meta['date']}; {meta['machine']}; python {meta['versions']['python']}, torch "
          f"{meta['versions']['torch']}, JupyterLab {meta['versions']['jupyterlab']}, "
          f"Notebook {meta['versions']['notebook']}, anywidget {meta['versions']['anywidget']}; "
          f"headless Debian chromium; kernel on 1 thread. Load average at start "
          f"{', '.join(f'{v:.2f}' for v in load_before)}, at end "
          f"{', '.join(f'{v:.2f}' for v in meta['load_average']['end'])}.",
          f"Medians of {args.trials} trials each (every sample is in the JSON beside this "
          f"file). Verdict: a regression is slower by more than 10 % and 10 ms.", "",
          *rows, "", f"Command: `{meta['command']}`", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
