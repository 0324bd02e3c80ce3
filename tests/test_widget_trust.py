"""The widget's trust and teaching views, driven without a browser (issue 13): metric badges
(equal to sw.evaluate, ranked, with trivial baselines, cached, cancellable, after the maps), the
scrubbable curves' payloads, the randomization sanity check, and the attribution path's frames.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
import traitlets as t
from torch import nn

import saliency_widgets as sw
from saliency_widgets import api
from saliency_widgets.metrics._curve import ranks_of, removal_order
from saliency_widgets.render import display_map
from saliency_widgets.widget.image import _display
from saliency_widgets.widget.payload import from_payload
from saliency_widgets.widget.trust import badges as badges_module
from saliency_widgets.widget.trust.keys import MetricKey
from saliency_widgets.widget.trust.words import FLAG_SIMILARITY

SIZE = 20
FOUR = ("deletion", "insertion", "infidelity", "max_sensitivity")


def tiny_cnn(k: int = 6, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, k))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def rgb(size: int = SIZE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


class Slow(nn.Module):
    """Sleeps in every forward once ``armed``: a badge's job can be caught mid-way."""

    def __init__(self, inner: nn.Module, delay: float) -> None:
        super().__init__()
        self.inner, self.delay, self.armed, self.calls = inner, delay, False, 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.armed:
            time.sleep(self.delay)
        return self.inner(x)


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
        w = sw.show(tiny_cnn() if model is None else model, rgb() if image is None else image,
                    **kw)
        widgets.append(w)
        return w

    yield make
    for w in widgets:
        w.close()


def record(w, method):
    return next(a for a in w.attributions if a.method == method)


def badge(w, method, metric):
    panel = next(p for p in w.panels if p.method == method)
    return next(b for b in panel.badges if b["metric"] == metric)


# -- badges ------------------------------------------------------------------------------------
def test_default_badges_equal_sw_evaluate_with_its_defaults_and_the_widget_seed(opened):
    w = opened(methods=("gradient", "grad_cam"), seed=3)
    assert tuple(w.metrics_selected) == FOUR  # sw.show's default
    assert w.wait(60) and w.status == "idle"
    results = w.metric_results
    assert sorted(results) == ["grad_cam", "gradient"]
    for method in ("gradient", "grad_cam"):
        attr = record(w, method)
        for metric in FOUR:
            ref = sw.evaluate(w._model, w.model_input, attr, metric=metric, seed=3)
            assert results[method][metric] == float(ref.scores[0])  # the same computation
            b = badge(w, method, metric)
            assert b["state"] == "ready" and b["value"] == float(ref.scores[0])
            assert b["higher_is_better"] == ref.higher_is_better
            assert b["params"] == [[k, str(v) if not isinstance(v, float) else f"{v:g}"]
                                   if v is not None else [k, "auto"]
                                   for k, v in ref.params.items()] or metric == "infidelity"
            for kind in ("random", "edge"):  # what a trivial map scores on the same metric
                triv = api.evaluate_trivial(w._model, w.model_input, kind, metric=metric, seed=3,
                                            target=attr.target[0], normalization=None)
                assert b[kind] == pytest.approx(float(triv.scores[0]), rel=0, abs=0)
    assert badge(w, "gradient", "deletion")["rank"] in (1, 2)
    assert {badge(w, m, "deletion")["rank"] for m in ("gradient", "grad_cam")} <= {1, 2}


def test_ranks_follow_the_direction_and_rank_by_orders_the_panels(opened):
    methods = ("gradient", "grad_cam", "input_x_gradient")
    w = opened(methods=methods, metrics=("sparseness", "complexity"))
    assert w.wait(60)
    for metric, higher in (("sparseness", True), ("complexity", False)):
        values = {m: w.metric_results[m][metric] for m in methods}
        best = (max if higher else min)(values, key=values.get)
        assert badge(w, best, metric)["rank"] == 1
        assert all(badge(w, m, metric)["of"] == 3 for m in methods)
        w.rank_by = metric
        order = [p.method for p in w.panels]
        assert order == sorted(methods, key=lambda m: -values[m] if higher else values[m])
    w.metrics_selected = ["sparseness"]  # the ranking metric went: back to the selection order
    assert w.rank_by == "" and [p.method for p in w.panels] == list(methods)
    with pytest.raises(t.TraitError, match="metric name"):
        w.rank_by = "speed"


