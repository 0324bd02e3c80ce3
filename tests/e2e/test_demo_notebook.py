"""The quickstart notebook (what the README's first command opens) in a real JupyterLab.

Its three-line cell must show a working widget on the bundled demo model: the maps of the
predicted class draw, a toggled method and a chosen contrast class reach Python and the pixels.
The README's screenshot of the widget is taken here: out/e2e/demo_widget.png (``make
screenshot`` copies it to docs/img/).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab_harness import JS_DIFF, JS_SNAPSHOT, ROOT, notebook_page, panel_canvas, wait_drawn

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"
STATE = ("import json; print(json.dumps({'methods': w.methods_selected, 'target': w.target, "
         "'contrast': w.contrast, 'status': w.status, 'label': int(data.labels[3])}))")


def _first_code_cell(path: Path) -> int:
    cells = json.loads(path.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code")


def test_quickstart_shows_the_widget_on_the_demo_model(server, browser, out_dir):
    import saliency_widgets as sw

    base, root, _ = server
    shutil.copy(QUICKSTART, root / "quickstart.ipynb")
    # tall enough that the whole widget fits below its cell, for the screenshot
    with notebook_page(browser, f"{base}/lab/tree/quickstart.ipynb", width=1280,
                       height=1300) as nb:
        page = nb.page
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the file browser
        nb.run(_first_code_cell(QUICKSTART))  # the three lines, unchanged
        wait_drawn(page, "gradient")
        wait_drawn(page, "grad_cam")
        state = nb.poll_python(STATE, lambda s: s["status"] == "idle", timeout=120)
        # the demo model gets this image right, and the panels say so in the class's name
        assert state["target"] == state["label"], state
        name = sw.demo.CLASSES[state["label"]]
        objective = page.locator(f"{ROOT} [data-testid=panel][data-method=grad_cam] "
                                 "[data-testid=objective]")
        assert objective.inner_text().strip().startswith(name), objective.inner_text()

        page.click(f"{ROOT} [data-testid=method-toggle][data-method=integrated_gradients]")
        wait_drawn(page, "integrated_gradients")
        nb.poll_python(STATE, lambda s: "integrated_gradients" in s["methods"], timeout=60)

        before = page.locator(panel_canvas("grad_cam")).get_attribute("data-drawn")
        page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "demo_plain"])
        contrast = (state["label"] + 1) % len(sw.demo.CLASSES)
        page.select_option(f"{ROOT} [data-testid=contrast-select]", str(contrast))
        nb.poll_python(STATE, lambda s: s["contrast"] == contrast and s["status"] == "idle",
                       timeout=120)
        wait_drawn(page, "grad_cam", not_id=before)
        wait_drawn(page, "integrated_gradients")
        page.evaluate(JS_SNAPSHOT, [panel_canvas("grad_cam"), "demo_contrast"])
        assert page.evaluate(JS_DIFF, ["demo_plain", "demo_contrast"]) > 100
        assert objective.inner_text().strip().endswith(
            f"rather than {sw.demo.CLASSES[contrast]}"), objective.inner_text()

        widget = page.locator(ROOT)
        widget.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)  # let Lab's windowed notebook settle after the scroll
        widget.screenshot(path=str(out_dir / "demo_widget.png"))
        assert not nb.errors, nb.errors
