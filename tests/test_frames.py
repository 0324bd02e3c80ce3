"""The engine's step-by-step views: attribution paths (IG, SmoothGrad, occlusion), deletion and
insertion curves with their pixel order, trivial maps, and the randomization cascade's maps.

Each frame is checked against an independent computation: the path's last running map against
``sw.attribute`` (exact), IG's frames against the quadrature written out by hand and the gradient
at the node, a curve's images against the model's score (the metric's own curve), the cascade's
maps against re-explanations of randomized copies built here. Float64 models, 1e-12 unless said.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets import api
from saliency_widgets.methods.integrated_gradients import quadrature
from saliency_widgets.metrics._curve import ranks_of, removal_order
from saliency_widgets.model.randomize import Randomizer, execution_order, parameter_blocks
from saliency_widgets.trivial import edge_map, random_map

from models import bias_free_relu_cnn, smooth_cnn

NORM = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def model():
    return smooth_cnn(c=3, k=4, width=4, seed=3)


@pytest.fixture(scope="module")
def x():
    return torch.rand((1, 3, 12, 12), generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64)


@pytest.mark.parametrize("rule", ["gauss_legendre", "trapezoid"])
def test_ig_path_frames_are_the_quadrature_node_by_node(model, x, rule):
    steps = 6
    path = api.attribution_path(model, x, 1, method="integrated_gradients", steps=steps,
                                rule=rule, baseline=0.25)
    alphas, weights = quadrature(rule, steps)
    assert len(path) == steps
    np.testing.assert_allclose(path.positions.numpy(), alphas, rtol=0, atol=1e-15)
    base = torch.full_like(x, 0.25)
    running = torch.zeros_like(x)
    for k in range(steps):
        f = path.frame(k)
        point = base + float(alphas[k]) * (x - base)
        torch.testing.assert_close(f.input, point[0], rtol=0, atol=1e-12)
        grad = sw.attribute(model, point, 1, method="gradient").values[0]
        torch.testing.assert_close(f.step, grad, rtol=1e-12, atol=1e-12)
        with torch.no_grad():
            assert f.score == pytest.approx(float(model(point)[0, 1]), abs=1e-12)
        assert f.weight == pytest.approx(weights[k], abs=1e-15)
        running = running + float(weights[k]) * grad * (x - base)[0]
        torch.testing.assert_close(f.running, running[0], rtol=1e-10, atol=1e-12)
    ref = sw.attribute(model, x, 1, method="integrated_gradients", steps=steps, rule=rule,
                       baseline=0.25)
    assert torch.equal(path.frame(-1).running, ref.values[0])  # the method's own arithmetic
    assert torch.equal(path.attribution.values, ref.values)
    # completeness at α = 1: Σ running sum = f(x) − f(x′) up to the recorded gap
    gap = float(ref.extras["completeness_gap"][0])
    with torch.no_grad():
        change = float(model(x)[0, 1] - model(base)[0, 1])
    assert float(path.frame(-1).running.sum()) - change == pytest.approx(gap, abs=1e-12)


@pytest.mark.parametrize("aggregation", ["mean", "square", "variance"])
def test_smoothgrad_path_is_one_noisy_sample_at_a_time(model, x, aggregation):
    n = 5
    path = api.attribution_path(model, x, 2, method="smoothgrad", samples=n, noise=0.2,
                                aggregation=aggregation, seed=4)
    ref = sw.attribute(model, x, 2, method="smoothgrad", samples=n, noise=0.2,
                       aggregation=aggregation, seed=4)
    assert len(path) == n and path.positions.tolist() == [1, 2, 3, 4, 5]
    assert torch.equal(path.frame(n - 1).running, ref.values[0])
    maps = []
    for k in range(n):
        f = path.frame(k)
        # each sample's map is the base method at that sample's noisy input
        grad = sw.attribute(model, f.input[None], 2, method="gradient").values[0]
        torch.testing.assert_close(f.step, grad, rtol=1e-12, atol=1e-12)
        maps.append(f.step)
        stack = torch.stack(maps)
        expect = {"mean": stack.mean(0), "square": (stack ** 2).mean(0),
                  "variance": stack.var(0, unbiased=False)}[aggregation]
        torch.testing.assert_close(f.running, expect, rtol=1e-9, atol=1e-12)
    # the noise is the method's: σ = 0.2 × the image's range, one draw per sample
    noise = torch.stack([path.frame(k).input - x[0] for k in range(n)])
    assert float(noise.std()) == pytest.approx(0.2 * float(x.max() - x.min()), rel=0.2)


def test_occlusion_path_slides_the_window_and_records_the_drop():
    model = bias_free_relu_cnn(c=3, k=3, seed=2)
    x = torch.rand((1, 3, 10, 10), generator=torch.Generator().manual_seed(5),
                   dtype=torch.float64)
    path = api.attribution_path(model, x, 0, method="occlusion", window=4, stride=3,
                                baseline=0.0)
    ref = sw.attribute(model, x, 0, method="occlusion", window=4, stride=3, baseline=0.0)
    assert len(path) == 9  # (10 − 4) // 3 + 1 = 3 windows a side
    assert torch.equal(path.frame(-1).running, ref.values[0])
    with torch.no_grad():
        f_x = float(model(x)[0, 0])
    total = torch.zeros(10, 10, dtype=torch.float64)
    count = torch.zeros(10, 10, dtype=torch.float64)
    for k in range(len(path)):
        f = path.frame(k)
        y0, x0, h, w = f.window
        assert (y0, x0, h, w) == ((k // 3) * 3, (k % 3) * 3, 4, 4)
        occluded = x.clone()
        occluded[..., y0:y0 + h, x0:x0 + w] = 0.0
        torch.testing.assert_close(f.input, occluded[0], rtol=0, atol=0)
        with torch.no_grad():
            score = float(model(occluded)[0, 0])
        assert f.score == pytest.approx(score, abs=1e-12)
        drop = f_x - score
        assert float(f.step[0, y0, x0]) == pytest.approx(drop, abs=1e-12)
        assert int((f.step != 0).sum()) <= h * w
        total[y0:y0 + h, x0:x0 + w] += drop
        count[y0:y0 + h, x0:x0 + w] += 1
        expect = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
        torch.testing.assert_close(f.running[0], expect, rtol=1e-12, atol=1e-12)


def test_attribution_path_refuses_other_methods_and_batches(model, x):
    with pytest.raises(sw.SaliencyError, match="steps through integrated_gradients"):
        api.attribution_path(model, x, method="gradient")
    with pytest.raises(sw.SaliencyError, match="did you mean 'occlusion'"):
        api.attribution_path(model, x, method="oclusion")
    with pytest.raises(sw.SaliencyError, match=r"x\[i:i \+ 1\]"):
        api.attribution_path(model, x.expand(2, -1, -1, -1), method="occlusion")
    path = api.attribution_path(model, x, method="integrated_gradients", steps=3)
    with pytest.raises(sw.SaliencyError, match="valid 0–2"):
        path.frame(3)


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_removal_curve_images_are_what_the_metric_scored(model, x, metric):
    attr = sw.attribute(model, x, 3, method="gradient", normalization=NORM)
    curve = api.removal_curve(model, x, attr, metric=metric, steps=7)
    ref = sw.evaluate(model, x, attr, metric=metric, steps=7)
    torch.testing.assert_close(curve.result.curve, ref.curve, rtol=0, atol=0)
    assert torch.equal(curve.ranks, ranks_of(removal_order(attr.values)).view(1, 12, 12))
    assert curve.counts.tolist() == [round(k * 144 / 7) for k in range(8)]
    for k in range(8):
        img = curve.image(k)
        with torch.no_grad():
            score = float(model(img)[0, 3])
        assert score == pytest.approx(float(ref.curve[0, k]), abs=1e-12)
        moved = (img != (x if metric == "deletion" else curve.substrate)).any(1)
        assert int(moved.sum()) <= int(curve.counts[k])
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in NORM)
    if metric == "deletion":  # black pixels, in the model's input space
        torch.testing.assert_close(curve.substrate, ((0 - mean) / std).expand_as(x))
    else:  # a blurred copy of the image
        assert not torch.equal(curve.substrate, x)
        assert float((curve.substrate - x).abs().mean()) < float(x.std())


def test_trivial_maps_random_is_fixed_and_edge_is_sobel():
    x = torch.zeros((2, 3, 8, 8), dtype=torch.float64)
    x[..., 4:] = 1.0  # a vertical step between columns 3 and 4
    r = random_map(x, seed=7)
    assert r.shape == (2, 1, 8, 8) and torch.equal(r[0], r[1])
    assert torch.equal(r, random_map(torch.rand_like(x), seed=7))  # ignores the input
    assert not torch.equal(r, random_map(x, seed=8))
    assert 0 <= float(r.min()) and float(r.max()) < 1
    e = edge_map(x)
    assert e.shape == (2, 1, 8, 8)
    # Sobel x-kernel on a unit step: 4 on the two columns beside it (×3 channels), 0 elsewhere
    expect = torch.zeros(8, 8, dtype=torch.float64)
    expect[:, 3:5] = 12.0
    torch.testing.assert_close(e[0, 0], expect, rtol=0, atol=1e-12)
    # with a normalization, edges are taken in pixel space
    norm = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    torch.testing.assert_close(edge_map((x - 0.5) / 0.5, norm), e, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", ["deletion", "infidelity", "max_sensitivity", "sparseness"])
def test_evaluate_trivial_is_evaluate_of_the_trivial_map(model, x, metric):
    for kind in ("random", "edge"):
        got = api.evaluate_trivial(model, x, kind, metric=metric, target=0, seed=3,
                                   normalization=NORM)
        values = api.trivial_map(kind, x, normalization=NORM, seed=3)
        ref = sw.evaluate(model, x, values, metric=metric, target=0, seed=3,
                          normalization=NORM,
                          explain=lambda net, xb, kind=kind: api.trivial_map(
                              kind, xb, normalization=NORM, seed=3))
        torch.testing.assert_close(got.scores, ref.scores, rtol=0, atol=0)
    # a fixed random map ignores the input: perfectly stable
    stable = api.evaluate_trivial(model, x, "random", metric="max_sensitivity", target=0)
    assert float(stable.scores[0]) == 0.0


def test_randomization_maps_are_the_cascades_re_explanations():
    model = bias_free_relu_cnn(c=3, k=3, seed=1)
    x = torch.rand((1, 3, 10, 10), generator=torch.Generator().manual_seed(2),
                   dtype=torch.float64)
    attr = sw.attribute(model, x, 1, method="gradient")
    result, maps = api.randomization_maps(model, x, attr, seed=5)
    ref = sw.evaluate(model, x, attr, metric="model_randomization", seed=5)
    torch.testing.assert_close(result.curve, ref.curve, rtol=0, atol=1e-12)
    names = parameter_blocks(model)
    ran, _ = execution_order(model, names, lambda net: net(x))
    top_down = ran[::-1]
    assert len(maps) == len(top_down) == result.curve.shape[1]
    seeds = torch.randint(0, 2 ** 62, (len(top_down),),
                          generator=torch.Generator().manual_seed(5)).tolist()
    randomizer = Randomizer(model, dict(zip(top_down, seeds)))
    for k, got in enumerate(maps):
        copy = randomizer.copy(top_down[:k + 1])
        expect = sw.attribute(copy, x, 1, method="gradient").values
        torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)
        assert not torch.equal(got, attr.values)
    assert result.extras["blocks"] == [top_down[:k + 1] for k in range(len(top_down))]
