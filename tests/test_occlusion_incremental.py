"""Incremental occlusion (``incremental=True``) equals plain occlusion, on every architecture.

Tolerances are relative to the largest |logit| of the input: a drop ``f(x) − f(x_occluded)`` is
the difference of two logit-sized numbers, so its rounding error scales with the logits, not with
the (often much smaller) drop. 1e-5 in float32, 1e-10 in float64. Plain occlusion in float32 is
itself ~1e-5 *of the map's maximum* away from float64 on resnet18, so comparing maps relative to
their own maximum would test rounding noise, not the method.

Two levels: the engine (``Occluder`` with ``crossover=1.0``, i.e. every operation that has a
patch rule is patched) against the model run on each occluded image; and the public API
(``sw.attribute``) against the plain path, with the record of which path ran.
"""

from __future__ import annotations

import functools
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import saliency_widgets as sw
from saliency_widgets.model import patches as P
from saliency_widgets.model.copy import structural_copy
from saliency_widgets.model.graph import Window
from saliency_widgets.model.incremental import Occluder, _window_region

try:
    from .test_contract import assert_untouched, make_cnn, snapshot
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from test_contract import assert_untouched, make_cnn, snapshot

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


# --- models ------------------------------------------------------------------------------------
def _seeded(model: nn.Module, seed: int, dtype: torch.dtype) -> nn.Module:
    """Deterministic weights and non-trivial batch-norm statistics, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / max(1, p[0].numel()) ** 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.6 - 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.to(dtype).eval()


def conv_stack(dtype: torch.dtype = torch.float64) -> nn.Module:
    """Every window rule: padding, ceil-mode pools, stride with dilation and groups, a strided
    1×1 convolution (which skips positions), 'same', asymmetric kernel and stride; avg pooling
    that does not count its padding."""
    return _seeded(nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.1),
        nn.Conv2d(6, 6, 1, stride=(2, 1)),
        nn.MaxPool2d(3, (1, 2), 1, ceil_mode=True),
        nn.Conv2d(6, 8, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(inplace=True),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(8, 8, 3, padding="same"), nn.Hardswish(),
        nn.Conv2d(8, 8, (1, 3), stride=(1, 2), padding=(0, 1)), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)), 0, dtype)


class Branchy(nn.Module):
    """Residual sum, channel concatenation, functional in-place ReLU, arithmetic with
    constants and a parameter; the spatial mean at the end has no patch rule."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 4, 1)
        self.down = nn.Conv2d(12, 8, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.shift = nn.Parameter(torch.zeros(1, 8, 1, 1))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.stem(x)))
        r = self.a(h) + h
        r = r * 0.5 - 0.1
        c = torch.cat([r, torch.sigmoid(self.b(h))], 1)
        d = self.pool(F.relu(self.down(c), inplace=True)) + self.shift
        return self.head(d.mean((2, 3)))


