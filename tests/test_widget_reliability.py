"""The widget under stress: results that always show, state written from two threads, a model
that changes under it, messages that carry only what changed, errors that reach the user, and
blank maps that explain themselves. Driven without a browser, with a recording comm."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import comm as comm_package
import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers
from torch import nn

import saliency_widgets as sw
from saliency_widgets.render.heatmap import display_map

SIZE = 32


def tiny_cnn(k: int = 10, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def rgb(size: int = SIZE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def shown_map(w: Any, method: str) -> np.ndarray:
    panel = next(p for p in w.panels if p.method == method)
    assert panel.state == "ready", (panel.state, panel.error)
    view = panel.signed["view"]
    return np.frombuffer(bytes(view), np.float32).reshape(panel.signed["shape"])


def engine_map(model: nn.Module, w: Any, method: str) -> np.ndarray:
    attr = sw.attribute(model, w.model_input, w.target, method=method,
                        contrast=None if w.contrast_mode == "none" else w.contrast)
    return display_map(attr.values, "signed")[0]


# -- a comm that records every message ---------------------------------------------------------
class RecordingComm:
    """Stands in for the kernel's comm: keeps every message with the thread that sent it."""

    log: list[dict[str, Any]] = []

    def __init__(self, comm_id: str | None = None, data: Any = None, buffers: Any = None,
                 **_: Any) -> None:
        import uuid

        self.comm_id = comm_id or uuid.uuid4().hex
        self.kernel = object()  # ipywidgets only sends when a kernel is attached
        self._record("open", data or {}, buffers or [])

    def _record(self, kind: str, data: dict[str, Any], buffers: list[Any]) -> None:
        RecordingComm.log.append({
            "comm": self.comm_id, "kind": kind, "data": data,
            "buffers": [bytes(memoryview(b).cast("B")) for b in buffers],
            "thread": threading.current_thread().name})

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self._record("msg", data or {}, buffers or [])

    def on_msg(self, callback: Any) -> None:
        pass

    def close(self, *args: Any, **kwargs: Any) -> None:
        self._record("close", {}, [])


def message_bytes(entry: dict[str, Any]) -> int:
    import json

    return len(json.dumps(entry["data"], default=str)) + sum(len(b) for b in entry["buffers"])


def replay(log: list[dict[str, Any]], comm_id: str) -> dict[str, Any]:
    """The state a front end holds after applying every recorded message of ``comm_id``."""
    state: dict[str, Any] = {}
    for entry in log:
        if entry["comm"] != comm_id or entry["kind"] == "close":
            continue
        data = entry["data"]
        part = data.get("state", {}) if entry["kind"] == "open" else (
            data["state"] if data.get("method") == "update" else {})
        part = _with_buffers(part, data.get("buffer_paths", []), entry["buffers"])
        state.update(part)
    return state


def _with_buffers(state: dict[str, Any], paths: list[list[Any]], buffers: list[bytes]
                  ) -> dict[str, Any]:
    import copy

    state = copy.deepcopy(state)
    for path, buf in zip(paths, buffers):
        obj = state
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = buf
    return state


def wire_state(widget: Any) -> dict[str, Any]:
    """``widget``'s current synced state as a front end would hold it (buffers as bytes)."""
    state, paths, buffers = _remove_buffers(widget.get_state())
    return _with_buffers(state, paths, [bytes(memoryview(b).cast("B")) for b in buffers])


@pytest.fixture
def recorded(monkeypatch):
    RecordingComm.log = []
    monkeypatch.setattr(comm_package, "create_comm", RecordingComm)
    widgets: list[Any] = []

    def make(model=None, image=None, **kw):
        kw.setdefault("metrics", ())  # the maps alone (badges: tests/test_widget_trust.py)
        w = sw.show(tiny_cnn() if model is None else model, rgb() if image is None else image, **kw)
        widgets.append(w)
        return w

    yield make
    for w in widgets:
        w.close()


@pytest.fixture
def opened():
    widgets: list[Any] = []

    def make(model=None, image=None, **kw):
        kw.setdefault("metrics", ())  # the maps alone (badges: tests/test_widget_trust.py)
        w = sw.show(tiny_cnn() if model is None else model, rgb() if image is None else image, **kw)
        widgets.append(w)
        return w

    yield make
    for w in widgets:
        w.close()


