"""Property-based tests (hypothesis): invariances every method must satisfy on any input.

reliability.md C4 §3, P1–P7. Float64 models and inputs unless a property is about dtypes; each
assert states its tolerance.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import saliency_widgets as sw

try:
    from .models import Lambda, bias_free_relu_cnn, fill_, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import Lambda, bias_free_relu_cnn, fill_, smooth_cnn

# Random inputs can leave every ReLU at a CAM layer dead for an example; the engine then warns
# that the map is blank. Guided backprop on the ReLU-free smooth nets warns that it equals the
# gradient. Both are expected here, so those warnings are not errors.
# (In a filterwarnings mark the last filter wins.)
pytestmark = pytest.mark.filterwarnings(
    "error::saliency_widgets.errors.SaliencyWarning",
    "ignore:.*map is blank:saliency_widgets.errors.SaliencyWarning",
    "ignore:guided backpropagation saw no ReLU:saliency_widgets.errors.SaliencyWarning")

F64 = torch.float64
K = 4  # classes of every test model

# Fast settings per method: the properties do not depend on the defaults' cost.
FAST = {
    "gradient": {},
    "input_x_gradient": {},
    "guided_backprop": {},
    "integrated_gradients": {"steps": 8},
    "smoothgrad": {"samples": 3},
    "grad_cam": {},
    "grad_cam_plusplus": {},
    "score_cam": {},
    "guided_grad_cam": {},
    "occlusion": {"window": 3, "stride": 2},
}
METHODS = tuple(FAST)
OUTPUT = {m["name"]: m["output"] for m in sw.list_methods()}
INPUT_SPACE = tuple(m for m in METHODS if OUTPUT[m] == "input")


def relaxed(n: int) -> settings:
    """``n`` examples (× $SW_HYPOTHESIS_SCALE for a longer local stress run), no deadline."""
    n *= int(os.environ.get("SW_HYPOTHESIS_SCALE", "1"))
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- strategies (reliability.md C4 §3) ---------------------------------------------------------
shapes = st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(4, 17),
                   st.integers(4, 17))
seeds = st.integers(0, 2 ** 31 - 1)


@st.composite
def inputs(draw, shape=shapes, dtype=np.float64):
    n, c, h, w = draw(shape)
    arr = draw(hnp.arrays(dtype, (n, c, h, w),
                          elements=st.floats(-3, 3, allow_nan=False, width=64
                                             if dtype == np.float64 else 32)))
    return torch.from_numpy(arr)


@st.composite
def targets(draw, n):
    return draw(st.lists(st.integers(0, K - 1), min_size=n, max_size=n))


def attr(model, x, t, method, **kw):
    return sw.attribute(model, x, t, method=method, **{**FAST[method], **kw})


def untie(x: torch.Tensor) -> torch.Tensor:
    """``x`` plus a small strictly increasing ramp.

    A constant image makes every max-pool window an exact tie, and convolutions over batches
    of different sizes round differently (4e-16 seen), which flips the pooled argmax and so
    the backward route: a property of the model, not of the method. The ramp removes exact
    ties (also along IG's path, where every point is a multiple of the image).
    """
    return x + 1e-3 * torch.arange(x.numel(), dtype=x.dtype).reshape(x.shape) / x.numel()


def close(actual, expected, atol, rtol=0.0):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


# --- P1: batch invariance ----------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@relaxed(10)
@given(data=st.data())
def test_p1_batch_invariance(method, data):
    """Example i of a batch gets the map it gets alone (float64, atol 1e-10)."""
    x = data.draw(inputs(st.tuples(st.integers(2, 3), st.sampled_from([1, 3]),
                                   st.integers(4, 11), st.integers(4, 11))))
    x = untie(x)
    t = data.draw(targets(x.shape[0]))
    model = bias_free_relu_cnn(c=x.shape[1], k=K, bias=True, seed=data.draw(seeds))
    # SmoothGrad's noise is drawn for the whole batch at once, so only noise=0 is comparable.
    kw = {"noise": 0.0} if method == "smoothgrad" else {}
    whole = attr(model, x, t, method, **kw)
    for i in range(x.shape[0]):
        alone = attr(model, x[i:i + 1], t[i], method, **kw)
        close(whole.values[i:i + 1], alone.values, atol=1e-10)
        assert whole.layer == alone.layer


# --- P2: chunk invariance ----------------------------------------------------------------------
CHUNKED = {
    "integrated_gradients": lambda d: {"steps": d.draw(st.integers(2, 24)),
                                       "rule": d.draw(st.sampled_from(
                                           ["gauss_legendre", "midpoint", "trapezoid"]))},
    "smoothgrad": lambda d: {"samples": d.draw(st.integers(1, 6)), "noise": 0.2,
                             "aggregation": d.draw(st.sampled_from(
                                 ["mean", "square", "variance"])),
                             "base": d.draw(st.sampled_from(
                                 ["gradient", "input_x_gradient", "guided_backprop"]))},
    "occlusion": lambda d: {"window": d.draw(st.integers(1, 4)),
                            "stride": d.draw(st.integers(1, 3)),
                            "baseline": d.draw(st.floats(-1, 1))},
    "score_cam": lambda d: {"relu": d.draw(st.booleans())},
}


@pytest.mark.parametrize("method", tuple(CHUNKED))
@relaxed(10)
@given(data=st.data())
def test_p2_chunk_invariance(method, data):
    """batch_size ∈ {1, 2, 7, None} gives the same map (float64, atol 1e-12, rtol 1e-12)."""
    x = data.draw(inputs(st.tuples(st.integers(1, 3), st.sampled_from([1, 3]),
                                   st.integers(4, 9), st.integers(4, 9))))
    x = untie(x)  # chunks of different sizes round differently (see untie)
    t = data.draw(targets(x.shape[0]))
    model = bias_free_relu_cnn(c=x.shape[1], k=K, bias=True, seed=data.draw(seeds))
    kw = CHUNKED[method](data)
    seed = data.draw(seeds)
    ref = sw.attribute(model, x, t, method=method, seed=seed, **kw)
    for bs in (1, 2, 7):
        other = sw.attribute(model, x, t, method=method, seed=seed, batch_size=bs, **kw)
        close(other.values, ref.values, atol=1e-12, rtol=1e-12)


# --- P3: linearity in the objective ------------------------------------------------------------
class Combined(nn.Module):
    """The inner model's logits plus one more: ``α·z[t1] + β·z[t2]``."""

    def __init__(self, inner: nn.Module, t1: int, t2: int, alpha: float, beta: float) -> None:
        super().__init__()
        self.inner, self.t1, self.t2, self.alpha, self.beta = inner, t1, t2, alpha, beta
        self.eval()

    def forward(self, x):
        z = self.inner(x)
        extra = self.alpha * z[:, self.t1] + self.beta * z[:, self.t2]
        return torch.cat([z, extra[:, None]], 1)


LINEAR = {
    "gradient": {},
    "input_x_gradient": {},
    "integrated_gradients": {"steps": 6, "baseline": -0.5},
    "occlusion": {"window": 2, "stride": 1, "baseline": 0.3},
    "smoothgrad": {"samples": 3, "noise": 0.1},
    "grad_cam": {"relu": False},
}


@pytest.mark.parametrize("method", tuple(LINEAR))
@relaxed(10)
@given(data=st.data())
def test_p3_linearity_in_the_objective(method, data):
    """attr(α·z₁ + β·z₂) == α·attr(z₁) + β·attr(z₂), and attr(t vs c) == attr(t) − attr(c)
    (float64, atol 1e-10)."""
    x = data.draw(inputs(st.tuples(st.integers(1, 2), st.sampled_from([1, 3]),
                                   st.integers(4, 9), st.integers(4, 9))))
    t1, t2 = data.draw(st.integers(0, K - 1)), data.draw(st.integers(0, K - 1))
    alpha, beta = data.draw(st.floats(-2, 2)), data.draw(st.floats(-2, 2))
    inner = bias_free_relu_cnn(c=x.shape[1], k=K, bias=True, seed=data.draw(seeds))
    kw = dict(method=method, seed=3, **LINEAR[method])
    if method == "grad_cam":
        kw["layer"] = "3"  # the second conv (before its ReLU): the same activations for all
    a1 = sw.attribute(inner, x, t1, **kw).values
    a2 = sw.attribute(inner, x, t2, **kw).values
    if method == "grad_cam":
        kw["layer"] = "inner.3"
    combined = sw.attribute(Combined(inner, t1, t2, alpha, beta), x, K, **kw).values
    close(combined, alpha * a1 + beta * a2, atol=1e-10)
    if method == "grad_cam":
        kw["layer"] = "3"
    diff = sw.attribute(inner, x, t1, contrast=t2, **kw).values
    close(diff, a1 - a2, atol=1e-10)


# --- P4: completeness of integrated gradients --------------------------------------------------
def smooth_mlp(c, h, w, act, seed):
    a = {"tanh": nn.Tanh, "softplus": nn.Softplus}[act]
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 8), a(), nn.Linear(8, 6), a(),
                          nn.Linear(6, K))
    return fill_(model, seed).to(F64).eval()