class WithUnknown(nn.Module):
    """A module without a patch rule (GroupNorm: statistics over the whole map) mid-network."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(torch.relu(self.gn(self.c1(x))))
        return self.head(h.amax((2, 3)))


@functools.cache  # built once (vgg11: 2 s); the library never changes a model
def torchvision_model(name: str, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return getattr(torchvision.models, name)(weights=None, num_classes=10).eval()


def occluded(x1: torch.Tensor, base: torch.Tensor, origins: torch.Tensor,
             window: tuple[int, int]) -> torch.Tensor:
    out = x1.repeat(len(origins), 1, 1, 1)
    for i, (y, x) in enumerate(origins.tolist()):
        out[i, :, y:y + window[0], x:x + window[1]] = base[0, :, y:y + window[0], x:x + window[1]]
    return out


def grid(h: int, w: int, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    ys = torch.arange((h - window[0]) // stride[0] + 1) * stride[0]
    xs = torch.arange((w - window[1]) // stride[1] + 1) * stride[1]
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def engine_check(model: nn.Module, x1: torch.Tensor, window: tuple[int, int],
                 stride: tuple[int, int], chunk: int = 16) -> Occluder:
    """Every window's logits from the Occluder (everything patchable patched) against the model
    run on the occluded image; returns the Occluder for checks of its plan."""
    origins = grid(*x1.shape[2:], window, stride)
    g = torch.Generator().manual_seed(5)
    base = torch.randn(x1.shape, generator=g, dtype=torch.float64).to(x1.dtype)
    occ = Occluder(structural_copy(model), x1, window, origins, crossover=1.0)
    with torch.no_grad():
        scale = float(model(x1).abs().max())
        torch.testing.assert_close(occ.prime(x1, base, 0), model(x1), rtol=0,
                                   atol=TOL[x1.dtype] * scale)
        for i in range(0, len(origins), chunk):
            index = torch.arange(i, min(len(origins), i + chunk))
            want = model(occluded(x1, base, origins[index], window))
            torch.testing.assert_close(occ(index), want, rtol=0, atol=TOL[x1.dtype] * scale)
    return occ


def ends(occ: Occluder) -> list[str]:
    return occ.summary()["region_end"]


# --- the engine, everything patchable patched ---------------------------------------------------
def test_engine_conv_stack_every_window_rule_float64():
    x1 = torch.randn(1, 3, 29, 23, generator=torch.Generator().manual_seed(0),
                     dtype=torch.float64)
    occ = engine_check(conv_stack(), x1, (5, 4), (3, 4))
    assert ends(occ) == ["12 (no patch rule for AdaptiveAvgPool2d)"]
    assert occ.summary()["patched_ops"] == 12
    reads = [r for i in occ.nodes.values() if i.mode == "patch" for r in i.reads if not r.aligned]
    assert any(r.crop is not None for r in reads), "no input box stuck out of its read window"
    assert any(r.fill == float("-inf") for r in reads)  # the max pool pads with −inf


def test_engine_residual_concat_and_constants_float64():
    x1 = torch.randn(1, 3, 19, 21, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64)
    occ = engine_check(_seeded(Branchy(), 1, torch.float64), x1, (3, 3), (2, 5))
    assert ends(occ) == ["mean (its output is not a (B, C, H, W) tensor)"]
    kinds = {type(i.rule).__name__ for n, i in occ.nodes.items()
             if i.mode == "patch" and n is not occ.input}
    assert kinds == {"Window", "Pointwise", "Merge"}


@pytest.mark.parametrize("name,size,window,stride,end", [
    ("resnet18", (37, 32), (7, 6), (6, 5), "avgpool (no patch rule for AdaptiveAvgPool2d)"),
    # VGG-11: ~4 s here, most of it building the model once (its 25088×4096 classifier)
    ("vgg11", (32, 32), (8, 8), (8, 8), "avgpool (no patch rule for AdaptiveAvgPool2d)"),
    ("mobilenet_v3_small", (35, 32), (7, 7), (7, 5),
     "features.1.block.1.avgpool (no patch rule for AdaptiveAvgPool2d)"),
    ("densenet121", (32, 32), (8, 8), (8, 8), "adaptive_avg_pool2d (no patch rule for this "
                                               "operation)"),
])
def test_engine_torchvision_float32(name, size, window, stride, end):
    model = torchvision_model(name)
    x1 = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    occ = engine_check(model, x1, window, stride)
    assert end in ends(occ)


def test_window_region_matches_brute_force():
    """The positions a region can change, per axis, against perturbing a real convolution:
    a superset, and exact without dilation (dilation may skip positions inside the range)."""
    g = torch.Generator().manual_seed(3)
    for k, s, p, d, ceil in [(3, 1, 1, 1, False), (3, 2, 1, 1, False), (7, 2, 3, 1, False),
                             (1, 2, 0, 1, False), (3, 2, 2, 2, False), (3, 2, 1, 1, True)]:
        n = 17
        rule = Window((k, 1), (s, 1), (p, 0), (d, 1), 0.0, lambda t: t)

        def conv(t, k=k, s=s, p=p, d=d, ceil=ceil):
            if ceil:
                return F.max_pool2d(t, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=True)
            return F.conv2d(t, torch.ones(1, 1, k, 1, dtype=t.dtype), None, (s, 1), (p, 0),
                            (d, 1))
        base = torch.rand(1, 1, n, 1, generator=g, dtype=torch.float64) + 1
        out_n = conv(base).shape[2]
        for a in range(n):
            for b in range(a + 1, min(n, a + 4) + 1):
                bumped = base.clone()
                bumped[0, 0, a:b] += 10
                changed = (conv(bumped) != conv(base))[0, 0, :, 0].nonzero()[:, 0]
                region = torch.tensor([[a, b, 0, 1]])
                lo, hi = _window_region(region, rule, (out_n, 1))[0, :2].tolist()
                if len(changed):
                    assert lo <= int(changed.min()) and int(changed.max()) < hi
                    if d == 1:
                        assert (lo, hi) == (int(changed.min()), int(changed.max()) + 1)
                elif d == 1:
                    assert lo >= hi


def test_overlay_and_materialize_place_each_patch_at_its_own_offset():
    win = torch.zeros(2, 1, 3, 4)
    patch = torch.arange(1.0, 9.0).view(2, 1, 2, 2)
    P.overlay(win, patch, torch.tensor([[0, 2], [1, 1]]))
    assert win[0, 0].tolist() == [[0, 0, 1, 2], [0, 0, 3, 4], [0, 0, 0, 0]]
    assert win[1, 0].tolist() == [[0, 0, 0, 0], [0, 5, 6, 0], [0, 7, 8, 0]]
    cache = torch.full((1, 1, 3, 4), -1.0)
    full = P.materialize(cache, patch, torch.tensor([[0, 2], [1, 1]]))
    assert torch.equal(full, torch.where(win != 0, win, cache))
    assert cache.eq(-1).all(), "the cache was written"


# --- the public API against the plain path ----------------------------------------------------
def api_pair(model, x, **kw):
    inc = sw.attribute(model, x, method="occlusion", incremental=True, **kw)
    plain = sw.attribute(model, x, method="occlusion", incremental=False, **kw)
    with torch.no_grad():
        scale = float(model(x).abs().max())
    assert inc.extras["occlusion_path"] == "incremental"
    assert plain.extras["occlusion_path"] == "plain"
    assert inc.params["incremental"] is True and plain.params["incremental"] is False
    torch.testing.assert_close(inc.values, plain.values, rtol=0, atol=TOL[x.dtype] * scale)
    return inc, plain


@pytest.mark.parametrize("model_fn", [conv_stack, lambda dt: _seeded(Branchy(), 1, dt)],
                         ids=["conv_stack", "branchy"])
def test_api_equals_plain_float64_batch_contrast_borders(model_fn):
    """Odd sizes, a stride that does not divide (uncovered pixels), windows on every border,
    a batch of 3 with per-image targets and contrasts, a per-image baseline."""
    x = torch.randn(3, 3, 29, 23, generator=torch.Generator().manual_seed(4),
                    dtype=torch.float64)
    inc, plain = api_pair(model_fn(torch.float64), x, window=(5, 4), stride=(3, 4),
                          target=[0, 1, 4], contrast=[2, 2, 0], baseline="mean",
                          normalization=((0.5,), (0.2,)))
    assert inc.extras["uncovered_pixels"] == plain.extras["uncovered_pixels"] > 0
    assert inc.extras["incremental_patched_ops"] > 0
    assert int(torch.count_nonzero(inc.values)) > 0.5 * inc.values.numel()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vgg11", "densenet121"])
def test_api_equals_plain_torchvision_float32(name):
    model = torchvision_model(name)
    x = torch.randn(2, 3, 36, 33, generator=torch.Generator().manual_seed(6))
    inc, _ = api_pair(model, x, window=9, stride=(9, 8), target=[1, 2], contrast=[3, 1],
                      baseline=0.5)
    assert inc.extras["incremental_region_end"], "the record says where patching ended"
    # At this size the cost model patches nothing of DenseNet (each concatenation re-reads every
    # earlier map); the engine test above patches all of it.
    assert inc.extras["incremental_patched_ops"] > 0 or name == "densenet121"


def test_api_equals_plain_with_gaps_between_windows():
    x = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(7),
                    dtype=torch.float64)
    api_pair(conv_stack(), x, window=3, stride=5, target=[0, 1])


def test_unknown_module_ends_the_region_and_stays_exact():
    model = _seeded(WithUnknown(), 2, torch.float64)
    x = torch.randn(2, 3, 20, 18, generator=torch.Generator().manual_seed(8),
                    dtype=torch.float64)
    api_pair(model, x, window=4, stride=3, target=[0, 3])
    occ = engine_check(model, x[:1], (4, 4), (3, 3))
    assert ends(occ) == ["gn (no patch rule for GroupNorm)"]


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if h.sum() > 0:  # control flow on values: torch.fx cannot record it
            h = -h
        return self.head(h.mean((2, 3)))


class TracesDifferently(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.conv(x).mean((2, 3)))
        # Python that sees the tracer: the recorded graph is not what forward computes
        return -h if torch.fx._symbolic_trace.is_fx_tracing() else h


class InPlaceShared(nn.Module):
    """An in-place ReLU (``inplace`` passed by position) on a map that is also read later:
    eagerly the later read sees the ReLU'd values, which out-of-place patches would not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        r = F.relu(h, True)
        return self.head((r + h).mean((2, 3)))


