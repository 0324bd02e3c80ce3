"""Model-parameter randomization (Adebayo et al. 2018): copies only, execution order, the
per-step similarities, and the paper's qualitative result on a model trained here."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import Cancelled, SaliencyError, SaliencyWarning
from saliency_widgets.metrics._similarity import hog, hog_cell, hog_similarity
from saliency_widgets.metrics.model_randomization import similarities, spearman, ssim
from saliency_widgets.model.randomize import Randomizer, execution_order, parameter_blocks

from models import fill_, linear_model


def _grad_explain(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A user ``explain`` callable: the gradient of logit 0."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(net(x)[:, 0].sum(), x)
    return g


def _cnn(seed: int = 0) -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    fill_(model, seed)
    with torch.no_grad():
        model[3].running_mean.copy_(torch.linspace(-0.1, 0.1, 4))
        model[3].running_var.copy_(torch.linspace(0.5, 1.5, 4))
    return model.double().eval()


def _x(b: int = 2, c: int = 2, s: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


# --- the user's model and the global RNG ---------------------------------------------------

def test_users_model_is_bit_identical_and_global_rng_untouched():
    model = _cnn()
    model[2].weight.requires_grad_(False)
    model[3].train()  # mixed training flags must survive
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = {k: id(p) for k, p in model.named_parameters()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    hooks = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    x = _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaliencyWarning)  # "the model is in training mode"
        attr = sw.attribute(model, x, method="gradient")
        state = torch.get_rng_state()
        for mode in ("cascading", "independent"):
            r = sw.evaluate(model, x, attr, metric="model_randomization", mode=mode)
            assert torch.isfinite(r.scores).all()
    assert torch.equal(torch.get_rng_state(), state)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # bit-identical, running statistics included
        assert before[k].dtype == after[k].dtype and torch.equal(before[k], after[k]), k
    assert ids == {k: id(p) for k, p in model.named_parameters()}
    assert grads == {k: p.requires_grad for k, p in model.named_parameters()}
    assert modes == [m.training for m in model.modules()]
    assert hooks == [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    assert all(p.grad is None for p in model.parameters())


def test_randomized_copy_redraws_only_the_copy():
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = Randomizer(model, {"0": 1, "3": 2}).copy(["0", "3"])
    assert not torch.equal(net[0].weight, model[0].weight)
    assert not torch.equal(net[3].weight, model[3].weight)  # BatchNorm affine re-drawn too
    assert torch.equal(net[2].weight, model[2].weight)
    assert torch.equal(net[3].running_var, model[3].running_var)  # buffers kept
    # scale-matched: RMS of the new tensor is near the original's (std of a ±2σ normal: 0.88σ)
    rms = lambda t: float(t.detach().pow(2).mean().sqrt())  # noqa: E731
    assert 0.6 < rms(net[0].weight) / rms(model[0].weight) < 1.2
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# --- blocks and their order ------------------------------------------------------------------

class _Shuffled(nn.Module):
    """Registered head, conv2, unused, conv1; forward runs conv1 → conv2 → head."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.unused = nn.Linear(2, 2)
        self.act = nn.ReLU()  # no parameters: never a block
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv2(self.act(self.conv1(x))))
        return self.head(h.mean((2, 3)))


def test_cascade_follows_execution_order_not_registration_order():
    model = fill_(_Shuffled(), 1).double().eval()
    x = _x()
    assert parameter_blocks(model) == ["head", "conv2", "unused", "conv1"]
    assert execution_order(model, parameter_blocks(model), lambda net: net(x[:1])) == (
        ["conv1", "conv2", "head"], ["unused"])
    attr = sw.attribute(model, x, method="gradient")
    r = sw.evaluate(model, x, attr, metric="model_randomization")
    assert r.extras["blocks"] == [["head"], ["head", "conv2"], ["head", "conv2", "conv1"]]
    assert r.extras["unused_blocks"] == ["unused"]
    ind = sw.evaluate(model, x, attr, metric="model_randomization", mode="independent")
    assert ind.extras["blocks"] == [["head"], ["conv2"], ["conv1"]]


