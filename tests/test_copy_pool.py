"""The reused structural copy (``model/copy.py``): a refreshed copy is exactly what a new copy
would be, so every change to the user's model between calls reaches the next call, and a copy
serves one call at a time."""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref

import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets.model import copy as copy_mod
from saliency_widgets.model.copy import explainable


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4, 3)
        self.scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)).mean((2, 3))) * self.scale


def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def gradient(model: nn.Module) -> torch.Tensor:
    return sw.attribute(model, X, [0, 1], method="gradient").values


def fresh(model: nn.Module) -> torch.Tensor:
    """The same map from a newly built copy (the pool emptied first)."""
    copy_mod._POOL.clear()
    return gradient(model)


def test_the_copy_is_reused_and_refreshed():
    model = net()
    with explainable(model) as first:
        pass
    with explainable(model) as second:
        pass
    assert second is first  # reused, not rebuilt
    assert all(not m.training for m in second.modules())
    assert second.conv is not model.conv and second.conv.weight is not model.conv.weight
    assert second.conv.weight.data_ptr() == model.conv.weight.data_ptr()  # shared storage
    assert not second.conv.weight.requires_grad


@pytest.mark.parametrize("change", ["attribute", "parameter", "data", "in_place", "buffer",
                                    "child", "deleted", "training"])
def test_a_change_between_calls_reaches_the_next_call(change):
    model = net()
    gradient(model)  # the pool now holds a copy of the unchanged model
    if change == "attribute":
        model.scale = 3.0
    elif change == "parameter":
        model.head.weight = nn.Parameter(torch.randn(3, 4))
    elif change == "data":
        model.head.weight.data = torch.randn(3, 4)  # .data: no version bump, same Parameter
    elif change == "in_place":
        with torch.no_grad():
            model.head.weight.mul_(-2)
    elif change == "buffer":
        model.register_buffer("unused", torch.ones(1))
    elif change == "child":
        model.act = nn.Tanh().eval()
    elif change == "deleted":
        model.extra = 1.0
        gradient(model)
        del model.extra
    else:
        model.train()
    def warns():
        if change == "training":
            return pytest.warns(sw.SaliencyWarning, match="training mode")
        return contextlib.nullcontext()

    with warns():
        after = gradient(model)
    with warns():
        expected = fresh(model)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    with warns(), explainable(model) as copy:
        assert set(copy.__dict__) == set(model.__dict__)


def test_user_hooks_added_or_removed_between_calls_are_seen():
    model = net()
    calls = []
    gradient(model)
    handle = model.conv.register_forward_hook(lambda m, i, o: calls.append(1))
    gradient(model)
    assert calls == [1]  # the user's hook runs in the copy, as it did in a new copy
    handle.remove()
    gradient(model)
    assert calls == [1]  # and a removed one no longer does
    assert len(model.conv._forward_hooks) == 0


def test_concurrent_calls_get_their_own_copies():
    model = net()
    with explainable(model) as outer:
        with explainable(model) as inner:
            assert inner is not outer
    seen = []
    barrier = threading.Barrier(2)

    def work() -> None:
        with explainable(model) as c:
            barrier.wait(timeout=10)
            seen.append(c)
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 2 and seen[0] is not seen[1]


def test_a_copy_that_saw_an_exception_is_not_reused():
    model = net()
    with explainable(model) as first:
        pass
    with pytest.raises(RuntimeError):
        with explainable(model) as second:
            assert second is first
            raise RuntimeError("boom")
    with explainable(model) as third:
        assert third is not first


def test_the_pool_lets_a_model_go():
    model = net()
    gradient(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert not any(r() is None for r, _ in copy_mod._POOL.values())


def test_the_pool_is_bounded():
    models = [net() for _ in range(copy_mod._POOL_SIZE + 3)]
    for m in models:
        gradient(m)
    assert len(copy_mod._POOL) <= copy_mod._POOL_SIZE


class FunctionalReLU(nn.Module):
    """One ReLU module and a second ReLU, functional or (``functional=False``) a module."""

    def __init__(self, functional: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = None if functional else nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.act(self.conv(x)))
        h = torch.nn.functional.relu(h) if self.act2 is None else self.act2(h)
        return self.head(h.mean((2, 3)))


@pytest.mark.parametrize("method", ["guided_backprop", "guided_grad_cam"])
def test_guided_relus_by_module_hooks_equal_the_mode(method):
    """After a first guided call (under the mode, which checks every ReLU call comes from an
    nn.ReLU module), calls of the same copy guide by module hooks: the same map exactly."""
    from saliency_widgets.model import hooks
    model = net()
    kw = {"layer": "conv"} if method == "guided_grad_cam" else {}
    first = sw.attribute(model, X, [0, 1], method=method, **kw)
    with explainable(model) as copy:
        assert hooks._MODULE_RELUS_ONLY.get(copy) is True
    second = sw.attribute(model, X, [0, 1], method=method, **kw)
    torch.testing.assert_close(second.values, first.values, rtol=0, atol=0)
    plain = sw.attribute(model, X, [0, 1], method="gradient")
    assert not torch.equal(plain.values, first.values)  # guided, not the plain gradient


def test_a_functional_relu_keeps_the_mode():
    from saliency_widgets.model import hooks
    model = FunctionalReLU().eval()
    first = sw.attribute(model, X, [0, 1], method="guided_backprop")
    with explainable(model) as copy:
        assert not hooks._MODULE_RELUS_ONLY.get(copy, False)
    second = sw.attribute(model, X, [0, 1], method="guided_backprop")
    torch.testing.assert_close(second.values, first.values, rtol=0, atol=0)
    # the functional ReLU is guided like a module one: a twin with modules only (module hooks
    # from its second call on) gives the same map
    twin = FunctionalReLU(functional=False).eval()
    for _ in range(2):
        torch.testing.assert_close(sw.attribute(twin, X, [0, 1], method="guided_backprop").values,
                                   first.values, rtol=0, atol=0)