@pytest.mark.parametrize("make,reason", [
    (DataDependent, "could not trace"),
    (TracesDifferently, "logits differ from the model's"),
    (lambda: _hooked(), "forward hooks"),
    (InPlaceShared, "in-place operation 'relu'"),
])
def test_fallback_to_plain_is_recorded_and_identical(make, reason):
    model = _seeded(make(), 3, torch.float64)
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(9),
                    dtype=torch.float64)
    with pytest.warns(sw.SaliencyWarning, match="incremental evaluation is not possible"):
        inc = sw.attribute(model, x, method="occlusion", incremental=True, window=3)
    plain = sw.attribute(model, x, method="occlusion", incremental=False, window=3)
    assert inc.extras["occlusion_path"] == "plain"
    assert reason in inc.extras["incremental_reason"]
    assert inc.params["incremental"] is False
    assert torch.equal(inc.values, plain.values)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.SaliencyWarning)  # "auto" falls back silently
        auto = sw.attribute(model, x, method="occlusion", window=3)
    assert auto.extras["occlusion_path"] == "plain" and torch.equal(auto.values, plain.values)


def _hooked() -> nn.Module:
    model = conv_stack()
    model[4].register_forward_hook(lambda m, i, o: o * 2)
    return model


# --- "auto" ------------------------------------------------------------------------------------
def test_auto_picks_incremental_where_modelled_faster_and_plain_where_not():
    big = _seeded(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)),
                  4, torch.float32)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(10))
    auto = sw.attribute(big, x, method="occlusion", window=8, stride=8)
    assert auto.extras["occlusion_path"] == "incremental"
    assert auto.params["incremental"] is True
    assert auto.extras["incremental_reason"].startswith("auto: modelled speed-up")
    assert auto.extras["incremental_modelled_speedup"] >= 1.3
    assert auto.extras["incremental_flop_ratio"] > 10
    plain = sw.attribute(big, x, method="occlusion", window=8, stride=8, incremental=False)
    with torch.no_grad():
        scale = float(big(x).abs().max())
    torch.testing.assert_close(auto.values, plain.values, rtol=0, atol=1e-5 * scale)
    tiny = sw.attribute(make_cnn(), torch.randn(1, 3, 16, 16), method="occlusion", window=4)
    assert tiny.extras["occlusion_path"] == "plain" and tiny.params["incremental"] is False
    assert "below" in tiny.extras["incremental_reason"]
    # replaying the record reproduces the path
    again = sw.attribute(big, x, method="occlusion", **dict(auto.params))
    assert torch.equal(again.values, auto.values)


