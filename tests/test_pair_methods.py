"""Blur IG, Guided IG and XRAI against PAIR ``saliency`` 0.2.1, plus their exact identities.

PAIR is framework-agnostic: it calls ``call_model_function(batch HWC, args, keys)`` for
gradients. Ours explains the same objective (``logit[t] − logit[c]``) of the same float64 model,
so the maps agree to rounding (tolerances relative to the reference's largest magnitude).

* PAIR's Guided IG calls ``np.quantile(..., interpolation=)``, removed in numpy 2: the fixture
  ``numpy_quantile_shim`` maps it to ``method=``. It is compared on softplus models: ReLU nets
  have many exactly tied gradients, whose order decides which features move first.
* PAIR's XRAI accumulates its IG in float32, so its map agrees with ours to ~1e-8 relative only;
  on a linear model IG is exact for any quadrature, so there the whole pipeline (IG, Felzenszwalb
  segments, ranking) is compared; on a nonlinear model PAIR gets our IG as ``base_attribution``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import saliency_widgets as sw
from saliency_widgets.methods.blur_ig import blur_matrices
from saliency_widgets.methods._regions import dilated_segments

from models import linear_model, smooth_cnn

sc = pytest.importorskip("saliency.core")
ndimage = pytest.importorskip("scipy.ndimage")

NORM = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
F64 = torch.float64


def rel_err(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())


def hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def pair_call(model, target, contrast=None, normalization=None):
    """PAIR's ``call_model_function``: gradients of the objective w.r.t. its HWC input.

    With ``normalization`` PAIR works on pixels and the model normalises them, as PAIR's users do.
    ``call_model_args`` is the example's index into ``target`` / ``contrast``.
    """
    def call(batch, call_model_args=None, expected_keys=None):
        i = call_model_args
        p = torch.from_numpy(np.asarray(batch)).permute(0, 3, 1, 2).requires_grad_(True)
        xb = p
        if normalization is not None:
            mean, std = (torch.tensor(v, dtype=F64).view(1, -1, 1, 1) for v in normalization)
            xb = (p - mean) / std
        out = model(xb)
        s = out[:, target[i]] - (0 if contrast is None else out[:, contrast[i]])
        (g,) = torch.autograd.grad(s.sum(), p)
        return {sc.INPUT_OUTPUT_GRADIENTS: g.permute(0, 2, 3, 1).numpy()}
    return call


def pixels(batch, c, h, w, seed):
    return torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=F64)


def to_input(p: torch.Tensor) -> torch.Tensor:
    mean, std = (torch.tensor(v, dtype=F64).view(1, -1, 1, 1) for v in NORM)
    return (p - mean) / std


# --- Blur IG ----------------------------------------------------------------------------------
def test_blur_matrices_equal_scipy_gaussian_filter():
    im = pixels(1, 3, 13, 20, seed=3)[0]
    for sigma in (0.0, 0.01, 0.3, 1.0, 2.5, 7.0, 50.0):
        s = torch.tensor([sigma], dtype=F64)
        ours = blur_matrices(s, 13)[0] @ im @ blur_matrices(s, 20)[0].T
        ref = ndimage.gaussian_filter(hwc(im), sigma=[sigma, sigma, 0], mode="constant") \
            if sigma > 0 else hwc(im)
        err = rel_err(ours.permute(1, 2, 0), ref)
        assert err < 1e-14, f"σ={sigma}: blur differs from scipy by {err:.1e} (tol 1e-14)"


@pytest.mark.parametrize("normalized", [True, False], ids=["pixels", "input-space"])
def test_blur_ig_matches_pair(normalized):
    model = smooth_cnn(c=3, k=4, act="softplus", seed=1)
    p = pixels(2, 3, 14, 18, seed=2)
    x = to_input(p) if normalized else p
    t, c = [1, 2], [0, 3]
    kw = {"normalization": NORM} if normalized else {}
    ours = sw.attribute(model, x, t, contrast=c, method="blur_ig", steps=20, max_sigma=6.0, **kw)
    call = pair_call(model, t, c, NORM if normalized else None)
    for i in range(2):
        ref = sc.BlurIG().GetMask(hwc(p[i] if normalized else x[i]), call, call_model_args=i,
                                  max_sigma=6.0, steps=20, grad_step=0.01, batch_size=1)
        err = rel_err(ours.values[i].permute(1, 2, 0), ref)
        assert err < 1e-12, f"example {i}: Blur IG differs from PAIR by {err:.1e} (tol 1e-12)"


def test_blur_ig_telescopes_on_a_linear_model():
    """With ``grad_step`` equal to the σ step the finite differences telescope: on a linear
    model Σ attr = f(x) − f(x(max_sigma)) exactly."""
    model = linear_model(3, 9, 11, 3, seed=4)
    x = to_input(pixels(2, 3, 9, 11, seed=5))
    a = sw.attribute(model, x, [0, 2], contrast=[1, 1], method="blur_ig", steps=10,
                     max_sigma=5.0, grad_step=0.5, normalization=NORM)
    gap = a.extras["completeness_gap"].abs().max()
    assert gap < 1e-12, f"completeness gap {gap:.1e} (tol 1e-12)"
    # the generic forward difference does not telescope: the gap is then visible
    b = sw.attribute(model, x, [0, 2], contrast=[1, 1], method="blur_ig", steps=10,
                     max_sigma=5.0, normalization=NORM)
    assert b.extras["completeness_gap"].abs().max() > 1e-6


def test_blur_ig_default_max_sigma_scales_with_the_image():
    model = smooth_cnn(c=3, k=3, seed=6)
    a = sw.attribute(model, pixels(1, 3, 8, 28, seed=7), method="blur_ig", steps=2)
    assert a.params["max_sigma"] == pytest.approx(50 * 28 / 224)
    with pytest.raises(sw.SaliencyError, match="max_sigma"):
        sw.attribute(model, pixels(1, 3, 8, 8, seed=7), method="blur_ig", max_sigma=0)


# --- Guided IG --------------------------------------------------------------------------------
@pytest.fixture
def numpy_quantile_shim(monkeypatch):
    """numpy 2 removed ``interpolation=``; PAIR 0.2.1's Guided IG still passes it."""
    original = np.quantile

    def quantile(a, q, *args, interpolation=None, **kw):
        if interpolation is not None:
            kw.setdefault("method", interpolation)
        return original(a, q, *args, **kw)

    monkeypatch.setattr(np, "quantile", quantile)


