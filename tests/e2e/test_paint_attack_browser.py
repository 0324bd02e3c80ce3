"""Paint mode, live agreement and the attack view in a real JupyterLab page (issue 14).

One notebook and kernel for the module, on the bundled demo model (64 × 64 inputs, so maps and
attacks take a fraction of a second); the tests run in file order: pan with paint mode off, paint
strokes under zoom, box / eraser / clear, a mask set from Python, then an attack. Screenshots go
to out/e2e/.
"""

from __future__ import annotations

import json

import pytest

from lab_harness import JS_DIFF, JS_SNAPSHOT, ROOT, notebook, notebook_page, panel_canvas, wait_drawn

pytestmark = pytest.mark.e2e

SETUP = r'''
import json
import numpy as np, torch
import saliency_widgets as sw
model = sw.demo.load_model("shapes")
data = sw.demo.sample(5, seed=7)
METRICS = ("pointing_game", "relevance_mass", "relevance_rank", "top_k_iou")
def state():
    mask = w.expert_mask
    print(json.dumps({"mask": None if mask is None else int(mask.sum()),
                      "agreement": w.agreement, "status": w.status,
                      "brush": w.brush_size}))
def painted(points):
    print(json.dumps([bool(w.expert_mask[int(y), int(x)]) for x, y in points]))
def evaluated():  # the widget's agreement against sw.evaluate on the same mask, bit for bit
    m = torch.from_numpy(np.array(w.expert_mask))[None]
    ok = all(w.agreement[a.method][k] == sw.evaluate(model, w.model_input, a, metric=k,
             masks=m).scores[0].item() for a in w.attributions for k in METRICS)
    print(json.dumps(ok and sorted(w.agreement) == sorted(a.method for a in w.attributions)))
IMAGE = 4  # a triangle near the middle of the picture
OBJ = [int(round(float(v))) for v in np.argwhere(data.masks[IMAGE].numpy()).mean(0)[::-1]]
print("OBJ", json.dumps(OBJ))
'''
OPEN = ('w = sw.show(model, data.images[IMAGE], labels=sw.demo.CLASSES, '
        'methods=("gradient", "grad_cam"))')
STATE = "state()"
SIZE = 64

# Page coordinates of image points in a panel's canvas, from the view it draws (data-zoom,
# data-cx, data-cy) and its CSS size: the inverse of viewport.toImage.
JS_TO_PAGE = """([sel, size, points]) => {
  const c = document.querySelector(sel);
  const r = c.getBoundingClientRect();
  const vw = c.clientWidth, vh = c.clientHeight;
  const zoom = Number(c.dataset.zoom), cx = Number(c.dataset.cx), cy = Number(c.dataset.cy);
  const scale = Math.min(vw / size, vh / size) * zoom;
  return points.map(([x, y]) => [r.left + c.clientLeft + vw / 2 + (x - cx) * scale,
                                 r.top + c.clientTop + vh / 2 + (y - cy) * scale]);
}"""

JS_VIEW = """(sel) => { const c = document.querySelector(sel);
  return [Number(c.dataset.zoom), Number(c.dataset.cx), Number(c.dataset.cy)]; }"""


def read(lab, code: str):
    """Run ``code`` (it prints one JSON value) once the page's last stroke has reached the
    kernel: the final mask of a stroke is sent at its end, after the coalesced ones."""
    lab.page.wait_for_timeout(400)
    return json.loads(lab.python(code).strip().splitlines()[-1])


def agreement_text(page, method: str) -> str:
    return page.locator(f"{ROOT} [data-testid=agreement][data-method={method}]").inner_text()


def on_canvas(page, method: str, points):
    """Page coordinates of image points, each checked to lie on the method's canvas."""
    out = page.evaluate(JS_TO_PAGE, [panel_canvas(method), SIZE, points])
    box = page.locator(panel_canvas(method)).bounding_box()
    for x, y in out:
        assert box["x"] < x < box["x"] + box["width"] and box["y"] < y < box["y"] + box["height"]
    return out


def drag(page, points, steps: int = 6) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=steps)
    page.mouse.up()


@pytest.fixture(scope="module")
def lab(server, browser):
    base, root, log = server
    (root / "paint.ipynb").write_text(json.dumps(notebook([SETUP, OPEN, STATE])))
    with notebook_page(browser, f"{base}/lab/tree/paint.ipynb") as nb:
        out = nb.run(0)
        nb.obj = json.loads(out.split("OBJ", 1)[1].strip().splitlines()[0])  # the object's centre
        nb.run(1)
        wait_drawn(nb.page, "gradient")
        wait_drawn(nb.page, "grad_cam")
        yield nb