class Gated(nn.Module):
    """Waits in its forward pass while ``armed`` is set: a test can act at that moment."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.armed, self.entered = threading.Event(), threading.Event()
        self.proceed = threading.Event()
        self.calls = [0]  # shared with the engine's structural copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls[0] += 1
        if self.armed.is_set():
            self.armed.clear()
            self.entered.set()
            assert self.proceed.wait(10)
        return self.inner(x)


# -- results that always show ------------------------------------------------------------------
def test_a_result_larger_than_the_cache_still_shows(opened):
    w = opened(methods=("gradient", "grad_cam"), cache_bytes=1)
    assert w.wait(30)
    assert [p.state for p in w.panels] == ["ready", "ready"] and w.status == "idle"
    assert [a.method for a in w.attributions] == ["gradient", "grad_cam"]
    assert len(w._board.cache) == 0  # nothing fitted: the panels show their pinned results
    w.opacity = 0.3  # a display change: nothing recomputed, nothing lost
    assert [p.state for p in w.panels] == ["ready", "ready"] and w.status == "idle"


def test_a_visible_panel_is_never_evicted_by_another(opened):
    # each gradient entry: values (1,3,H,W) + signed + absolute = 5 maps of H*W float32
    entry = 5 * SIZE * SIZE * 4
    w = opened(methods=("gradient",), cache_bytes=int(entry / 0.6))  # each entry is 60 %
    assert w.wait(30)
    w.params = {"gradient": {}}
    w.methods_selected = ["gradient", "input_x_gradient"]  # 60 % + 60 %: one is evicted
    assert w.wait(30)
    assert [p.state for p in w.panels] == ["ready", "ready"] and w.status == "idle"
    assert len(w._board.cache) == 1
    np.testing.assert_array_equal(shown_map(w, "gradient"), engine_map(w._model, w, "gradient"))
    w.target = (w.target + 1) % 10  # both recomputed, and both still show
    assert w.wait(30) and [p.state for p in w.panels] == ["ready", "ready"]


# -- state written from two threads ------------------------------------------------------------
def test_a_write_while_the_worker_leaves_hold_sync_is_never_lost(recorded, caplog):
    """The worker pauses inside its hold_sync exit (after sending, before ipywidgets clears its
    set of keys to send) while the kernel thread writes in a hold_sync block of its own. The
    recorded messages, replayed, must give every synced trait's final value."""
    model = Gated(tiny_cnn()).eval()
    w = recorded(model, methods=())
    worker_paused, go = threading.Event(), threading.Event()
    real_send = w.send_state

    def send_state(key=None):
        real_send(key)
        if threading.current_thread().name == "saliency-widget" and not worker_paused.is_set():
            worker_paused.set()
            go.wait(1.0)  # with the lock, the kernel thread cannot get in meanwhile

    w.send_state = send_state
    model.armed.set()
    w.methods_selected = ["gradient"]
    assert model.entered.wait(10)

    def kernel_thread() -> None:
        assert worker_paused.wait(10)
        with w.hold_sync():
            w.opacity = 0.25
            go.set()
            time.sleep(0.2)  # the worker finishes its exit now (today: clears our key)
            w.colormap = "viridis"

    t = threading.Thread(target=kernel_thread)
    with caplog.at_level(logging.ERROR):
        t.start()
        model.proceed.set()
        t.join(20)
        assert w.wait(30)
    assert (w.opacity, w.colormap, w.status) == (0.25, "viridis", "idle")
    for widget in (w, *w.panels):
        replayed = replay(RecordingComm.log, widget.comm.comm_id)
        final = wire_state(widget)
        assert {k: replayed.get(k) for k in final} == final
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_concurrent_writes_from_both_threads_all_arrive(recorded, caplog):
    """Many finished jobs (worker thread) while the kernel thread writes display traits."""
    w = recorded(methods=("gradient",))
    stop = time.monotonic() + 1.5
    with caplog.at_level(logging.ERROR):
        k = 0
        while time.monotonic() < stop:
            k += 1
            w.target = k % 10  # the worker answers each with a hold_sync block
            with w.hold_sync():
                w.opacity = (k % 10) / 10
                w.clip_percentile = 90 + k % 10
        assert w.wait(30)
    for widget in (w, *w.panels):
        replayed = replay(RecordingComm.log, widget.comm.comm_id)
        final = wire_state(widget)
        assert {key: replayed.get(key) for key in final} == final
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- a stale map after the model changes -------------------------------------------------------
def test_weights_changed_in_place_are_seen_on_the_next_toggle(opened):
    model = tiny_cnn()
    w = opened(model, methods=("gradient",))
    assert w.wait(30)
    old = shown_map(w, "gradient").copy()
    old_top = [p["index"] for p in w.predictions]
    with torch.no_grad():
        for p in model.parameters():
            p.neg_()  # in place: bumps each tensor's version counter
    w.methods_selected = ["gradient", "grad_cam"]  # a toggle
    assert w.wait(30)
    new = shown_map(w, "gradient")
    assert not np.allclose(new, old)
    np.testing.assert_allclose(new, engine_map(model, w, "gradient"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(shown_map(w, "grad_cam"), engine_map(model, w, "grad_cam"),
                               rtol=1e-5, atol=1e-7)
    probs = torch.softmax(model(w.model_input).double(), 1)[0]
    assert [p["index"] for p in w.predictions] == torch.topk(probs, 5).indices.tolist() != old_top


def test_load_state_dict_and_the_runner_up_follow_the_new_weights(opened):
    model, other = tiny_cnn(seed=0), tiny_cnn(seed=1)
    w = opened(model, methods=("gradient",), contrast="runner_up")
    assert w.wait(30)
    model.load_state_dict(other.state_dict())
    w.target = w.target  # no change: nothing happens
    w.params = {"gradient": {}}  # a selection event (same settings): the model is looked at
    assert w.wait(30)
    logits = other(w.model_input)[0].detach()
    logits[w.target] = float("-inf")
    assert w.contrast == int(logits.argmax())
    np.testing.assert_allclose(shown_map(w, "gradient"), engine_map(other, w, "gradient"),
                               rtol=1e-5, atol=1e-7)


def test_writes_through_data_are_unseen_until_refresh(opened):
    model = tiny_cnn()
    w = opened(model, methods=("gradient",))
    assert w.wait(30)
    old = shown_map(w, "gradient").copy()
    for p in model.parameters():
        p.data.mul_(-1)  # .data: no version bump, documented as unseen
    w.params = {"gradient": {}}
    assert w.wait(30)
    np.testing.assert_array_equal(shown_map(w, "gradient"), old)
    w.refresh()
    assert w.wait(30)
    np.testing.assert_allclose(shown_map(w, "gradient"), engine_map(model, w, "gradient"),
                               rtol=1e-5, atol=1e-7)


def test_an_optimizer_step_mid_explanation_is_retried_never_shown_mixed(opened):
    inner = tiny_cnn()
    model = Gated(inner).eval()
    w = opened(model, methods=())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.armed.set()
    w.methods_selected = ["gradient"]  # the job's forward pass stops at the gate
    assert model.entered.wait(10)
    calls = model.calls[0]
    # a training step on the user's model while the explanation holds its graph
    loss = inner(torch.rand(4, 3, SIZE, SIZE)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    model.proceed.set()
    assert w.wait(30)
    assert w.status == "idle", w.error
    assert model.calls[0] > calls  # the job ran again
    np.testing.assert_allclose(shown_map(w, "gradient"), engine_map(model, w, "gradient"),
                               rtol=1e-5, atol=1e-7)
    assert all(p.grad is not None for p in model.parameters())  # the user's grads untouched


# -- every finished job sends only its own panel ------------------------------------------------
def test_a_finished_job_sends_only_the_new_panels_maps(recorded):
    w = recorded(methods=("gradient", "input_x_gradient"), image=rgb(64))
    assert w.wait(30)
    start = len(RecordingComm.log)
    w.methods_selected = ["gradient", "input_x_gradient", "guided_backprop"]
    assert w.wait(30)
    new = next(p for p in w.panels if p.method == "guided_backprop")
    maps = new.signed["view"].nbytes + new.absolute["view"].nbytes
    from_worker = [e for e in RecordingComm.log[start:] if e["thread"] == "saliency-widget"]
    assert from_worker, "the job's result was not sent from the worker"
    sent = sum(message_bytes(e) for e in from_worker)
    assert maps <= sent <= maps + 2048, (sent, maps)


def test_a_saved_state_still_holds_every_panel(recorded):
    w = recorded(methods=("gradient", "grad_cam"))
    assert w.wait(30)
    for panel in w.panels:  # what a notebook saves: each panel model's state, maps included
        state = replay(RecordingComm.log, panel.comm.comm_id)
        assert state["state"] == "ready" and len(state["signed"]["view"]) == SIZE * SIZE * 4
    refs = replay(RecordingComm.log, w.comm.comm_id)["panels"]
    assert refs == [f"IPY_MODEL_{p.comm.comm_id}" for p in w.panels]


# -- errors reach the user ---------------------------------------------------------------------
def test_a_failing_callback_is_shown_and_warned_not_swallowed(opened, monkeypatch):
    from saliency_widgets.widget.panel import Panel

    real, broke = Panel.show, []

    def show(self, key, state, *args, **kwargs):
        if state == "ready" and not broke and threading.current_thread().name == "saliency-widget":
            broke.append(1)
            raise RuntimeError("boom in a callback")
        return real(self, key, state, *args, **kwargs)

    monkeypatch.setattr(Panel, "show", show)
    with pytest.warns(sw.SaliencyWarning, match="internal error: RuntimeError: boom"):
        w = opened(methods=("gradient",))
        assert w.wait(30)
    assert w.status == "error" and "boom in a callback" in w.error


def test_a_failing_method_sets_error_status_and_warns(opened):
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 10)).eval()
    with pytest.warns(sw.SaliencyWarning, match="Grad-CAM failed"):
        w = opened(mlp, methods=("grad_cam",))
        assert w.wait(30)
    assert w.status == "error" and w.panels[0].state == "error"
    assert "layer=" in w.panels[0].error and w.error.startswith("Grad-CAM: ")


# -- a blank panel explains itself -------------------------------------------------------------
def test_an_all_zero_cam_panel_says_why_and_what_to_try(opened):
    data = sw.demo.sample(1, seed=7)  # the demo model is unsure here: every CAM weight < 0
    w = opened(sw.demo.load_model("shapes"), data.images[0], labels=sw.demo.CLASSES,
               methods=("grad_cam", "gradient"))
    assert w.wait(30)
    cam, grad = w.panels
    assert cam.state == "ready" and not shown_map(w, "grad_cam").any()
    assert "relu=False" in cam.note and "contrast" in cam.note and "layer" in cam.note
    assert grad.note == ""  # a map with something to show has no note
    w.params = {"grad_cam": {"relu": False}}  # the fix it names works
    assert w.wait(30) and w.panels[0].note == "" and shown_map(w, "grad_cam").any()


def test_self_contrast_and_constant_maps_have_notes(opened):
    w = opened(methods=("gradient",))
    assert w.wait(30)
    w.contrast = w.target
    assert w.wait(30)
    assert "same class" in w.panels[0].note and not shown_map(w, "gradient").any()
    const = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 10)).eval()
    with torch.no_grad():
        const[1].weight.fill_(0.0)
        const[1].weight[0, :].fill_(1.0)  # the gradient of class 0 is 1 at every pixel
    w2 = opened(const, methods=("gradient",), target=0)
    assert w2.wait(30)
    assert "same value" in w2.panels[0].note