def test_map_only_badges_come_before_those_that_need_the_model(opened, monkeypatch):
    order = []
    real = badges_module.evaluate

    def spy(model, x, attr, *, metric, **kw):
        order.append(metric)
        return real(model, x, attr, metric=metric, **kw)

    monkeypatch.setattr(badges_module, "evaluate", spy)
    w = opened(methods=("gradient",), metrics=("infidelity", "sparseness", "complexity"))
    assert w.wait(60)
    assert order == ["sparseness", "complexity", "infidelity"]


def test_badges_are_cached_and_asked_for_again_when_the_weights_move(opened, monkeypatch):
    calls = []
    real = badges_module.evaluate
    monkeypatch.setattr(badges_module, "evaluate",
                        lambda *a, metric, **kw: calls.append(metric) or real(*a, metric=metric,
                                                                              **kw))
    model = tiny_cnn()
    w = opened(model, methods=("gradient",), metrics=("infidelity",))
    assert w.wait(60) and calls == ["infidelity"]
    w.metrics_selected = []
    assert w.panels[0].badges == [] and w.metric_results == {"gradient": {}}
    w.metrics_selected = ["infidelity"]  # back on: from the cache, at once
    assert w.wait(60) and calls == ["infidelity"]
    assert badge(w, "gradient", "infidelity")["state"] == "ready"
    with torch.no_grad():
        model[0].weight.mul_(1.5)  # an in-place step: a new fingerprint
    w.metrics_selected = ["infidelity", "sparseness"]
    assert w.wait(60) and calls == ["infidelity", "sparseness", "infidelity"]
    attr = record(w, "gradient")
    ref = sw.evaluate(model, w.model_input, attr, metric="infidelity", seed=0)
    assert w.metric_results["gradient"]["infidelity"] == float(ref.scores[0])
    # the key: the panel's key (method, params, layer, target, contrast, weights), the metric,
    # its parameters, the masks' hash (localization only) and the seed
    key = badges_module.Badges.metric_key(w._trust.badges, w.panels[0].result[0], "infidelity")
    assert isinstance(key, MetricKey) and key.masks == "" and ("samples", 16) in key.params
    assert key in w._board.cache


def test_localization_badges_need_masks_and_use_them(opened):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[5:12, 6:14] = True
    w = opened(methods=("grad_cam",), metrics=("relevance_mass", "pointing_game"), masks=mask)
    local = {c["name"] for c in w.metric_choices if c["needs_masks"]}
    assert local == {"pointing_game", "relevance_mass", "relevance_rank", "top_k_iou"}
    assert w.masks_given
    assert w.wait(60)
    attr = record(w, "grad_cam")
    for metric in ("relevance_mass", "pointing_game"):
        ref = sw.evaluate(w._model, w.model_input, attr, metric=metric,
                          masks=torch.from_numpy(mask)[None])
        assert w.metric_results["grad_cam"][metric] == pytest.approx(float(ref.scores[0]),
                                                                     nan_ok=True)
    key = w._trust.badges.metric_key(w.panels[0].result[0], "relevance_mass")
    assert key.masks and len(key.masks) == 16  # the masks' hash is part of the key
    plain = opened(methods=("grad_cam",), metrics=())
    assert plain.metric_choices == w.metric_choices and not plain.masks_given
    with pytest.raises(t.TraitError, match="paint one"):
        plain.metrics_selected = ["relevance_mass"]
    # a painted mask is used (and wins over the given one while there is one)
    painted = np.zeros((SIZE, SIZE), bool)
    painted[0:4, 0:20] = True
    w.expert_mask = painted
    assert w.wait(60)
    ref = sw.evaluate(w._model, w.model_input, attr, metric="relevance_mass",
                      masks=torch.from_numpy(painted)[None])
    assert w.metric_results["grad_cam"]["relevance_mass"] == float(ref.scores[0])
    w.expert_mask = None
    assert w.wait(60)
    ref = sw.evaluate(w._model, w.model_input, attr, metric="relevance_mass",
                      masks=torch.from_numpy(mask)[None])
    assert w.metric_results["grad_cam"]["relevance_mass"] == float(ref.scores[0])
    with pytest.raises(t.TraitError, match="did you mean 'deletion'"):
        plain.metrics_selected = ["deleton"]
    with pytest.raises(sw.SaliencyError, match=r"\(20, 20\) mask"):
        sw.show(tiny_cnn(), rgb(), masks=np.zeros((8, 8), bool))


