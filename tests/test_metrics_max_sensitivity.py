"""Max-sensitivity: the closed form on linear models and parity with Captum.

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations


import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import bias_free_relu_cnn, linear_model, smooth_cnn
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import bias_free_relu_cnn, linear_model, smooth_cnn

try:
    from .metric_helpers import max_err, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import max_err, rand


def test_max_sensitivity_linear_gradient_is_exactly_zero():
    model = linear_model(3, 4, 4, 5)
    x = rand(2, 3, 4, 4, seed=1)
    attr = sw.attribute(model, x, method="gradient")
    r = sw.evaluate(model, x, attr, metric="max_sensitivity", samples=4, radius=0.5)
    assert r.scores.tolist() == [0.0, 0.0], f"expected exactly 0, got {r.scores.tolist()}"
    assert r.curve.shape == (2, 4) and r.curve_x.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_max_sensitivity_needs_an_explanation():
    model = linear_model(1, 4, 4, 2)
    x = rand(1, 1, 4, 4)
    with pytest.raises(SaliencyError, match="re-explains"):
        sw.evaluate(model, x, torch.zeros_like(x), target=0, metric="max_sensitivity")


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_max_sensitivity_matches_captum_under_the_same_perturbations():
    metrics = pytest.importorskip("captum.metrics")
    from captum.attr import Saliency

    model = smooth_cnn(c=2, k=3, act="tanh", seed=8)
    B, S = 3, 4
    x = rand(B, 2, 6, 6, seed=9)
    attr = sw.attribute(model, x, method="gradient")
    eps = rand(S, B, 2, 6, 6, seed=10, scale=0.2)
    eps_em = eps.transpose(0, 1).reshape(B * S, 2, 6, 6)  # Captum's example-major order

    def perturb_func(inputs, radius):
        assert inputs.shape == eps_em.shape
        return inputs + eps_em

    ours = sw.evaluate(model, x, attr, metric="max_sensitivity", perturbation=eps)
    ref = metrics.sensitivity_max(Saliency(model).attribute, x, perturb_func=perturb_func,
                                  n_perturb_samples=S, target=list(attr.target), abs=False)
    rel = max_err(ours.scores, ref) / float(ref.abs().max())
    assert rel <= 1e-10, f"relative error vs Captum {rel:.2e} (tol 1e-10): ours " \
                         f"{ours.scores.tolist()} captum {ref.tolist()}"
    assert float(ref.min()) > 1e-4, "the comparison must be on non-trivial values"


def test_max_sensitivity_monotone_in_samples():
    model = bias_free_relu_cnn(c=1, k=3, bias=True, seed=1)
    x = rand(2, 1, 6, 6, seed=3)
    attr = sw.attribute(model, x, method="gradient")
    prev = None
    for n in (1, 3, 6):
        r = sw.evaluate(model, x, attr, metric="max_sensitivity", samples=n, radius=0.3, seed=5)
        if prev is not None:
            # draws come one sample at a time: a larger run starts with the smaller run's draws
            assert torch.equal(r.curve[:, :prev.curve.shape[1]], prev.curve), \
                f"samples={n}: the first draws differ from the smaller run's (exact)"
            assert bool((r.scores >= prev.scores).all()), \
                f"samples={n}: {r.scores.tolist()} < {prev.scores.tolist()} (exact)"
        prev = r
    assert float(prev.scores.max()) > 0