@relaxed(15)
@given(x=inputs(st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(4, 10),
                          st.integers(4, 10))),
       kind=st.sampled_from(["cnn", "mlp"]), act=st.sampled_from(["tanh", "softplus"]),
       seed=seeds, baseline=st.floats(-1, 1), data=st.data())
def test_p4_ig_completeness(x, kind, act, seed, baseline, data):
    """|Σ IG − Δf| ≤ 1e-3·|Δf| + 1e-5 at 256 steps; the gap does not grow with the steps
    (16 → 64 → 256, 10 % slack plus 1e-12 for rounding)."""
    n, c, h, w = x.shape
    model = (smooth_cnn(c=c, k=K, act=act, seed=seed) if kind == "cnn"
             else smooth_mlp(c, h, w, act, seed))
    t = data.draw(targets(n))
    with torch.no_grad():
        f = model(x)[range(n), t]
        f0 = model(torch.full_like(x, baseline))[range(n), t]
    delta = f - f0
    for rule in ("gauss_legendre", "midpoint"):
        gaps = []
        for steps in (16, 64, 256):
            a = sw.attribute(model, x, t, method="integrated_gradients", steps=steps, rule=rule,
                             baseline=baseline)
            gap = a.values.sum((1, 2, 3)) - delta  # computed here, not trusted from extras
            close(a.extras["completeness_gap"], gap, atol=1e-12)
            gaps.append(gap.abs())
        assert bool((gaps[2] <= 1e-3 * delta.abs() + 1e-5).all()), (rule, gaps[2], delta)
        for coarse, fine in zip(gaps, gaps[1:]):
            assert bool((fine <= 1.1 * coarse + 1e-12).all()), (rule, gaps)