def test_new_masks_score_the_localization_badges_again(opened):
    a = np.zeros((SIZE, SIZE), bool)
    a[2:8, 2:8] = True
    b = np.zeros((SIZE, SIZE), bool)
    b[10:18, 4:16] = True
    w = opened(methods=("gradient",), metrics=("relevance_mass",), masks=a)
    assert w.wait(60)
    attr = record(w, "gradient")
    for mask in (b, a):  # a new hash: computed again; back to the first: from the cache
        w.set_masks(mask)
        assert w.wait(60)
        ref = sw.evaluate(w._model, w.model_input, attr, metric="relevance_mass",
                          masks=torch.from_numpy(mask)[None])
        assert w.metric_results["gradient"]["relevance_mass"] == float(ref.scores[0])
    w.set_masks(None)
    assert w.metrics_selected == [] and not w.masks_given


def test_metric_results_is_read_only(opened):
    w = opened(metrics=())
    with pytest.raises(t.TraitError, match="read-only"):
        w.metric_results = {"gradient": {"deletion": 0.0}}


def test_a_failing_badge_says_so_and_warns_while_the_others_show(opened, monkeypatch):
    real = badges_module.evaluate

    def failing(*a, metric, **kw):
        if metric == "complexity":
            raise RuntimeError("boom")
        return real(*a, metric=metric, **kw)

    monkeypatch.setattr(badges_module, "evaluate", failing)
    w = opened(methods=("gradient",), metrics=("sparseness", "complexity"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert w.wait(60)
    b = badge(w, "gradient", "complexity")
    assert b["state"] == "error" and "boom" in b["error"]
    assert badge(w, "gradient", "sparseness")["state"] == "ready"
    assert any("Complexity of Gradient failed" in str(c.message) for c in caught)


def test_badges_report_progress_can_be_cancelled_and_never_delay_a_map(opened):
    # 160² so that deletion's 25 inputs take 4 chunks (the engine stops between chunks)
    slow = Slow(tiny_cnn(), delay=0.15)
    w = opened(slow, rgb(160), methods=("gradient",), metrics=("sparseness",))
    assert w.wait(60)
    slow.armed = True
    w.metrics_selected = ["deletion"]
    wait_for(lambda: w.status == "computing" and "Deletion AUC of Gradient" in w.message)
    wait_for(lambda: w.progress > 0)
    w.cancel()
    assert w.wait(10) and w.status == "idle"
    assert badge(w, "gradient", "deletion")["state"] == "cancelled"
    w.retry()
    wait_for(lambda: isinstance(w._worker.running_key, MetricKey))
    # a new map pre-empts the running badge: the panel appears before the badge is done
    w.methods_selected = ["gradient", "input_x_gradient"]
    wait_for(lambda: [p.state for p in w.panels] == ["ready", "ready"])
    assert badge(w, "gradient", "deletion")["state"] == "computing"
    assert w.wait(60)
    assert badge(w, "gradient", "deletion")["state"] == "ready"
    assert badge(w, "input_x_gradient", "deletion")["state"] == "ready"


# -- curves ------------------------------------------------------------------------------------
def test_curve_payload_is_the_metrics_pixel_order_curve_and_substrate(opened):
    norm = ((0.5, 0.4, 0.3), (0.25, 0.25, 0.25))
    w = opened(methods=("grad_cam",), metrics=("deletion", "insertion"), mean=norm[0],
               std=norm[1])
    assert w.wait(60)
    curves = w.panels[0].curves
    attr = record(w, "grad_cam")
    ranks = from_payload(curves["ranks"])
    assert ranks.dtype == np.int32 and ranks.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(ranks, ranks_of(removal_order(attr.values)).view(SIZE, SIZE))
    for metric, insert in (("deletion", False), ("insertion", True)):
        part = curves[metric]
        ref = sw.evaluate(w._model, w.model_input, attr, metric=metric)
        np.testing.assert_array_equal(from_payload(part["y"]),
                                      ref.curve[0].numpy().astype(np.float32))
        counts = from_payload(part["counts"])
        np.testing.assert_array_equal(counts, np.round(ref.curve_x.numpy() * SIZE * SIZE))
        assert part["insert"] is insert and "ranks" not in part  # one pixel order for both
        assert from_payload(part["random"]).shape == counts.shape  # the trivial maps' curves
        curve = api.removal_curve(w._model, w.model_input, attr, metric=metric)
        np.testing.assert_array_equal(from_payload(part["substrate"]),
                                      _display(curve.substrate[0], norm))
    assert (from_payload(curves["deletion"]["substrate"]) == 0).all()  # black pixels
    # what the browser rebuilds at step k (js/src/trust/scrub.ts) is the input the metric scored
    k = 7
    part = curves["deletion"]
    moved = ranks < from_payload(part["counts"])[k]
    rebuilt = np.where(moved[..., None], from_payload(part["substrate"]), w.display_image)
    scored = api.removal_curve(w._model, w.model_input, attr, metric="deletion").image(k)
    np.testing.assert_array_equal(rebuilt, _display(scored[0], norm))


# -- sanity check ------------------------------------------------------------------------------
def test_sanity_maps_and_curve_are_model_randomizations_to_1e6(opened):
    w = opened(methods=("gradient", "grad_cam"), metrics=(), seed=2)
    assert w.wait(60)
    assert all(p.sanity is None for p in w.panels)
    w.sanity_check = True
    assert w.wait(60)
    for p in w.panels:
        s = p.sanity
        assert s["state"] == "ready" and s["threshold"] == FLAG_SIMILARITY
        attr = record(w, p.method)
        seen = []

        def explain(net, xb, attr=attr, seen=seen):
            out = sw.attribute(net, xb, list(attr.target), method=attr.method, seed=attr.seed,
                               **dict(attr.params)).values
            seen.append(out)
            return out

        ref = sw.evaluate(w._model, w.model_input, attr, metric="model_randomization", seed=2,
                          explain=explain)
        curve = from_payload(s["curve"])
        np.testing.assert_allclose(curve, ref.curve[0].numpy(), rtol=0, atol=1e-6)
        maps = from_payload(s["signed"])
        assert maps.shape == (len(seen), SIZE, SIZE) == (len(s["blocks"]), SIZE, SIZE)
        for depth, m in enumerate(seen):
            np.testing.assert_allclose(maps[depth], display_map(m, "signed")[0], rtol=1e-6,
                                       atol=1e-6 * float(np.abs(maps[depth]).max()))
        assert s["blocks"] == [b[-1] for b in ref.extras["blocks"]]
        assert str(FLAG_SIMILARITY) in s["verdict"]
    w.sanity_check = False
    assert all(p.sanity is None for p in w.panels)


def test_a_map_that_ignores_the_weights_is_flagged_in_words(opened):
    # f(x) = W · mean(x²): the gradient map is 2x·W_t/HW, so re-drawing W (the only block)
    # rescales it and its |Spearman| with the original stays 1
    model = nn.Sequential(sw_lambda(lambda x: x.pow(2).mean((2, 3))), nn.Linear(1, 3)).eval()
    image = torch.rand((1, SIZE, SIZE), generator=torch.Generator().manual_seed(0))
    w = opened(model, image, methods=("gradient",), metrics=())
    w.sanity_check = True
    assert w.wait(60)
    s = w.panels[0].sanity
    assert s["final"] == pytest.approx(1.0) and s["flag"] == s["verdict"]
    assert "Gradient barely changes" in s["flag"] and f"≥ {FLAG_SIMILARITY:g}" in s["flag"]


class sw_lambda(nn.Module):  # reads as a function
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# -- attribution path --------------------------------------------------------------------------
def test_ig_path_frames_are_fetched_one_at_a_time_and_end_on_the_map(opened):
    w = opened(methods=("integrated_gradients",), metrics=())
    w.params = {"integrated_gradients": {"steps": 8, "rule": "midpoint"}}
    assert w.wait(60)
    assert w.path_info == {} and w.path_frame == {}
    w.path_method = "integrated_gradients"
    assert w.wait(60)
    info = w.path_info
    assert info["state"] == "ready" and info["steps"] == 8 and info["position_name"] == "α"
    np.testing.assert_allclose(from_payload(info["positions"]), (np.arange(8) + 0.5) / 8,
                               atol=1e-7)
    attr = record(w, "integrated_gradients")
    assert info["gap"] == pytest.approx(float(attr.extras["completeness_gap"][0]), abs=1e-6)
    # the last frame first (path_step = -1): the running sum is the panel's map
    f = w.path_frame
    assert f["index"] == 7
    np.testing.assert_allclose(from_payload(f["running"]), from_payload(w.panels[0].signed),
                               rtol=1e-6, atol=1e-6)
    # one frame per request: the interpolated input, the gradient there
    w.path_step = 2
    f = w.path_frame
    assert f["index"] == 2 and f["position"] == pytest.approx(2.5 / 8)
    x, norm = w.model_input, w.normalization
    point = f["position"] * x  # baseline 0 without a normalization
    np.testing.assert_array_equal(from_payload(f["input"]), _display(point[0], norm))
    grad = sw.attribute(w._model, point, w.target, method="gradient").values
    np.testing.assert_allclose(from_payload(f["step"]), display_map(grad, "signed")[0],
                               rtol=1e-5, atol=1e-6)
    # changing the rule or the steps traces again
    w.params = {"integrated_gradients": {"steps": 4}}
    assert w.wait(60) and w.path_info["steps"] == 4


@pytest.mark.parametrize("method,params", [("smoothgrad", {"samples": 4}),
                                           ("occlusion", {"window": 6, "stride": 4})])
def test_smoothgrad_and_occlusion_paths_end_on_their_maps(opened, method, params):
    w = opened(methods=(method,), metrics=())
    w.params = {method: params}
    w.path_method = method
    assert w.wait(60)
    info = w.path_info
    n = 4 if method == "smoothgrad" else ((SIZE - 6) // 4 + 1) ** 2
    assert info["state"] == "ready" and info["steps"] == n
    np.testing.assert_allclose(from_payload(w.path_frame["running"]),
                               from_payload(w.panels[0].signed), rtol=1e-6, atol=1e-6)
    w.path_step = 1
    assert w.path_frame["index"] == 1
    if method == "occlusion":
        assert w.path_frame["window"] == [0, 4, 6, 6]
        assert (info["scores"] is not None)
    else:
        assert info["scores"] is None  # SmoothGrad does not score its noisy inputs


def test_path_waits_for_its_panel_and_refuses_other_methods(opened):
    w = opened(methods=("gradient",), metrics=())
    w.path_method = "occlusion"
    assert w.path_info["state"] == "waiting" and "select Occlusion" in w.path_info["message"]
    with pytest.raises(t.TraitError, match="integrated_gradients, smoothgrad, occlusion"):
        w.path_method = "gradient"


EXIT_WHILE_BUSY = r'''
import time
import numpy as np, torch, torch.nn as nn, saliency_widgets as sw
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
w = sw.show(model, image, methods=("gradient",))  # the default badges follow the map
while w.panels[0].state != "ready":
    time.sleep(0.01)
time.sleep(0.2)
print("busy", w._worker.busy)
'''


def test_a_script_may_exit_while_badges_are_computed(tmp_path):
    """A daemon worker frozen inside a torch op at interpreter exit aborts the process
    ("terminate called without an active exception", exit code 134): the worker is stopped at
    its next chunk and joined at exit instead. (Slow for a unit test, 5–10 s: a fresh
    interpreter imports torch; without a subprocess there is no interpreter exit to test.)"""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(),
                                                        os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", EXIT_WHILE_BUSY], env=env, cwd=os.getcwd(),
                          capture_output=True, text=True, timeout=120)
    assert "busy True" in done.stdout  # it did exit mid-work
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
