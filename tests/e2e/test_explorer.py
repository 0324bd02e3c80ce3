"""The explorer (``sw.explore``) in a real JupyterLab, in headless chromium: it pages, sorts,
filters by a confusion cell and opens a detail view on the clever Hans demo audit; on a synthetic
50 000-row store, page changes and sorts are timed (written to out/e2e/explorer_timings.json;
benchmarks report speed, tests do not assert it)."""

from __future__ import annotations

import json
import statistics

import pytest

from lab_harness import notebook, notebook_page

pytestmark = pytest.mark.e2e

EX = ".saliency-explorer"

SETUP = r'''
import json, tempfile
import saliency_widgets as sw
model = sw.demo.load_model("shapes_clever_hans")
data = sw.demo.sample(96, seed=5, watermark="all")   # every image stamped: many "circle" errors
audit = sw.audit(model, data, methods=("grad_cam",), progress=False)
e = sw.explore(audit, data, model=model, labels=sw.demo.CLASSES, page_size=12)
def state():
    print(json.dumps({"page": e.page, "total": e.total, "sort_by": e.sort_by,
                      "descending": e.descending, "filter": e.filter, "selected": e.selected,
                      "first": e.page_rows[0]["idx"] if e.page_rows else None,
                      "status": e.status,
                      "detail": None if e.selected is None else
                      [e.detail.target, e.detail.contrast, e.detail.status]}))
'''

BIG = r'''
from saliency_widgets.audit import synthetic_audit
big = synthetic_audit(tempfile.mkdtemp() + "/store", 50_000)   # made-up rows, real store
eb = sw.explore(big, page_size=24)
print(len(big), eb.total)
'''

# Time from an action to the gallery showing the new page: the grid's children are replaced
# when the page's rows, images and maps have arrived and been drawn (a MutationObserver sees it).
_JS_TO_GALLERY = """async ([root, act, arg]) => {
  const grid = root.querySelector('[data-testid=gallery]');
  const before = grid.firstElementChild;
  return await new Promise((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => reject(new Error('gallery unchanged after 30 s')), 30000);
    const obs = new MutationObserver(() => {
      if (grid.firstElementChild !== before) { obs.disconnect(); clearTimeout(timer); resolve(performance.now() - t0); }
    });
    obs.observe(grid, {childList: true});
    ACTION
  });
}"""
# click the element `arg` selects
JS_CLICK_TO_GALLERY = _JS_TO_GALLERY.replace("[root, act, arg]", "[root, arg]").replace(
    "ACTION", "root.querySelector(arg).click();")
# sort by the column `arg`
JS_SORT_TO_GALLERY = _JS_TO_GALLERY.replace("[root, act, arg]", "[root, arg]").replace(
    "ACTION", """const select = root.querySelector('[data-testid=sort-by]');
    select.value = arg;
    select.dispatchEvent(new Event('change', {bubbles: true}));""")


@pytest.fixture(scope="module")
def lab(server, browser):
    base, root, _ = server
    (root / "explorer.ipynb").write_text(json.dumps(notebook([SETUP, "state()", "# the big store"])))
    with notebook_page(browser, f"{base}/lab/tree/explorer.ipynb", height=1400) as nb:
        nb.run(0, timeout_ms=300_000)
        nb.page.locator(f"{EX} [data-testid=gallery-item]").first.wait_for(timeout=120_000)
        yield nb


def state(lab) -> dict:
    return json.loads(lab.run(1, "state()").strip().splitlines()[-1])