# --- P5: a dummy input channel gets exactly zero -----------------------------------------------
@relaxed(15)
@given(x=inputs(st.tuples(st.integers(1, 2), st.sampled_from([2, 3]), st.integers(4, 9),
                          st.integers(4, 9))),
       seed=seeds, data=st.data())
def test_p5_dummy_channel_gets_zero(x, seed, data):
    """A model that zeroes channel k: every input-space method gives channel k exactly 0."""
    n, c = x.shape[:2]
    k = data.draw(st.integers(0, c - 1))
    mask = torch.ones(1, c, 1, 1, dtype=F64)
    mask[:, k] = 0
    inner = bias_free_relu_cnn(c=c, k=K, bias=True, seed=seed)
    model = Lambda(lambda m, xx: m(xx * mask), inner)
    t = data.draw(targets(n))
    cases = [(m, {}) for m in INPUT_SPACE] + [
        ("smoothgrad", {"base": "integrated_gradients", "steps": 4, "samples": 2}),
        ("smoothgrad", {"base": "input_x_gradient", "samples": 2})]
    for method, kw in cases:
        v = attr(model, x, t, method, **kw).values
        assert v.shape == x.shape
        assert bool((v[:, k] == 0).all()), (method, kw)  # exactly zero


# --- P6: shapes, dtypes, finiteness ------------------------------------------------------------
@relaxed(15)
@given(shape=st.tuples(st.integers(1, 2), st.sampled_from([1, 3]),
                       st.integers(2, 8).map(lambda v: 2 * v + 1),  # odd sizes 5–17
                       st.integers(4, 17)),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=seeds, data=st.data())
