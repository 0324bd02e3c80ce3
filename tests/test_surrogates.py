"""LIME and KernelSHAP over image segments: exactness, efficiency, peers, segments, contract.

Everything runs in float64 on tiny models. Tolerances are stated at each assert:

* a model that is linear in the segments (a linear model, segment-constant perturbations) is
  recovered exactly by both methods: per-segment values ``Σ_segment w⊙(x − baseline)`` to 1e-8
  (measured ~1e-15), while Captum's default Lime (``SkLearnLasso(alpha=0.01)``) is off by more
  than 1e-3 on the same problem (measured ~0.08 on values of size ~0.5);
* KernelSHAP's values add up to ``f(x) − f(baseline)`` on a nonlinear CNN to 1e-8 (measured
  ~1e-16), and agree with Captum's KernelShap given the same feature mask;
* the solves themselves are checked against independent reference solves (numpy / sklearn) of
  the same coalitions, rebuilt from the seed.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError
from saliency_widgets.methods._segments import grid_labels
from saliency_widgets.methods.kernel_shap import shapley_coalitions
from saliency_widgets.methods.lime import lime_coalitions, lime_kernel

try:
    from .models import bias_free_relu_cnn, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, linear_model, smooth_cnn

F64 = torch.float64
SURROGATES = ("lime", "kernel_shap")
C, H, W, K = 2, 17, 23, 3  # odd sizes: the 8×8 grid has cells of 2–3 px a side


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64)


def per_segment(maps: torch.Tensor, labels: torch.Tensor, m: int) -> torch.Tensor:
    """``(B, m)``: sum of ``maps (B, H, W)`` over each segment of ``labels (B or 1, H, W)``."""
    lab = labels.expand(maps.shape[0], *labels.shape[-2:]).reshape(maps.shape[0], -1)
    out = torch.zeros(maps.shape[0], m, dtype=maps.dtype)
    return out.scatter_add_(1, lab, maps.reshape(maps.shape[0], -1))


def painted(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The map a per-segment ``values (B, M)`` paints on ``labels (B or 1, H, W)``."""
    lab = labels.expand(values.shape[0], *labels.shape[-2:])
    return values.gather(1, lab.reshape(values.shape[0], -1)).reshape(lab.shape)[:, None]


def scores(model, x, target, contrast=None) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    idx = torch.arange(x.shape[0])
    s = out[idx, torch.as_tensor(target)]
    if contrast is not None:
        s = s - out[idx, torch.as_tensor(contrast)]
    return s


@pytest.fixture(scope="module")
def lin():
    model = linear_model(C, H, W, K, seed=1)
    x = rand(2, C, H, W, seed=2)
    base = 0.1 * rand(1, C, H, W, seed=3)
    labels = grid_labels(8, 8, H, W, torch.device("cpu"))
    return model, x, base, labels


def linear_truth(model, x, base, labels, target, contrast=None) -> torch.Tensor:
    """``(B, M)``: the exact per-segment contributions ``Σ_seg (w_t − w_c)⊙(x − baseline)``."""
    w = model[1].weight.detach()
    wt = w[target] - (w[contrast] if contrast is not None else 0)
    contrib = (wt.view(-1, C, H, W) * (x - base)).sum(1)
    return per_segment(contrib, labels, int(labels.max()) + 1)


# --- exact on a model linear in the segments --------------------------------------------------
@pytest.mark.parametrize("name", SURROGATES)
def test_linear_model_recovered_exactly(lin, name):
    model, x, base, labels = lin
    target, contrast = [0, 2], [1, 0]
    a = sw.attribute(model, x, target, contrast=contrast, method=name, baseline=base)
    truth = linear_truth(model, x, base, labels, target, contrast)
    assert a.params["samples"] == 512 and a.extras["segments"] == [64, 64]
    assert a.values.shape == (2, 1, H, W) and a.values.dtype == F64
    err = (a.extras["segment_values"] - truth).abs().max().item()
    assert err <= 1e-8, err  # measured ~1e-15: the surrogate is exact, only rounding remains
    torch.testing.assert_close(a.values, painted(truth, labels[None]), atol=1e-8, rtol=0)
    f_base = scores(model, base.expand_as(x), target, contrast)
    if name == "lime":
        torch.testing.assert_close(a.extras["intercept"], f_base, atol=1e-8, rtol=0)
        torch.testing.assert_close(a.extras["score"], torch.ones(2, dtype=F64), atol=1e-10,
                                   rtol=0)
    else:
        torch.testing.assert_close(a.extras["base_score"], f_base, atol=1e-12, rtol=0)