def poll(lab, ok, timeout: float = 60.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        s = state(lab)
        if ok(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {s}")
        time.sleep(0.3)


def test_pages_sorts_filters_and_opens_a_detail_view(lab, out_dir):
    page = lab.page
    ex = page.locator(EX).first
    items = ex.locator("[data-testid=gallery-item]")
    assert items.count() == 12
    first = items.first.get_attribute("data-index")
    ex.locator("[data-testid=page-next]").click()
    s = poll(lab, lambda s: s["page"] == 1)
    page.wait_for_function("([el, old]) => el.firstElementChild && el.firstElementChild.dataset.index !== old",
                           arg=[ex.locator("[data-testid=gallery]").element_handle(), first])
    assert int(items.first.get_attribute("data-index")) == s["first"] == 12

    # sort by loss, highest first: the first thumbnail is Python's highest-loss example
    ex.locator("[data-testid=sort-by]").select_option("loss")
    ex.locator("[data-testid=descending]").click()
    s = poll(lab, lambda s: s["sort_by"] == "loss" and s["descending"] and s["page"] == 0)
    expected = json.loads(lab.run(1, "print(json.dumps(int(audit.query('loss', True)[0][0])))")
                          .strip().splitlines()[-1])
    page.wait_for_function("([el, want]) => el.firstElementChild && el.firstElementChild.dataset.index === String(want)",
                           arg=[ex.locator("[data-testid=gallery]").element_handle(), expected])

    # a confusion cell filters the grid to it (true square → predicted circle)
    cell = ex.locator("[data-testid=confusion-cell][data-true='1'][data-pred='0']")
    count = int(cell.inner_text())
    assert count > 0
    cell.click()
    s = poll(lab, lambda s: s["filter"].get("cell") == [1, 0])
    assert s["total"] == count
    page.wait_for_function(f"(el) => el.querySelectorAll('[data-testid=gallery-item]').length === {min(count, 12)}",
                           arg=ex.locator("[data-testid=gallery]").element_handle())

    # the mean maps are there (by true class)
    ex.locator("[data-testid=mean-maps] figure").first.wait_for(timeout=60_000)

    # a thumbnail opens the single-image widget: target = prediction, contrast = true class
    item = items.first
    idx = int(item.get_attribute("data-index"))
    item.click()
    s = poll(lab, lambda s: s["selected"] == idx and s["detail"] and s["detail"][2] == "idle", timeout=120)
    assert s["detail"][:2] == [0, 1]  # predicted circle, rather than the true square
    detail = ex.locator(".saliency-widget")
    detail.locator("[data-testid=panel] canvas[data-drawn]").first.wait_for(timeout=120_000)
    assert "circle rather than square" in detail.locator("[data-testid=objective]").first.inner_text()
    ex.screenshot(path=str(out_dir / "explorer.png"))
    assert not lab.errors, lab.errors


def test_a_50000_row_store_pages_and_sorts_quickly(lab, out_dir):
    page = lab.page
    lab.run(2, BIG, timeout_ms=300_000)
    big = page.locator(EX).nth(1)
    big.locator("[data-testid=gallery-item]").first.wait_for(timeout=120_000)
    root = big.element_handle()
    pages = [page.evaluate(JS_CLICK_TO_GALLERY, [root, "[data-testid=page-next]"]) for _ in range(8)]
    sorts = [page.evaluate(JS_SORT_TO_GALLERY, [root, column])
             for column in ("loss", "confidence", "idx", "loss", "confidence", "idx")]
    result = {"rows": 50_000, "page_change_ms": [round(v, 1) for v in pages],
              "sort_ms": [round(v, 1) for v in sorts],
              "page_change_median_ms": round(statistics.median(pages), 1),
              "sort_median_ms": round(statistics.median(sorts), 1),
              "kernel": "1 thread", "note": "measured on a shared 2-core machine"}
    (out_dir / "explorer_timings.json").write_text(json.dumps(result, indent=2))
    print("\nexplorer timings:", json.dumps(result))
    assert len(pages) == 8 and len(sorts) == 6
    assert not lab.errors, lab.errors


def test_the_explorer_in_notebook7(server, browser, out_dir):
    base, root, _ = server
    setup = SETUP.replace("sample(96", "sample(48")
    (root / "explorer_nb7.ipynb").write_text(json.dumps(notebook([setup, "state()"])))
    ours = lambda e: "blob:" in (e.stack or "") or "saliency" in str(e)  # noqa: E731
    with notebook_page(browser, f"{base}/notebooks/explorer_nb7.ipynb", keep=ours) as nb:
        nb.run(0, timeout_ms=300_000)
        ex = nb.page.locator(EX).first
        ex.locator("[data-testid=gallery-item]").first.wait_for(timeout=120_000)
        ex.locator("[data-testid=filter-correct]").select_option("wrong")
        s = json.loads(nb.run(1).strip().splitlines()[-1])
        deadline = 60
        while s["filter"] != {"correct": "wrong"} and deadline:
            nb.page.wait_for_timeout(500)
            deadline -= 1
            s = json.loads(nb.run(1).strip().splitlines()[-1])
        assert s["filter"] == {"correct": "wrong"}
        nb.page.wait_for_function(
            f"(el) => el.querySelectorAll('[data-testid=gallery-item]').length === {min(s['total'], 12)}",
            arg=ex.locator("[data-testid=gallery]").element_handle())
        ex.locator("[data-testid=gallery-item]").first.click()
        ex.locator(".saliency-widget [data-testid=panel] canvas[data-drawn]").first.wait_for(timeout=120_000)
        ex.screenshot(path=str(out_dir / "explorer_nb7.png"))
        assert not nb.errors, nb.errors
