"""The widget's Python side, driven without a browser: traits, payloads, images, labels,
caching and its memory bound, cancel, errors, and the alignment of maps with the picture."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image
from torch import nn

import saliency_widgets as sw
from saliency_widgets.render.heatmap import display_map
from saliency_widgets.widget import compute as compute_module
from saliency_widgets.widget.cache import ByteLRU
from saliency_widgets.render import threshold_mask
from saliency_widgets.widget.image import find_normalization, prepare
from saliency_widgets.widget.jobs import Job, Worker
from saliency_widgets.widget.labels import resolve_labels
from saliency_widgets.widget.payload import from_payload, payload_nbytes, to_payload

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def tiny_cnn(k: int = 10, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


class Slow(nn.Module):
    """Counts forward calls and sleeps in each, so a computation can be caught mid-way."""

    def __init__(self, inner: nn.Module, delay: float) -> None:
        super().__init__()
        self.inner, self.delay, self.calls = inner, delay, 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.delay)
        return self.inner(x)


def rgb(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def opened():
    widgets = []

    def make(model=None, image=None, **kw):
        kw.setdefault("metrics", ())  # the maps alone (badges: tests/test_widget_trust.py)
        w = sw.show(tiny_cnn() if model is None else model, rgb() if image is None else image,
                    **kw)
        widgets.append(w)
        return w

    yield make
    for w in widgets:
        w.close()


# -- payloads ----------------------------------------------------------------------------------
def test_payloads_are_binary_row_major_with_dtype_and_shape():
    a = np.arange(12, dtype=np.float64).reshape(3, 4).T  # not contiguous, float64
    p = to_payload(a)
    assert isinstance(p["view"], memoryview) and p["dtype"] == "float32" and p["shape"] == [4, 3]
    assert p["view"].nbytes == 4 * 12 and payload_nbytes({"x": [p]}) == 48
    np.testing.assert_array_equal(from_payload(p), a.astype(np.float32))
    assert to_payload(np.zeros((2, 2), bool))["dtype"] == "uint8"
    with pytest.raises(TypeError, match="complex128"):
        to_payload(np.zeros(2, complex))


def test_state_sends_arrays_as_buffers_not_json_numbers(opened):
    w = opened()
    assert w.wait(30)
    state = w.get_state()
    clean, paths, buffers = _remove_buffers(state)
    buffer_paths = {tuple(p) for p in paths}
    assert ("image", "view") in buffer_paths and ("colormaps", "lut", "view") in buffer_paths
    assert sum(b.nbytes for b in buffers) >= 32 * 32 * 3
    data = {k: v for k, v in clean.items() if k not in ("_esm", "_css")}  # the code itself
    assert len(json.dumps(data)) < 60_000  # labels, registry, titles: no arrays in JSON
    assert all(ref.startswith("IPY_MODEL_") for ref in clean["panels"])  # child models
    for panel in w.panels:  # each panel's maps travel as its own binary buffers
        clean, paths, buffers = _remove_buffers(panel.get_state())
        assert ["signed", "view"] in paths and len(json.dumps(clean)) < 2_000
        assert sum(b.nbytes for b in buffers) >= 32 * 32 * 4


def test_image_and_panel_payload_shapes_and_dtypes(opened):
    w = opened(methods=("gradient", "grad_cam"))
    assert w.wait(30)
    img = from_payload(w.image)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    grad, cam = w.panels
    assert (grad.method, cam.method) == ("gradient", "grad_cam")
    for p in (grad, cam):
        assert p.state == "ready" and p.seconds > 0
        m = from_payload(p.signed)
        assert m.dtype == np.float32 and m.shape == (32, 32)
    assert from_payload(grad.absolute).shape == (32, 32)  # input-space: Σ_c |·| sent too
    assert cam.absolute is None  # one channel: JS takes |signed|
    luts = from_payload(w.colormaps["lut"])
    assert luts.dtype == np.uint8 and luts.shape == (len(w.colormaps["names"]), 256, 4)


def test_js_sign_modes_rebuild_the_engines_channel_reduction(opened):
    """JS derives 'positive' and (for one channel) 'absolute' from the payloads: check that this
    equals the engine's shared reduction, so the map shown is the map that is scored."""
    w = opened(methods=("gradient", "grad_cam"))
    assert w.wait(30)
    for attr, panel in zip(w.attributions, w.panels):
        signed = from_payload(panel.signed)
        absolute = from_payload(panel.absolute) if panel.absolute else np.abs(signed)
        np.testing.assert_array_equal(signed, display_map(attr.values, "signed")[0])
        np.testing.assert_array_equal(absolute, display_map(attr.values, "absolute")[0])
        np.testing.assert_array_equal(np.clip(signed, 0, None),
                                      display_map(attr.values, "positive")[0])


