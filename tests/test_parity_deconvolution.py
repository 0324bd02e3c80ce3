"""Deconvolution: parity with Captum 0.9's ``Deconvolution``, also for ReLUs Captum cannot hook.

Captum rewrites the backward of ``nn.ReLU`` modules; we intercept ReLU *calls*, so in-place,
reused and functional ReLUs are rewritten too: such a model must give what the same weights give
with one separate ``nn.ReLU`` module per use (which Captum handles). Float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_widgets as sw

captum_attr = pytest.importorskip("captum.attr")
from captum.attr import Deconvolution  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks")

F64 = torch.float64
TOL = 1e-12
TARGET, CONTRAST = [2, 0, 4], [1, 1, 0]


class Net(nn.Module):
    """conv-ReLU-maxpool-conv-ReLU-GAP-linear; ``relus``: separate modules, one in-place module
    used twice, or functional ``F.relu``."""

    def __init__(self, relus: str):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.c1 = nn.Conv2d(3, 6, 3, padding=1)
            self.c2 = nn.Conv2d(6, 8, 3, padding=1)
            self.head = nn.Linear(8, 5)
        self.relus = relus
        self.r1 = nn.ReLU(inplace=relus == "reused")
        self.r2 = nn.ReLU() if relus == "separate" else self.r1

    def relu(self, x, which):
        return F.relu(x) if self.relus == "functional" else which(x)

    def forward(self, x):
        h = F.max_pool2d(self.relu(self.c1(x), self.r1), 2)
        h = self.relu(self.c2(h), self.r2)
        return self.head(h.mean((2, 3)))


def x3() -> torch.Tensor:
    return torch.randn(3, 3, 12, 12, dtype=F64, generator=torch.Generator().manual_seed(1))


def test_matches_captum():
    model, x = Net("separate").to(F64).eval(), x3()
    ref = Deconvolution(model).attribute(x.clone().requires_grad_(True), target=TARGET).detach()
    got = sw.attribute(model, x, method="deconvolution", target=TARGET).values
    err = float((got - ref).abs().max() / ref.abs().max())
    assert err < TOL, f"deconvolution vs Captum: {err:.2e} (tol {TOL})"
    grad = sw.attribute(model, x, method="gradient", target=TARGET).values
    assert float((got - grad).abs().max()) > 1e-3  # it is not the plain gradient


@pytest.mark.parametrize("relus", ["reused", "functional"])
def test_every_relu_call_is_rewritten(relus):
    ref = sw.attribute(Net("separate").to(F64).eval(), x3(), method="deconvolution",
                       target=TARGET, contrast=CONTRAST).values
    got = sw.attribute(Net(relus).to(F64).eval(), x3(), method="deconvolution", target=TARGET,
                       contrast=CONTRAST).values
    assert float((got - ref).abs().max() / ref.abs().max()) < TOL


def test_contrast_is_the_gradient_rectified_after_the_difference():
    """The rectification acts on the backward signal of ``l_t − l_c``, so unlike LRP and
    DeepLIFT the contrastive map is *not* map(t) − map(c); it is Captum's deconvolution of the
    difference model ``x ↦ l_t(x) − l_c(x)``."""
    model, x = Net("separate").to(F64).eval(), x3()

    class Difference(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            out = self.net(x)
            t, c = torch.tensor(TARGET), torch.tensor(CONTRAST)
            return (out[range(3), t] - out[range(3), c])[:, None]

    ref = Deconvolution(Difference().eval()).attribute(x.clone().requires_grad_(True),
                                                       target=0).detach()
    got = sw.attribute(model, x, method="deconvolution", target=TARGET, contrast=CONTRAST).values
    assert float((got - ref).abs().max() / ref.abs().max()) < TOL


def test_model_without_relu_warns():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.LazyLinear(3))
    model(x3().float())
    with pytest.warns(sw.SaliencyWarning, match="no ReLU"):
        sw.attribute(model.eval(), x3().float(), method="deconvolution", target=0)
