"""A second oracle for the metrics: Quantus 0.6.0, and pytorch-grad-cam for ROAD's imputation.

Every metric whose definition coincides with Quantus' is compared on the same maps (and, for
infidelity and max-sensitivity, the same perturbations: the inputs Quantus feeds the model are
recorded and given to ours). Where we differ on purpose, a test shows the difference; the
README's Validation section says why. Quantus runs the model in float32 (``torch.Tensor(x)``) and
keeps float32 attributions in float32, so tolerances are float32's.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.metrics.road import linear_impute

quantus = pytest.importorskip("quantus")
grad_cam_road = pytest.importorskip("pytorch_grad_cam.metrics.road")

QUIET = dict(disable_warnings=True, display_progressbar=False)
B, H, W = 4, 12, 12


@contextlib.contextmanager
def global_rngs_kept():
    """Quantus and pytorch-grad-cam draw from the global numpy / torch RNGs: restore them."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(0)
        torch.manual_seed(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            np.random.set_state(state)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x (B, 3, H, W)`` float32, tie-free signed maps ``(B, 1, H, W)`` float64, box masks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, H, W, generator=g)
    maps = torch.randn(B, 1, H, W, generator=g, dtype=torch.float64)
    masks = torch.zeros(B, H, W, dtype=torch.bool)
    for b in range(B):
        r, c = torch.randint(0, H - 5, (2,), generator=g).tolist()
        masks[b, r:r + 5, c:c + 4 + b] = True
    return x, maps, masks


def _linear(c: int = 3) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(c * H * W, 3)).eval()


def _ours(metric: str, maps: torch.Tensor, masks: torch.Tensor | None = None,
          **params) -> np.ndarray:
    x = torch.zeros(maps.shape[0], 3, *maps.shape[2:], dtype=torch.float64)
    model = _linear().double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        return sw.evaluate(model, x, maps, target=0, metric=metric, masks=masks,
                           **params).scores.numpy()


def _quantus(metric, x: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor | None = None
             ) -> np.ndarray:
    with global_rngs_kept():
        out = metric(model=None, x_batch=x.numpy(), y_batch=np.zeros(len(x), dtype=int),
                     a_batch=maps.numpy(), device="cpu",
                     s_batch=None if masks is None else masks[:, None].numpy())
    return np.asarray(out, dtype=np.float64)


# --- sparseness, complexity -------------------------------------------------------------------

def test_sparseness_equals_quantus_once_its_batch_max_and_offset_are_replayed():
    x, maps, _ = _inputs()
    cam = maps.clamp(min=0)  # a ReLU'd CAM-like map: many exact zeros
    for m in (maps, cam):
        q = _quantus(quantus.Sparseness(abs=True, normalise=True, **QUIET), x, m)
        # Quantus divides |a| by the maximum over the whole batch, then adds 1e-7 to every value
        replayed = m.abs() / m.abs().max() + 1e-7
        err = np.abs(_ours("sparseness", replayed) - q).max()
        assert err <= 1e-12, f"sparseness vs Quantus (replayed): {err:.1e} (tol 1e-12)"
    # where we differ on purpose: no offset, and an example's score never depends on its batch
    # mates. On a sparse map (a few positive pixels) the offset moves Quantus' Gini by ~1e-4.
    sparse = torch.zeros(2, 1, 64, 64, dtype=torch.float64)
    sparse[:, 0, 30:33, 30:33] = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(3))
    q = _quantus(quantus.Sparseness(abs=True, normalise=True, **QUIET),
                 torch.zeros(2, 3, 64, 64), sparse)
    assert np.abs(_ours("sparseness", sparse) - q).min() > 1e-5
    mates = sparse.clone()
    mates[1] *= 100  # a batch mate with a larger maximum
    q2 = _quantus(quantus.Sparseness(abs=True, normalise=True, **QUIET),
                  torch.zeros(2, 3, 64, 64), mates)
    assert abs(q2[0] - q[0]) > 1e-6, "Quantus' score of example 0 depends on example 1"
    assert _ours("sparseness", mates)[0] == _ours("sparseness", sparse)[0]