# -- images, preprocessing, alignment -------------------------------------------------------------
def test_inputs_without_preprocess_are_taken_like_totensor():
    model = tiny_cnn()
    a = rgb(20, 24)
    ref = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
    for image in (a, Image.fromarray(a), ref[0], ref):
        p = prepare(model, image)
        torch.testing.assert_close(p.x, ref)
        np.testing.assert_array_equal(p.display, a)
        assert p.normalization is None


def test_weights_transforms_are_detected_and_the_display_is_what_the_model_saw():
    from torchvision.models import ResNet18_Weights

    preprocess = ResNet18_Weights.DEFAULT.transforms()  # resize 256, crop 224: no download
    assert find_normalization(preprocess) == IMAGENET
    big = rgb(300, 400, seed=3)
    p = prepare(tiny_cnn(), Image.fromarray(big), preprocess)
    assert p.x.shape == (1, 3, 224, 224) and p.display.shape == (224, 224, 3)
    seen = (p.x[0] * torch.tensor(IMAGENET[1])[:, None, None]
            + torch.tensor(IMAGENET[0])[:, None, None]).clamp(0, 1)
    expected = (seen * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(p.display, expected)


def test_compose_normalize_and_explicit_mean_std():
    from torchvision import transforms as T

    pre = T.Compose([T.CenterCrop(16), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.25,) * 3)])
    assert find_normalization(pre) == ((0.5,) * 3, (0.25,) * 3)
    assert find_normalization(nn.Sequential(T.Normalize((0.1,), (0.2,)))) == ((0.1,), (0.2,))
    assert find_normalization(T.Compose([T.ToTensor()])) is None
    a = rgb(24, 24)
    p = prepare(tiny_cnn(), a, pre)
    np.testing.assert_array_equal(p.display, a[4:20, 4:20])  # the crop the model saw, un-normalized
    q = prepare(tiny_cnn(), a, pre, mean=(0.0,) * 3, std=(1.0,) * 3)  # given mean/std win
    assert q.normalization == ((0.0,) * 3, (1.0,) * 3)
    with pytest.raises(sw.SaliencyError, match="both mean= and std="):
        prepare(tiny_cnn(), a, mean=(0.5,) * 3)


def test_bad_images_are_refused_with_the_fix():
    model = tiny_cnn()
    with pytest.raises(sw.SaliencyError, match=r"\(H, W, 3\) uint8"):
        prepare(model, np.zeros((8, 8), np.uint8))
    with pytest.raises(sw.SaliencyError, match="explains one image"):
        prepare(model, torch.zeros(2, 3, 8, 8))
    with pytest.raises(sw.SaliencyError, match="must return a tensor"):
        prepare(model, rgb(), preprocess=lambda im: np.asarray(im))
    with pytest.warns(sw.SaliencyWarning, match="mean= and std="):
        prepare(model, torch.full((3, 8, 8), 5.0))