def test_panning_still_works_with_paint_mode_off(lab):
    page = lab.page
    toggle = page.locator(f"{ROOT} [data-testid=paint-toggle]")
    assert toggle.get_attribute("aria-pressed") == "false"
    canvas = page.locator(panel_canvas("gradient"))
    canvas.hover()  # the middle of the canvas: the object stays in view
    page.mouse.wheel(0, -500)  # zoom in (at zoom 1 there is nothing to pan)
    page.wait_for_function(f"() => Number(document.querySelector('{panel_canvas('gradient')}').dataset.zoom) > 2")
    before = page.evaluate(JS_VIEW, panel_canvas("gradient"))
    box = canvas.bounding_box()
    drag(page, [(box["x"] + 150, box["y"] + 150), (box["x"] + 110, box["y"] + 120)])
    after = page.evaluate(JS_VIEW, panel_canvas("gradient"))
    assert after[0] == before[0] and (after[1], after[2]) != (before[1], before[2]), (before, after)
    assert page.evaluate(JS_VIEW, panel_canvas("grad_cam")) == after  # still linked
    assert read(lab, STATE)["mask"] is None


def test_painting_a_stroke_changes_the_mask_and_the_agreement(lab, out_dir):
    page = lab.page
    page.click(f"{ROOT} [data-testid=paint-toggle]")
    assert page.locator(f"{ROOT} [data-testid=paint-toggle]").get_attribute("aria-pressed") == "true"
    page.select_option(f"{ROOT} [data-testid=paint-tool]", "brush")
    lab.python("w.brush_size = 3; state()")  # Python → the slider
    page.wait_for_function(f"() => document.querySelector('{ROOT} [data-testid=brush-size]').value === '3'")
    zoom, cx, cy = page.evaluate(JS_VIEW, panel_canvas("gradient"))
    assert zoom > 2  # painting under zoom and pan: image points, not screen pixels
    ox, oy = lab.obj  # strokes across the object, so the agreement numbers move
    a, b = (ox - 4 + 0.5, oy + 0.5), (ox + 4 + 0.5, oy + 0.5)
    drag(page, on_canvas(page, "gradient", [a, b]))
    assert page.evaluate(JS_VIEW, panel_canvas("gradient")) == [zoom, cx, cy]  # no pan
    lab.poll_python(STATE, lambda s: s["mask"] and set(s["agreement"]) == {"gradient", "grad_cam"})
    first = read(lab, STATE)
    # a brush of diameter 3 along 8 pixels through pixel centres: the centres within 1.5 of the
    # segment, 11 × 3 pixels (the caps reach one pixel past each end)
    assert first["mask"] == 33, first
    inside = [a, b, ((a[0] + b[0]) / 2, a[1]), (a[0], a[1] - 1), (b[0], b[1] + 1),
              (a[0] - 1, a[1] - 1), (b[0] + 1, b[1] + 1)]
    outside = [(a[0] - 2, a[1]), (b[0] + 2, b[1]), (a[0], a[1] - 2), (b[0], b[1] + 2)]
    assert read(lab, f"painted({inside + outside})") == [True] * len(inside) + [False] * len(outside)
    assert read(lab, "evaluated()") is True
    line = page.locator(f"{ROOT} [data-testid=agreement][data-method=gradient]")
    line.wait_for(state="visible")
    mass = line.locator("[data-metric=relevance_mass]")
    assert float(mass.get_attribute("data-value")) == first["agreement"]["gradient"]["relevance_mass"]
    text0 = agreement_text(page, "gradient")
    assert "mass" in text0 and "IoU" in text0
    page.locator(ROOT).screenshot(path=str(out_dir / "paint_stroke.png"))
    # a second stroke elsewhere: the mask grows and the numbers change, in Python and the page
    lab.python("w.brush_size = 5; state()")
    page.wait_for_function(f"() => document.querySelector('{ROOT} [data-testid=brush-size]').value === '5'")
    c, d = (ox + 0.5, oy - 6.5), (ox + 0.5, oy + 6.5)
    drag(page, on_canvas(page, "grad_cam", [c, d]))
    lab.poll_python(STATE, lambda s: s["mask"] and s["mask"] > first["mask"])
    second = read(lab, STATE)
    assert second["agreement"] != first["agreement"]
    page.wait_for_function("""([sel, old]) => document.querySelector(sel).innerText !== old""",
                           arg=[f"{ROOT} [data-testid=agreement][data-method=gradient]", text0])
    assert read(lab, "evaluated()") is True