def test_single_container_is_looked_into():
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x).mean((2, 3))
    assert parameter_blocks(Wrapper()) == ["features.0", "features.2"]
    assert parameter_blocks(linear_model(1, 2, 2, 2)) == ["1"]


def _differing_blocks(model: nn.Sequential, net: nn.Sequential, x: torch.Tensor) -> list[str]:
    """Names of the children whose output differs, each fed the original model's activation."""
    out, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(model):
            if not torch.equal(net[i](h), layer(h)):
                out.append(str(i))
            h = layer(h)
    return out


@pytest.mark.parametrize("mode", ["independent", "cascading"])
def test_each_step_randomizes_the_stated_blocks(mode):
    model, x = _cnn(), _x()
    nets: list[nn.Module] = []

    def explain(net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        nets.append(net)
        return _grad_explain(net, xb)

    attr = _grad_explain(model, x)
    r = sw.evaluate(model, x, attr, metric="model_randomization", mode=mode, explain=explain)
    assert len(nets) == 4 and r.curve.shape == (2, 4)
    # top-level children with parameters: 0 (conv), 2 (conv), 3 (BatchNorm), 7 (linear)
    assert [b[-1] for b in r.extras["blocks"]] == ["7", "3", "2", "0"]
    for k, (net, blocks) in enumerate(zip(nets, r.extras["blocks"])):
        assert _differing_blocks(model, net, x) == sorted(blocks)
        assert len(blocks) == (1 if mode == "independent" else k + 1)


def test_a_block_gets_the_same_random_values_in_both_modes():
    model, x = _cnn(), _x()
    nets: dict[str, list[nn.Module]] = {"independent": [], "cascading": []}
    attr = _grad_explain(model, x)
    for mode, seen in nets.items():
        def explain(net: nn.Module, xb: torch.Tensor, seen=seen) -> torch.Tensor:
            seen.append(net)
            return _grad_explain(net, xb)
        sw.evaluate(model, x, attr, metric="model_randomization", mode=mode, seed=5,
                    explain=explain)
    for k, name in enumerate(["7", "3", "2", "0"]):
        a = nets["independent"][k].get_submodule(name)
        b = nets["cascading"][k].get_submodule(name)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# --- similarities -------------------------------------------------------------------------------

def test_similarity_measures():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 9, 10, generator=g, dtype=torch.float64)
    s = similarities(a, a)
    assert set(s) == {"spearman_abs", "spearman", "ssim", "hog"}
    for key in s:
        torch.testing.assert_close(s[key], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(spearman(a.flatten(1), -a.flatten(1)), -torch.ones(3).double())
    # ties get average ranks: [1, 1, 2, 3] vs [1, 2, 3, 4] has ρ = 0.9487 (scipy.stats.spearmanr)
    rho = spearman(torch.tensor([[1.0, 1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert abs(float(rho) - 0.9486832980505138) < 1e-12
    assert torch.isnan(spearman(torch.ones(1, 5), torch.arange(5.0)[None])).all()
    # SSIM and HOG are invariant to an affine change of either map (both are min-max normalised)
    for key in ("ssim", "hog"):
        torch.testing.assert_close(similarities(a, 3 * a + 2)[key], torch.ones(3).double())
    b = torch.randn(3, 9, 10, generator=g, dtype=torch.float64)
    assert (ssim(torch.rand(3, 9, 10, generator=g), torch.rand(3, 9, 10, generator=g)) < 0.3).all()
    assert (similarities(a, b)["spearman"].abs() < 0.4).all()


def test_hog_matches_scikit_image():
    from skimage.feature import hog as skimage_hog
    g = torch.Generator().manual_seed(1)
    for (h, w), cell, orientations, block in (((32, 24), 4, 9, 2), ((17, 30), 2, 6, 3),
                                              ((40, 40), 8, 9, 3), ((12, 16), 2, 8, 1)):
        m = torch.rand(2, h, w, generator=g, dtype=torch.float64)
        m[1] = (torch.arange(h * w, dtype=torch.float64).view(h, w) % 7)  # exact bin edges
        ours = hog(m, cell, orientations, block)
        for b in range(2):
            ref = skimage_hog(m[b].numpy(), orientations=orientations,
                              pixels_per_cell=(cell, cell), cells_per_block=(block, block),
                              block_norm="L2-Hys", feature_vector=True)
            assert ours.shape[1] == ref.size
            # scikit-image sums each cell in float32 (measured error up to 3e-8)
            err = float(np.abs(ours[b].numpy() - ref).max())
            assert err <= 1e-6, f"{h}×{w}, cell {cell}, {orientations} bins: {err:.1e}"
    with pytest.raises(ValueError, match="even"):
        hog(torch.rand(1, 9, 9), 3)


def test_hog_similarity_conventions():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 16, 20, generator=g, dtype=torch.float64)
    b = torch.rand(2, 16, 20, generator=g, dtype=torch.float64)
    assert hog_cell(16, 20) == 2 and hog_cell(224, 224) == 28 and hog_cell(64, 50) == 6
    torch.testing.assert_close(hog_similarity(a, a), torch.ones(2).double())
    assert (hog_similarity(a, b).abs() < 0.5).all(), "independent noise maps"
    const = torch.ones_like(a)
    assert hog_similarity(a, const).tolist() == [0.0, 0.0]
    assert torch.isnan(hog_similarity(const, a)).all()
    assert torch.isnan(hog_similarity(a[:, :3], a[:, :3])).all(), "under 4 px: undefined"


def test_score_is_the_mean_over_randomization_steps_only():
    model, x = _cnn(), _x()
    attr = sw.attribute(model, x, method="gradient")
    for sim in ("spearman_abs", "spearman", "ssim", "hog"):
        r = sw.evaluate(model, x, attr, metric="model_randomization", similarity=sim)
        torch.testing.assert_close(r.curve, r.extras[sim])
        torch.testing.assert_close(r.scores, r.extras[sim].mean(1))  # no self-similarity of 1
        assert r.curve_x.tolist() == [1.0, 2.0, 3.0, 4.0] and not r.higher_is_better


# --- the paper's linear-model argument ------------------------------------------------------

def test_linear_model_gradient_loses_rank_while_grad_times_input_keeps_it():
    """f = wᵀx: the gradient is w, re-drawn independently (ρ ≈ 0); Grad⊙Input is w⊙x, whose
    magnitude keeps |x|'s ranking. Measured (seed 0, d = 576): ρ_|grad| = −0.006 for every
    image (the map does not depend on x); ρ_|grad⊙x| = 0.40, 0.39, 0.38, 0.45; signed
    Spearman of grad⊙x 0.02–0.03 (the structure lives in the magnitude)."""
    model = linear_model(1, 24, 24, 3)
    x = torch.rand(4, 1, 24, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grad = sw.evaluate(model, x, sw.attribute(model, x, 0, method="gradient"),
                       metric="model_randomization")
    ixg = sw.evaluate(model, x, sw.attribute(model, x, 0, method="input_x_gradient"),
                      metric="model_randomization")
    assert grad.extras["blocks"] == [["1"]]
    assert (grad.scores.abs() < 0.2).all()
    assert (ixg.scores > 0.3).all()
    assert (ixg.extras["spearman"].abs() < 0.2).all()


# --- progress, cancel, errors -----------------------------------------------------------------

def test_progress_and_cancel():
    model, x = _cnn(), _x()
    attr = sw.attribute(model, x, method="gradient")
    seen: list[tuple[int, int]] = []
    sw.evaluate(model, x, attr, metric="model_randomization",
                progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    cancel, calls = threading.Event(), []

    def progress(d: int, t: int) -> None:
        calls.append(d)
        cancel.set()
    with pytest.raises(Cancelled):
        sw.evaluate(model, x, attr, metric="model_randomization", progress=progress,
                    cancel=cancel)
    assert calls == [1]


def test_needs_a_way_to_re_explain_and_valid_blocks():
    model, x = _cnn(), _x()
    with pytest.raises(SaliencyError, match="explain"):
        sw.evaluate(model, x, torch.zeros_like(x), metric="model_randomization")
    attr = sw.attribute(model, x, method="gradient")
    with pytest.raises(SaliencyError, match="no module"):
        sw.evaluate(model, x, attr, metric="model_randomization", blocks=["nope"])
    r = sw.evaluate(model, x, attr, metric="model_randomization", blocks=["7", "0"])
    assert r.extras["blocks"] == [["7"], ["7", "0"]]


# --- Adebayo et al.'s ordering on a trained CNN -------------------------------------------

def _shapes(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of bright 10×10 shapes (filled square, cross, ring) on dim noise."""
    y = torch.arange(n) % 3
    x = 0.3 * torch.rand(n, 1, size, size, generator=gen)
    for i in range(n):
        r, c = torch.randint(2, size - 12, (2,), generator=gen).tolist()
        if y[i] == 0:
            x[i, 0, r:r + 10, c:c + 10] += 0.7
        elif y[i] == 1:
            x[i, 0, r + 4:r + 6, c:c + 10] += 0.7
            x[i, 0, r:r + 10, c + 4:c + 6] += 0.7
        else:
            x[i, 0, r:r + 10, c:c + 10] += 0.7
            x[i, 0, r + 2:r + 8, c + 2:c + 8] -= 0.7
    return x, y


def _trained_cnn() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    def block(ci: int, co: int, pool: bool) -> nn.Sequential:
        layers = [nn.Conv2d(ci, co, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*(layers + [nn.MaxPool2d(2)] if pool else layers))
    gen = torch.Generator().manual_seed(0)
    x, y = _shapes(600, 24, gen)
    with torch.random.fork_rng():  # default init uses the global RNG: keep the caller's state
        torch.manual_seed(0)
        model = nn.Sequential(block(1, 16, False), block(16, 16, True), block(16, 32, False),
                              block(32, 32, True),
                              nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                            nn.Linear(32, 3)))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(8):  # 80 steps: ≈ 7 s on one CPU thread
        perm = torch.randperm(500, generator=gen)
        for i in range(0, 500, 50):
            idx = perm[i:i + 50]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), x[500:], y[500:]


@pytest.mark.slow
def test_guided_backprop_stays_more_similar_than_gradient_on_a_trained_cnn():
    """Adebayo et al.: guided backprop is largely invariant to randomizing the higher layers,
    the gradient is not. Measured (5 cascade steps, 16 held-out images): test accuracy 1.00;
    mean Spearman |map| similarity gradient 0.41 (0.68, 0.64, 0.34, 0.25, 0.16 per step),
    guided backprop 0.67 (0.86, 0.84, 0.74, 0.65, 0.27)."""
    model, x, y = _trained_cnn()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).double().mean())
    assert accuracy > 0.8
    x = x[:16]
    means = {}
    for method in ("gradient", "guided_backprop"):
        r = sw.evaluate(model, x, sw.attribute(model, x, method=method),
                        metric="model_randomization")
        assert r.curve.shape == (16, 5)
        means[method] = r.mean
    assert means["guided_backprop"] >= means["gradient"] + 0.1, means


def test_spearman_constant_randomized_map_is_zero_and_constant_original_is_nan():
    from saliency_widgets.metrics.model_randomization import spearman
    ref = torch.tensor([[1.0, 3.0, 2.0, 5.0], [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    flat = torch.full((2, 4), 7.0, dtype=torch.float64)
    rho = spearman(ref, flat)
    assert rho[0].item() == 0.0, "a structured map vs a constant one keeps no ranking: 0"
    assert torch.isnan(rho[1]), "a constant original map has no ranking to compare: NaN"
    assert spearman(ref[:1], ref[:1]).item() == pytest.approx(1.0, abs=1e-12)