def test_map_is_aligned_with_the_displayed_picture(opened):
    """A linear model whose class-0 weights live on one box of the *cropped* input: the gradient
    map must be non-zero exactly on that box of the picture the widget shows, and that box of
    the picture must hold the pixels of the original image the crop put there."""
    from torchvision import transforms as T

    h = w_ = 16
    weight = torch.zeros(2, 3, h, w_)
    weight[0, :, 3:7, 9:14] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * h * w_, 2, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(weight.reshape(2, -1))
    big = rgb(24, 24, seed=5)
    pre = T.Compose([T.CenterCrop(16), T.ToTensor(), T.Normalize(*IMAGENET)])
    w = opened(model, big, preprocess=pre, methods=("gradient",), target=0)
    assert w.wait(30)
    m = from_payload(w.panels[0].signed)
    picture = from_payload(w.image)
    assert m.shape == picture.shape[:2] == (16, 16)
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 6, 9, 13)
    np.testing.assert_array_equal(picture[3:7, 9:14], big[4 + 3:4 + 7, 4 + 9:4 + 14])
    assert w.normalization == IMAGENET


# -- labels ----------------------------------------------------------------------------------------
def test_labels_from_list_enum_dict_or_indices():
    from torchvision.models import ResNet18_Weights

    assert resolve_labels(None, 3) == ["0", "1", "2"]
    assert resolve_labels(["a", "b"], 2) == ["a", "b"]
    assert resolve_labels({1: "one"}, 3) == ["0", "one", "2"]
    cats = resolve_labels(ResNet18_Weights.DEFAULT, 1000)
    assert len(cats) == 1000 and cats[0] == "tench"
    assert resolve_labels(ResNet18_Weights, 1000) == cats
    with pytest.raises(sw.SaliencyError, match="has 2 names but the model has 3 classes"):
        resolve_labels(["a", "b"], 3)
    with pytest.raises(sw.SaliencyError, match="weights enum"):
        resolve_labels("cat", 3)
    with pytest.raises(sw.SaliencyError, match="0–2"):
        resolve_labels({7: "x"}, 3)


def test_widget_labels_titles_and_predictions(opened):
    names = [f"class <b>{i}</b>" for i in range(10)]
    w = opened(labels=names, methods=("gradient",))
    probs = torch.softmax(w._prediction.logits[0], 0)
    assert w.labels == names
    assert [p["index"] for p in w.predictions] == torch.topk(probs, 5).indices.tolist()
    assert w.predictions[0]["label"] == names[w.target]
    top5 = float(torch.topk(probs, 5).values.sum())
    assert abs(sum(p["prob"] for p in w.predictions) - top5) < 1e-9
    assert w.panels[0].title == f"Gradient · {names[w.target]}"
    assert w.panels[0].objective == names[w.target]
    w.contrast = (w.target + 1) % 10
    assert w.panels[0].objective == f"{names[w.target]} rather than {names[w.contrast]}"


# -- traits: selection, contrast -------------------------------------------------------------------
def test_default_traits_and_methods_registry(opened):
    w = opened()
    assert w.methods_selected == ["gradient", "grad_cam"]
    assert w.target == int(w._prediction.logits[0].argmax())
    assert (w.contrast, w.contrast_mode, w.colormap, w.opacity) == (None, "none", "RdBu_r", 0.6)
    assert w.status in ("idle", "computing") and w.error == ""
    names = [m["name"] for m in w.methods]
    assert names == [m["name"] for m in sw.list_methods()]
    cam = next(m for m in w.methods if m["name"] == "grad_cam")
    assert cam["params"]["layer"] is None and "0" in cam["choices"]["layer"]
    ig = next(m for m in w.methods if m["name"] == "integrated_gradients")
    assert ig["params"]["steps"] == 32 and "midpoint" in ig["choices"]["rule"]


