"""Attacks on explanations (``sw.attack``): tests that can fail.

* A linear model's gradient map cannot move: every shift measure is exactly "unmoved".
* On the bundled demo model, 32 images, ε = 8/255, 5 steps: the untargeted attack keeps every
  prediction (checked with the model itself), stays within the budget and [0, 1], and moves the
  gradient maps more than random ±ε sign noise, on average and for each image; the targeted
  attack puts more of the map into the target box than noise does; Dombrowski's defence (explain
  through the softplus(2) network) moves less under the same attack; Grad-CAM, attacked
  directly, moves more than noise.
* Without the softplus surrogate a ReLU network gives a gradient map no direction at all.
* Every registered method can be attacked (on the contract's CNN, or its small ViT), through the
  surrogate exactly when the registry says ``derivative="surrogate"``; methods without a
  derivative are refused (``tests/test_differentiable.py``).

Cost (2 shared CPU cores, 1 thread): each 32-image demo attack takes 1–2.3 s at a load average of
2 (3–10 s at 9), four of them; the rest uses 16-pixel models and two demo images, about 1 s
(8 s at 9), plus about 5 s at a load average of 5 for two steps on each of the 30 attackable
methods. A CUDA variant runs where CUDA is available.
"""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import Lambda, linear_model
    from .test_contract import METHODS, SPECS, assert_no_guided_leak, assert_untouched, \
        make_cnn, make_model, params_for, snapshot, user_model_with_oddities
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda, linear_model
    from test_contract import METHODS, SPECS, assert_no_guided_leak, assert_untouched, \
        make_cnn, make_model, params_for, snapshot, user_model_with_oddities

EPS = 8 / 255
BUDGET_TOL = 1e-6  # float32 rounding of p₀ ± ε
MEASURES = ("top_k_intersection", "spearman", "com_distance")


def pixels(batch: int, size: int = 16, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g, dtype=torch.float64).to(dtype)


def moved_more(attack: dict, noise: dict) -> dict[str, torch.Tensor]:
    """Per example and measure: did the attack move the map further than the noise?"""
    return {"top_k_intersection": attack["top_k_intersection"] < noise["top_k_intersection"],
            "spearman": attack["spearman"] < noise["spearman"],
            "com_distance": attack["com_distance"] > noise["com_distance"]}


# --- the demo model -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(32, seed=77)
    result = sw.attack(model, data.x, method="gradient", steps=5, epsilon=EPS)
    return model, data, result


def test_untargeted_attack_keeps_the_prediction_and_the_budget(demo):
    model, data, r = demo
    with torch.no_grad():
        before, after = model(data.x).argmax(1), model(r.x).argmax(1)
    assert torch.equal(r.kept, after == before), "kept must say whether the label is unchanged"
    assert bool(r.kept.all()), "keep='label' must keep every prediction"
    assert r.params["labels"] == tuple(before.tolist()) and r.params["surrogate"] is True
    assert float((r.x - data.x).abs().max()) <= EPS + BUDGET_TOL
    assert float(r.x.min()) >= 0 and float(r.x.max()) <= 1
    assert float((r.linf - (r.x - data.x).flatten(1).abs().amax(1)).abs().max()) == 0
    assert float(r.noise_linf.min()) >= EPS - BUDGET_TOL, "the noise uses the whole budget"
    assert bool((r.extras["accepted_steps"] > 0).all())


def test_untargeted_attack_moves_gradient_maps_more_than_noise(demo):
    _, _, r = demo
    s = r.summary()
    # measured (seed 77): top-k ∩ 0.27 vs noise 0.64, Spearman 0.91 vs 0.99, 3.9 px vs 0.6 px
    assert s["top_k_intersection"] < s["noise_top_k_intersection"] - 0.2, s
    assert s["spearman"] < s["noise_spearman"], s
    assert s["com_distance"] > 2 * s["noise_com_distance"], s
    for name, more in moved_more(r.shift, r.noise_shift).items():
        assert float(more.double().mean()) >= 0.9, f"{name}: the attack beat noise on only " \
                                                   f"{float(more.double().mean()):.0%} of images"
    # the maps reported are sw.attribute's own, on the original network
    ref = sw.attribute(demo[0], r.x, list(r.original.target), method="gradient")
    assert torch.equal(ref.values, r.attacked.values)


