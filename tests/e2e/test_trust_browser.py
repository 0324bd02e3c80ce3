"""The trust and teaching views in a real JupyterLab (issue 13): one notebook, one kernel (on one
thread), tests in file order.

Badges appear after the map (their times are recorded, not asserted: out/e2e/trust_timings.json)
and equal ``sw.evaluate`` to the printed precision; "rank by" orders the panels; scrubbing the
deletion curve changes the panel's pixels (in the browser alone) and "map" restores them; the
sanity slider at full depth draws the map ``model_randomization`` re-explained; the IG path's
running sum at α = 1 is the IG map, and each step is fetched when asked for. Screenshots go to
out/e2e/trust_*.png.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from lab_harness import JS_DIFF, JS_SNAPSHOT, ROOT, notebook, notebook_page, panel_canvas, wait_drawn

pytestmark = pytest.mark.e2e

MAP_ONLY = ("sparseness", "complexity")
FOUR = ("deletion", "insertion", "infidelity", "max_sensitivity")

SETUP = r'''
import json, os
import numpy as np, torch, torchvision
import saliency_widgets as sw
from saliency_widgets.render import display_map
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()  # random weights: no download
yy, xx = np.mgrid[0:224, 0:224]
image = np.stack([xx * 255 // 223, yy * 255 // 223, (xx + yy) % 64 * 4], -1).astype(np.uint8)
image[(yy - 100) ** 2 + (xx - 130) ** 2 < 40 ** 2] = (250, 220, 40)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
def out(value):
    print(json.dumps(value))
def attr_of(method):
    return next(a for a in w.attributions if a.method == method)
out({"package": sw.__file__, "threads": torch.get_num_threads()})
'''
OPEN = ('w = sw.show(model, image, methods=("gradient",), mean=MEAN, std=STD, '
        f'metrics={MAP_ONLY + FOUR!r})')

# Every first appearance of a drawn map and of a ready badge, timed in the page.
JS_RECORD = """() => {
  window.__sw_t = {};
  const mark = (k) => { if (!(k in window.__sw_t)) window.__sw_t[k] = performance.now(); };
  const scan = () => {
    for (const p of document.querySelectorAll('.saliency-widget [data-testid=panel][data-state=ready]'))
      mark('map:' + p.dataset.method);  // the map's message applied (its pixels: next frame)
    for (const c of document.querySelectorAll('.saliency-widget [data-testid=panel] canvas[data-drawn]'))
      mark('drawn:' + c.closest('[data-testid=panel]').dataset.method);
    for (const b of document.querySelectorAll('.saliency-widget [data-testid=badge][data-state=ready]'))
      mark('badge:' + b.dataset.method + ':' + b.dataset.metric);
  };
  new MutationObserver(scan).observe(document.body, {subtree: true, childList: true,
    attributes: true, attributeFilter: ['data-drawn', 'data-state']});
}"""

JS_SET_RANGE = """([sel, value]) => {
  const el = document.querySelector(sel);
  el.value = String(value);
  el.dispatchEvent(new Event('input', {bubbles: true}));
  return el.value;
}"""


def printed_tolerance(text: str) -> float:
    """Half a unit in the last printed digit (js/src/trust/format.ts printedTolerance)."""
    m = re.fullmatch(r"-?(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?", text.strip())
    assert m, f"not a printed number: {text!r}"
    return 0.5 * 10.0 ** (int(m.group(3) or 0) - len(m.group(2) or ""))


def badges_ready(method: str, metrics) -> str:
    sel = " && ".join(f"!!document.querySelector('{ROOT} [data-testid=badge][data-method={method}]"
                      f"[data-metric={m}][data-state=ready]')" for m in metrics)
    return f"() => {sel}"


@pytest.fixture(scope="module")
def lab(server, browser, out_dir):
    base, root, log = server
    (root / "trust.ipynb").write_text(json.dumps(notebook([SETUP, OPEN, "# scratch"])))
    with notebook_page(browser, f"{base}/lab/tree/trust.ipynb", width=1500, height=1400) as nb:
        info = json.loads(nb.run(0).strip().splitlines()[-1])
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert info["package"].startswith(repo), (info, "run with PYTHONPATH=<this checkout>")
        assert info["threads"] == 1
        nb.json = lambda code: json.loads(nb.python(code).strip().splitlines()[-1])
        yield nb


def test_badges_appear_after_the_map_and_their_times_are_recorded(lab, out_dir):
    page = lab.page
    page.evaluate(JS_RECORD)
    lab.run(1)
    wait_drawn(page, "gradient")
    page.wait_for_function(badges_ready("gradient", MAP_ONLY + FOUR), timeout=300_000, polling=100)
    lab.python("w.wait(300); w.methods_selected = ['grad_cam']")  # the trivial maps finish first
    page.wait_for_function(badges_ready("grad_cam", MAP_ONLY + FOUR), timeout=300_000, polling=100)
    t = page.evaluate("() => window.__sw_t")
    load = os.getloadavg()
    result = {"model": "resnet18 (random weights), 224x224, kernel on 1 thread, DOM-observed",
              "load_average_1min": round(load[0], 2), "cores": os.cpu_count()}
    for method in ("gradient", "grad_cam"):
        t0 = t[f"map:{method}"]
        each = {m: round(t[f"badge:{method}:{m}"] - t0, 1) for m in MAP_ONLY + FOUR}
        result[method] = {"badge_ms_after_map": each,
                          "map_pixels_ms_after_map": round(t[f"drawn:{method}"] - t0, 1),
                          "map_only_ms": max(each[m] for m in MAP_ONLY),
                          "four_defaults_ms": max(each[m] for m in FOUR)}
    (out_dir / "trust_timings.json").write_text(json.dumps(result, indent=2))
    print("\nbadge timings:", json.dumps(result))
    # the map comes first, then the badges of the map alone, then those that need the model
    for method in ("gradient", "grad_cam"):
        r = result[method]["badge_ms_after_map"]
        assert min(r.values()) >= 0
        assert max(r[m] for m in MAP_ONLY) <= min(r[m] for m in FOUR)


def test_badges_equal_sw_evaluate_to_the_printed_precision(lab, out_dir):
    page = lab.page
    lab.python("w.methods_selected = ['gradient', 'grad_cam']; w.wait(300)")  # cached: at once
    page.wait_for_function(badges_ready("gradient", MAP_ONLY + FOUR), timeout=60_000)
    ref = lab.json("out({m: {k: float(sw.evaluate(model, w.model_input, attr_of(m), metric=k,"
                   " seed=0).scores[0]) for k in w.metrics_selected} for m in ('gradient',"
                   " 'grad_cam')})")
    checked = 0
    for method, values in ref.items():
        for metric, value in values.items():
            el = page.locator(f"{ROOT} [data-testid=badge][data-method={method}]"
                              f"[data-metric={metric}]")
            text = el.locator("[data-testid=badge-value]").inner_text()
            assert abs(float(text) - value) <= printed_tolerance(text) * (1 + 1e-9), \
                (method, metric, text, value)
            title = el.get_attribute("title")
            assert "is better" in title and "Parameters:" in title and "random" in title
            checked += 1
    assert checked == 12
    # rank by: the panels are ordered by the metric, best first (deletion: lower is better)
    page.select_option(f"{ROOT} [data-testid=rank-by]", "deletion")
    lab.poll_python("out(w.rank_by)", lambda v: v == "deletion")
    results = lab.json("out(w.metric_results)")
    best_first = sorted(results, key=lambda m: results[m]["deletion"])
    page.wait_for_function(
        f"""(want) => JSON.stringify(Array.from(document.querySelectorAll('{ROOT} [data-testid=panel]'))
              .map(p => p.dataset.method)) === JSON.stringify(want)""", arg=best_first)
    page.locator(ROOT).screenshot(path=str(out_dir / "trust_badges.png"))


def test_scrubbing_the_deletion_curve_changes_the_panels_pixels(lab, out_dir):
    page = lab.page
    curve = f"{ROOT} [data-testid=curve][data-method=grad_cam]"
    page.locator(curve).wait_for(state="visible")
    page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "map"])
    scrub = f"{ROOT} [data-testid=curve-scrub][data-method=grad_cam]"
    assert page.locator(scrub).get_attribute("max") == "24"
    page.evaluate(JS_SET_RANGE, [scrub, 12])
    page.wait_for_function(f"() => document.querySelector('{curve}').dataset.step === '12'")
    page.wait_for_timeout(150)  # the next animation frame draws it
    page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "half"])
    assert page.evaluate(JS_DIFF, ["map", "half"]) > 1000
    readout = page.locator(f"{curve} [data-testid=curve-readout]").inner_text()
    assert "50.0 % deleted" in readout, readout
    y = lab.json("from saliency_widgets.widget.payload import from_payload\n"
                 "out(float(from_payload(w._board.slots['grad_cam'].curves['deletion']['y'])[12]))")
    score = readout.split("score ")[-1]
    assert abs(float(score) - y) <= printed_tolerance(score) * (1 + 1e-9), (readout, y)
    page.locator(f"{ROOT} [data-testid=panel][data-method=grad_cam]").screenshot(
        path=str(out_dir / "trust_scrub.png"))
    page.evaluate(JS_SET_RANGE, [scrub, 24])  # everything deleted: a black image
    page.wait_for_function(f"() => document.querySelector('{curve}').dataset.step === '24'")
    page.wait_for_timeout(150)
    page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "all"])
    assert page.evaluate(JS_DIFF, ["half", "all"]) > 1000
    page.click(f"{curve} .sw-curve-back")  # the map again, pixel for pixel
    page.wait_for_timeout(150)
    page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "back"])
    assert page.evaluate(JS_DIFF, ["map", "back"]) == 0


def test_the_sanity_slider_at_full_depth_shows_the_re_explained_map(lab, out_dir):
    page = lab.page
    page.click(f"{ROOT} [data-testid=sanity-run]")
    lab.poll_python("out(w.sanity_check)", lambda v: v is True)
    for method in ("gradient", "grad_cam"):
        page.wait_for_function(
            f"() => !!document.querySelector('{ROOT} [data-testid=sanity-map][data-method={method}]')"
            f"?.dataset.depth", timeout=300_000, polling=200)
    depth = page.locator(f"{ROOT} [data-testid=sanity-depth]")
    top = int(depth.get_attribute("max"))
    assert top == 7  # resnet18: conv1, bn1, layer1–4, fc
    page.evaluate(JS_SET_RANGE, [f"{ROOT} [data-testid=sanity-depth]", top])
    sums = {}
    for method in ("gradient", "grad_cam"):
        sel = f"{ROOT} [data-testid=sanity-map][data-method={method}]"
        page.wait_for_function(f"() => document.querySelector('{sel}').dataset.depth === '{top}'")
        sums[method] = float(page.locator(sel).get_attribute("data-sum"))
    ref = lab.json(
        "seen = {}\n"
        "for m in ('gradient', 'grad_cam'):\n"
        "    a = attr_of(m); maps = []\n"
        "    def explain(net, xb, a=a, maps=maps):\n"
        "        v = sw.attribute(net, xb, list(a.target), method=a.method, seed=a.seed,\n"
        "                         layer=a.layer, normalization=a.normalization,\n"
        "                         **dict(a.params)).values\n"
        "        maps.append(v); return v\n"
        "    r = sw.evaluate(model, w.model_input, a, metric='model_randomization', seed=0,\n"
        "                    explain=explain)\n"
        "    seen[m] = {'sum': float(display_map(maps[-1], 'signed')[0].astype('float64').sum()),\n"
        "               'abs': float(abs(display_map(maps[-1], 'signed')[0]).astype('float64').sum()),\n"
        "               'final': float(r.curve[0, -1])}\n"
        "out(seen)")
    for method, s in sums.items():
        assert abs(s - ref[method]["sum"]) <= 1e-6 * ref[method]["abs"] + 1e-12, (method, s, ref)
    verdict = page.locator(f"{ROOT} [data-testid=sanity-verdict][data-method=grad_cam]").inner_text()
    assert "0.5" in verdict and f"{ref['grad_cam']['final']:.2f}" in verdict, verdict
    page.locator(f"{ROOT} [data-testid=sanity]").screenshot(path=str(out_dir / "trust_sanity.png"))


def test_the_ig_path_running_sum_at_alpha_1_is_the_ig_map(lab, out_dir):
    page = lab.page
    lab.python("w.sanity_check = False; w.metrics_selected = ['sparseness']\n"
               "w.params = {'integrated_gradients': {'steps': 8}}\n"
               "w.methods_selected = ['grad_cam', 'integrated_gradients']; w.wait(300)")
    wait_drawn(page, "integrated_gradients")
    page.select_option(f"{ROOT} [data-testid=path-method]", "integrated_gradients")
    lab.poll_python("out(w.path_method)", lambda v: v == "integrated_gradients")
    view = f"{ROOT} [data-testid=path-view][data-method=integrated_gradients]"
    page.wait_for_function(f"() => document.querySelector('{view}')?.dataset.state === 'ready'",
                           timeout=300_000, polling=200)
    running = f"{view} [data-testid=path-running]"
    page.wait_for_function(f"() => document.querySelector('{running}')?.dataset.index === '7'",
                           timeout=60_000)
    got = float(page.locator(running).get_attribute("data-sum"))
    ref = lab.json("m = display_map(attr_of('integrated_gradients').values, 'signed')[0]"
                   ".astype('float64')\nout([float(m.sum()), float(abs(m).sum())])")
    assert abs(got - ref[0]) <= 1e-6 * ref[1], (got, ref)
    assert "completeness gap" in page.locator(f"{view} [data-testid=path-completeness]").inner_text()
    page.evaluate(JS_SNAPSHOT, [f"{view} [data-testid=path-input]", "alpha1"])
    page.locator(view).screenshot(path=str(out_dir / "trust_path_end.png"))
    # another position: that frame is fetched from the kernel (path_step), then drawn
    page.evaluate(JS_SET_RANGE, [f"{view} [data-testid=path-step]", 2])
    lab.poll_python("out(w.path_step)", lambda v: v == 2)
    page.wait_for_function(f"() => document.querySelector('{running}').dataset.index === '2'")
    page.evaluate(JS_SNAPSHOT, [f"{view} [data-testid=path-input]", "alpha2"])
    assert page.evaluate(JS_DIFF, ["alpha1", "alpha2"]) > 1000  # a darker interpolated input
    words = page.locator(f"{view} [data-testid=path-words]").inner_text()
    assert "node 3 of 8" in words, words
    page.locator(view).screenshot(path=str(out_dir / "trust_path.png"))
    page.locator(ROOT).screenshot(path=str(out_dir / "trust_widget.png"))
    assert not lab.errors, lab.errors