@pytest.mark.parametrize("kw", [{"steps": 30, "fraction": 0.25, "max_dist": 0.02},
                                {"steps": 20, "fraction": 0.1, "max_dist": 0.1},
                                {"steps": 10, "fraction": 0.5, "max_dist": 1.0}],
                         ids=["pair-defaults", "narrow", "unbounded"])
def test_guided_ig_matches_pair(kw, numpy_quantile_shim):
    model = smooth_cnn(c=3, k=4, act="softplus", seed=8)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 3, 12, 10, generator=g, dtype=F64)
    base = 0.3 * torch.randn(1, 3, 12, 10, generator=g, dtype=F64)
    t, c = [1, 2], [0, 3]
    ours = sw.attribute(model, x, t, contrast=c, method="guided_ig", baseline=base, **kw)
    call = pair_call(model, t, c)
    for i in range(2):
        ref = sc.GuidedIG().GetMask(hwc(x[i]), call, call_model_args=i, x_baseline=hwc(base[0]),
                                    x_steps=kw["steps"], fraction=kw["fraction"],
                                    max_dist=kw["max_dist"])
        err = rel_err(ours.values[i].permute(1, 2, 0), ref)
        assert err < 1e-12, f"example {i}: Guided IG differs from PAIR by {err:.1e} (tol 1e-12)"


def test_guided_ig_without_deviation_is_left_riemann_ig():
    model = smooth_cnn(c=3, k=3, act="softplus", seed=10)
    x = to_input(pixels(2, 3, 9, 7, seed=11))
    kw = {"normalization": NORM, "baseline": "black"}
    gig = sw.attribute(model, x, [0, 2], method="guided_ig", steps=12, max_dist=0.0, **kw)
    ig = sw.attribute(model, x, [0, 2], method="integrated_gradients", steps=12, rule="left",
                      **kw)
    torch.testing.assert_close(gig.values, ig.values, rtol=0, atol=1e-12)


def test_guided_ig_is_complete_on_a_linear_model():
    """Any path's Σ Δx·∇f telescopes when ∇f is constant: Σ attr = f(x) − f(baseline)."""
    model = linear_model(3, 8, 8, 4, seed=12)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(13), dtype=F64)
    a = sw.attribute(model, x, [3, 1], contrast=[0, 0], method="guided_ig", steps=15)
    gap = float(a.extras["completeness_gap"].abs().max())
    assert gap < 1e-12, f"completeness gap {gap:.1e} (tol 1e-12)"
    assert a.params["baseline"] == 0.0


def test_guided_ig_rejects_a_bad_fraction():
    with pytest.raises(sw.SaliencyError, match=r"fraction.*\[0, 1\].*1\.5"):
        sw.attribute(smooth_cnn(seed=1), pixels(1, 3, 6, 6, seed=1), method="guided_ig",
                     fraction=1.5)


