"""The benchmarks' floors (``benchmarks/_floor.py``) run exactly the passes each method needs,
on a frozen model: counted with hooks on a tiny CNN, no timing."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
from _floor import ModelInfo, Passes, Recipe, Term, recipe, windows


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean((2, 3)))


class Counts:
    """Images through the model's forward, and backward passes reaching the stem and the body."""

    def __init__(self, model: nn.Module) -> None:
        self.images, self.stem_backward, self.body_backward, self.grad_mode = 0, 0, 0, []

        def forward(m: nn.Module, args: tuple) -> None:
            self.images += args[0].shape[0]
            self.grad_mode.append(torch.is_grad_enabled())

        model.register_forward_pre_hook(forward)
        model.stem.register_full_backward_hook(lambda *a: self._tick("stem_backward"))
        model.body.register_full_backward_hook(lambda *a: self._tick("body_backward"))

    def _tick(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)


def passes(batch: int = 2) -> tuple[Passes, Counts]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 8, 8)
    p = Passes(Net().eval(), x, 1, torch.device("cpu"), batches=[1, 2, 4])
    return p, Counts(p.model)


def test_the_floor_model_is_a_frozen_copy():
    model = Net()
    p = Passes(model, torch.randn(1, 3, 8, 8), 0, torch.device("cpu"), batches=[1])
    assert all(q.requires_grad for q in model.parameters())  # the user's model untouched
    assert not any(q.requires_grad for q in p.model.parameters())
    assert not p.model.training
    p.one("fb", 1)()
    assert all(q.grad is None for q in p.model.parameters())


def test_forward_backward_reaches_the_input():
    p, n = passes()
    p.one("fb", 2)()
    assert (n.images, n.stem_backward, n.body_backward) == (2, 1, 1)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # the body's output grads
def test_forward_backward_to_a_layer_stops_there():
    """Grad-CAM's floor: one forward, a backward from the logits to the layer's output only."""
    p, n = passes()
    p.one("fl", 2, "body")()
    assert n.images == 2 and n.body_backward == 1
    assert n.stem_backward == 0  # nothing below the layer is differentiated


def test_forward_passes_build_no_graph():
    p, n = passes()
    p.one("fwd", 2)()
    assert n.images == 2 and n.grad_mode == [False]
    assert n.stem_backward == n.body_backward == 0


@pytest.mark.parametrize("term, images, backward", [
    (Term("fb", 7), 7, 7 // 4 + 1),           # chunks of 4 (the fastest here), then 3
    (Term("fwd", 5), 5, 0),
    (Term("fb", 6, chunk=2), 6, 3),           # fixed chunks: sequential steps
])
def test_a_term_runs_its_images_in_chunks(term, images, backward):
    p, n = passes()
    p.per_image = {"fb": {1: 3.0, 2: 2.0, 4: 1.0}, "fwd": {1: 3.0, 2: 2.0, 4: 1.0}}
    run, _, chunks = p.call(Recipe((term,)))
    run()
    assert n.images == images and n.stem_backward == backward
    assert chunks == [term.chunk or 4]


def info(batch: int = 2) -> ModelInfo:
    return ModelInfo(batch=batch, size=224, cam_layer="layer4", channels=512,
                     first_block="encoder.layers.encoder_layer_0.ln_1")


@pytest.mark.parametrize("method, params, expected", [
    ("gradient", {}, {"fb": 2}),
    ("guided_backprop", {}, {"fb": 2}),
    ("grad_cam", {}, {"fl": 2}),
    ("hires_cam", {}, {"fl": 2}),
    ("cam", {}, {"fwd": 2}),
    ("integrated_gradients", {"steps": 50}, {"fb": 100}),
    ("smoothgrad", {"samples": 25}, {"fb": 50}),
    ("deeplift", {}, {"fb": 4}),
    ("deeplift_shap", {"references": torch.zeros(3, 3, 8, 8)}, {"fb": 12}),
    ("guided_ig", {"steps": 200}, {"fb": 400}),
    ("xrai", {"steps": 32}, {"fb": 128}),
    ("rise", {"samples": 1000}, {"fwd": 2000}),
    ("score_cam", {"channel_softmax": True}, {"fwd": 2 + 1024}),
    ("score_cam", {"channel_softmax": False}, {"fwd": 4 + 1024}),  # + f(x · 0)
    ("ablation_cam", {}, {"fwd": 2 + 1024}),
    ("occlusion", {"window": 16, "stride": 8}, {"fwd": 2 * (windows(224, 16, 8) + 1)}),
    ("gradient_rollout", {}, {"fl": 2}),
])
def test_recipes_count_the_passes_each_map_needs(method, params, expected):
    rec = recipe(method, params, info())
    assert {k: rec.count(k) for k in ("fwd", "fb", "fl") if rec.count(k)} == expected
    if method in ("grad_cam", "hires_cam"):
        assert rec.terms[0].layer == "layer4"
    if method == "guided_ig":
        assert rec.terms[0].chunk == 2  # one step at a time, the batch together
    assert windows(224, 16, 8) == 729