def test_contrast_modes_runner_up_follows_the_target(opened):
    w = opened(methods=("gradient",))
    order = torch.argsort(w._prediction.logits[0], descending=True).tolist()
    w.contrast_mode = "runner_up"
    assert w.contrast == order[1]
    w.target = order[1]  # the runner-up is re-resolved: the best class other than the target
    assert w.contrast == order[0]
    assert w.wait(30)
    assert "rather than" in w.panels[0].title
    assert w.attributions[0].contrast == (order[0],)
    w.contrast = 3  # choosing a class switches the mode
    assert w.contrast_mode == "class"
    w.contrast_mode = "none"
    assert w.contrast is None
    assert w.wait(30)
    assert w.attributions[0].contrast is None and "rather than" not in w.panels[0].title


def test_contrastive_map_differs_and_matches_the_engine(opened):
    model = tiny_cnn()
    w = opened(model, methods=("gradient",))
    assert w.wait(30)
    plain = from_payload(w.panels[0].signed).copy()
    w.contrast = (w.target + 1) % 10
    assert w.wait(30)
    contrastive = from_payload(w.panels[0].signed)
    assert not np.allclose(plain, contrastive)
    ref = sw.attribute(model, w.model_input, w.target, method="gradient", contrast=w.contrast)
    np.testing.assert_allclose(contrastive, display_map(ref.values, "signed")[0], rtol=1e-5,
                               atol=1e-7)


def test_invalid_values_are_refused_with_words(opened):
    w = opened()
    from traitlets import TraitError

    with pytest.raises(TraitError, match="out of range for a model with 10 classes"):
        w.target = 10
    with pytest.raises(TraitError, match="did you mean 'grad_cam'"):
        w.methods_selected = ["gradcam"]
    with pytest.raises(TraitError, match="did you mean 'viridis'"):
        w.colormap = "viridiss"
    with pytest.raises(sw.SaliencyError, match="unknown argument 'colour'"):
        sw.show(tiny_cnn(), rgb(), colour="red")


def test_colormap_from_python_adds_its_lookup_table(opened):
    import matplotlib

    w = opened()
    w.colormap = "twilight"  # not in the menu: its LUT is sent
    names = w.colormaps["names"]
    assert names[-1] == "twilight"
    lut = from_payload(w.colormaps["lut"])[names.index("twilight")]
    np.testing.assert_array_equal(lut, matplotlib.colormaps["twilight"](np.linspace(0, 1, 256),
                                                                        bytes=True))


# -- caching ---------------------------------------------------------------------------------------
def test_toggling_back_is_served_from_the_cache(opened, monkeypatch):
    calls = []
    real = compute_module.attribute
    monkeypatch.setattr(compute_module, "attribute",
                        lambda *a, **k: calls.append(k["method"]) or real(*a, **k))
    w = opened(methods=("gradient",))
    assert w.wait(30) and calls == ["gradient"]
    w.methods_selected = ["gradient", "grad_cam"]
    assert w.wait(30) and calls == ["gradient", "grad_cam"]
    w.methods_selected = ["gradient"]
    w.methods_selected = ["gradient", "grad_cam"]  # back: ready at once, no computation
    assert [p.state for p in w.panels] == ["ready", "ready"] and w.status == "idle"
    w.params = {"grad_cam": {"relu": True}}  # the default, spelled out: same cache key
    assert w.panels[1].state == "ready"
    w.params = {"grad_cam": {"relu": False}}
    assert w.wait(30) and calls == ["gradient", "grad_cam", "grad_cam"]


def test_cache_memory_is_bounded_over_100_selections(opened):
    entry = 3 * 32 * 32 * 4 + 2 * 32 * 32 * 4  # values (1, 3, H, W) + signed + absolute maps
    bound = 10 * entry
    w = opened(tiny_cnn(k=100), methods=("gradient",), cache_bytes=bound)
    for target in range(100):
        w.target = target
        assert w.wait(30)
        assert w.panels[0].state == "ready" and w.panels[0].target == target
        assert w._board.cache.nbytes <= bound
    assert len(w._board.cache) == 10
    w.target = 0  # evicted long ago: computed again, not served stale
    assert w.panels[0].state == "computing"
    assert w.wait(30) and w.panels[0].target == 0


