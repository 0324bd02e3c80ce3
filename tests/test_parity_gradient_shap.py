"""GradientSHAP / expected gradients: exact parity with Captum 0.9 on Captum's own draws, and the
expectation on a model whose answer is known on paper.

Captum draws from the global RNGs (``np.random.choice`` for the references, ``torch.normal`` for
the noise, ``np.random.uniform`` for α), one draw per (example, sample). We record them while
Captum runs and replay them through our ``sample_draws`` hook, so both compute the same estimator
on the same points: float64, errors relative to Captum's largest magnitude.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.methods import gradient_shap as gs_module
from models import Lambda

captum_attr = pytest.importorskip("captum.attr")
from captum.attr import GradientShap  # noqa: E402

F64 = torch.float64
TOL = 1e-12  # float64, same points, same arithmetic up to summation order


def cnn() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Softplus(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    return model.to(F64).eval()


def rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def captum_with_recorded_draws(monkeypatch, model, x, refs, target, samples, stdevs):
    """Captum's map and the draws it made, per expanded row ``b * samples + k``."""
    rec = {}
    choice, uniform, normal = np.random.choice, np.random.uniform, torch.normal

    def record(name, fn):
        def wrapped(*args, **kwargs):
            rec[name] = fn(*args, **kwargs)
            return rec[name]
        return wrapped

    np_state = np.random.get_state()
    with monkeypatch.context() as m, torch.random.fork_rng():
        m.setattr(np.random, "choice", record("index", choice))
        m.setattr(np.random, "uniform", record("alpha", uniform))
        m.setattr(torch, "normal", record("noise", normal))
        np.random.seed(11)
        torch.manual_seed(12)
        ref = GradientShap(model).attribute(x.clone(), refs, n_samples=samples, stdevs=stdevs,
                                            target=target)
    np.random.set_state(np_state)
    return ref.detach(), rec


def replay(rec, batch: int, samples: int):
    """A ``sample_draws`` replacement that hands our method Captum's draws."""
    index = torch.as_tensor(np.asarray(rec["index"])).view(batch, samples)
    alpha = torch.as_tensor(np.asarray(rec["alpha"])).view(batch, samples)
    noise = rec["noise"].view(batch, samples, *rec["noise"].shape[1:])

    def sample_draws(ctx, x, n, n_refs, noise_fraction):
        assert n == samples
        return lambda k, b: (index[b, k], alpha[b, k].to(x.dtype), noise[b, k])

    return sample_draws


@pytest.mark.parametrize("stdevs", [0.0, 0.3])
def test_matches_captum_on_its_own_draws(monkeypatch, stdevs):
    model, x = cnn(), rand(3, 3, 12, 12, seed=1)
    refs, target, samples = rand(4, 3, 12, 12, seed=2) * 0.5, [1, 3, 0], 6
    ref, rec = captum_with_recorded_draws(monkeypatch, model, x, refs, target, samples, stdevs)
    monkeypatch.setattr(gs_module, "sample_draws", replay(rec, 3, samples))
    got = sw.attribute(model, x, method="gradient_shap", target=target, references=refs,
                       samples=samples, noise=0.5, batch_size=5)  # noise: replayed, not drawn
    err = float((got.values - ref).abs().max() / ref.abs().max())
    assert err < TOL, f"GradientSHAP vs Captum on the same draws: {err:.2e} (tol {TOL})"


def test_expectation_on_a_quadratic_model():
    """f(x) = ½Σx², reference 0: the map is α·x̃⊙x̃, so E[Σ map] = ½(Σx² + N·σ²) with
    σ = noise × (max − min). Checked within 4 standard errors (computed on paper: α ~ U(0, 1)
    is independent of S = Σx̃², a noncentral χ²), which rules out a wrong σ or α law."""
    model = Lambda(lambda x: torch.stack([0.5 * (x ** 2).flatten(1).sum(1),
                                          torch.zeros(len(x), dtype=x.dtype)], 1))
    x = rand(1, 1, 4, 4, seed=3)
    noise, samples = 0.4, 4000
    attr = sw.attribute(model, x, method="gradient_shap", target=0, references=0.0,
                        samples=samples, noise=noise, seed=5)
    n, sigma = x.numel(), noise * float(x.max() - x.min())
    ex = float((x ** 2).sum())
    mean_s = ex + n * sigma ** 2
    var_s = n * 2 * sigma ** 4 + 4 * sigma ** 2 * ex
    var = (var_s + mean_s ** 2) / 3 - (mean_s / 2) ** 2
    se = math.sqrt(var / samples)
    total = float(attr.values.sum())
    assert abs(total - mean_s / 2) < 4 * se, (total, mean_s / 2, se)
    assert n * sigma ** 2 / 2 > 20 * se  # the noise term is resolved by the test


def test_draws_leave_the_global_rngs_alone_and_follow_the_seed():
    model, x = cnn(), rand(2, 3, 12, 12, seed=4)
    refs = rand(3, 3, 12, 12, seed=5)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = sw.attribute(model, x, method="gradient_shap", references=refs, samples=4, noise=0.2,
                     seed=9, target=[0, 1])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    b = sw.attribute(model, x, method="gradient_shap", references=refs, samples=4, noise=0.2,
                     seed=9, target=[0, 1], batch_size=3)
    assert torch.equal(a.values, b.values)


def test_single_reference_defaults_like_integrated_gradients():
    model, x = cnn(), rand(2, 3, 12, 12, seed=6)
    norm = ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    attr = sw.attribute(model, x, method="gradient_shap", samples=2, normalization=norm,
                        target=[0, 1])
    assert attr.params["references"] == "black"
    with pytest.raises(sw.SaliencyError, match="noise must be a number ≥ 0"):
        sw.attribute(model, x, method="gradient_shap", noise=-0.1)
    with pytest.raises(sw.SaliencyError, match="samples must be an int ≥ 1"):
        sw.attribute(model, x, method="gradient_shap", samples=0)