def test_captum_default_lime_is_not_exact_but_ours_is(lin):
    pytest.importorskip("sklearn")
    pytest.importorskip("captum")
    from captum.attr import Lime
    model, x, base, labels = lin
    x1, target = x[:1], 1
    truth = linear_truth(model, x1, base, labels, [target])
    with torch.random.fork_rng():  # Captum draws from the global RNG
        torch.manual_seed(0)
        theirs = Lime(model).attribute(x1, baselines=base, target=target,
                                       feature_mask=labels[None, None].expand(1, C, H, W),
                                       n_samples=512)
    theirs = theirs[:, 0].reshape(1, -1).gather(1, first_pixel(labels))  # (1, M)
    ours = sw.attribute(model, x1, target, method="lime", baseline=base)
    err_theirs = (theirs.to(F64) - truth).abs().max().item()
    err_ours = (ours.extras["segment_values"] - truth).abs().max().item()
    assert err_theirs > 1e-3, err_theirs  # Lasso(alpha=0.01) shrinks: measured ~0.07
    assert err_ours <= 1e-8, err_ours


def pad_to(values: torch.Tensor, m: int) -> torch.Tensor:
    return torch.nn.functional.pad(values, (0, m - values.shape[1]))


def first_pixel(labels: torch.Tensor) -> torch.Tensor:
    """``(1, M)`` flat index of one pixel of each segment."""
    flat = labels.reshape(-1)
    m = int(flat.max()) + 1
    idx = torch.full((m,), -1, dtype=torch.long)
    idx.scatter_(0, flat.flip(0), torch.arange(flat.numel() - 1, -1, -1))
    return idx[None]


def test_captum_kernel_shap_agrees_on_the_linear_problem(lin):
    pytest.importorskip("sklearn")
    pytest.importorskip("captum")
    from captum.attr import KernelShap
    model, x, base, labels = lin
    x1, target = x[:1], 2
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = KernelShap(model).attribute(x1, baselines=base, target=target,
                                             feature_mask=labels[None, None].expand(1, C, H, W),
                                             n_samples=512)
    theirs = theirs[:, 0].reshape(1, -1).gather(1, first_pixel(labels)).to(F64)
    ours = sw.attribute(model, x1, target, method="kernel_shap", baseline=base)
    # both exact up to rounding, but Captum fits in float32 with 1e6 end-point weights standing
    # in for the constraints: measured differences ~1e-4 on values of size ~0.5
    torch.testing.assert_close(ours.extras["segment_values"], theirs, atol=1e-3, rtol=0)


def shapley_exact(v: dict[tuple[int, ...], float], m: int) -> list[float]:
    phi = [0.0] * m
    for i in range(m):
        rest = [j for j in range(m) if j != i]
        for r in range(m):
            for s in itertools.combinations(rest, r):
                wgt = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                phi[i] += wgt * (v[tuple(sorted(s + (i,)))] - v[s])
    return phi