def test_byte_lru_evicts_least_recently_used():
    c: ByteLRU[bytes] = ByteLRU(10, len)
    c.put("a", b"1234")
    c.put("b", b"1234")
    assert c.get("a") == b"1234"  # a is now the most recent
    c.put("c", b"1234")  # 12 > 10: evicts b
    assert "b" not in c and "a" in c and "c" in c and c.nbytes == 8
    assert not c.put("big", b"x" * 11) and "big" not in c


# -- background work, cancel -----------------------------------------------------------------------
def test_show_returns_at_once_and_computes_in_the_background(opened):
    slow = Slow(tiny_cnn(), delay=0.05)
    t0 = time.perf_counter()
    w = opened(slow, methods=("occlusion",), target=0)
    opened_in = time.perf_counter() - t0
    assert w.status == "computing" and w.panels[0].state == "computing"
    assert opened_in < 1.0  # one prediction pass, not the occlusion sweep
    assert w._worker.running_key is not None or w._worker.busy
    w.cancel()


def test_cancel_stops_the_engine_and_says_so(opened):
    slow = Slow(tiny_cnn(), delay=0.02)
    w = opened(slow, methods=("occlusion",), target=0)
    w.params = {"occlusion": {"window": 4, "stride": 1}}  # ~1000 windows: seconds of work
    wait_for(lambda: w.progress > 0)
    w.cancel()
    assert w.wait(10)
    calls = slow.calls
    assert w.panels[0].state == "cancelled" and w.status == "idle"
    time.sleep(0.2)
    assert slow.calls == calls  # stopped, not running on in the background
    w.retry()
    assert w.panels[0].state == "computing"
    w.cancel()


def test_a_new_selection_cancels_the_stale_job(opened):
    slow = Slow(tiny_cnn(), delay=0.02)
    w = opened(slow, methods=("occlusion",), target=0)
    w.params = {"occlusion": {"window": 4, "stride": 1}}
    wait_for(lambda: w.progress > 0)
    w.methods_selected = ["gradient"]  # occlusion is no longer wanted
    assert w.wait(10)
    assert [p.state for p in w.panels] == ["ready"]
    w.methods_selected = ["occlusion"]  # asked for again: computed, not "cancelled"
    assert w.panels[0].state == "computing"
    w.cancel()


def test_worker_keeps_a_job_that_is_still_wanted():
    started, release = threading.Event(), threading.Event()
    done: list = []

    def slow_job(key):
        def run(progress, cancel):
            started.set()
            release.wait(5)
            return key
        return Job(key, run, on_done=lambda k, r: done.append(r), on_error=print,
                   on_cancelled=lambda k: done.append(("cancelled", k)))

    worker = Worker()
    worker.schedule([slow_job("a")])
    assert started.wait(5)
    worker.schedule([slow_job("a"), slow_job("b")])  # "a" goes on; "b" queued behind it
    assert not worker._running.cancel.is_set()
    release.set()
    assert worker.wait(5)
    assert done == ["a", "b"]
    worker.close()


# -- errors ----------------------------------------------------------------------------------------
def test_errors_appear_in_the_panel_in_words_and_as_a_warning(opened):
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    with pytest.warns(sw.SaliencyWarning, match="Grad-CAM failed: could not choose a layer"):
        w = opened(mlp, methods=("gradient", "grad_cam"))
        assert w.wait(30)
    grad, cam = w.panels
    assert grad.state == "ready" and cam.state == "error"
    assert "pass layer= a module or its name" in cam.error and w.status == "error"
    assert w.error.startswith("Grad-CAM: could not choose a layer")
    w.params = {"integrated_gradients": {"steps": "many"}}
    w.methods_selected = ["integrated_gradients"]
    assert w.panels[0].state == "error" and "steps='many' is not a valid int" in w.error
    w.params = {"integrated_gradients": {"steps": 4}}
    assert w.wait(30) and w.status == "idle" and w.error == ""