def test_p6_shapes_and_dtypes(shape, dtype, seed, data):
    """(B, C, H, W) in → (B, C, H, W) for input-space methods, (B, 1, H, W) for maps; the
    input's dtype; finite. Odd and H ≠ W sizes, 1 or 3 channels, default parameters."""
    n, c, h, w = shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    model = bias_free_relu_cnn(c=c, k=K, bias=True, dtype=dtype, seed=seed)
    method = data.draw(st.sampled_from(METHODS))
    # defaults, except cheaper sample/step counts
    kw = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8}}.get(method, {})
    a = sw.attribute(model, x, method=method, **kw)
    expected = (n, c, h, w) if OUTPUT[method] == "input" else (n, 1, h, w)
    assert tuple(a.values.shape) == expected, (method, a.values.shape)
    assert a.values.dtype == dtype
    assert bool(torch.isfinite(a.values).all())
    assert len(a.target) == n


@pytest.mark.parametrize("method", METHODS)
def test_p6_constant_input_is_finite(method):
    """A constant image (zero range: SmoothGrad's σ = 0, constant Score-CAM masks) is fine."""
    model = bias_free_relu_cnn(c=3, k=K, bias=True, seed=4)
    for value in (0.0, 0.7):
        x = torch.full((2, 3, 5, 7), value, dtype=F64)
        v = attr(model, x, [0, 1], method).values
        assert bool(torch.isfinite(v).all()), (method, value)


# --- P7: seeds ---------------------------------------------------------------------------------
@relaxed(10)
@given(x=inputs(st.tuples(st.integers(1, 2), st.sampled_from([1, 3]), st.integers(4, 8),
                          st.integers(4, 8))),
       seed=seeds, other=seeds, model_seed=seeds)
def test_p7_seed_determinism(x, seed, other, model_seed):
    """Same seed → bit-identical; another seed → a different SmoothGrad and uniform-baseline IG;
    the global torch RNG state is untouched by every method."""
    c = x.shape[1]
    model = smooth_cnn(c=c, k=K, seed=model_seed)
    stochastic = [("smoothgrad", {"samples": 2, "noise": 0.2}),
                  ("integrated_gradients", {"baseline": "uniform", "steps": 4,
                                            "normalization": ((0.5,), (0.25,))})]
    cases = [(m, FAST[m]) for m in METHODS] + stochastic
    for method, kw in cases:
        state = torch.get_rng_state()
        first = sw.attribute(model, x, method=method, seed=seed, **kw)
        assert torch.equal(torch.get_rng_state(), state), method  # global RNG untouched
        again = sw.attribute(model, x, method=method, seed=seed, **kw)
        assert torch.equal(first.values, again.values), method  # bit-identical
        assert first.seed == seed
    if other != seed and float((x.flatten(1).amax(1) - x.flatten(1).amin(1)).max()) > 0.1:
        for method, kw in stochastic:  # (an input with no range gets no SmoothGrad noise)
            a = sw.attribute(model, x, method=method, seed=seed, **kw).values
            b = sw.attribute(model, x, method=method, seed=other, **kw).values
            assert not torch.equal(a, b), method