def test_defence_reduces_the_shift(demo):
    model, data, plain = demo
    defended = sw.attack(model, data.x, method="gradient", steps=5, epsilon=EPS, defence=2.0)
    assert bool(defended.kept.all()) and defended.params["defence"] == 2.0
    a, b = plain.summary(), defended.summary()
    # measured (seed 77): top-k ∩ 0.27 → 0.33, Spearman 0.91 → 0.96, centre 3.9 → 3.1 px
    assert b["top_k_intersection"] > a["top_k_intersection"] + 0.03, (a, b)
    assert b["spearman"] > a["spearman"], (a, b)
    assert b["com_distance"] < a["com_distance"], (a, b)


def test_targeted_attack_raises_the_mass_in_the_target_box(demo):
    model, data, _ = demo
    r = sw.attack(model, data.x, method="gradient", kind="targeted", steps=5, epsilon=EPS)
    assert bool(r.kept.all()) and float((r.x - data.x).abs().max()) <= EPS + BUDGET_TOL
    box = r.target_map
    assert box.shape == (32, 64, 64) and set(box.unique().tolist()) == {0.0, 1.0}
    assert bool((box.flatten(1).sum(1) == 16 * 16).all()), "a quarter-side square box"
    m = r.target_mass  # measured (seed 77): 0.095 → 0.208 attacked, 0.098 with noise
    more = m["attacked"] > m["noise"]
    assert float(more.double().mean()) >= 0.9, f"beat noise on {float(more.double().mean()):.0%}"
    gain, noise_gain = float((m["attacked"] - m["original"]).mean()), \
        float((m["noise"] - m["original"]).mean())
    assert gain > 0.05 and gain > 5 * abs(noise_gain), (gain, noise_gain)
    # an explicit target: the same box, given as a bool tensor, gives the same attack
    again = sw.attack(model, data.x[:4], method="gradient", kind="targeted", steps=2,
                      target_map=box[:4] > 0)
    first = sw.attack(model, data.x[:4], method="gradient", kind="targeted", steps=2)
    assert torch.equal(again.x, first.x)


def test_grad_cam_is_attacked_directly_and_moves_more_than_noise(demo):
    model, data, _ = demo
    r = sw.attack(model, data.x, method="grad_cam", steps=5, epsilon=EPS)
    assert r.params["surrogate"] is False and bool(r.kept.all())
    s = r.summary()  # measured (seed 77): top-k ∩ 0.74 vs 0.995, Spearman 0.65 vs 0.997
    assert s["top_k_intersection"] < s["noise_top_k_intersection"] - 0.1, s
    assert s["spearman"] < s["noise_spearman"] - 0.1, s
    assert s["com_distance"] > 2 * s["noise_com_distance"], s


# --- small models ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["untargeted", "targeted"])
def test_linear_model_gradient_map_cannot_move(kind):
    model = linear_model(3, 8, 8, 4)
    x = pixels(4, 8, dtype=torch.float64)
    r = sw.attack(model, x, method="gradient", kind=kind, steps=3, keep="logits", tolerance=1.0)
    for shift in (r.shift, r.noise_shift):
        assert shift["top_k_intersection"].tolist() == [1.0] * 4
        assert shift["spearman"].tolist() == [1.0] * 4
        assert shift["com_distance"].tolist() == [0.0] * 4
    assert torch.equal(r.attacked.values, r.original.values)
    assert float(r.noise_linf.max()) > 0, "the noise did move the input"


def test_without_the_surrogate_a_relu_network_gives_no_direction():
    model = make_cnn()
    x = pixels(2)
    flat = sw.attack(model, x, method="gradient", steps=3, beta=None)
    assert flat.params["surrogate"] is False
    assert torch.equal(flat.x, x) and flat.linf.tolist() == [0.0, 0.0]
    smooth = sw.attack(model, x, method="gradient", steps=3)
    assert smooth.params["surrogate"] is True and float(smooth.linf.min()) > 0