# -- Python access ---------------------------------------------------------------------------------
def test_attributions_figure_and_png(opened, tmp_path):
    w = opened(methods=("gradient", "grad_cam"), colormap="viridis", threshold=50)
    assert w.wait(30)
    attrs = w.attributions
    assert [a.method for a in attrs] == ["gradient", "grad_cam"]
    assert all(isinstance(a, sw.Attribution) and a.target == (w.target,) for a in attrs)
    fig = w.to_figure()
    assert len([ax for ax in fig.axes if ax.images]) == 2
    path = w.save_png(tmp_path / "panels.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_threshold_mask_keeps_the_top_percent():
    score = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8], float)
    assert threshold_mask(score, 30).tolist() == [False] * 7 + [True] * 3
    assert threshold_mask(score, 100).all() and not threshold_mask(score, 1).any()
    assert threshold_mask(score, 95).sum() == 8  # zeros are never "top" pixels


# -- CUDA ------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_model_is_explained_on_the_gpu(opened, monkeypatch):
    devices = []
    real = compute_module.attribute
    monkeypatch.setattr(compute_module, "attribute",
                        lambda m, x, **k: devices.append(x.device.type) or real(m, x, **k))
    model = tiny_cnn().cuda()
    w = opened(model, rgb(), methods=("gradient", "grad_cam"))
    assert w.model_input.device.type == "cuda"
    assert w.wait(120) and w.status == "idle", w.error
    assert devices == ["cuda", "cuda"]
    assert all(a.values.device.type == "cpu" for a in w.attributions)  # cached off the GPU
    ref = sw.attribute(tiny_cnn(), w.model_input.cpu(), w.target, method="gradient")
    np.testing.assert_allclose(from_payload(w.panels[0].signed),
                               display_map(ref.values, "signed")[0], rtol=1e-3, atol=1e-6)
    assert next(model.parameters()).device.type == "cuda" and not model.training


# -- parameters only Python can give ---------------------------------------------------------------
def test_reference_sets_and_layer_lists_come_from_python(opened):
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(8, seed=7)
    refs = data.x[4:7]
    w = opened(model, data.images[3], methods=("deeplift_shap", "layer_cam"), references=refs,
               params={"layer_cam": {"layer": ["features.3", "features.7"]}})
    assert w.wait(60) and w.status == "idle", w.error
    shap, lcam = w.attributions
    ref = sw.attribute(model, w.model_input, w.target, method="deeplift_shap", references=refs)
    torch.testing.assert_close(shap.values, ref.values)
    assert lcam.layer == ("features.3", "features.7")
    assert w.params == {}  # tensors and lists of layers stay in Python, never in the synced trait
    note = next(m for m in w.methods if m["name"] == "deeplift_shap")["parameters"]["references"]
    assert note["editable"] is False and note["note"].startswith("set from Python: a 3×3×64×64")
    other = next(m for m in w.methods if m["name"] == "lrp")["parameters"]["bounds"]["note"]
    assert other.startswith("Python only: sw.show(..., params={'lrp': {'bounds'")


def test_editor_values_take_the_declared_types(opened):
    w = opened(methods=("smoothgrad",))
    w.params = {"smoothgrad": {"base": "grad_cam", "samples": "3", "layer": "2"}}
    assert w.wait(60) and w.status == "idle", w.error
    attr = w.attributions[0]
    assert attr.layer == "2" and attr.params["samples"] == 3
    smooth = next(m for m in w.methods if m["name"] == "smoothgrad")
    assert smooth["parameters"]["layer"]["choices"] == sw.list_layers(w._model)
    w.params = {"occlusion": {"incremental": "true", "window": "8"}}  # a select sends text
    w.methods_selected = ["occlusion"]
    assert w.wait(60) and w.status == "idle", w.error
    assert w.attributions[0].params["window"] == (8, 8)