# --- XRAI -------------------------------------------------------------------------------------
def blocky(batch, c, h, w, seed):
    """Piecewise-constant images with a little noise: segments with real edges."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, c, 5, 6, generator=g, dtype=F64)
    return F.interpolate(coarse, size=(h, w), mode="nearest") \
        + 0.05 * torch.rand(batch, c, h, w, generator=g, dtype=F64)


def pair_xrai(x_hwc, call, i, **kw):
    params = sc.XRAIParameters()
    params.return_xrai_segments = True
    out = sc.XRAI().GetMaskWithDetails(x_hwc, call, call_model_args=i, batch_size=25,
                                       extra_parameters=params, **kw)
    return out.attribution_mask, out.segments


@pytest.mark.parametrize("channels, size", [(3, (40, 48)), (1, (36, 30))], ids=["rgb", "gray"])
def test_xrai_matches_pair_end_to_end_on_a_linear_model(channels, size):
    model = linear_model(channels, *size, 4, seed=14)
    x = blocky(1, channels, *size, seed=15)
    t, c = [2], [0]
    ours = sw.attribute(model, x, t, contrast=c, method="xrai")
    assert ours.params["baseline"] == ("min", "max")  # PAIR's default baselines
    call = pair_call(model, t, c)
    for i in range(1):
        ref_map, ref_ranks = pair_xrai(hwc(x[i]), call, i)
        err = rel_err(ours.values[i, 0], ref_map)
        # PAIR sums its IG in float32
        assert err < 1e-6, f"example {i}: XRAI map differs from PAIR by {err:.1e} (tol 1e-6)"
        ranks = ours.extras["ranks"][i].numpy()
        assert ranks.max() >= 5, "too few regions for a meaningful ranking"
        assert np.array_equal(ranks, ref_ranks), f"example {i}: region ranking differs"


def _our_ig(model, x, t, c, baselines, steps, **kw):
    """Our IG averaged over ``baselines`` (XRAI's first stage, computed independently)."""
    runs = [sw.attribute(model, x, t, contrast=c, method="integrated_gradients", steps=steps,
                         baseline=b, **kw).values for b in baselines]
    return torch.stack(runs).mean(0)


def test_xrai_ranking_matches_pair_on_a_nonlinear_model():
    """Our IG (black and white baselines, the defaults with a normalization) handed to PAIR as
    ``base_attribution``: PAIR segments the pixels and ranks; the maps and ranks agree."""
    model = smooth_cnn(c=3, k=4, act="softplus", seed=16)
    p = blocky(2, 3, 40, 40, seed=17)
    x = to_input(p)
    t, c = [0, 3], [2, 2]
    ours = sw.attribute(model, x, t, contrast=c, method="xrai", steps=8, normalization=NORM)
    assert ours.params["baseline"] == ("black", "white")
    mean, std = (torch.tensor(v, dtype=F64).view(1, -1, 1, 1) for v in NORM)
    white = (1 - mean) / std
    ig = _our_ig(model, x, t, c, [-mean / std, white], 8, normalization=NORM)
    for i in range(2):
        ref_map, ref_ranks = pair_xrai(hwc(p[i]), None, i, base_attribution=hwc(ig[i]))
        err = rel_err(ours.values[i, 0], ref_map)
        assert err < 1e-12, f"example {i}: XRAI map differs from PAIR by {err:.1e} (tol 1e-12)"
        assert np.array_equal(ours.extras["ranks"][i].numpy(), ref_ranks)


@pytest.mark.parametrize("min_pixel_diff, area_threshold", [(50, 1.0), (1, 1.0), (20, 0.4)])
def test_xrai_ranks_given_regions_like_pair(min_pixel_diff, area_threshold):
    model = smooth_cnn(c=3, k=3, act="softplus", seed=18)
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(19), dtype=F64)
    g = torch.Generator().manual_seed(20)
    regions = torch.zeros(30, 24, 24, dtype=torch.bool)
    for k in range(30):  # random overlapping rectangles
        y0, x0 = torch.randint(0, 18, (2,), generator=g).tolist()
        hh, ww = torch.randint(4, 14, (2,), generator=g).tolist()
        regions[k, y0:y0 + hh, x0:x0 + ww] = True
    kw = {"steps": 6, "baseline": (0.0, 1.0)}
    ours = sw.attribute(model, x, 1, method="xrai", segments=regions,
                        min_pixel_diff=min_pixel_diff, area_threshold=area_threshold, **kw)
    ig = _our_ig(model, x, [1], None, [0.0, 1.0], 6)
    params = sc.XRAIParameters(area_threshold=area_threshold)
    params.return_xrai_segments = True
    params.experimental_params["min_pixel_diff"] = min_pixel_diff
    ref = sc.XRAI().GetMaskWithDetails(hwc(x[0]), None, base_attribution=hwc(ig[0]),
                                       segments=list(regions.numpy()), extra_parameters=params)
    err = rel_err(ours.values[0, 0], ref.attribution_mask)
    assert err < 1e-12, f"XRAI map differs from PAIR by {err:.1e} (tol 1e-12)"
    assert np.array_equal(ours.extras["ranks"][0].numpy(), ref.segments)


