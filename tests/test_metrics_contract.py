"""The contract every registered metric keeps (iterated from ``sw.list_metrics()``).

Float64 on tiny models whose values are known in closed form; each assert states its
tolerance. Shared helpers live in ``metric_helpers.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import linear_model
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import linear_model

try:
    from .metric_helpers import F64, METRICS, rand
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from metric_helpers import F64, METRICS, rand


CHEAP = {
    "deletion": {"steps": 3},
    "insertion": {"steps": 3},
    "infidelity": {"samples": 3},
    "max_sensitivity": {"samples": 2},
    "road": {"percentages": (0.25, 0.5)},
    "model_randomization": {},
}
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_load_state_dict_pre_hooks")


def user_model() -> nn.Module:
    """BN statistics, a submodule in training mode, a frozen weight, a .grad and a user hook."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Dropout(0.5), nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
        model[1].running_mean.copy_(torch.randn(4, generator=g) * 0.2)
        model[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
    model = model.double().eval()
    model[3].train()
    model[0].weight.requires_grad_(False)
    model[8].weight.grad = torch.full_like(model[8].weight, 0.25)
    model[4].register_forward_hook(lambda m, i, o: None)
    return model


def snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "grad": [(p.requires_grad, None if p.grad is None else p.grad.clone())
                     for p in model.parameters()],
            "hooks": [[dict(getattr(m, d)) for d in HOOK_DICTS] for m in model.modules()]}


def assert_untouched(model: nn.Module, snap: dict, name: str) -> None:
    state = model.state_dict()
    assert list(state) == list(snap["state"]), f"{name}: state_dict keys changed"
    for k, v in state.items():
        assert torch.equal(v, snap["state"][k]), f"{name}: {k} changed (bit-identical expected)"
    assert [m.training for m in model.modules()] == snap["training"], f"{name}: training flags"
    for p, (rg, grad) in zip(model.parameters(), snap["grad"]):
        assert p.requires_grad == rg, f"{name}: requires_grad changed"
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad), \
            f"{name}: .grad changed"
    assert [[dict(getattr(m, d)) for d in HOOK_DICTS] for m in model.modules()] == \
        snap["hooks"], f"{name}: hooks changed"


@pytest.fixture(scope="module")
def contract_setup():
    model = user_model()
    x = rand(2, 3, 8, 8, seed=21)
    with pytest.warns(sw.SaliencyWarning, match="training mode"):  # the Dropout left in train
        attr = sw.attribute(model, x, method="integrated_gradients", steps=4)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:5, 1:4] = True
    masks[1, 5:, 5:] = True
    return model, x, attr, masks


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_contract(name, contract_setup):
    model, x, attr, masks = contract_setup
    x0 = x.clone()
    snap = snapshot(model)
    rng = torch.get_rng_state()
    np_rng = np.random.get_state()
    params = CHEAP.get(name, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        a = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=7, **params)
        b = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=7, **params)
        c = sw.evaluate(model, x, attr, metric=name, masks=masks, seed=8, **params)
    assert_untouched(model, snap, name)
    assert torch.equal(x, x0) and not x.requires_grad, f"{name}: the input changed"
    assert torch.equal(torch.get_rng_state(), rng), f"{name}: the global torch RNG was used"
    after = np.random.get_state()
    assert after[0] == np_rng[0] and np.array_equal(after[1], np_rng[1]) \
        and after[2:] == np_rng[2:], f"{name}: the global numpy RNG was used"
    assert a.metric == name
    assert a.higher_is_better is METRICS[name]["higher_is_better"]
    assert a.scores.shape == (2,) and a.scores.dtype == F64
    assert not a.scores.requires_grad
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=0, equal_nan=True,
                               msg=f"{name}: same seed, different scores")
    if a.curve is not None:
        assert a.curve.shape[0] == 2
        torch.testing.assert_close(a.curve, b.curve, rtol=0, atol=0, equal_nan=True)
    if METRICS[name]["stochastic"]:
        assert not torch.equal(a.scores, c.scores), f"{name}: the seed has no effect"
    else:
        torch.testing.assert_close(a.scores, c.scores, rtol=0, atol=0, equal_nan=True,
                                   msg=f"{name}: deterministic metric depends on the seed")
    assert a.seconds >= 0
    for k, v in params.items():
        assert a.params[k] == v
    with pytest.raises(SaliencyError, match="unknown parameter"):
        sw.evaluate(model, x, attr, metric=name, masks=masks, not_a_param=1)


def test_unknown_metric_and_plain_tensor_target():
    model = linear_model(1, 4, 4, 3)
    x = rand(2, 1, 4, 4)
    with pytest.raises(SaliencyError, match="did you mean 'deletion'"):
        sw.evaluate(model, x, torch.zeros_like(x), metric="deletoin")
    # a plain tensor with target=None explains the predicted class, as sw.attribute does
    values = rand(2, 1, 4, 4, seed=3)
    with torch.no_grad():
        t = model(x).argmax(1).tolist()
    a = sw.evaluate(model, x, values, metric="deletion", baseline=0.0, steps=4)
    b = sw.evaluate(model, x, values, target=t, metric="deletion", baseline=0.0, steps=4)
    assert torch.equal(a.scores, b.scores)
    with pytest.raises(SaliencyError, match="differs"):
        attr = sw.attribute(model, x, target=[0, 1], method="gradient")
        sw.evaluate(model, x, attr, target=[1, 1], metric="sparseness")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(METRICS))
def test_metric_runs_on_cuda_like_cpu(name, contract_setup):
    # the deletion/insertion AUC once mixed a CUDA curve with a CPU x-axis (RuntimeError)
    model, x, attr, masks = contract_setup
    dev = torch.device("cuda")
    gpu_model = user_model().to(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        gpu_attr = sw.attribute(gpu_model, x.to(dev), method="integrated_gradients", steps=4)
        r = sw.evaluate(gpu_model, x.to(dev), gpu_attr, metric=name, masks=masks.to(dev),
                        seed=7, **CHEAP.get(name, {}))
    assert r.scores.shape == (2,) and r.scores.device.type == "cpu"
    if r.curve is not None:
        assert r.curve.device.type == "cpu" and r.curve_x.device.type == "cpu"
