"""DeepLIFT (rescale) and DeepLIFT-SHAP: parity with Captum 0.9, summation-to-delta on ResNets.

Captum's ``DeepLift`` hooks modules, so it is compared on networks with one non-in-place module
per nonlinearity use, and with non-overlapping max pools (it scatters max-pool multipliers with
``max_unpool``, which keeps one of several overlapping windows' shares). On torchvision ResNets,
which reuse one in-place ReLU per block, Captum raises ("A Module ReLU(inplace=True) was detected
that does not contain some of the input/output attributes …"); there we check DeepLIFT's defining
property instead: the map sums to f(x) − f(x′). Float64; errors are relative to the reference's
largest magnitude.

Finding: Captum also misses summation-to-delta when two of the modules it hooks follow each other
directly (ReLU → MaxPool2d, MaxPool2d → ReLU, ReLU → Tanh: measured gaps 0.01–0.19 on 4×4 toys;
with any other operation between them it agrees with us to 1e-16). The parity net keeps a linear
operation between its nonlinearities; our summation is checked on the ResNet, whose stem is
ReLU → max pool.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import saliency_widgets as sw

captum_attr = pytest.importorskip("captum.attr")
from captum.attr import DeepLift, DeepLiftShap  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:Setting forward, backward hooks"),
              pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")]

F64 = torch.float64
TOL = 1e-12  # float64, same arithmetic up to summation order
TARGET, CONTRAST = [1, 3, 0], [2, 2, 4]


def rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def captum_net(seed: int = 0) -> nn.Module:
    """Every nonlinearity Captum's DeepLIFT knows, each a separate non-in-place module, never two
    in a row (see the module doc)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(6), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3), nn.LeakyReLU(0.1),
            nn.Conv2d(8, 8, 3, padding=1), nn.ELU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(32, 16), nn.Sigmoid(), nn.Linear(16, 12), nn.Softplus(),
            nn.Linear(12, 5)).to(F64)
        bn = model[2]
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.detach()
    return float((a - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("baseline", ["zero", "tensor"])
def test_deeplift_matches_captum(baseline):
    model, x = captum_net(), rand(3, 3, 16, 16, seed=1)
    base = torch.zeros_like(x) if baseline == "zero" else rand(3, 3, 16, 16, seed=2) * 0.5
    if baseline == "tensor":  # a patch equal to the input: 0/0 secants, gradients used there
        base[:, :, :7, :7] = x[:, :, :7, :7]
    ref = DeepLift(model).attribute(x.clone(), base, target=TARGET)
    got = sw.attribute(model, x, method="deeplift", target=TARGET,
                       baseline=0.0 if baseline == "zero" else base)
    err = rel_err(got.values, ref)
    assert err < TOL, f"DeepLIFT vs Captum: {err:.2e} (tol {TOL})"
    with torch.no_grad():
        delta = model(x)[range(3), TARGET] - model(base)[range(3), TARGET]
    assert float((got.values.flatten(1).sum(1) - delta).abs().max()) < 1e-12
    torch.testing.assert_close(got.extras["summation_gap"],
                               got.values.flatten(1).sum(1) - delta, rtol=0, atol=1e-12)


def test_deeplift_shap_matches_captum():
    model, x = captum_net(1), rand(2, 3, 16, 16, seed=3)
    refs = rand(4, 3, 16, 16, seed=4) * 0.7
    ref = DeepLiftShap(model).attribute(x.clone(), refs, target=TARGET[:2])
    got = sw.attribute(model, x, method="deeplift_shap", target=TARGET[:2], references=refs)
    err = rel_err(got.values, ref)
    assert err < TOL, f"DeepLIFT-SHAP vs Captum: {err:.2e} (tol {TOL})"
    assert got.params["references"] is refs


def test_in_place_and_reused_relus_get_the_rule_at_every_use():
    """One ``ReLU(inplace=True)`` module called twice gives what separate modules give (and
    those match Captum)."""
    class Reused(nn.Module):
        def __init__(self, separate: bool):
            super().__init__()
            with torch.random.fork_rng():
                torch.manual_seed(5)
                self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
                self.head = nn.Linear(6, 5)
            self.r1 = nn.ReLU(inplace=not separate)
            self.r2 = nn.ReLU() if separate else self.r1

        def forward(self, x):
            h = self.r2(self.c2(self.r1(self.c1(x))))
            return self.head(h.mean((2, 3)))

    x, base = rand(3, 3, 8, 8, seed=6), rand(3, 3, 8, 8, seed=7)
    shared, separate = Reused(False).to(F64).eval(), Reused(True).to(F64).eval()
    a = sw.attribute(shared, x, method="deeplift", target=TARGET, baseline=base).values
    b = sw.attribute(separate, x, method="deeplift", target=TARGET, baseline=base).values
    ref = DeepLift(separate).attribute(x.clone(), base, target=TARGET)
    assert rel_err(a, b) < TOL and rel_err(b, ref) < TOL


def resnet18() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None, num_classes=5).to(F64)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_summation_to_delta_on_a_torchvision_resnet():
    """In-place ReLUs reused per block, ``out += identity`` and a 3×3/2 max pool with overlapping
    windows: Σ map = f(x) − f(x′) (measured ≤ 5e-16 absolute on scores of order 1), where
    gradient × (x − x′) misses by orders of magnitude more (the control)."""
    model, x = resnet18(), rand(2, 3, 32, 32, seed=8)
    base = rand(2, 3, 32, 32, seed=9) * 0.3
    target, contrast = TARGET[:2], CONTRAST[:2]
    got = sw.attribute(model, x, method="deeplift", target=target, contrast=contrast,
                       baseline=base)
    with torch.no_grad():
        lx, lb = model(x), model(base)
    delta = (lx[range(2), target] - lx[range(2), contrast]) \
        - (lb[range(2), target] - lb[range(2), contrast])
    gap = (got.values.flatten(1).sum(1) - delta).abs().max()
    assert float(gap) < 1e-10 * float(delta.abs().max()), f"summation gap {float(gap):.2e}"
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    (g,) = torch.autograd.grad((out[range(2), target] - out[range(2), contrast]).sum(), xg)
    control = float((((x - base) * g).flatten(1).sum(1) - delta).abs().max())
    assert control > 1e-3 * float(delta.abs().max())


def test_deeplift_shap_sums_to_the_mean_reference_delta_on_a_resnet():
    model, x = resnet18(), rand(2, 3, 32, 32, seed=10)
    refs = rand(3, 3, 32, 32, seed=11) * 0.5
    got = sw.attribute(model, x, method="deeplift_shap", target=TARGET[:2], references=refs)
    with torch.no_grad():
        fx = model(x)[range(2), TARGET[:2]]
        fr = model(refs)[:, TARGET[:2]].mean(0)
    gap = float((got.values.flatten(1).sum(1) - (fx - fr)).abs().max())
    assert gap < 1e-10 * float((fx - fr).abs().max()), f"summation gap {gap:.2e}"


def test_contrast_is_the_difference_of_two_maps():
    """The multipliers do not depend on the target, so map(t vs c) = map(t) − map(c)."""
    model, x = captum_net(), rand(3, 3, 16, 16, seed=12)
    both = sw.attribute(model, x, method="deeplift", target=TARGET, contrast=CONTRAST).values
    t = sw.attribute(model, x, method="deeplift", target=TARGET).values
    c = sw.attribute(model, x, method="deeplift", target=CONTRAST).values
    assert rel_err(both, t - c) < TOL


def test_deeplift_shap_without_a_set_is_deeplift():
    model, x = captum_net(), rand(2, 3, 16, 16, seed=13)
    norm = ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    a = sw.attribute(model, x, method="deeplift_shap", target=[0, 1], normalization=norm)
    b = sw.attribute(model, x, method="deeplift", target=[0, 1], normalization=norm)
    assert torch.equal(a.values, b.values)
    assert a.params["references"] == "black" and b.params["baseline"] == "black"


@pytest.mark.parametrize("refs,pattern", [
    (torch.zeros(3, 16, 16, dtype=F64), r"\(R, C, H, W\).*unsqueeze\(0\)"),
    (torch.zeros(2, 1, 16, 16, dtype=F64), r"\(R, 3, 16, 16\).*got shape \(2, 1, 16, 16\)"),
    (torch.zeros(0, 3, 16, 16, dtype=F64), r"R ≥ 1"),
    (torch.zeros(2, 3, 16, 16, dtype=torch.long), r"dtype torch.int64"),
    (torch.full((2, 3, 16, 16), float("nan"), dtype=F64), r"NaN"),
    ("sepia", r"references='sepia' is not supported.*a tensor \(R, C, H, W\) of references"),
])
@pytest.mark.parametrize("name", ["deeplift_shap", "gradient_shap"])
def test_bad_references_fail_clearly(name, refs, pattern):
    with pytest.raises(sw.SaliencyError, match=pattern):
        sw.attribute(captum_net(), rand(2, 3, 16, 16, seed=0), method=name, references=refs)


def test_nonlinearity_across_the_batch_is_refused():
    class Mixing(nn.Module):
        def forward(self, x):
            return torch.relu(x.flatten(1).t()).t()[:, :5]

    with pytest.raises(sw.SaliencyError, match="first dimension is not the batch"):
        sw.attribute(Mixing().eval(), rand(2, 1, 4, 4, seed=0), method="deeplift", target=0)