def test_cost_model_patches_nothing_where_boxes_cover_every_map():
    """A window as large as the image changes everything: patching only adds gathers, so the
    cost model's crossover is 0 (nothing patched) and the modelled speed-up is below 1."""
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(16),
                    dtype=torch.float64)
    attr = sw.attribute(conv_stack(), x, method="occlusion", incremental=True, window=12)
    assert attr.extras["incremental_crossover"] == 0.0
    assert attr.extras["incremental_patched_ops"] == 0
    assert attr.extras["incremental_modelled_speedup"] < 1
    plain = sw.attribute(conv_stack(), x, method="occlusion", incremental=False, window=12)
    torch.testing.assert_close(attr.values, plain.values, rtol=0, atol=1e-10)


def test_incremental_is_validated():
    with pytest.raises(sw.SaliencyError, match="incremental"):
        sw.attribute(conv_stack(), torch.zeros(1, 3, 8, 8, dtype=torch.float64),
                     method="occlusion", incremental="yes")


# --- the contract, on the incremental path -------------------------------------------------------
def test_model_untouched_deterministic_and_chunk_independent():
    model = conv_stack(torch.float32)
    model[1].register_buffer("extra", torch.ones(1))  # an unrelated buffer stays as it is
    x = torch.randn(2, 3, 21, 19, generator=torch.Generator().manual_seed(11))
    snap = snapshot(model)
    kw = dict(method="occlusion", incremental=True, window=4, stride=3, target=[1, 4])
    runs = [sw.attribute(model, x, batch_size=bs, **kw) for bs in (None, 1, 7, None)]
    assert_untouched(model, snap)
    assert all(r.extras["occlusion_path"] == "incremental" for r in runs)
    assert runs[0].extras["incremental_patched_ops"] == 12  # every operation with a rule
    assert torch.equal(runs[0].values, runs[3].values), "not deterministic"
    with torch.no_grad():
        scale = float(model(x).abs().max())
    for other in runs[1:3]:
        torch.testing.assert_close(other.values, runs[0].values, rtol=0, atol=1e-5 * scale)
    # batch independence: each image alone gives its row of the batch
    for i, t in enumerate([1, 4]):
        alone = sw.attribute(model, x[i:i + 1], method="occlusion", incremental=True, window=4,
                             stride=3, target=t)
        torch.testing.assert_close(alone.values, runs[0].values[i:i + 1], rtol=0,
                                   atol=1e-5 * scale)