def test_box_eraser_clear_and_a_mask_from_python(lab, out_dir):
    page = lab.page
    before = read(lab, STATE)["mask"]
    ox, oy = lab.obj
    page.select_option(f"{ROOT} [data-testid=paint-tool]", "box")
    corner = (ox - 8 + 0.5, oy - 8 + 0.5), (ox - 5 + 0.5, oy - 6 + 0.5)
    drag(page, on_canvas(page, "gradient", list(corner)))
    boxed = lab.poll_python(STATE, lambda s: s["mask"] == before + 4 * 3)  # a 4 × 3 box, new pixels
    page.select_option(f"{ROOT} [data-testid=paint-tool]", "eraser")
    lab.python("w.brush_size = 1; state()")
    page.wait_for_function(f"() => document.querySelector('{ROOT} [data-testid=brush-size]').value === '1'")
    spot = (ox - 8 + 0.5, oy - 8 + 0.5)
    drag(page, on_canvas(page, "gradient", [spot, spot]))
    lab.poll_python(STATE, lambda s: s["mask"] == boxed["mask"] - 1)
    page.click(f"{ROOT} [data-testid=paint-clear]")
    lab.poll_python(STATE, lambda s: s["mask"] is None and s["agreement"] == {})
    page.wait_for_function(f"() => document.querySelector('{ROOT} [data-testid=agreement][data-method=gradient]').hidden")
    # a mask set from Python is drawn over the panels (outlined when paint mode is off)
    page.click(f"{ROOT} [data-testid=paint-toggle]")
    assert page.locator(f"{ROOT} [data-testid=paint-toggle]").get_attribute("aria-pressed") == "false"
    page.mouse.move(5, 5)
    page.wait_for_timeout(200)
    page.evaluate(JS_SNAPSHOT, [panel_canvas("gradient"), "no_mask"])
    lab.python("w.expert_mask = data.masks[IMAGE].numpy(); state()")
    page.wait_for_function(f"() => !document.querySelector('{ROOT} [data-testid=agreement][data-method=gradient]').hidden")
    page.wait_for_timeout(200)
    page.evaluate(JS_SNAPSHOT, [panel_canvas("gradient"), "exact_mask"])
    assert page.evaluate(JS_DIFF, ["no_mask", "exact_mask"]) > 100
    assert read(lab, "evaluated()") is True
    page.locator(ROOT).screenshot(path=str(out_dir / "paint_exact_mask.png"))


def test_the_attack_view_appears_with_shift_numbers(lab, out_dir):
    page = lab.page
    page.click(f"{ROOT} [data-testid=zoom-reset]")
    page.click(f"{ROOT} [data-testid=attack-run][data-method=gradient]")
    view = page.locator(f"{ROOT} [data-testid=attack-view][data-method=gradient]")
    view.wait_for(state="visible")
    page.wait_for_function(
        f"() => document.querySelector('{ROOT} [data-testid=attack-view][data-method=gradient]')"
        ".dataset.state === 'ready'", timeout=120_000)
    summary = lab.poll_python(
        "print(json.dumps(w.attack_results['gradient'].summary() if 'gradient' in w.attack_results else None))",
        lambda s: s is not None)
    rows = {r.get_attribute("data-key"): (r.locator("[data-role=attack]").inner_text(),
                                          r.locator("[data-role=noise]").inner_text())
            for r in view.locator("[data-testid=attack-shift] tr[data-key]").all()}
    assert rows["top_k_intersection"] == (f"{summary['top_k_intersection']:.2f}",
                                          f"{summary['noise_top_k_intersection']:.2f}")
    assert rows["spearman"][0] == f"{summary['spearman']:.2f}"
    assert rows["com_distance"][0] == f"{summary['com_distance']:.1f} px"
    assert rows["kept"][0] == "yes"
    assert "×" in view.locator("[data-testid=attack-perturbation] + figcaption").inner_text()
    for testid in ("attack-original-map", "attack-attacked-map", "attack-perturbation"):
        stats = page.evaluate(JS_SNAPSHOT, [f"{ROOT} [data-testid={testid}]", testid])
        assert stats["colours"] > 5, (testid, stats)
    assert page.evaluate(JS_DIFF, ["attack-original-map", "attack-attacked-map"]) > 100
    # the button of the other panel starts nothing by itself
    assert page.locator(f"{ROOT} [data-testid=attack-view]").count() == 1
    view.screenshot(path=str(out_dir / "attack_view.png"))
    page.locator(ROOT).screenshot(path=str(out_dir / "paint_attack_widget.png"))
    assert not lab.errors, lab.errors