@pytest.mark.parametrize("name", [n for n in METHODS
                                  if not SPECS[n]["derivative"].startswith("none: ")])
def test_every_method_can_be_attacked(name):
    # Two steps on two 16-pixel images (about 0.1 s each): the method's graph map gives a
    # direction on the contract's model, and the keep rule and the budget hold.
    x = pixels(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        r = sw.attack(make_model(name), x, method=name, steps=2, params=params_for(name))
    assert r.params["surrogate"] is (SPECS[name]["derivative"] == "surrogate"
                                     or name == "smoothgrad")  # its base: gradient
    assert bool(r.kept.all())
    assert float(r.linf.max()) <= EPS + BUDGET_TOL
    assert r.attacked.values.shape == r.original.values.shape


def test_defence_explains_the_models_own_prediction():
    # softplus(1) lifts relu(0) = 0 to log 2: the smoothed net predicts class 0, the model 1.
    model = Lambda(lambda t: torch.stack(
        [10 * F.relu(t.mean(dim=(1, 2, 3)) - 0.5), torch.full((t.shape[0],), 0.3)], 1))
    x = torch.full((2, 1, 4, 4), 0.5)
    smooth = sw.attacks.softplus_copy(model, 1.0)
    assert sw.attribute(smooth, x, method="gradient").target == (0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)  # a blank map: nothing to rank
        r = sw.attack(model, x, method="gradient", steps=1, defence=1.0)
    assert r.original.target == (1, 1) and r.params["labels"] == (1, 1)


def test_keep_logits_bounds_the_logit_change():
    model = make_cnn()
    x = pixels(3)
    r = sw.attack(model, x, method="input_x_gradient", steps=4, epsilon=0.1, keep="logits",
                  tolerance=0.02)
    assert bool(r.kept.all())
    assert float(r.extras["logit_change"].max()) <= 0.02
    with torch.no_grad():
        z0, z = model(x), model(r.x)
    rel = (z - z0).norm(dim=1) / z0.norm(dim=1)
    assert torch.allclose(rel.double(), r.extras["logit_change"], atol=1e-6)


def test_attack_leaves_the_model_input_and_rng_alone():
    model = user_model_with_oddities()
    x = pixels(2)
    x0 = x.clone()
    snap = snapshot(model)
    rng = torch.get_rng_state()
    with pytest.warns(sw.SaliencyWarning, match="training mode"):
        sw.attack(model, x, method="guided_backprop", steps=2)
    with pytest.warns(sw.SaliencyWarning, match="training mode"):
        sw.attack(model, x, method="grad_cam", steps=2, keep="logits", defence=4.0)
    assert_untouched(model, snap)
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG was used"
    assert_no_guided_leak()


def test_normalized_input_moves_in_pixel_space():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    model = make_cnn()
    xp = pixels(2)
    xn = (xp - m) / s
    r = sw.attack(model, xn, method="gradient", steps=3, normalization=(mean, std))
    moved = r.x * s + m
    assert float((moved - xp).abs().max()) <= EPS + BUDGET_TOL
    assert float(moved.min()) >= -BUDGET_TOL and float(moved.max()) <= 1 + BUDGET_TOL
    assert float(r.linf.max()) > 0.5 * EPS
    with pytest.raises(SaliencyError, match=r"pass normalization=\(mean, std\)"):
        sw.attack(model, xn, method="gradient", steps=1)


def test_progress_cancel_and_sweep():
    model = make_cnn()
    x = pixels(3)
    seen: list[tuple[int, int]] = []
    sw.attack(model, x, method="grad_cam", steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen and all(t == 3 * (3 + 3) for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == 18
    stop = threading.Event()

    def cancel_midway(done: int, total: int) -> None:
        if done >= total // 2:
            stop.set()

    with pytest.raises(sw.Cancelled):
        sw.attack(model, x, method="gradient", steps=4, progress=cancel_midway, cancel=stop)
    runs = sw.attack_sweep(model, x, method="grad_cam", steps=2, epsilons=(1 / 255, 4 / 255))
    assert [r.params["epsilon"] for r in runs] == [1 / 255, 4 / 255]
    for r in runs:
        assert float(r.linf.max()) <= r.params["epsilon"] + BUDGET_TOL
    text = repr(runs[0])
    assert text.startswith("AttackResult('grad_cam', untargeted") and "noise" in text


def test_attack_errors():
    model = make_cnn()
    x = pixels(2)
    cases = [({"kind": "sideways"}, "kind="), ({"keep": "nothing"}, "keep="),
             ({"epsilon": 0}, "epsilon must be"), ({"epsilon": 2.0}, "at most 1"),
             ({"steps": 0}, "steps must be"), ({"params": 3}, "params must be a dict"),
             ({"defence": -1.0}, "defence must be"), ({"beta": 0.0}, "beta must be"),
             ({"kind": "targeted", "target_map": torch.zeros(16, 16)}, "non-zero"),
             ({"kind": "targeted", "target_map": torch.ones(5, 5)}, r"must be \(16, 16\)"),
             ({"method": "gradiant"}, "did you mean 'gradient'"),
             ({"params": {"steps": 4}}, "unknown parameter 'steps'")]
    for kw, match in cases:
        with pytest.raises(SaliencyError, match=match):
            sw.attack(model, x, **{"method": "gradient", "steps": 1, **kw})
    with pytest.raises(SaliencyError, match="pixel values span"):
        sw.attack(model, x * 3, method="gradient", steps=1)
    with pytest.raises(SaliencyError, match="epsilons must be"):
        sw.attack_sweep(model, x, method="gradient", epsilons=0.1)
    with pytest.raises(SaliencyError, match="lacks the batch dimension"):
        sw.attack(model, x[0], method="gradient")


def test_redteam_figures_script_runs():
    # scripts/redteam_figures.py makes notebook 06's numbers; keep it working (0.6 s at a load
    # average of 2).
    from script_loader import load_script

    mod = load_script("redteam_figures")
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(2, seed=5)
    methods = {"gradient": {}, "grad_cam": {}}
    rows = mod.attack_table(model, data.x, methods, EPS, 1, 0)
    assert [r["name"] for r in rows] == ["gradient", "grad_cam"]
    assert [r["surrogate"] for r in rows] == [True, False] and all(r["kept"] == 1 for r in rows)
    assert len(mod.sweep_table(model, data.x, (1 / 255, 2 / 255), 1, 0)) == 2
    assert [r["name"] for r in mod.defence_table(model, data.x, (None, 2.0), EPS, 1, 0)] == \
        ["none", "softplus β=2"]
    boxes = mod.boxes(data.masks)
    assert bool((boxes | data.masks).eq(boxes).all()) and int(boxes.sum()) > int(data.masks.sum())
    agree = mod.agreement_table(model, data, methods)
    assert {(r["masks"], r["name"]) for r in agree} == {
        (m, n) for m in ("exact", "box") for n in methods}
    assert "| name |" in mod.markdown(rows, ["name", "kept"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attack_and_agreement_run_on_cuda():
    model = sw.demo.load_model("shapes", device="cuda")
    data = sw.demo.sample(4, seed=77)
    x = data.x.cuda()
    for method in ("gradient", "grad_cam"):
        r = sw.attack(model, x, method=method, steps=3, kind="targeted")
        assert r.x.device.type == "cuda" and r.attacked.values.device.type == "cuda"
        assert bool(r.kept.all()) and float((r.x - x).abs().max()) <= EPS + BUDGET_TOL
        with torch.no_grad():
            assert torch.equal(model(r.x).argmax(1).cpu() == model(x).argmax(1).cpu(), r.kept)
        assert r.shift["spearman"].device.type == "cpu" and r.target_mass["attacked"].numel() == 4
        agree = sw.agreement(r.attacked, data.masks.cuda())
        ref = sw.evaluate(model, x, r.attacked, metric="relevance_mass", masks=data.masks.cuda())
        assert torch.equal(agree["relevance_mass"].scores, ref.scores)
