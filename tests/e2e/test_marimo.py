"""The widget in marimo (``mo.ui.anywidget``), in headless chromium: the same contract as in
JupyterLab — it renders, a method toggle and a contrast class reach Python and the pixels, zoom
stays linked — on the marimo version of the quickstart, served with ``marimo run``.

marimo renders widgets in shadow roots: everything here goes through Playwright locators, and
the widget's own JS must never look anything up through ``document``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_harness import marimo_app

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart_marimo.py"
ROOT = ".saliency-widget"

# pixel statistics of a canvas, read through its element handle (works inside a shadow root)
JS_PIXELS = """(c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) { colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                                              h = (h * 31 + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) | 0; }
  return {colours: colours.size, hash: h, w: c.width, h: c.height};
}"""


def canvas(page, method: str):
    return page.locator(f"{ROOT} [data-testid=panel][data-method={method}] canvas")


def drawn(page, method: str, timeout: float = 120_000) -> str:
    c = page.locator(f"{ROOT} [data-testid=panel][data-method={method}] canvas[data-drawn]")
    c.wait_for(timeout=timeout)
    return c.get_attribute("data-drawn")


def test_the_widget_works_in_marimo(browser, out_dir):
    with marimo_app(QUICKSTART) as url:
        context = browser.new_context(viewport={"width": 1300, "height": 1400})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack or ''}"))
        # marimo catches errors thrown in a widget's event handlers and logs them: count those
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and "Failed to load resource" not in m.text else None)
        page.goto(url)
        drawn(page, "gradient")
        drawn(page, "grad_cam")
        assert page.locator(f"{ROOT} [data-testid=panel]").count() == 2
        python = page.get_by_text("Python sees:")
        python.wait_for(timeout=60_000)
        assert "target cross" in python.inner_text()
        stats = canvas(page, "grad_cam").evaluate(JS_PIXELS)
        assert stats["colours"] > 50, stats  # an image under a heatmap

        # a toggle reaches Python (the reactive cell re-runs) and the new panel draws
        page.locator(f"{ROOT} [data-testid=method-toggle][data-method=integrated_gradients]").click()
        drawn(page, "integrated_gradients")
        page.get_by_text("integrated_gradients").first.wait_for(timeout=60_000)  # cell re-ran
        assert "integrated_gradients" in page.get_by_text("Python sees:").inner_text()

        # a contrast class: Python resolves it, the objective and the pixels change
        before = canvas(page, "gradient").get_attribute("data-drawn")
        plain = canvas(page, "gradient").evaluate(JS_PIXELS)
        page.locator(f"{ROOT} [data-testid=contrast-select]").select_option("0")
        page.wait_for_function(
            """([el, old]) => el.dataset.drawn && el.dataset.drawn !== old""",
            arg=[canvas(page, "gradient").element_handle(), before], timeout=120_000)
        objective = page.locator(f"{ROOT} [data-testid=panel][data-method=gradient] "
                                 "[data-testid=objective]")
        assert objective.inner_text().strip() == "cross rather than circle"
        page.get_by_text("rather than circle").first.wait_for(timeout=60_000)
        assert canvas(page, "gradient").evaluate(JS_PIXELS)["hash"] != plain["hash"]

        # zoom on one panel: every panel follows (the view is shared in JS)
        box = canvas(page, "grad_cam").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -400)
        page.wait_for_function(
            "(el) => Number(el.dataset.zoom) > 1.5", arg=canvas(page, "grad_cam").element_handle())
        zooms = {m: canvas(page, m).get_attribute("data-zoom")
                 for m in ("gradient", "grad_cam", "integrated_gradients")}
        assert len(set(zooms.values())) == 1, zooms
        page.locator(ROOT).screenshot(path=str(out_dir / "marimo_widget.png"))
        assert not errors, errors
        context.close()


EXPLORER = r'''
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    import saliency_widgets as sw
    model = sw.demo.load_model("shapes_clever_hans")
    data = sw.demo.sample(48, seed=5, watermark="all")
    audit = sw.audit(model, data, methods=("grad_cam",), progress=False)
    e = sw.explore(audit, data, model=model, labels=sw.demo.CLASSES, page_size=12)
    view = mo.ui.anywidget(e)
    view
    return e, view


@app.cell
def _(e, view):
    f"explorer sees: selected {view.value.get('selected')}, total {e.total}"
    return


if __name__ == "__main__":
    app.run()
'''


def test_the_explorer_works_in_marimo(browser, tmp_path, out_dir):
    app = tmp_path / "explorer_app.py"
    app.write_text(EXPLORER)
    with marimo_app(app) as url:
        context = browser.new_context(viewport={"width": 1300, "height": 1500})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack or ''}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and "Failed to load resource" not in m.text else None)
        page.goto(url)
        ex = page.locator(".saliency-explorer")
        items = ex.locator("[data-testid=gallery-item]")
        items.first.wait_for(timeout=120_000)
        assert items.count() == 12
        ex.locator("[data-testid=page-next]").click()
        page.wait_for_function("(el) => el.dataset.page === '1'",
                               arg=ex.locator("[data-testid=gallery]").element_handle())
        ex.locator("[data-testid=confusion-cell][data-true='1'][data-pred='0']").click()
        page.get_by_text("page 1 of 1").first.wait_for(timeout=60_000)
        idx = items.first.get_attribute("data-index")
        items.first.click()
        page.get_by_text(f"selected {idx}").first.wait_for(timeout=60_000)  # Python saw it
        detail = ex.locator(".saliency-widget")
        detail.locator("[data-testid=panel] canvas[data-drawn]").first.wait_for(timeout=120_000)
        assert "rather than" in detail.locator("[data-testid=objective]").first.inner_text()
        ex.screenshot(path=str(out_dir / "marimo_explorer.png"))
        assert not errors, errors
        context.close()
