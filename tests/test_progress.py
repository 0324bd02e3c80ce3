"""``progress=True``: a ``tqdm.auto`` bar on every long public call, and results identical to the
calls without it (the bar only listens to the progress callback the work already reports).

Tiny models on 8 × 8 inputs: the whole file takes about a second.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError


def _cnn() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def _x(b: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method, params", [("integrated_gradients", {"steps": 8}),
                                            ("occlusion", {"window": 2}),
                                            ("smoothgrad", {"samples": 3}),  # seeded noise
                                            ("grad_cam", {})])
def test_attribute_with_a_bar_gives_the_same_map(method, params, capfd):
    model, x = _cnn(), _x()
    plain = sw.attribute(model, x, method=method, batch_size=2, **params)
    seen = []
    called = sw.attribute(model, x, method=method, batch_size=2,
                          progress=lambda d, t: seen.append((d, t)), **params)
    barred = sw.attribute(model, x, method=method, batch_size=2, progress=True, **params)
    assert torch.equal(plain.values, barred.values) and torch.equal(plain.values, called.values)
    assert plain.params == barred.params and plain.target == barred.target
    err = capfd.readouterr().err
    assert f"attribute {method}" in err and "100%" in err, err[-300:]
    assert seen and seen[-1][0] == seen[-1][1]


def test_evaluate_with_a_bar_gives_the_same_scores(capfd):
    model, x = _cnn(), _x()
    attr = sw.attribute(model, x, method="gradient")
    for metric, params in (("deletion", {"steps": 4}), ("infidelity", {"samples": 4}),
                           ("max_sensitivity", {"samples": 2})):
        plain = sw.evaluate(model, x, attr, metric=metric, **params)
        barred = sw.evaluate(model, x, attr, metric=metric, progress=True, **params)
        assert torch.equal(plain.scores, barred.scores), metric
        assert plain.params == barred.params
        assert f"evaluate {metric}" in capfd.readouterr().err


def test_validate_counts_the_whole_run_and_gives_the_same_table(capfd):
    model, x = _cnn(), _x()
    kw = dict(methods={"gradient": {}, "integrated_gradients": {"steps": 4}},
              metrics={"deletion": {"steps": 4}, "sparseness": {}}, bootstrap=0)
    plain = sw.validate(model, x, **kw)
    seen: list[tuple[int, int]] = []
    called = sw.validate(model, x, progress=lambda d, t: seen.append((d, t)), **kw)
    barred = sw.validate(model, x, progress=True, **kw)
    for key, r in plain.results.items():
        assert torch.equal(r.scores, barred.results[key].scores)
        assert torch.equal(r.scores, called.results[key].scores)
    # one fixed total (2 methods × (1 + 2 metrics) calls), never backwards, ending at the total
    totals = {t for _, t in seen}
    assert totals == {6 * 1000}, totals
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 6000
    assert "validate" in capfd.readouterr().err


def test_data_randomization_and_attack_with_a_bar(capfd):
    model, x = _cnn(), _x()
    other = _cnn()
    with torch.no_grad():
        other[0].weight.mul_(-1)
    attr = sw.attribute(model, x, method="gradient")
    plain = sw.data_randomization(model, other, x, attr)
    barred = sw.data_randomization(model, other, x, attr, progress=True)
    assert torch.equal(plain.scores, barred.scores)
    a = sw.attack(model, x, method="gradient", steps=2, beta=None)
    b = sw.attack(model, x, method="gradient", steps=2, beta=None, progress=True)
    assert torch.equal(a.x, b.x)
    sweep = sw.attack_sweep(model, x, method="gradient", steps=1, beta=None,
                            epsilons=(1 / 255, 2 / 255), progress=True)
    assert len(sweep) == 2
    err = capfd.readouterr().err
    assert "data_randomization" in err and "attack gradient" in err and "attack_sweep" in err


def test_progress_false_is_none_and_nonsense_is_refused():
    model, x = _cnn(), _x(1)
    a = sw.attribute(model, x, method="gradient", progress=False)
    assert torch.equal(a.values, sw.attribute(model, x, method="gradient").values)
    with pytest.raises(SaliencyError, match="progress must be True .* or callable"):
        sw.attribute(model, x, method="gradient", progress="yes")


def test_a_missing_tqdm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes `import tqdm.auto` fail
    with pytest.raises(SaliencyError, match="tqdm is not installed: pip install tqdm"):
        sw.attribute(_cnn(), _x(1), method="gradient", progress=True)
    # a callable still works without tqdm
    sw.attribute(_cnn(), _x(1), method="gradient", progress=lambda d, t: None)
