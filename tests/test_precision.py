"""``precision=``: the process-wide TF32 switches are set for the call and put back exactly as
they were (also after an exception, also when the user changed them first), bf16 autocast runs
the model in bfloat16, and the mode is recorded. Runs on the CPU: the CUDA switches can be set
and read without a GPU."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import saliency_widgets as sw
from saliency_widgets import precision as prec

_SWITCHES = ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision",
             "cudnn.conv.fp32_precision", "cudnn.rnn.fp32_precision", "mkldnn.fp32_precision",
             "mkldnn.matmul.fp32_precision", "mkldnn.conv.fp32_precision",
             "mkldnn.rnn.fp32_precision", "cuda.matmul.allow_tf32", "cudnn.allow_tf32")


def state() -> dict[str, object]:
    """Every switch, read through every API (a getter that refuses a mixed state is recorded as
    its error message, which must not change either)."""
    out: dict[str, object] = {}
    try:
        out["matmul"] = torch.get_float32_matmul_precision()
    except RuntimeError as err:  # refuses once both APIs were used
        out["matmul"] = f"error: {err}"
    for name in _SWITCHES:
        obj: object = torch.backends
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
            out[name] = obj
        except (AttributeError, RuntimeError) as err:
            out[name] = f"error: {err}"
    return out


@pytest.fixture(autouse=True)
def restore_switches():
    """Each test leaves the process as it found it, whatever it asserts."""
    before = prec.snapshot()
    yield
    prec.restore(before)


class Recorder(nn.Module):
    """A small CNN that records the switches and the autocast state inside its forward."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        self.fail = fail
        self.seen: list[dict[str, object]] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append({**state(), "autocast": torch.is_autocast_enabled("cpu")})
        if self.fail:
            raise RuntimeError("the model failed")
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def user_settings(kind: str) -> None:
    """Switch settings a user might have made before calling us."""
    if kind == "medium":
        torch.set_float32_matmul_precision("medium")  # bf16 matmuls on oneDNN, TF32 on CUDA
    elif kind == "new_api":
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "tf32"


@pytest.mark.parametrize("mode", prec.MODES)
@pytest.mark.parametrize("settings", ["default", "medium", "new_api"])
@pytest.mark.parametrize("fail", [False, True])
def test_switches_are_put_back_exactly(mode, settings, fail):
    user_settings(settings)
    before = state()
    model = Recorder(fail=fail)
    if fail:
        with pytest.raises(RuntimeError, match="the model failed"):
            sw.attribute(model, X, 0, method="gradient", precision=mode)
    else:
        attr = sw.attribute(model, X, 0, method="gradient", precision=mode)
        assert attr.precision == mode
    assert state() == before
    inside = model.seen[0]
    # on the CPU every mode computes fp32 matmuls in IEEE precision (oneDNN has no TF32 here)
    assert inside["mkldnn.matmul.fp32_precision"] in ("ieee", "none")
    assert inside["mkldnn.conv.fp32_precision"] in ("ieee", "none")
    assert inside["autocast"] == (mode == "bf16")


@pytest.mark.parametrize("mode,expected", [("fp32", "ieee"), ("bf16", "ieee"), ("tf32", "tf32")])
def test_cuda_switches_inside_a_cuda_scope(mode, expected):
    """What a CUDA call sets (the switches exist without a GPU): TF32 only for "tf32"."""
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # PyTorch's default for convolutions
    before = state()
    with prec.switches(mode, "cuda"):
        assert torch.backends.cuda.matmul.fp32_precision == expected
        assert torch.backends.cudnn.conv.fp32_precision == expected
        assert torch.backends.cudnn.rnn.fp32_precision == expected
    assert state() == before
    with pytest.raises(ValueError):
        with prec.switches(mode, "cuda"):
            raise ValueError("inside")
    assert state() == before


def test_nested_scopes_in_one_thread_restore_in_order():
    before = state()
    with prec.switches("fp32", "cuda"):
        with prec.switches("tf32", "cuda"):
            assert torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert state() == before


def test_threads_needing_other_switches_wait_for_each_other():
    before = state()
    inside, release, seen = threading.Event(), threading.Event(), []

    def holder() -> None:
        with prec.switches("tf32", "cuda"):
            inside.set()
            release.wait(10)
            seen.append(("tf32 end", torch.backends.cudnn.conv.fp32_precision))

    def waiter() -> None:
        with prec.switches("fp32", "cuda"):
            seen.append(("fp32", torch.backends.cudnn.conv.fp32_precision))

    a = threading.Thread(target=holder)
    a.start()
    assert inside.wait(10)
    b = threading.Thread(target=waiter)
    b.start()
    b.join(0.3)
    assert b.is_alive()  # it waits: the switches are held with other settings
    release.set()
    a.join(10)
    b.join(10)
    assert seen == [("tf32 end", "tf32"), ("fp32", "ieee")]
    assert state() == before


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(sw.SaliencyError, match="precision must be one of 'fp32', 'tf32', "
                                                "'bf16', got 'fp16'"):
        sw.attribute(Recorder(), X, 0, method="gradient", precision="fp16")


def test_bf16_runs_the_model_in_bfloat16_and_records_it():
    model = Recorder()
    a = sw.attribute(model, X, [0, 1], method="integrated_gradients", steps=8)
    b = sw.attribute(model, X, [0, 1], method="integrated_gradients", steps=8,
                     precision="bf16")
    assert (a.precision, b.precision) == ("fp32", "bf16")
    assert b.values.dtype == torch.float32
    err = float((a.values - b.values).abs().max() / a.values.abs().max())
    # bfloat16 keeps 8 mantissa bits (relative rounding 2⁻⁹ ≈ 2e-3 per operation): measured
    # 1e-2 on this net. Zero would mean autocast never ran; above 0.1 something else broke.
    assert 1e-4 < err < 0.1
    # tf32 on the CPU is IEEE fp32 (oneDNN has no TF32 here): the same numbers exactly
    c = sw.attribute(model, X, [0, 1], method="integrated_gradients", steps=8,
                     precision="tf32")
    torch.testing.assert_close(c.values, a.values, rtol=0, atol=0)


def test_evaluate_takes_the_records_precision_and_replays_it():
    model = Recorder()
    attr = sw.attribute(model, X, [0, 1], method="gradient", precision="bf16")
    model.seen.clear()
    res = sw.evaluate(model, X, attr, metric="max_sensitivity", samples=2)
    assert res.precision == "bf16"
    assert model.seen and all(s["autocast"] for s in model.seen)  # re-explanations too
    res = sw.evaluate(model, X, attr.values, target=[0, 1], metric="deletion", steps=4)
    assert res.precision == "fp32"