# -- sliders follow the traits ------------------------------------------------------------------
def test_slider_limits_are_the_traits_bounds(opened):
    w = opened()
    for name, (lo, hi) in w.limits.items():
        trait = w.traits()[name]
        assert (lo, hi) == (trait.min, trait.max), name
    assert w.limits["clip_percentile"] == [50.0, 100.0] and w.limits["threshold"] == [0.0, 100.0]


def test_wait_resends_what_the_worker_wrote_even_after_a_cell_touched_the_panels(recorded):
    """A notebook runner (nbclient) keeps only the messages of the running cell: what the worker
    sent between two cells is lost there, so ``w.wait()`` sends it again. A later cell that lays
    the panels out again without changing them must not make it forget a panel."""
    w = recorded(methods=("gradient",))
    assert w._worker.wait(60)  # finished between two cells: sent by the worker thread only
    w.methods_selected = ["gradient", "grad_cam"]  # the next cell (gradient's panel unchanged)
    assert w.wait(60)
    main = [e for e in RecordingComm.log if e["thread"] == threading.main_thread().name]
    for widget in (w, *w.panels):
        final = wire_state(widget)
        seen = replay(main, widget.comm.comm_id)
        assert {k: seen.get(k) for k in final} == final, getattr(widget, "method", "widget")