def test_kernel_shap_converges_to_exact_shapley_values_like_captum():
    """A nonlinear CNN on 2×2 = 4 segments: the exact Shapley values by enumeration of all 16
    coalitions; ours and Captum's KernelShap (same feature mask) both estimate them."""
    pytest.importorskip("sklearn")
    pytest.importorskip("captum")
    from captum.attr import KernelShap
    model = smooth_cnn(c=2, k=3, seed=4)
    x = rand(1, 2, 8, 8, seed=5)
    labels = grid_labels(2, 2, 8, 8, torch.device("cpu"))
    v = {}
    for r in range(5):
        for s in itertools.combinations(range(4), r):
            keep = torch.isin(labels, torch.tensor(s, dtype=torch.long))
            v[s] = float(scores(model, torch.where(keep, x, 0.0), [1]))
    exact = torch.tensor(shapley_exact(v, 4), dtype=F64)[None]
    ours = sw.attribute(model, x, 1, method="kernel_shap", grid=2, samples=2000, baseline=0.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = KernelShap(model).attribute(x, baselines=0.0, target=1,
                                             feature_mask=labels[None, None].expand(1, 2, 8, 8),
                                             n_samples=2000)
    theirs = theirs[:, 0].reshape(1, -1).gather(1, first_pixel(labels)).to(F64)
    scale = exact.abs().max().item()
    # statistical, 2000 samples; measured over seeds 0–3, relative to the largest value: ours
    # (paired) ≤ 4e-4 (unpaired ~1e-2), Captum ≤ 7e-3
    assert (ours.extras["segment_values"] - exact).abs().max().item() <= 0.01 * scale
    assert (theirs - exact).abs().max().item() <= 0.03 * scale
    assert (ours.extras["segment_values"] - theirs).abs().max().item() <= 0.04 * scale
    # efficiency holds exactly for ours, whatever the sampling noise
    assert abs(ours.extras["segment_values"].sum().item() - (v[(0, 1, 2, 3)] - v[()])) <= 1e-12


# --- KernelSHAP efficiency on a nonlinear model ---------------------------------------------------
@pytest.mark.parametrize("paired", [True, False])
def test_kernel_shap_efficiency_on_nonlinear_cnn(paired):
    model = bias_free_relu_cnn(c=3, k=4, bias=True, seed=6)
    x = rand(2, 3, 16, 16, seed=7)
    a = sw.attribute(model, x, [0, 3], method="kernel_shap", samples=256, paired=paired,
                     baseline=0.25, seed=1)
    gap = scores(model, x, [0, 3]) - scores(model, torch.full_like(x, 0.25), [0, 3])
    phi = a.extras["segment_values"]
    assert (phi.sum(1) - gap).abs().max().item() <= 1e-8  # measured ~1e-16
    assert a.extras["completeness_gap"].abs().max().item() <= 1e-12
    assert bool((gap.abs() > 1e-3).all())  # a non-trivial check
    labels = grid_labels(8, 8, 16, 16, torch.device("cpu"))
    torch.testing.assert_close(a.values, painted(phi, labels[None]), atol=0, rtol=0)


# --- the solves against independent references ---------------------------------------------------
def test_lime_solve_matches_a_numpy_weighted_least_squares():
    """Rebuild LIME's coalitions from the seed, score them independently, and solve the
    weighted least squares with numpy; and the ridge variant with sklearn's Ridge."""
    model = smooth_cnn(c=3, k=3, seed=8)
    x = rand(1, 3, 12, 12, seed=9)
    labels = grid_labels(3, 4, 12, 12, torch.device("cpu"))
    M, N = 12, 96
    z = lime_coalitions(torch.Generator().manual_seed(5), N, M, torch.device("cpu"))
    keep = z[:, labels.reshape(-1)].reshape(N, 1, 12, 12)
    y = scores(model, torch.where(keep, x, -0.5), [2] * N).numpy()
    zf = z.double().numpy()
    cos = zf.sum(1) / (np.sqrt(zf.sum(1)) * np.sqrt(M) + 1e-300)
    wts = np.exp(-((1 - cos) ** 2) / 0.3 ** 2)
    np.testing.assert_allclose(lime_kernel(z, 0.3).numpy(), wts, rtol=1e-14)
    design = np.hstack([np.ones((N, 1)), zf]) * np.sqrt(wts)[:, None]
    ref, *_ = np.linalg.lstsq(design, y * np.sqrt(wts), rcond=None)
    a = sw.attribute(model, x, 2, method="lime", grid=(3, 4), samples=N, kernel_width=0.3,
                     baseline=-0.5, seed=5)
    np.testing.assert_allclose(a.extras["segment_values"][0].numpy(), ref[1:], atol=1e-8)
    np.testing.assert_allclose(a.extras["intercept"].numpy(), ref[:1], atol=1e-8)
    assert 0 < float(a.extras["score"]) < 1  # nonlinear: an imperfect local fit

    sklearn = pytest.importorskip("sklearn.linear_model")
    ridge = sklearn.Ridge(alpha=0.7, solver="svd").fit(zf, y, sample_weight=wts)
    b = sw.attribute(model, x, 2, method="lime", grid=(3, 4), samples=N, kernel_width=0.3,
                     baseline=-0.5, seed=5, ridge=0.7)
    np.testing.assert_allclose(b.extras["segment_values"][0].numpy(), ridge.coef_, atol=1e-8)
    np.testing.assert_allclose(b.extras["intercept"].numpy(), [ridge.intercept_], atol=1e-8)


def test_kernel_shap_solve_matches_the_constrained_least_squares():
    """The eliminated-variable solve equals the KKT solution of
    ``min Σ (v(z) − φ₀ − z·φ)²  s.t.  Σφ = f(x) − f(0)`` over the same coalitions."""
    model = smooth_cnn(c=3, k=3, seed=10)
    x = rand(1, 3, 12, 12, seed=11)
    labels = grid_labels(3, 3, 12, 12, torch.device("cpu"))
    M, N = 9, 60
    z = shapley_coalitions(torch.Generator().manual_seed(2), N, M, torch.device("cpu"))
    assert not bool(z[0].any()) and z.shape == (N, M)
    sizes = z[1:].sum(1)
    assert bool(((sizes >= 1) & (sizes <= M - 1)).all())
    keep = z[:, labels.reshape(-1)].reshape(N, 1, 12, 12)
    v = scores(model, torch.where(keep, x, 0.0), [0] * N).numpy()
    fx = float(scores(model, x, [0]))
    zf = z[1:].double().numpy()
    kkt = np.block([[2 * zf.T @ zf, np.ones((M, 1))], [np.ones((1, M)), np.zeros((1, 1))]])
    rhs = np.concatenate([2 * zf.T @ (v[1:] - v[0]), [fx - v[0]]])
    ref = np.linalg.solve(kkt, rhs)[:M]
    a = sw.attribute(model, x, 0, method="kernel_shap", grid=3, samples=N, baseline=0.0, seed=2)
    np.testing.assert_allclose(a.extras["segment_values"][0].numpy(), ref, atol=1e-8)


def test_shapley_coalition_sizes_follow_the_kernel():
    M, S = 10, 40000
    z = shapley_coalitions(torch.Generator().manual_seed(0), S + 1, M, torch.device("cpu"),
                           paired=False)[1:]
    k = torch.arange(1, M, dtype=F64)
    p = (M - 1) / (k * (M - k))
    p = p / p.sum()
    freq = torch.bincount(z.sum(1), minlength=M + 1)[1:M].double() / S
    assert (freq - p).abs().max().item() < 0.01  # ~4σ of a binomial frequency at S = 40000
    # within a size, every segment equally likely
    assert (z.double().mean(0) - 0.5).abs().max().item() < 0.02
    paired = shapley_coalitions(torch.Generator().manual_seed(0), 9, M, torch.device("cpu"))
    assert torch.equal(paired[2], ~paired[1]) and torch.equal(paired[8], ~paired[7])


# --- segments -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows,cols,h,w", [(8, 8, 17, 23), (3, 5, 7, 11), (8, 8, 5, 9)])
def test_grid_cells_cover_every_pixel_and_are_nearly_equal(rows, cols, h, w):
    rows, cols = min(rows, h), min(cols, w)
    lab = grid_labels(rows, cols, h, w, torch.device("cpu"))
    assert lab.shape == (h, w)
    counts = torch.bincount(lab.reshape(-1), minlength=rows * cols)
    assert counts.numel() == rows * cols and bool((counts > 0).all())
    assert int(counts.sum()) == h * w
    heights = torch.bincount(lab[:, 0] // cols)
    widths = torch.bincount(lab[0] % cols)
    assert int(heights.max() - heights.min()) <= 1 and int(widths.max() - widths.min()) <= 1


def test_grid_larger_than_the_image_is_clamped():
    model = smooth_cnn(c=1, k=2, seed=0)
    x = rand(1, 1, 5, 9, seed=1)
    a = sw.attribute(model, x, 0, method="kernel_shap", grid=8, samples=200)
    assert a.extras["segments"] == [5 * 8]
    assert int(torch.unique(a.values).numel()) <= 40


def test_slic_missing_scikit_image_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    model = smooth_cnn(c=3, k=3, seed=0)
    for name in SURROGATES:
        with pytest.raises(SaliencyError, match="pip install scikit-image"):
            sw.attribute(model, rand(1, 3, 16, 16), 0, method=name, segments="slic")


def test_slic_segments_work_when_installed():
    pytest.importorskip("skimage")
    model = smooth_cnn(c=3, k=3, seed=0)
    # structured images (SLIC merges the fragments of pure noise into one segment): colour
    # blocks plus a little noise
    blocks = rand(2, 3, 3, 3, seed=3).repeat_interleave(8, 2).repeat_interleave(8, 3)
    x = blocks + 0.05 * rand(2, 3, 24, 24, seed=4)
    a = sw.attribute(model, x, [0, 1], method="kernel_shap", segments="slic", slic_segments=12,
                     samples=200)
    counts = a.extras["segments"]
    assert all(c >= 4 for c in counts), counts
    gap = scores(model, x, [0, 1]) - scores(model, torch.zeros_like(x), [0, 1])
    assert (a.extras["segment_values"].sum(1) - gap).abs().max().item() <= 1e-8
    b = sw.attribute(model, x, [0, 1], method="lime", segments="slic", slic_segments=12,
                     samples=200, normalization=((0.5,), (0.25,)))
    assert b.values.shape == (2, 1, 24, 24) and bool(torch.isfinite(b.values).all())


def test_user_segment_tensor(lin):
    """Arbitrary int labels (gaps, disconnected segments), shared (H, W) or per example
    (B, H, W) with different segment counts: still exact on the linear model."""
    model, x, base, _ = lin
    g = torch.Generator().manual_seed(4)
    shared = torch.tensor([3, 40, 7, 1000, -2])[torch.randint(0, 5, (H, W), generator=g)]
    per = torch.stack([torch.randint(0, 6, (H, W), generator=g),
                       torch.randint(0, 9, (H, W), generator=g) * 5])
    for labels in (shared, per):
        dense = torch.stack([torch.unique(lab, return_inverse=True)[1]
                             for lab in labels.expand(2, H, W)])
        m = int(dense.max()) + 1
        for name in SURROGATES:
            a = sw.attribute(model, x, [0, 1], method=name, segments=labels, baseline=base,
                             samples=100)
            truth = torch.cat([pad_to(linear_truth(model, x[i:i + 1], base, dense[i], [t]), m)
                               for i, t in enumerate([0, 1])])
            assert a.extras["segments"] == [int(torch.unique(lab).numel())
                                            for lab in labels.expand(2, H, W)]
            torch.testing.assert_close(a.values, painted(truth, dense), atol=1e-8, rtol=0)
    with pytest.raises(SaliencyError, match="integer labels"):
        sw.attribute(model, x, 0, method="lime", segments=shared.double())
    with pytest.raises(SaliencyError, match="shape"):
        sw.attribute(model, x, 0, method="lime", segments=shared[:5])
    with pytest.raises(SaliencyError, match="not supported"):
        sw.attribute(model, x, 0, method="kernel_shap", segments="quickshift")


# --- contract: seeds, chunking, batches, self-contrast, rank --------------------------------------
@pytest.mark.parametrize("name", SURROGATES)
def test_seeded_and_independent_of_batch_size_and_batch(name):
    model = bias_free_relu_cnn(c=3, k=4, bias=True, seed=12)
    x = rand(3, 3, 12, 12, seed=13)
    kw = dict(method=name, grid=4, samples=64, baseline="uniform", normalization=((0.5,), (0.2,)))
    a = sw.attribute(model, x, [0, 1, 2], seed=7, **kw)
    assert torch.equal(a.values, sw.attribute(model, x, [0, 1, 2], seed=7, **kw).values)
    assert not torch.equal(a.values, sw.attribute(model, x, [0, 1, 2], seed=8, **kw).values)
    for bs in (1, 5, 64):
        other = sw.attribute(model, x, [0, 1, 2], seed=7, batch_size=bs, **kw)
        torch.testing.assert_close(other.values, a.values, atol=1e-12, rtol=0)
    # the coalitions are shared by the batch and drawn first: an example alone gives the same
    # map (the baseline is deterministic here; "uniform" noise is drawn per batch shape)
    kw["baseline"] = 0.0
    a = sw.attribute(model, x, [0, 1, 2], seed=7, **kw)
    for i in range(3):
        alone = sw.attribute(model, x[i:i + 1], i, seed=7, **kw)
        torch.testing.assert_close(alone.values, a.values[i:i + 1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", SURROGATES)
def test_self_contrast_is_exactly_zero(name):
    model = bias_free_relu_cnn(c=3, k=4, bias=True, seed=14)
    x = rand(3, 3, 16, 16, seed=15)
    a = sw.attribute(model, x, [0, 1, 3], contrast=[0, 1, 3], method=name, samples=128)
    assert int(torch.count_nonzero(a.values)) == 0
    assert int(torch.count_nonzero(a.extras["segment_values"])) == 0
    mixed = sw.attribute(model, x, [0, 1, 3], contrast=[0, 2, 2], method=name, samples=128)
    assert int(torch.count_nonzero(mixed.values[0])) == 0
    assert int(torch.count_nonzero(mixed.values[1:])) > 0


@pytest.mark.parametrize("name", SURROGATES)
def test_too_few_samples_raise(name):
    model = smooth_cnn(c=3, k=3, seed=0)
    x = rand(1, 3, 16, 16)
    with pytest.raises(SaliencyError, match="raise samples"):
        sw.attribute(model, x, 0, method=name, samples=32)  # 64 segments, 32 equations
    if name == "lime":  # ridge regularises an underdetermined design instead
        a = sw.attribute(model, x, 0, method=name, samples=32, ridge=1.0)
        assert bool(torch.isfinite(a.values).all())


def test_kernel_shap_single_segment_is_the_whole_gap():
    model = smooth_cnn(c=3, k=3, seed=0)
    x = rand(1, 3, 8, 8)
    a = sw.attribute(model, x, 1, method="kernel_shap", grid=1)
    gap = scores(model, x, [1]) - scores(model, torch.zeros_like(x), [1])
    assert a.params["samples"] == 1
    torch.testing.assert_close(a.values, gap.view(1, 1, 1, 1).expand(1, 1, 8, 8), atol=1e-14,
                               rtol=0)


def test_registry_entries_and_bad_params():
    specs = {m["name"]: m for m in sw.list_methods()}
    for name in SURROGATES:
        s = specs[name]
        assert s["family"] == "surrogate" and s["output"] == "map" and s["stochastic"]
        assert s["params"]["segments"] == "grid" and s["params"]["grid"] == 8
        assert s["params"]["samples"] is None
    assert specs["lime"]["params"]["kernel_width"] == 0.25
    assert specs["lime"]["params"]["ridge"] == 0.0
    model, x = smooth_cnn(c=3, k=3, seed=0), rand(1, 3, 8, 8)
    for kw in ({"kernel_width": 0}, {"ridge": -1.0}, {"samples": 1}, {"grid": 0}):
        with pytest.raises(SaliencyError):
            sw.attribute(model, x, 0, method="lime", **kw)


# --- CUDA (skipped without a GPU; run with ``pytest -m gpu tests/test_surrogates.py``) ------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("name", SURROGATES)
def test_cuda_exact_seeded_and_chunk_independent(lin, name):
    """On CUDA the coalitions come from the device's generator (other draws than on CPU), so
    the checks are the identities: exact on the linear model, seeded, batch_size-independent,
    exact self-contrast zeros, and KernelSHAP efficiency."""
    model, x, base, labels = lin
    dev = torch.device("cuda")
    gm, gx, gb = copy.deepcopy(model).to(dev), x.to(dev), base.to(dev)
    a = sw.attribute(gm, gx, [0, 2], method=name, baseline=gb, seed=3)
    assert a.values.device.type == "cuda"
    truth = linear_truth(model, x, base, labels, [0, 2])
    err = (a.extras["segment_values"].cpu() - truth).abs().max().item()
    assert err <= 1e-8, err
    b = sw.attribute(gm, gx, [0, 2], method=name, baseline=gb, seed=3, batch_size=7)
    torch.testing.assert_close(b.values, a.values, atol=1e-12, rtol=0)
    again = sw.attribute(gm, gx, [0, 2], method=name, baseline=gb, seed=3)
    assert torch.equal(again.values, a.values)
    zero = sw.attribute(gm, gx, [0, 2], contrast=[0, 2], method=name, baseline=gb)
    assert int(torch.count_nonzero(zero.values)) == 0
    cnn = bias_free_relu_cnn(c=3, k=4, bias=True, seed=6).to(dev)
    xc = rand(2, 3, 16, 16, seed=7).to(dev)
    seg = torch.stack([torch.arange(256).view(16, 16) % 5, torch.arange(256).view(16, 16) % 7])
    c = sw.attribute(cnn, xc, [0, 3], method=name, segments=seg.to(dev), samples=300)
    assert c.extras["segments"] == [5, 7]
    if name == "kernel_shap":
        gap = scores(cnn, xc, [0, 3]) - scores(cnn, torch.zeros_like(xc), [0, 3])
        assert (c.extras["segment_values"].sum(1) - gap).abs().max().item() <= 1e-8
        f32 = sw.attribute(cnn.float(), xc.float(), [0, 3], method=name, samples=256)
        assert f32.values.dtype == torch.float32 and bool(torch.isfinite(f32.values).all())


@pytest.mark.gpu
@cuda
def test_cuda_slic_and_statistics():
    pytest.importorskip("skimage")
    dev = torch.device("cuda")
    model = smooth_cnn(c=2, k=3, seed=4).to(dev)
    x = rand(1, 2, 8, 8, seed=5).to(dev)
    labels = grid_labels(2, 2, 8, 8, dev)
    v = {}
    for r in range(5):
        for s in itertools.combinations(range(4), r):
            keep = torch.isin(labels, torch.tensor(s, dtype=torch.long, device=dev))
            v[s] = float(scores(model, torch.where(keep, x, 0.0), [1]))
    exact = torch.tensor(shapley_exact(v, 4), dtype=F64)[None]
    ours = sw.attribute(model, x, 1, method="kernel_shap", grid=2, samples=2000, baseline=0.0)
    scale = exact.abs().max().item()
    assert (ours.extras["segment_values"].cpu() - exact).abs().max().item() <= 0.01 * scale
    img = smooth_cnn(c=3, k=3, seed=0).to(dev)
    blocks = rand(2, 3, 3, 3, seed=3).repeat_interleave(8, 2).repeat_interleave(8, 3)
    xs = (blocks + 0.05 * rand(2, 3, 24, 24, seed=4)).to(dev)
    a = sw.attribute(img, xs, [0, 1], method="lime", segments="slic", slic_segments=12,
                     samples=200)
    assert all(c >= 4 for c in a.extras["segments"]) and a.values.device.type == "cuda"
