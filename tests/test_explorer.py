"""The explorer's Python side (sw.explore), without a browser: what one page sends, paging,
sorting and filters against the audit's own queries, the detail view's objective, the mean maps
and clusters against the audit's aggregates, and refusals in words."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers

import saliency_widgets as sw
from saliency_widgets.widget.payload import from_payload


@pytest.fixture(scope="module")
def hans():
    model = sw.demo.load_model("shapes_clever_hans")
    data = sw.demo.sample(64, seed=5, watermark="all")
    audit = sw.audit(model, data, methods=("grad_cam",), progress=False, batch_size=16)
    return model, data, audit


@pytest.fixture
def explorer(hans):
    model, data, audit = hans
    widgets = []

    def make(**kw):
        e = sw.explore(audit, data, model=model, labels=sw.demo.CLASSES, **kw)
        widgets.append(e)
        return e

    yield make
    for e in widgets:
        e.close()


def test_a_page_sends_only_its_rows_as_small_binary_buffers(explorer, hans):
    e = explorer(page_size=12)
    state, paths, buffers = _remove_buffers(e.get_state(["page_rows", "page_images", "page_maps"]))
    assert sorted(map(tuple, paths)) == [("page_images", "view"), ("page_maps", "view")]
    assert sum(b.nbytes for b in buffers) == 12 * 64 * 64 * (3 + 4)  # thumbnails + float32 maps
    assert len(state["page_rows"]) == 12
    _, _, audit = hans
    idx, _ = audit.query("idx", page_size=12)
    np.testing.assert_array_equal(from_payload(e.page_images), audit.thumbnails(idx))
    np.testing.assert_array_equal(from_payload(e.page_maps),
                                  audit.maps("grad_cam", idx, scaled=False).astype(np.float32))


def test_paging_sorting_and_filters_follow_the_audit(explorer, hans):
    _, _, audit = hans
    e = explorer(page_size=10)
    e.page = 2
    assert [r["idx"] for r in e.page_rows] == list(range(20, 30))
    e.sort_by, e.descending = "loss", True  # a new order starts at page 0
    assert e.page == 0
    idx, _ = audit.query("loss", True, None, 0, 10)
    assert [r["idx"] for r in e.page_rows] == idx.tolist()
    e.filter = {"correct": "wrong"}
    assert e.total == audit.count({"correct": False})
    assert all(not r["correct"] for r in e.page_rows)
    e.filter = {"cell": [1, 0]}  # true square, predicted circle
    assert e.total == int(audit.confusion()[1, 0]) > 0
    assert all(r["label"] == 1 and r["pred"] == 0 for r in e.page_rows)
    e.page = 99  # past the end: the last page
    assert e.page == (e.total - 1) // 10
    e.filter = {"label": 4, "correct": ""}  # "" means any
    assert e.filter == {"label": 4} and e.total == audit.count({"label": 4})


def test_the_detail_view_explains_the_prediction_rather_than_the_truth(explorer, hans):
    model, data, _ = hans
    e = explorer()
    e.filter = {"correct": "wrong"}
    row = e.page_rows[0]
    e.selected = row["idx"]
    assert e.wait(60)
    d = e.detail
    assert (d.target, d.contrast, d.contrast_mode) == (row["pred"], row["label"], "class")
    assert torch.equal(d.model_input[0], data.x[row["idx"]])
    attr = sw.attribute(model, data.x[row["idx"]:row["idx"] + 1], row["pred"],
                        contrast=row["label"], method="grad_cam")
    np.testing.assert_allclose(d.attributions[0].values, attr.values, rtol=1e-5, atol=1e-7)
    e.filter = {"correct": "correct"}
    right = e.page_rows[0]["idx"]
    e.selected = right
    assert e.wait(60) and e.detail.contrast is None and e.detail.target == e.page_rows[0]["pred"]


def test_mean_maps_disparity_and_clusters_equal_the_audits(hans):
    model, data, audit = hans
    groups = ["stamped" if i % 2 else "clean" for i in range(64)]
    grouped = sw.audit(model, (data.x, data.labels), groups=groups, methods=("grad_cam",),
                       progress=False, batch_size=16)
    e = sw.explore(grouped, labels=sw.demo.CLASSES)
    try:
        e.mean_by = "group"
        assert e.wait(60)
        ref = grouped.mean_map("grad_cam", by="group")
        np.testing.assert_allclose(from_payload(e.mean_maps["maps"]),
                                   np.nan_to_num(ref.mean).astype(np.float32))
        assert e.mean_maps["titles"] == [str(k) for k in ref.keys]
        d = grouped.disparity("grad_cam", ref.keys[0], ref.keys[1])
        assert e.mean_maps["disparity"]["value"] == pytest.approx(d.value)
        e.cluster_label, e.cluster_k = 0, 2
        assert e.wait(60)
        c = grouped.clusters("grad_cam", 0, 2)
        assert e.clusters["sizes"] == [int(s) for s in c.sizes]
        np.testing.assert_allclose(from_payload(e.clusters["maps"]), c.mean.astype(np.float32))
        assert e.status == "idle" and e.detail is None  # no model: the gallery alone
    finally:
        e.close()


def test_refusals_say_what_to_do(hans):
    model, data, audit = hans
    with pytest.raises(sw.SaliencyError, match="needs both model= and data="):
        sw.explore(audit, data)
    with pytest.raises(sw.SaliencyError, match="not in this audit"):
        sw.explore(audit, method="gradient")
    with pytest.raises(sw.SaliencyError, match="takes an audit"):
        sw.explore(data)
    e = sw.explore(audit)
    try:
        from traitlets import TraitError

        with pytest.raises(TraitError, match="sortable columns"):
            e.sort_by = "colour"
        with pytest.raises(TraitError, match="unknown filter key"):
            e.filter = {"colour": 1}
        with pytest.raises(TraitError, match="out of range"):
            e.selected = 64
    finally:
        e.close()