def test_self_contrast_is_exactly_zero():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(12),
                    dtype=torch.float64)
    attr = sw.attribute(conv_stack(), x, method="occlusion", incremental=True, window=4,
                        target=[1, 2], contrast=[1, 2])
    assert attr.extras["occlusion_path"] == "incremental"
    assert attr.extras["incremental_patched_ops"] == 12
    assert int(torch.count_nonzero(attr.values)) == 0


def test_cancel_and_progress():
    model = conv_stack(torch.float32)
    x = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(13))
    snap = snapshot(model)
    cancel, reports = threading.Event(), []

    def progress(done, total):
        reports.append((done, total))
        if len(reports) == 2:
            cancel.set()

    with pytest.raises(sw.Cancelled):
        sw.attribute(model, x, method="occlusion", incremental=True, window=4, batch_size=8,
                     progress=progress, cancel=cancel)
    assert len(reports) == 2 and reports[-1][0] < reports[-1][1]
    assert_untouched(model, snap)
    reports.clear()
    sw.attribute(model, x, method="occlusion", incremental=True, window=4, batch_size=8,
                 progress=lambda d, t: reports.append((d, t)))
    assert reports[-1][0] == reports[-1][1] == 2 * 81
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_tracing_leaves_other_threads_alone():
    """torch.fx replaces nn.Module.__call__ for the whole process while it traces; a model
    used in another thread at that moment must run normally, untraced."""
    model = make_cnn()
    user = make_cnn()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(14))
    xt = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(15),
                     requires_grad=True)
    ref = user(xt)
    (ref_g,) = torch.autograd.grad(ref[:, 0].sum(), xt)
    main = threading.get_ident()
    ran, errors, stop = [0], [], threading.Event()
    tick = threading.Condition()

    def worker():
        try:
            while not stop.is_set():
                out = user(xt)
                (g,) = torch.autograd.grad(out[:, 0].sum(), xt)
                torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
                torch.testing.assert_close(g, ref_g, rtol=0, atol=1e-6)
                with tick:
                    ran[0] += 1
                    tick.notify_all()
        except BaseException as err:
            errors.append(err)
            with tick:
                tick.notify_all()

    def rendezvous():  # called inside forward, so also while fx traces our copy
        if threading.get_ident() == main:
            with tick:
                start = ran[0]
                tick.wait_for(lambda: ran[0] > start or errors or stop.is_set(), timeout=10)

    model.rendezvous = rendezvous
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        attr = sw.attribute(model, x, method="occlusion", incremental=True, window=4)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert ran[0] >= 2
    assert attr.extras["occlusion_path"] == "incremental"


def test_planning_installs_no_global_hooks():
    """Counting FLOPs must not use FlopCounterMode: its module tracker registers global module
    hooks, which run in every thread (another thread's backward then fails). A watcher thread
    looks at the global hook tables all the time the plan is built."""
    from torch.nn.modules import module as M
    tables = (M._global_forward_pre_hooks, M._global_forward_hooks)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if any(len(t) for t in tables):
                seen.append(True)

    thread = threading.Thread(target=watch, daemon=True)
    model = torchvision_model("resnet18")
    x1 = torch.randn(1, 3, 32, 32)
    thread.start()
    try:
        for _ in range(3):
            Occluder(structural_copy(model), x1, (4, 4), grid(32, 32, (4, 4), (4, 4)))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not seen
