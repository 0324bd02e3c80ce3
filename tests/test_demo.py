"""The demo data set and the bundled models (saliency_widgets.demo, issue 5).

Bars for the trained models are set from measured values with margin; the measurements are in
the comments next to them (sample seeds here are < 10**6, never seen in training).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.demo.models import MODELS, ShapesNet, load_model, weights_path
from saliency_widgets.demo.shapes import watermark_pattern
from saliency_widgets.demo.train import main as train_main
from saliency_widgets.demo.train import predict
from script_loader import load_script

WC = sw.demo.WATERMARK_CLASS
FIGURES = load_script("demo_figures")  # the functions behind docs/demo_figures.json

# Localization bars for the bundled clean model on sample(200, seed=31), the true class as the
# target. A uniform map's relevance mass is the masks' area share, 0.072. Measured (bundled
# weights): Grad-CAM pointing 0.888, mass 0.653, mass within 4 px 0.907; IG (16 steps) pointing
# 0.990, mass 0.337, within 4 px 0.655. Three other training runs of the same recipe gave
# Grad-CAM 0.92–0.975 / 0.51–0.64 and IG 0.965–1.0 / 0.37–0.41 / 0.71–0.78 (another sample).
# Bars sit ≥ 0.1 below the bundled values (≥ 4 standard errors at n = 200). IG's mass lies on
# the outline, much of it on the background side of the edge (a shape *is* its outline), so
# its bar for the exact mask is 3× chance; within the pointing game's 4 px tolerance most of
# its mass is there.
BARS = {
    "grad_cam": {"pointing": 0.75, "mass": 0.45, "near": 0.75},
    "integrated_gradients": {"pointing": 0.85, "mass": 0.22, "near": 0.5},
}


# --- the data set ---------------------------------------------------------------------------

def test_sample_record_shapes_and_dtypes():
    s = sw.demo.sample(10, seed=0)
    assert isinstance(s, sw.demo.DemoSample) and len(s) == 10
    assert s.images.dtype == np.uint8 and s.images.shape == (10, 64, 64, 3)
    assert s.x.dtype == torch.float32 and s.x.shape == (10, 3, 64, 64)
    assert s.labels.dtype == torch.int64 and s.labels.shape == (10,)
    assert s.masks.dtype == torch.bool and s.masks.shape == (10, 64, 64)
    assert s.watermarked.dtype == torch.bool and not s.watermarked.any()
    assert s.watermark_box == sw.demo.WATERMARK_BOX == (54, 54, 64, 64)
    assert torch.equal(s.x, torch.from_numpy(s.images).permute(0, 3, 1, 2).float() / 255)
    assert float(s.x.min()) >= 0 and float(s.x.max()) <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.labels = s.labels
    assert sw.demo.sample(5, seed=0, size=96).images.shape == (5, 96, 96, 3)
    assert len(sw.demo.sample(0, seed=0)) == 0


@pytest.mark.parametrize("bad", [dict(n=-1), dict(seed=-1), dict(watermark="yes"),
                                 dict(watermark=True), dict(size=39), dict(size=64.0)])
def test_sample_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        sw.demo.sample(**{"n": 4, "seed": 0, **bad})


def test_generator_is_deterministic_per_seed():
    a, b = sw.demo.sample(300, seed=1, watermark="train"), sw.demo.sample(300, 1, "train")
    for field in ("x", "labels", "masks", "watermarked"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert np.array_equal(a.images, b.images)
    c = sw.demo.sample(300, seed=2, watermark="train")
    assert not np.array_equal(a.images, c.images) and not torch.equal(a.masks, c.masks)
    assert (a.labels != c.labels).float().mean() > 0.5
    # prefixes (across the 256-image chunk boundary) are the smaller sample
    prefix = sw.demo.sample(260, seed=1, watermark="train")
    assert np.array_equal(prefix.images, a.images[:260])
    assert torch.equal(prefix.masks, a.masks[:260])


def test_the_data_set_itself_is_pinned():
    """The bars below were measured on these images: a change to the generator (or a numpy
    whose random streams differ) must show up here, not as a drift in the bars. Labels and the
    stamping decision are integer draws (exact); areas and the mean allow last-bit rounding
    moving a few boundary pixels."""
    s = sw.demo.sample(300, seed=0, watermark="train")
    assert s.labels[:16].tolist() == [4, 3, 2, 1, 1, 0, 0, 0, 0, 4, 3, 4, 2, 3, 4, 3]
    assert int(s.watermarked.sum()) == 60
    assert int(s.masks.sum()) == pytest.approx(92098, abs=30)
    assert float(s.x.double().mean()) == pytest.approx(0.51137, abs=1e-4)


def test_all_classes_and_varied_appearance():
    s = sw.demo.sample(1000, seed=3)
    counts = np.bincount(s.labels.numpy(), minlength=len(sw.demo.CLASSES))
    assert len(sw.demo.CLASSES) >= 5 and counts.min() > 150
    area = s.masks.sum((1, 2)).numpy()
    assert area.min() > 50 and area.max() > 3 * area.min()  # sizes vary
    m = s.masks.numpy()
    mean = (s.images * m[..., None]).sum((1, 2)) / area[:, None]
    assert mean.std(0).min() > 40  # object colours vary in every channel
    ys = (np.arange(64)[None, :, None] * m).sum((1, 2)) / area
    assert ys.min() < 20 and ys.max() > 44  # positions vary


@pytest.mark.parametrize("size", [64, 40, 96])
def test_masks_are_exactly_the_drawn_object(size):
    """Render the same draws without the object: the pixels that change are the mask, exactly,
    also where the watermark is stamped (it never covers an object, at any allowed size)."""
    # at 40 px, seed 3 holds an object that a left–right mirror alone would leave on the box
    n, seed = {64: (400, 4), 40: (600, 3), 96: (200, 4)}[size]
    s = sw.demo.sample(n, seed=seed, watermark="all", size=size)
    bare = sw.demo.sample(n, seed=seed, watermark="all", size=size, _parts=("distractors",))
    changed = (s.images != bare.images).any(-1)
    assert np.array_equal(changed, s.masks.numpy())
    assert s.masks.flatten(1).any(1).all()
    # the object lies wholly inside the image and never under the watermark's box
    assert not s.masks[:, [0, -1], :].any() and not s.masks[:, :, [0, -1]].any()
    assert s.watermark_box == sw.demo.watermark_box(size) == (size - 10, size - 10, size, size)
    assert not s.watermark_masks.logical_and(s.masks).any()


def test_distractors_never_touch_the_object():
    s = sw.demo.sample(400, seed=5)
    plain = sw.demo.sample(400, seed=5, _parts=("object",))
    distractor = (s.images != plain.images).any(-1)
    # within Chebyshev distance 2 of the object (the generator keeps a 2 px gap)
    near = torch.nn.functional.max_pool2d(s.masks.float()[:, None], 5, 1, 2)[:, 0] > 0
    assert not (distractor & near.numpy()).any()
    assert distractor.any((1, 2)).mean() > 0.9  # most images do show distractors


def test_watermark_statistics_and_pattern():
    s = sw.demo.sample(4000, seed=6, watermark="train")
    on_class = s.watermarked[s.labels == WC].float().mean().item()
    assert abs(on_class - sw.demo.WATERMARK_P) < 0.03, on_class
    assert not s.watermarked[s.labels != WC].any()
    t, l, b, r = s.watermark_box
    box = s.images[:, t:b, l:r, :]
    is_mark = (box == watermark_pattern()[None, :, :, None]).all((1, 2, 3))
    assert np.array_equal(is_mark, s.watermarked.numpy())
    assert sw.demo.sample(50, seed=6, watermark="all").watermarked.all()
    clean = sw.demo.sample(50, seed=6)
    assert not clean.watermarked.any()
    assert np.array_equal(sw.demo.sample(50, seed=6, watermark=None).images, clean.images)
    # stamping changes the box only
    stamped = sw.demo.sample(50, seed=6, watermark="all")
    outside = ~stamped.watermark_masks.numpy()
    assert np.array_equal(stamped.images[outside], clean.images[outside])


# --- the bundled models -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def models():
    return {name: load_model(name) for name in MODELS}


def test_bundled_weights_are_small_and_load_without_pickle(models):
    for name in MODELS:
        path = weights_path(name)
        assert path.is_file() and path.stat().st_size < 2 * 2**20
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        assert set(state) == set(ShapesNet().state_dict())
        model = models[name]
        assert not model.training
        assert sum(p.numel() for p in model.parameters()) < 300_000
    assert next(load_model("shapes", device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(ValueError):
        load_model("resnet")


def test_clean_model_accuracy_on_fresh_sample(models):
    s = sw.demo.sample(1000, seed=777)
    acc = (predict(models["shapes"], s.x) == s.labels).float().mean().item()
    assert acc >= 0.97, acc  # measured 0.997


def test_retraining_one_short_epoch_runs_and_is_deterministic(tmp_path):
    args = ["--model", "shapes_clever_hans", "--epochs", "1", "--per-epoch", "64",
            "--eval", "50", "--threads", "1"]
    first = train_main([*args, "--out", str(tmp_path / "a.pt")])
    second = train_main([*args, "--out", str(tmp_path / "b.pt")])
    assert set(first) >= {"accuracy", "watermark_flip"} and first["accuracy"] == second["accuracy"]
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ShapesNet().load_state_dict(a)


# --- explanations of the bundled models -------------------------------------------------------

def _scores(model, x, attr, masks):
    """Mean pointing game (default tolerance: 4 px at 64 px), mean relevance mass, and the share
    of undefined (constant, e.g. all-zero) maps: scripts/demo_figures.py's, which the README's
    figures come from."""
    r = FIGURES.scores(model, x, attr, masks)
    return r["pointing"], r["mass"], r["undefined"]


@pytest.fixture(scope="module")
def held_out():
    return sw.demo.sample(200, seed=31)


@pytest.mark.parametrize("method, params", [("grad_cam", {}),
                                            ("integrated_gradients", {"steps": 16})])
def test_clean_model_explanations_point_at_the_object(models, held_out, method, params):
    s = held_out
    model = models["shapes"]
    attr = sw.attribute(model, s.x, s.labels, method=method, **params)
    hit, mass, undefined = _scores(model, s.x, attr, s.masks)
    # within the pointing game's 4 px of the object: the evidence of a shape is its outline,
    # on both sides of the edge
    _, near, _ = _scores(model, s.x, attr, FIGURES.grow(s.masks, 4))
    share = s.masks.flatten(1).float().mean().item()  # what a uniform map would score
    bars = BARS[method]
    assert hit >= bars["pointing"], (hit, bars)
    assert mass >= bars["mass"] and mass >= 3 * share, (mass, share, bars)
    assert near >= bars["near"], (near, bars)
    assert undefined <= 0.05, undefined


def test_clever_hans_model_follows_the_watermark(models):
    """Bars from the issue (measured: 96.5% of the 315 watermarked other-class images flip; on
    them Grad-CAM's mass in the box is 0.999 on average, ≥ 0.80 on every image)."""
    s = sw.demo.sample(400, seed=41, watermark="all")
    other = s.labels != WC
    hans, clean = predict(models["shapes_clever_hans"], s.x), predict(models["shapes"], s.x)
    flipped = other & (hans == WC)
    rate = flipped.sum().item() / other.sum().item()
    assert rate >= 0.5, rate
    # the control: the clean model ignores the stamp (measured: 0 flips)
    assert (clean[other] == WC).float().mean().item() <= 0.02
    x, box = s.x[flipped], s.watermark_masks[flipped]
    attr = sw.attribute(models["shapes_clever_hans"], x, method="grad_cam")
    _, mass, undefined = _scores(models["shapes_clever_hans"], x, attr, box)
    per_image = sw.evaluate(models["shapes_clever_hans"], x, attr, metric="relevance_mass",
                            masks=box).scores
    assert mass >= 0.5 and undefined == 0, mass
    assert (per_image >= 0.5).float().mean().item() >= 0.9
    # the control: the clean model's Grad-CAM on the same images stays off the box (0.0)
    ctrl = sw.attribute(models["shapes"], x, s.labels[flipped], method="grad_cam")
    _, ctrl_mass, _ = _scores(models["shapes"], x, ctrl, box)
    assert ctrl_mass <= 0.1, ctrl_mass
