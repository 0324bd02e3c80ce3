"""The widget's red-teaming and expert alignment (issue 14), without a browser: the painted mask
trait and its PNG files, the live agreement with it (equal to ``sw.evaluate``), and attacks on
the shown maps in the background (exactly the shown map, progress, cancel, errors).

On the bundled demo model (64 × 64 inputs): about 10 s in all, most of it the attacks (10 steps
of a gradient attack take ~0.5 s).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import comm as comm_package
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import saliency_widgets as sw
from saliency_widgets.widget.payload import from_payload

try:
    from .test_widget_reliability import RecordingComm
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from test_widget_reliability import RecordingComm

METRICS = ("pointing_game", "relevance_mass", "relevance_rank", "top_k_iou")


@pytest.fixture(scope="module")
def demo():
    return sw.demo.load_model("shapes"), sw.demo.sample(4, seed=7)


@pytest.fixture
def opened(demo):
    widgets: list[Any] = []

    def make(methods=("gradient", "grad_cam"), index=1, model=None, **kw):
        w = sw.show(demo[0] if model is None else model, demo[1].images[index],
                    labels=sw.demo.CLASSES, methods=methods, **kw)
        widgets.append(w)
        return w

    yield make
    for w in widgets:
        w.close()


def wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def panel(w, method):
    return next(p for p in w.panels if p.method == method)


def rough_mask(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) > 0.7


# -- the mask trait ---------------------------------------------------------------------------
def test_the_mask_travels_as_uint8_both_ways_and_is_a_private_bool_copy(opened):
    w = opened()
    assert w.expert_mask is None and w.agreement == {}
    mask = rough_mask()
    w.expert_mask = mask
    mask[:] = False  # editing the array given afterwards changes nothing shown
    assert w.expert_mask.dtype == np.bool_ and w.expert_mask.sum() == rough_mask().sum()
    assert not w.expert_mask.flags.writeable
    wire = w.get_state()["expert_mask"]
    assert wire["dtype"] == "uint8" and wire["shape"] == [64, 64]
    assert isinstance(wire["view"], memoryview)
    assert np.array_equal(from_payload(wire), rough_mask().astype(np.uint8))
    # what the browser sends (0/1 bytes, or any nonzero byte) comes back as the same bool array
    painted = np.zeros((64, 64), np.uint8)
    painted[10:20, 30:40] = 1
    painted[0, 0] = 255
    w.set_state({"expert_mask": {"view": memoryview(painted.tobytes()), "dtype": "uint8",
                                 "shape": [64, 64]}})
    assert np.array_equal(w.expert_mask, painted != 0)
    w.set_state({"expert_mask": None})
    assert w.expert_mask is None and w.agreement == {}
    w.expert_mask = torch.from_numpy(painted != 0)  # a torch bool tensor is taken too
    assert w.expert_mask.sum() == 101


def test_bad_masks_and_brush_sizes_are_refused_with_words(opened):
    import traitlets

    w = opened()
    with pytest.raises(traitlets.TraitError, match=r"model's input size \(H, W\) = \(64, 64\)"):
        w.expert_mask = np.zeros((32, 64), bool)
    with pytest.raises(traitlets.TraitError, match="bool array, got dtype float64; e.g. mask > 0"):
        w.expert_mask = np.zeros((64, 64))
    with pytest.raises(traitlets.TraitError, match="numpy bool array or None, got list"):
        w.expert_mask = [[True]]
    with pytest.raises(traitlets.TraitError, match="has 10 bytes for shape"):
        w.set_state({"expert_mask": {"view": memoryview(b"\0" * 10), "dtype": "uint8",
                                     "shape": [64, 64]}})
    assert w.limits["brush_size"] == [1, 128] and w.brush_size == 4  # a 16th of the side
    w.brush_size = 128
    with pytest.raises(traitlets.TraitError, match="should not be greater than 128"):
        w.brush_size = 129


def test_a_painted_mask_round_trips_exactly_through_save_and_load(opened, tmp_path):
    w = opened()
    masks = [rough_mask(seed=s) for s in range(3)]
    edges = np.zeros((64, 64), bool)
    edges[0, :] = edges[:, -1] = edges[-1, 0] = True
    masks += [edges, np.zeros((64, 64), bool), np.ones((64, 64), bool)]
    for i, mask in enumerate(masks):
        w.expert_mask = mask
        path = w.save_mask(tmp_path / f"m{i}.png")
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "1" and im.size == (64, 64)
        w.expert_mask = None
        back = w.load_mask(path)
        assert back.dtype == np.bool_ and np.array_equal(back, mask)
        assert np.array_equal(w.expert_mask, mask)
    # masks from other tools: 0/255 grey or palette PNGs, nonzero = painted
    grey = (rough_mask(seed=9) * 255).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    assert np.array_equal(w.load_mask(tmp_path / "grey.png"), grey > 0)
    Image.fromarray(grey // 255, "P").save(tmp_path / "palette.png")
    assert np.array_equal(w.load_mask(tmp_path / "palette.png"), grey > 0)


def test_mask_files_that_cannot_be_a_mask_are_refused_with_the_fix(opened, tmp_path):
    w = opened()
    with pytest.raises(sw.SaliencyError, match="no expert mask to save"):
        w.save_mask(tmp_path / "none.png")
    w.expert_mask = rough_mask()
    with pytest.raises(sw.SaliencyError, match="ending in .png"):
        w.save_mask(tmp_path / "m.npy")
    Image.fromarray(np.zeros((32, 64), np.uint8), "L").save(tmp_path / "small.png")
    with pytest.raises(sw.SaliencyError, match="is 32 × 64, but the model's input is 64 × 64"):
        w.load_mask(tmp_path / "small.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8), "RGB").save(tmp_path / "rgb.png")
    with pytest.raises(sw.SaliencyError, match="RGB pixels; a mask is one channel"):
        w.load_mask(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((64, 64), np.uint8), "L").save(tmp_path / "m.jpg")
    with pytest.raises(sw.SaliencyError, match="is JPEG, not PNG"):
        w.load_mask(tmp_path / "m.jpg")
    with pytest.raises(sw.SaliencyError, match="no mask file"):
        w.load_mask(tmp_path / "missing.png")
    assert np.array_equal(w.expert_mask, rough_mask())  # a refused load changes nothing


# -- agreement -------------------------------------------------------------------------------
def evaluate_all(model, w, method, mask):
    attr = next(a for a in w.attributions if a.method == method)
    return {m: sw.evaluate(model, w.model_input, attr, metric=m,
                           masks=torch.from_numpy(mask.copy())[None]).scores[0].item()
            for m in METRICS}


def test_agreement_equals_evaluate_for_every_panel_and_follows_the_panels(opened, demo):
    model, data = demo
    w = opened(methods=("gradient", "input_x_gradient", "integrated_gradients"))
    assert w.wait(60)
    exact = data.masks[1].numpy()
    for mask in (exact, rough_mask(seed=3)):
        w.expert_mask = mask  # computed at once, in this thread
        assert sorted(w.agreement) == ["gradient", "input_x_gradient", "integrated_gradients"]
        for method in w.agreement:
            assert list(w.agreement[method]) == list(METRICS)
            assert w.agreement[method] == evaluate_all(model, w, method, mask)  # bit for bit
    # a new panel is scored when its map is ready; a new target rescores every panel
    w.methods_selected = ["gradient", "smoothgrad"]
    assert w.wait(60)
    assert sorted(w.agreement) == ["gradient", "smoothgrad"]
    assert w.agreement["smoothgrad"] == evaluate_all(model, w, "smoothgrad", w.expert_mask)
    before = dict(w.agreement["gradient"])
    w.target = (w.target + 1) % 5
    assert w.wait(60)
    assert w.agreement["gradient"] == evaluate_all(model, w, "gradient", w.expert_mask)
    assert w.agreement["gradient"] != before
    # sw.agreement takes the widget's (read-only) mask as it is, and gives the same numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = sw.agreement({a.method: a for a in w.attributions}, w.expert_mask)
    assert {m: {k: r.scores[0].item() for k, r in res.items()} for m, res in batch.items()} \
        == w.agreement
    w.expert_mask = None
    assert w.agreement == {}


def test_agreement_is_none_where_undefined_and_never_warns(opened):
    w = opened(methods=("gradient",), target=2, contrast=2)  # a self-contrast: a zero map
    assert w.wait(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w.expert_mask = rough_mask()
        assert w.agreement == {"gradient": dict.fromkeys(METRICS)}
        w.contrast = None
        assert w.wait(60)
        w.expert_mask = np.zeros((64, 64), bool)  # erased everywhere: an empty mask
        assert w.agreement == {"gradient": dict.fromkeys(METRICS)}
        w.expert_mask = rough_mask()
        assert all(v is not None for v in w.agreement["gradient"].values())


def test_undefined_marks_exactly_where_every_metric_is_nan():
    from saliency_widgets.agreement import undefined

    values = torch.zeros(4, 3, 8, 8, dtype=torch.float64)
    values[0, 0, 2, 3] = 1.0  # a peak: defined
    values[1] = 0.5  # constant after the channel sum
    values[2, 0, 1, 1], values[2, 1, 1, 1] = 1.0, -1.0  # channels that cancel: constant too
    values[3, 2, 5, 5] = 2.0  # defined, but its mask is empty
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[:3, 2:4, 2:5] = True
    assert undefined(values, masks).tolist() == [False, True, True, True]
    with pytest.warns(sw.SaliencyWarning):
        scored = sw.agreement(values, masks)
    for result in scored.values():
        assert torch.isnan(result.scores).tolist() == [False, True, True, True]


def test_a_stroke_from_the_browser_updates_agreement_without_sending_the_mask_back(
        demo, monkeypatch):
    RecordingComm.log = []
    monkeypatch.setattr(comm_package, "create_comm", RecordingComm)
    w = sw.show(demo[0], demo[1].images[1], methods=("gradient",))
    try:
        assert w.wait(60)
        start = len(RecordingComm.log)
        painted = np.zeros((64, 64), np.uint8)
        painted[20:40, 20:40] = 1
        w.set_state({"expert_mask": {"view": memoryview(painted.tobytes()), "dtype": "uint8",
                                     "shape": [64, 64]}})
        sent = [e for e in RecordingComm.log[start:] if e["comm"] == w.comm.comm_id
                and e["data"].get("method") == "update"]
        # the kernel sends the new agreement, never the mask it just received back as an update
        assert [list(e["data"]["state"]) for e in sent] == [["agreement"]], sent
        assert sent[0]["data"]["state"]["agreement"] == w.agreement
        assert set(w.agreement) == {"gradient"}
    finally:
        w.close()


# -- attacks ---------------------------------------------------------------------------------
def test_the_attack_explains_exactly_the_shown_map_and_shows_both_side_by_side(opened):
    w = opened()
    assert w.wait(60)
    w.attack("gradient", epsilon=4 / 255, steps=6)
    assert w.wait(60)
    p = panel(w, "gradient")
    view = p.attack
    assert view["state"] == "ready", view
    r = w.attack_results["gradient"]
    assert list(w.attack_results) == ["gradient"]
    shown = p.entry.attribution
    assert torch.equal(r.original.values, shown.values)  # the very map the panel shows
    assert r.params["method_params"] == dict(shown.params) and r.params["target"] == shown.target
    assert r.params["epsilon"] == 4 / 255 and r.params["steps"] == 6
    assert bool(r.kept[0]) and float(r.linf[0]) <= 4 / 255 + 1e-6
    # the numbers shown are the result's, attack beside noise
    s = view["summary"]
    for k, v in r.summary().items():
        if k != "linf":
            assert s[k] == pytest.approx(v, abs=0, nan_ok=True) or (s[k] is None and v != v), k
    assert s["top_k_intersection"] < s["noise_top_k_intersection"]  # moved more than noise
    # both maps, the attacked picture, and the perturbation amplified by a stated gain
    for which, attr in (("original", r.original), ("attacked", r.attacked)):
        m = from_payload(view[which]["signed"])
        assert np.array_equal(m, sw.reduce_channels(attr.values, "sum")[0].float().numpy())
    picture = from_payload(view["image"])
    pixels = r.x[0].permute(1, 2, 0).numpy()
    assert np.abs(picture / 255 - pixels).max() <= 0.5 / 255 + 1e-6
    delta = (r.x - w.model_input)[0].permute(1, 2, 0).double().numpy()  # the demo: no normalization
    assert view["linf"] == pytest.approx(np.abs(delta).max()) and view["gain"] == pytest.approx(
        0.5 / view["linf"])
    amplified = from_payload(view["perturbation"]).astype(float) / 255
    assert np.abs(amplified - (0.5 + view["gain"] * delta)).max() <= 0.5 / 255 + 1e-6
    assert amplified.min() <= 1 / 255 or amplified.max() >= 254 / 255  # ±L∞ is black or white
    # the other panel has no attack, and a panel's maps did not travel again
    assert panel(w, "grad_cam").attack is None


def test_an_attack_follows_its_map_and_a_new_one_waits_for_its_map(opened):
    w = opened()
    w.attack("gradient", steps=3)  # asked while the map is still computing: runs after it
    assert w.wait(60)
    assert panel(w, "gradient").attack["state"] == "ready"
    target = w.target
    w.target = (target + 1) % 5  # another map: the attack is not about it
    assert w.wait(60)
    assert panel(w, "gradient").attack is None and w.attack_results == {}
    w.target = target  # back: the pinned attack shows again, without recomputing
    assert w.wait(60)
    assert panel(w, "gradient").attack["state"] == "ready"
    assert "gradient" in w.attack_results
    w.attack("gradient", kind="targeted", steps=3)  # a box beside the map's mass
    assert w.wait(60)
    s = panel(w, "gradient").attack["summary"]
    r = w.attack_results["gradient"]
    assert r.params["kind"] == "targeted" and s["target_mass_attacked"] == pytest.approx(
        float(r.target_mass["attacked"][0]), abs=0)
    with pytest.raises(sw.SaliencyError, match="'occlusion' has no panel to attack"):
        w.attack("occlusion")
    with pytest.raises(sw.SaliencyError, match="unknown attack option 'target'"):
        w.attack("gradient", target=3)
    with pytest.raises(sw.SaliencyError, match="epsilon must be in"):
        w.attack("gradient", epsilon=2)


class Slow(nn.Module):
    def __init__(self, inner: nn.Module, delay: float) -> None:
        super().__init__()
        self.inner, self.delay = inner, delay
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return self.inner(x)


def test_an_attack_reports_progress_and_its_cancel_button_stops_it(opened, demo):
    w = opened(methods=("gradient",), model=Slow(demo[0], 0.02))
    assert w.wait(60)
    w.attack_settings = {"kind": "untargeted", "epsilon": 8 / 255, "steps": 400}
    seen = []
    w._on_custom_msg(None, {"type": "attack", "method": "gradient"}, [])  # the panel's button
    wait_for(lambda: (panel(w, "gradient").attack or {}).get("progress", 0) > 0)
    seen.append(panel(w, "gradient").attack["state"])
    w._on_custom_msg(None, {"type": "attack_cancel", "method": "gradient"}, [])
    assert w.wait(30)
    assert seen == ["running"]
    assert panel(w, "gradient").attack["state"] == "cancelled"
    assert w.attack_results == {} and panel(w, "gradient").state == "ready"
    # w.cancel() stops a running attack too, and a new click starts one afresh
    w._on_custom_msg(None, {"type": "attack", "method": "gradient"}, [])
    wait_for(lambda: (panel(w, "gradient").attack or {}).get("state") == "running")
    w.cancel()
    assert w.wait(30)
    assert panel(w, "gradient").attack["state"] == "cancelled"


def test_a_failed_attack_says_why_in_the_view_and_the_cell(opened, demo):
    image = torch.from_numpy(demo[1].images[1]).permute(2, 0, 1).float() / 127.5 - 1  # [-1, 1]
    with pytest.warns(sw.SaliencyWarning, match=r"not \[0, 1\]"):
        w = sw.show(demo[0], image, methods=("gradient",))
    try:
        assert w.wait(60)
        with pytest.warns(sw.SaliencyWarning, match="the attack on Gradient failed: attacks "
                                                    r"move pixels in \[0, 1\]"):
            w.attack("gradient", steps=2)
            assert w.wait(60)
        view = panel(w, "gradient").attack
        assert view["state"] == "error" and "pass normalization=" in view["error"]
    finally:
        w.close()


def test_another_image_clears_the_mask_and_the_attacks(opened, demo):
    w = opened(methods=("gradient",))
    w.expert_mask = demo[1].masks[1].numpy()
    w.attack("gradient", steps=2)
    assert w.wait(60)
    assert w.agreement and panel(w, "gradient").attack["state"] == "ready"
    w.set_image(demo[1].images[2])  # a mask painted on the last picture means nothing here
    assert w.wait(60)
    assert w.expert_mask is None and w.agreement == {}
    assert panel(w, "gradient").attack is None and w.attack_results == {}
    w.attack("gradient", steps=2)  # an attack now attacks the new picture
    assert w.wait(60)
    assert torch.equal(w.attack_results["gradient"].original.values,
                       panel(w, "gradient").entry.attribution.values)


def test_the_status_line_follows_an_attack_and_returns_to_idle(opened):
    w = opened(methods=("gradient",), metrics=())
    assert w.wait(60)
    w.attack("gradient", steps=2)
    assert (w.status, w.message) == ("computing", "computing the attack on Gradient")
    assert w.wait(60)
    assert panel(w, "gradient").attack["state"] == "ready"
    assert (w.status, w.message) == ("idle", "")  # not "computing" for ever


def test_an_attack_preempted_by_a_new_map_runs_after_it(opened, demo):
    w = opened(methods=("gradient",), model=Slow(demo[0], 0.02), metrics=())
    assert w.wait(60)
    w.attack("gradient", steps=8)
    wait_for(lambda: (panel(w, "gradient").attack or {}).get("state") == "running")
    w.methods_selected = ["gradient", "grad_cam"]  # a new map goes first, the attack waits
    assert w.wait(60)
    assert panel(w, "grad_cam").state == "ready"
    assert panel(w, "gradient").attack["state"] == "ready"
    assert "gradient" in w.attack_results and w.status == "idle"


def test_a_cancelled_attack_is_not_restarted_by_the_next_refresh(opened, demo):
    w = opened(methods=("gradient",), model=Slow(demo[0], 0.05), metrics=())
    assert w.wait(60)
    w.attack("gradient", steps=400)
    wait_for(lambda: (panel(w, "gradient").attack or {}).get("state") == "running")
    w.cancel()
    w.path_method = "smoothgrad"  # a refresh before the worker has seen the cancel
    assert w.wait(30)
    assert panel(w, "gradient").attack["state"] == "cancelled" and w.attack_results == {}