def test_xrai_regions_cover_the_image_and_keep_the_sum():
    """Every pixel has a rank; each rank is one region with one value (its IG density); so
    the map's sum equals the channel-max IG map's sum."""
    model = smooth_cnn(c=3, k=3, act="softplus", seed=21)
    x = blocky(2, 3, 32, 28, seed=22)
    a = sw.attribute(model, x, [0, 1], contrast=[2, 2], method="xrai", steps=6)
    lo, hi = (v.view(-1, 1, 1, 1) for v in x.flatten(1).aminmax(dim=1))
    density = _our_ig(model, x, [0, 1], [2, 2], [lo, hi], 6).amax(1)
    for i in range(2):
        ranks, values = a.extras["ranks"][i], a.values[i, 0]
        assert int(ranks.min()) == 1 and a.extras["regions"][i] == int(ranks.max())
        assert set(ranks.unique().tolist()) == set(range(1, int(ranks.max()) + 1))
        for r in ranks.unique():
            inside = ranks == r
            assert torch.all(values[inside] == values[inside][0])
            torch.testing.assert_close(values[inside][0], density[i][inside].mean(),
                                       rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(values.sum(), density[i].sum(), rtol=1e-12, atol=1e-12)


def test_xrai_felzenszwalb_is_batch_independent():
    """(The contract tests pass their own regions; here the default segmentation.)"""
    model = smooth_cnn(c=3, k=3, seed=23)
    x = blocky(2, 3, 20, 20, seed=24)
    batch = sw.attribute(model, x, [0, 1], method="xrai", steps=2)
    for i in range(2):
        alone = sw.attribute(model, x[i:i + 1], i, method="xrai", steps=2)
        torch.testing.assert_close(alone.values, batch.values[i:i + 1], rtol=0, atol=1e-12)
        assert torch.equal(alone.extras["ranks"][0], batch.extras["ranks"][i])


def test_dilated_segments_are_skimage_dilations_by_a_disk():
    morphology = pytest.importorskip("skimage.morphology")
    g = torch.Generator().manual_seed(25)
    coarse = torch.randint(3, 12, (2, 4, 5), generator=g)  # labels 3…11, some never used
    labels = F.interpolate(coarse[:, None].float(), size=(19, 23), mode="nearest")[:, 0].long()
    ours = dilated_segments(labels, 5)
    ref = [morphology.dilation((lab == v).numpy(), footprint=morphology.disk(5))
           for lab in labels for v in range(int(lab.min()), int(lab.max()) + 1)]
    assert ours.shape[0] == len(ref)
    for k, (d, r) in enumerate(zip(ours.numpy(), ref)):
        assert np.array_equal(d, r), f"mask {k} differs from skimage's dilation"


def test_xrai_without_scikit_image_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)  # import now fails
    with pytest.raises(sw.SaliencyError, match=r"scikit-image.*pip install"):
        sw.attribute(smooth_cnn(seed=1), pixels(1, 3, 8, 8, seed=1), method="xrai", steps=1)


def test_xrai_rejects_bad_regions():
    model, x = smooth_cnn(seed=1), pixels(2, 3, 8, 8, seed=1)
    with pytest.raises(sw.SaliencyError, match=r"\(K, 8, 8\).*got \(2, 7, 8\)"):
        sw.attribute(model, x, method="xrai", segments=torch.ones(2, 7, 8, dtype=torch.bool))
    with pytest.raises(sw.SaliencyError, match="bool"):
        sw.attribute(model, x, method="xrai", segments=torch.ones(2, 8, 8))
    with pytest.raises(sw.SaliencyError, match="slic"):
        sw.attribute(model, x, method="xrai", segments="slic")
    with pytest.raises(sw.SaliencyError, match="white.*normalization"):
        sw.attribute(model, x, method="xrai", baseline=("min", "white"))


# --- CUDA (skipped without a GPU) ---------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name, kw", [("guided_ig", {"steps": 12}), ("blur_ig", {"steps": 12}),
                                      ("xrai", {"steps": 4})])
def test_float64_cuda_matches_cpu(name, kw):
    model = smooth_cnn(c=3, k=4, act="softplus", seed=26)
    x = blocky(2, 3, 24, 24, seed=27)
    cpu = sw.attribute(model, x, [0, 1], contrast=[3, 2], method=name, **kw)
    gpu = sw.attribute(model.cuda(), x.cuda(), [0, 1], contrast=[3, 2], method=name, **kw)
    assert gpu.values.device.type == "cuda"
    torch.testing.assert_close(gpu.values.cpu(), cpu.values, rtol=1e-9, atol=1e-12)