def test_complexity_equals_quantus():
    x, maps, _ = _inputs(1)
    for m in (maps, maps.clamp(min=0)):
        q = _quantus(quantus.Complexity(abs=True, normalise=True, **QUIET), x, m)
        err = np.abs(_ours("complexity", m) - q).max()
        # Quantus adds 1e-12 inside the log: p·log(p + 1e-12) moves the entropy by < 1e-9
        assert err <= 1e-9, f"complexity vs Quantus: {err:.1e} (tol 1e-9)"


# --- localization -----------------------------------------------------------------------------

def test_pointing_game_equals_quantus_on_unique_maxima_and_differs_on_ties():
    x, maps, _ = _inputs(2)
    masks = torch.zeros(B, H, W, dtype=torch.bool)
    for b in range(B):  # a box around the maximum for even b, the opposite quadrant for odd
        r, c = divmod(int(maps[b].flatten().argmax()), W)
        if b % 2:
            r, c = (H - 1 - r, W - 1 - c)
        masks[b, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = True
    hits = _quantus(quantus.PointingGame(**QUIET), x, maps, masks)
    ours = _ours("pointing_game", maps, masks, tolerance=0)
    assert ours.tolist() == hits.tolist() == [1.0, 0.0, 1.0, 0.0], (ours, hits)
    # on purpose: tied maxima must all be on the object (Quantus: any one of them), and a
    # constant map points nowhere (Quantus: a hit whenever the mask is not empty)
    tied = torch.zeros(2, 1, H, W, dtype=torch.float64)
    tied[0, 0, 3, 3] = tied[0, 0, 10, 10] = 1.0
    m2 = torch.zeros(2, H, W, dtype=torch.bool)
    m2[:, 2:5, 2:5] = True
    q = _quantus(quantus.PointingGame(**QUIET), x[:2], tied, m2)
    assert q.tolist() == [1.0, 1.0]
    ours = _ours("pointing_game", tied, m2, tolerance=0)
    assert ours[0] == 0.0 and np.isnan(ours[1])


def test_relevance_mass_equals_quantus_on_non_negative_maps_and_differs_on_signed_ones():
    x, maps, masks = _inputs(3)
    cam = maps.clamp(min=0)
    q = _quantus(quantus.RelevanceMassAccuracy(**QUIET), x, cam, masks)
    err = np.abs(_ours("relevance_mass", cam, masks) - q).max()
    assert err <= 1e-12, f"relevance mass vs Quantus: {err:.1e} (tol 1e-12)"
    # on purpose: positive relevance only, so the share stays in [0, 1]; Quantus divides by the
    # signed sum
    q = _quantus(quantus.RelevanceMassAccuracy(**QUIET), x, maps, masks)
    ours = _ours("relevance_mass", maps, masks)
    assert ((ours >= 0) & (ours <= 1)).all() and ((q < 0) | (q > 1)).any(), (ours, q)


def test_relevance_rank_equals_quantus_on_tie_free_maps_and_ignores_tie_order():
    x, maps, masks = _inputs(4)
    q = _quantus(quantus.RelevanceRankAccuracy(**QUIET), x, maps, masks)
    err = np.abs(_ours("relevance_rank", maps, masks) - q).max()
    assert err <= 1e-12, f"relevance rank vs Quantus: {err:.1e} (tol 1e-12)"
    # on purpose: a ReLU'd map with fewer positive pixels than |mask| fills the top K with tied
    # zeros; Quantus takes them in numpy's order, so flipping map and mask moves its score.
    # Ours is the expected score over tie orders: unchanged.
    cam = (maps - 1.2).clamp(min=0)
    assert bool(((cam.flatten(1) > 0).sum(1) < masks.flatten(1).sum(1)).all())
    flip = (cam.flip(-2), masks.flip(-2))
    q, qf = (_quantus(quantus.RelevanceRankAccuracy(**QUIET), x, *mm) for mm in ((cam, masks),
                                                                                 flip))
    assert np.abs(q - qf).max() > 0.01, "Quantus must depend on the tie order here"
    assert np.abs(_ours("relevance_rank", cam, masks) - _ours("relevance_rank", *flip)).max() \
        <= 1e-15


# --- infidelity and max-sensitivity under matched perturbations -------------------------------

class _Recorder(nn.Module):
    """The model, recording every input it is called on."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.inner(x)


def _cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), nn.Linear(16, 3)).eval()


def test_infidelity_equals_quantus_under_its_patch_perturbations():
    net = _cnn()
    x = _inputs(5)[0][:3, :, :8, :8].contiguous()
    y = [0, 1, 2]
    for method in ("gradient", "grad_cam"):
        attr = sw.attribute(net, x, y, method=method)
        rec = _Recorder(net).eval()
        with global_rngs_kept():
            q = quantus.Infidelity(perturb_patch_sizes=[4], n_perturb_samples=1, **QUIET)(
                model=rec, x_batch=x.numpy(), y_batch=np.array(y), device="cpu",
                a_batch=attr.values.numpy())
        # the first call is x; then 4 patches set to "black", accumulating (each perturbed
        # input keeps the previous patches): I_k = x − x̃_k
        assert torch.equal(rec.seen[0], x) and len(rec.seen) == 5
        pert = x[None] - torch.stack(rec.seen[1:])
        ours = sw.evaluate(net, x, attr, metric="infidelity", perturbation=pert,
                           normalize=False)
        rel = np.abs(ours.scores.numpy() - np.asarray(q)).max() / np.abs(q).max()
        assert rel <= 1e-5, f"{method}: infidelity vs Quantus rel {rel:.1e} (float32, tol 1e-5)"
        # on purpose: our default rescales the map by the optimal β first (scale-invariant),
        # which can only lower the error
        default = sw.evaluate(net, x, attr, metric="infidelity", perturbation=pert)
        assert bool((default.scores <= ours.scores * (1 + 1e-12)).all())
        assert bool((default.scores < 0.5 * ours.scores).any())


def test_max_sensitivity_equals_quantus_under_its_perturbations():
    net = _cnn()
    x = _inputs(6)[0][:3, :, :8, :8].contiguous()
    y = np.array([2, 0, 1])
    attr = sw.attribute(net, x, y.tolist(), method="gradient")
    seen: list[torch.Tensor] = []

    def explain(model, inputs, targets, **kwargs):
        xt = torch.as_tensor(inputs)
        seen.append(xt.clone())
        return sw.attribute(model, xt, [int(t) for t in targets], method="gradient").values.numpy()

    with global_rngs_kept():
        q = quantus.MaxSensitivity(nr_samples=3, lower_bound=0.05, normalise=False, abs=False,
                                   **QUIET)(model=net, x_batch=x.numpy(), y_batch=y,
                                            a_batch=attr.values.numpy(), explain_func=explain,
                                            device="cpu")
    eps = torch.stack([s - x for s in seen])
    assert eps.shape == (3, *x.shape) and float(eps.abs().max()) > 0.01
    ours = sw.evaluate(net, x, attr, metric="max_sensitivity", perturbation=eps)
    rel = np.abs(ours.scores.numpy() - np.asarray(q)).max() / np.abs(q).max()
    assert rel <= 1e-5, f"max-sensitivity vs Quantus: rel {rel:.1e} (float32, tol 1e-5)"


# --- completeness: a tolerance, not float equality --------------------------------------------

def test_completeness_uses_a_tolerance_where_quantus_compares_floats():
    model = _linear()
    x = _inputs(7)[0]
    x[:, :, 0, 0] = 0.0  # Quantus' "black" baseline is the image's minimum: 0 here, as ours
    attr = sw.attribute(model, x, [0] * B, method="integrated_gradients", baseline=0.0)
    ours = sw.evaluate(model, x, attr, metric="completeness")
    assert float(ours.scores.max()) <= 1e-5, "IG on a linear model is complete (float32)"
    with global_rngs_kept():
        q = quantus.Completeness(normalise=False, **QUIET)(
            model=model, x_batch=x.numpy(), y_batch=np.zeros(B, dtype=int),
            a_batch=attr.values.numpy(), device="cpu")
    # float equality calls some of these equally complete maps incomplete (rounding decides)
    assert not all(bool(v) for v in q), f"Quantus' == on float32 sums: {q}"


# --- ROAD's imputation against pytorch-grad-cam's ---------------------------------------------

def test_road_imputation_equals_pytorch_grad_cam():
    g = torch.Generator().manual_seed(8)
    img = torch.rand(3, 14, 11, generator=g)
    imputer = grad_cam_road.NoisyLinearImputer(noise=0.0)
    for share in (0.1, 0.5, 0.9):
        removed = torch.rand(14, 11, generator=g) < share
        removed[0, 0] = removed[-1, -1] = True  # holes at the corners: border renormalisation
        with global_rngs_kept():  # it draws (zero-scaled) noise from the global RNG
            ref = imputer(img, (~removed).float())
        ours = linear_impute(img.double().numpy(), removed.numpy())
        err = float(np.abs(ours - ref.double().numpy()).max())
        # pytorch-grad-cam returns float32
        assert err <= 1e-5, f"{share:.0%} removed: max error {err:.1e} (tol 1e-5)"
        assert np.array_equal(ours[:, ~removed.numpy()], img.double().numpy()[:, ~removed.numpy()])
    # on purpose: we impute in pixel space (the paper's runner) and pytorch-grad-cam in the
    # normalized space. The weighted mean commutes with a per-channel affine map, so without
    # noise both agree; only the noise's scale (a fraction of the pixel range) differs.
    mean, std = torch.tensor([0.4, 0.5, 0.6])[:, None, None], torch.tensor([0.2, 0.3, 0.25])[
        :, None, None]
    with global_rngs_kept():
        ref = imputer((img - mean) / std, (~removed).float())
    pixel = torch.from_numpy(linear_impute(img.double().numpy(), removed.numpy()))
    err = float(((pixel - mean.double()) / std.double() - ref.double()).abs().max())
    assert err <= 1e-5, f"imputation in pixel vs normalized space: {err:.1e}"


# --- model randomization: the original model's self-similarity is not a step ------------------

def test_quantus_mprt_averages_in_the_original_model_and_we_do_not():
    net = _cnn()
    x = _inputs(9)[0][:2, :, :8, :8].contiguous()
    y = np.array([0, 1])
    attr = sw.attribute(net, x, y.tolist(), method="gradient")

    def explain(model, inputs, targets, **kwargs):
        return sw.attribute(model, torch.as_tensor(inputs), [int(t) for t in targets],
                            method="gradient").values.numpy()

    mprt = quantus.MPRT(**QUIET)
    with global_rngs_kept():  # it re-seeds torch's global RNG itself
        mprt(model=net, x_batch=x.numpy(), y_batch=y, a_batch=attr.values.numpy(),
             explain_func=explain, device="cpu")
    scores = {k: np.asarray(v, dtype=np.float64) for k, v in mprt.evaluation_scores.items()}
    layers = [k for k in scores if k != "original"]
    assert "original" in scores and len(layers) == 2  # the conv and the linear layer
    np.testing.assert_allclose(scores["original"], 1.0, atol=1e-12)
    average = np.asarray(mprt.recompute_average_correlation_per_sample())
    # its skip key is "orig", so the self-similarity 1 is averaged in with the layers
    np.testing.assert_allclose(average, np.mean([scores[k] for k in scores], 0), atol=1e-12)
    assert bool((average > np.mean([scores[k] for k in layers], 0) + 0.1).all())
    ours = sw.evaluate(net, x, attr, metric="model_randomization")
    torch.testing.assert_close(ours.scores, ours.curve.mean(1))  # the steps only
