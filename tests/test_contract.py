"""The contract every registered method keeps (iterated from ``sw.list_methods()``).

Shapes and dtypes, the user's model and input left untouched (also after an exception, a cancel,
and while another thread uses the model), seed determinism, exact zeros for a self-contrast,
batch and chunk-size independence, progress reports, and the registry's error messages.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

import saliency_widgets as sw

METHODS = [m["name"] for m in sw.list_methods()]
SPECS = {m["name"]: m for m in sw.list_methods()}
STOCHASTIC = {name for name, m in SPECS.items() if m["stochastic"]}
# Class-agnostic maps ignore the target: they refuse contrast= (see test_self_contrast_…).
AGNOSTIC = {name for name, m in SPECS.items() if m.get("class_agnostic")}
# Methods that read self-attention run the contract on a small ViT instead of the CNN.
VIT_ONLY = {name for name, m in SPECS.items() if m["family"] == "transformer"}

def _xrai_regions(size: int = 16) -> torch.Tensor:
    """Seven overlapping regions of a ``size × size`` image (quadrants, halves, a centre)."""
    h, q = size // 2, size // 4
    m = torch.zeros(7, size, size, dtype=torch.bool)
    m[0, :h, :h] = m[1, :h, h:] = m[2, h:, :h] = m[3, h:, h:] = True
    m[4, :, :h] = m[5, :, h:] = m[6, q:h + q, q:h + q] = True
    return m


REFERENCES = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))  # R=3, SIZE

# Cheap settings for the expensive methods; a method not listed runs with its defaults.
# (XRAI's Felzenszwalb segmentation is checked in tests/test_pair_methods.py.)
CHEAP = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"samples": 3},
    "occlusion": {"window": 4},
    "score_cam": {},
    "lime": {"grid": 2, "samples": 16},
    "kernel_shap": {"grid": 2, "samples": 16},
    "blur_ig": {"steps": 4},
    "guided_ig": {"steps": 4},
    "rise": {"samples": 24, "grid": 2},
    "xrai": {"steps": 2, "segments": _xrai_regions()},
    # a reference set (R = 3) for the SHAP variants: the contract covers a set, not one baseline
    "deeplift_shap": {"references": REFERENCES},
    "gradient_shap": {"samples": 4, "noise": 0.1, "references": REFERENCES},
    "ablation_cam": {},
}

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
CLASSES = 5
SIZE = 16
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
              "_backward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks")


def params_for(name: str, **extra):
    accepted = SPECS[name]["params"]
    p = {k: v for k, v in CHEAP.get(name, {}).items() if k in accepted}
    p.update(extra)
    return p


def attribute(model, x, name, **kw):
    kw = {**params_for(name), **kw}
    return sw.attribute(model, x, method=name, **kw)


# --- models and inputs ------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Two conv/BN/ReLU blocks and a linear head; ``rendezvous`` (optional) is called
    mid-forward."""

    def __init__(self, in_ch: int = 3, dropout: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
        self.head = nn.Linear(8, CLASSES)
        self.rendezvous = None

    def forward(self, x):
        h = self.features[:3](x)
        if self.rendezvous is not None:
            self.rendezvous()
        h = self.features[3:](h)
        return self.head(self.drop(self.pool(h).flatten(1)))


def make_cnn(dtype=torch.float32, seed: int = 0, **kw) -> SmallCNN:
    """A fixed-weight CNN with non-trivial BN statistics, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(**kw)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        model.head.weight.data.mul_(3)
    return model.to(dtype).eval()


def make_x(batch: int = 3, dtype=torch.float32, seed: int = 1, channels: int = 3,
           size: tuple[int, int] = (SIZE, SIZE)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *size, generator=g, dtype=torch.float64).to(dtype)


# --- snapshot of everything the library must leave alone ----------------------------------------
def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "state_objs": dict(model.state_dict(keep_vars=True)),
        "modules": [(n, m, m.training, {d: dict(getattr(m, d, {}) or {}) for d in HOOK_DICTS},
                     dict(m._modules), dict(m._parameters), dict(m._buffers))
                    for n, m in model.named_modules()],
        "params": [(n, p, p.requires_grad, None if p.grad is None else p.grad.clone(),
                    p.grad) for n, p in model.named_parameters()],
        "global_hooks": _global_hooks(),
    }


def _global_hooks() -> tuple:
    mod = torch.nn.modules.module
    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
             "_global_backward_pre_hooks", "_global_forward_hooks_always_called")
    return tuple(tuple(getattr(mod, n, {}).keys()) for n in names)


def assert_untouched(model: nn.Module, snap: dict) -> None:
    state = model.state_dict(keep_vars=True)
    assert list(state) == list(snap["state"])
    for k, v in state.items():
        assert v is snap["state_objs"][k], f"{k} was replaced"
        ref = snap["state"][k]
        assert v.dtype == ref.dtype and v.shape == ref.shape
        assert torch.equal(v.detach(), ref), f"{k} changed"
    now = list(model.named_modules())
    assert [n for n, _ in now] == [s[0] for s in snap["modules"]]
    for (name, m), (_, m0, training, hooks, children, params, buffers) in zip(now, snap["modules"]):
        assert m is m0, f"module {name!r} was replaced"
        assert m.training == training, f"{name!r}.training changed"
        for d in HOOK_DICTS:
            assert dict(getattr(m, d, {}) or {}) == hooks[d], f"{name!r}.{d} changed"
        assert dict(m._modules) == children
        assert all(m._parameters[k] is p for k, p in params.items())
        assert all(m._buffers[k] is b for k, b in buffers.items())
    for (name, p), (_, p0, rg, grad, grad_obj) in zip(model.named_parameters(), snap["params"]):
        assert p is p0
        assert p.requires_grad == rg, f"{name}.requires_grad changed"
        if grad is None:
            assert p.grad is None, f"{name}.grad was written"
        else:
            assert p.grad is grad_obj and torch.equal(p.grad, grad), f"{name}.grad changed"
    assert _global_hooks() == snap["global_hooks"]


def assert_no_guided_leak() -> None:
    """ReLU must backpropagate plain gradients in this thread after the call."""
    t = torch.tensor([1.0, -1.0], requires_grad=True)
    (g,) = torch.autograd.grad((torch.relu(t) * -2.0).sum(), t)
    assert g.tolist() == [-2.0, 0.0]


class SmallViT(VisionTransformer):
    """torchvision's ViT at 16 px (4×4 patches of 4 px, 2 blocks, 2 heads), with ``rendezvous``
    called mid-forward like SmallCNN's."""

    def __init__(self, dropout: bool = False) -> None:
        super().__init__(image_size=SIZE, patch_size=4, num_layers=2, num_heads=2, hidden_dim=8,
                         mlp_dim=16, num_classes=CLASSES, dropout=0.5 if dropout else 0.0)
        self.rendezvous = None

    def forward(self, x):
        h = self._process_input(x)
        if self.rendezvous is not None:
            self.rendezvous()
        h = torch.cat([self.class_token.expand(h.shape[0], -1, -1), h], dim=1)
        return self.heads(self.encoder(h)[:, 0])


def make_vit(dtype=torch.float32, seed: int = 0, **kw) -> SmallViT:
    """A fixed-weight SmallViT; torchvision's zero-initialised head and class token re-drawn."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallViT(**kw)
        with torch.no_grad():
            model.heads.head.weight.normal_(0, 1.0)
            model.heads.head.bias.normal_(0, 0.1)
            model.class_token.normal_(0, 1.0)
    return model.to(dtype).eval()


def make_model(name: str, dtype=torch.float32, **kw):
    """The contract's model for method ``name``: SmallViT for attention methods, else SmallCNN."""
    return (make_vit if name in VIT_ONLY else make_cnn)(dtype, **kw)


def user_model_with_oddities(name: str = "gradient"):
    """Mixed training flags, a frozen parameter, pre-filled .grad, and a user hook."""
    model = make_model(name, dropout=True)
    if isinstance(model, SmallViT):
        model.encoder.dropout.train()
        model.conv_proj.weight.requires_grad_(False)
        model.heads.head.weight.grad = torch.full_like(model.heads.head.weight, 0.25)
        model.encoder.layers[1].register_forward_hook(lambda m, i, o: None)
        return model
    model.drop.train()  # one submodule in training mode, the rest in eval
    model.features[0].weight.requires_grad_(False)
    model.head.weight.grad = torch.full_like(model.head.weight, 0.25)
    model.features[3].register_forward_hook(lambda m, i, o: None)
    return model


# --- shape, dtype, detachment -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", METHODS)
def test_shape_dtype_detached(name, dtype):
    model = make_model(name, dtype)
    x = make_x(2, dtype)
    attr = attribute(model, x, name)
    channels = 3 if SPECS[name]["output"] == "input" else 1
    assert attr.values.shape == (2, channels, SIZE, SIZE)
    assert attr.values.dtype == dtype
    assert not attr.values.requires_grad and attr.values.grad_fn is None
    assert bool(torch.isfinite(attr.values).all())
    assert attr.method == name
    assert len(attr.target) == 2 and all(0 <= t < CLASSES for t in attr.target)
    with torch.no_grad():
        assert list(attr.target) == model(x).argmax(1).tolist()


@pytest.mark.parametrize("name", METHODS)
def test_logits_are_those_of_the_original_input(name):
    """``attr.logits`` comes from the method's own pass over the unperturbed input (the audit
    reads predictions from it): chunked row by row, and never from a perturbed copy."""
    model = make_model(name, torch.float64)
    x = make_x(3, torch.float64)
    contrast = None if name in AGNOSTIC else "runner_up"
    attr = attribute(model, x, name, batch_size=1, contrast=contrast)
    with torch.no_grad():
        expected = model(x)
    assert attr.logits is not None and attr.logits.shape == (3, CLASSES)
    torch.testing.assert_close(attr.logits, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", METHODS)
def test_half_precision_gives_float32(name, dtype):
    model = make_model(name).to(dtype)
    x = make_x(2).to(dtype)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as err:  # pragma: no cover - depends on the torch build
        pytest.skip(f"torch CPU has no {dtype} kernel for this model: {err}")
    try:
        attr = attribute(model, x, name)
    except (RuntimeError, NotImplementedError) as err:
        if "not implemented for" in str(err):
            pytest.skip(f"torch CPU lacks a {dtype} kernel used by {name}: {err}")
        raise
    channels = 3 if SPECS[name]["output"] == "input" else 1
    assert attr.values.shape == (2, channels, SIZE, SIZE)
    assert attr.values.dtype == torch.float32
    assert not attr.values.requires_grad
    assert bool(torch.isfinite(attr.values).all())


# --- the user's model and input are left alone --------------------------------------------------
_GRAD_CONTEXTS = {
    "grad": contextlib.nullcontext,
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


@pytest.mark.parametrize("grad_ctx", list(_GRAD_CONTEXTS))
@pytest.mark.parametrize("name", METHODS)
def test_model_and_input_untouched(name, grad_ctx):
    model = user_model_with_oddities(name)
    x = make_x(2).requires_grad_(True)
    x.grad = torch.full_like(x, 0.5)
    x_before, xgrad_before = x.detach().clone(), x.grad.clone()
    snap = snapshot(model)
    with _GRAD_CONTEXTS[grad_ctx]():
        grad_before = torch.is_grad_enabled()
        inference_before = torch.is_inference_mode_enabled()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sw.SaliencyWarning)  # the Dropout in train mode
            attr = attribute(model, x, name, target=[1, 3])
        assert torch.is_grad_enabled() == grad_before
        assert torch.is_inference_mode_enabled() == inference_before
    assert torch.is_grad_enabled()
    assert not attr.values.requires_grad
    assert_untouched(model, snap)
    assert torch.equal(x.detach(), x_before) and x.requires_grad and x.is_leaf
    assert torch.equal(x.grad, xgrad_before)
    assert_no_guided_leak()


@pytest.mark.parametrize("name", METHODS)
def test_inference_tensor_input(name):
    """An input created under inference_mode is accepted and the result matches a normal one."""
    model = make_model(name)
    with torch.inference_mode():
        xi = make_x(2)
        attr = attribute(model, xi, name, target=[0, 2])
    ref = attribute(model, make_x(2), name, target=[0, 2])
    torch.testing.assert_close(attr.values, ref.values, rtol=0, atol=TOL[torch.float32])


@pytest.mark.parametrize("name,baseline", [("integrated_gradients", "black"),
                                           ("occlusion", "blur")])
def test_named_baseline_under_inference_mode(name, baseline):
    model, norm = make_model(name), ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    with torch.inference_mode():
        attr = attribute(model, make_x(2), name, target=[0, 1], baseline=baseline,
                         normalization=norm)
    ref = attribute(model, make_x(2), name, target=[0, 1], baseline=baseline, normalization=norm)
    torch.testing.assert_close(attr.values, ref.values, rtol=0, atol=TOL[torch.float32])


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("name", METHODS)
def test_untouched_after_exception_mid_forward(name):
    model = user_model_with_oddities(name)
    counter = {"calls": 0, "fail_at": 2}

    def rendezvous():  # shared with the library's copy of the model: counts every forward
        counter["calls"] += 1
        if counter["calls"] == counter["fail_at"]:
            raise Boom("forward failed on purpose")

    model.rendezvous = rendezvous
    x = make_x(3)
    snap = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        with pytest.raises(Boom):
            attribute(model, x, name, target=[0, 1, 2], batch_size=1)
        assert counter["calls"] == 2
        assert torch.is_grad_enabled()
        assert_untouched(model, snap)
        assert_no_guided_leak()
        # nothing left behind: the same call now succeeds and matches a fresh model's result
        counter["fail_at"] = -1
        again = attribute(model, x, name, target=[0, 1, 2], batch_size=1)
        fresh = user_model_with_oddities(name)
        ref = attribute(fresh, x, name, target=[0, 1, 2], batch_size=1)
    assert torch.equal(again.values, ref.values)
    assert_untouched(model, snap)


@pytest.mark.parametrize("name", METHODS)
def test_cancel_from_progress(name):
    model = user_model_with_oddities(name)
    snap = snapshot(model)
    x = make_x(3)
    cancel = threading.Event()
    reports = []

    def progress(done, total):
        reports.append((done, total))
        cancel.set()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        with pytest.raises(sw.Cancelled):
            attribute(model, x, name, batch_size=1, progress=progress, cancel=cancel)
    assert len(reports) == 1, "work continued after the cancel event was set"
    assert reports[0][0] < reports[0][1]
    assert torch.is_grad_enabled()
    assert_untouched(model, snap)
    assert_no_guided_leak()
    # a set event cancels before any work; a cleared one lets the call finish
    with pytest.raises(sw.Cancelled):
        attribute(make_model(name), x, name, cancel=cancel)
    cancel.clear()
    assert attribute(make_model(name), x, name, cancel=cancel).values.shape[0] == 3


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", METHODS)
def test_concurrent_use_of_the_model(name, mode):
    """Another thread runs the model (forward and input gradient) while we explain it; its
    results stay correct and its modules keep the user's training flags throughout. Every
    forward of our copy waits until the other thread completes an iteration, so the two really
    interleave (hooks and guided ReLUs active in our thread while the other computes)."""
    model = make_model(name)
    model.train(mode == "train")
    snap = snapshot(model)
    xt = make_x(4, seed=7).requires_grad_(True)

    def run_user():
        out = model(xt)
        (g,) = torch.autograd.grad(out[:, 0].sum() - out[:, 1].sum(), xt)
        return out.detach(), g

    ref_out, ref_g = run_user()
    if mode == "train":
        snap = snapshot(model)  # the user's own train-mode forward updated the BN statistics
    main = threading.get_ident()
    stop = threading.Event()
    iterations = [0]
    errors: list[BaseException] = []
    tick = threading.Condition()

    def worker():
        try:
            while not stop.is_set():
                out, g = run_user()
                torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
                torch.testing.assert_close(g, ref_g, rtol=0, atol=1e-6)
                assert all(m.training == (mode == "train") for m in model.modules())
                with tick:
                    iterations[0] += 1
                    tick.notify_all()
        except BaseException as err:  # reported by the main thread
            errors.append(err)
            with tick:
                tick.notify_all()

    def rendezvous():
        if threading.get_ident() != main:
            return
        # mid-forward of our copy (its hooks and guided ReLUs active): the user's modules have
        # no hooks and keep their flags
        for m in model.modules():
            if any(getattr(m, d, None) for d in HOOK_DICTS) or m.training != (mode == "train"):
                errors.append(AssertionError(f"user module {m} touched during the call"))
        with tick:
            start = iterations[0]
            tick.wait_for(lambda: iterations[0] > start or errors or stop.is_set(), timeout=10)

    model.rendezvous = rendezvous
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sw.SaliencyWarning)
            attr = attribute(model, make_x(2), name, target=[1, 2], batch_size=1)
        overlapped = iterations[0]
    finally:
        stop.set()
        thread.join(timeout=30)
        model.rendezvous = None
    assert not thread.is_alive()
    assert not errors, errors[0]
    assert overlapped >= 2
    assert all(m.training == (mode == "train") for m in model.modules())
    assert attr.values.shape[0] == 2 and bool(torch.isfinite(attr.values).all())
    if mode == "eval":
        assert_untouched(model, snap)
        model.rendezvous = None
        ref = attribute(make_model(name), make_x(2), name, target=[1, 2], batch_size=1)
        torch.testing.assert_close(attr.values, ref.values, rtol=0, atol=1e-6)


# --- determinism and invariances ---------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_seed_determinism(name):
    model, x = make_model(name), make_x(2)
    a = attribute(model, x, name, seed=3)
    b = attribute(model, x, name, seed=3)
    assert torch.equal(a.values, b.values)
    assert a.seed == 3
    if name in STOCHASTIC:
        c = attribute(model, x, name, seed=4)
        assert not torch.equal(a.values, c.values), "the seed has no effect"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", METHODS)
def test_self_contrast_is_exactly_zero(name, dtype):
    model, x = make_model(name, dtype), make_x(3, dtype)
    target = [0, 3, 4]
    if name in AGNOSTIC:  # the map ignores the target: a contrast is refused, not ignored
        for contrast in (target, 1, "runner_up"):
            with pytest.raises(sw.SaliencyError, match="class-agnostic.*drop contrast="):
                attribute(model, x, name, target=target, contrast=contrast)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.SaliencyWarning)  # a self-contrast is not "blank"
        attr = attribute(model, x, name, target=target, contrast=target)
    assert attr.contrast == tuple(target)
    assert attr.values.shape[0] == 3
    assert int(torch.count_nonzero(attr.values)) == 0
    # …and only the self-contrast rows: a mixed batch keeps the others non-zero
    no_relu = {"relu": False} if "relu" in SPECS[name]["params"] else {}  # CAMs can clamp to 0
    mixed = attribute(model, x, name, target=target, contrast=[0, 1, 2], **no_relu)
    assert int(torch.count_nonzero(mixed.values[0])) == 0
    assert int(torch.count_nonzero(mixed.values[1:])) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", METHODS)
def test_batch_independence(name, dtype):
    model, x = make_model(name, dtype), make_x(4, dtype)
    target, contrast = [1, 0, 4, 2], [3, 3, 0, 1]
    if name in AGNOSTIC:
        contrast = [None] * 4
    batch = attribute(model, x, name, target=target,
                      contrast=None if name in AGNOSTIC else contrast)
    for i in range(4):
        alone = attribute(model, x[i:i + 1], name, target=target[i], contrast=contrast[i])
        torch.testing.assert_close(batch.values[i:i + 1], alone.values, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_smoothgrad_with_noise_is_batch_independent(dtype):
    # The noise is one draw per sample shared by the batch (each example scaled by its own
    # range), so an example's map does not depend on its batch mates or its position. (This was
    # tested only with noise=0 while each example drew its own noise from one stream.)
    model, x = make_cnn(dtype), make_x(3, dtype)
    target = [2, 0, 1]
    for aggregation in ("mean", "square", "variance"):
        kw = dict(noise=0.2, samples=4, aggregation=aggregation, seed=5)
        batch = attribute(model, x, "smoothgrad", target=target, **kw)
        flipped = attribute(model, x.flip(0), "smoothgrad", target=target[::-1], **kw)
        torch.testing.assert_close(flipped.values.flip(0), batch.values, rtol=0,
                                   atol=TOL[dtype])
        for i in range(3):
            alone = attribute(model, x[i:i + 1], "smoothgrad", target=target[i], **kw)
            torch.testing.assert_close(batch.values[i:i + 1], alone.values, rtol=0,
                                       atol=TOL[dtype])
    clean = attribute(model, x, "smoothgrad", noise=0.0, samples=4, target=target)
    grad = attribute(model, x, "gradient", target=target)
    torch.testing.assert_close(clean.values, grad.values, rtol=0, atol=TOL[dtype])
    noisy = attribute(model, x, "smoothgrad", noise=0.2, samples=4, target=target)
    assert (noisy.values - grad.values).abs().max() > 100 * TOL[dtype], "the noise did nothing"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", METHODS)
def test_chunk_size_independence(name, dtype):
    model, x = make_model(name, dtype), make_x(4, dtype)
    target = [1, 0, 4, 2]
    results = [attribute(model, x, name, target=target, batch_size=bs).values
               for bs in (None, 1, 3)]
    atol = TOL[dtype]
    if name == "guided_ig" and dtype == torch.float32:
        # Guided IG picks the features with |g| <= the k-th smallest at every step: a step
        # function of the gradient. Another chunk size sums the convolutions in another order
        # (~1e-7 relative in float32), which can move a feature at the threshold one step
        # earlier or later; measured 6e-4 against a map maximum of 9e-3 (float32 against float64
        # differs as much). In float64 the exact tolerance holds; a chunking bug (examples mixed
        # up, a step lost) moves the map by its own size.
        atol = 0.1 * float(results[0].abs().max())
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=atol)


@pytest.mark.parametrize("batch_size", [1, 2, None])
@pytest.mark.parametrize("name", METHODS)
def test_progress_reports(name, batch_size):
    model, x = make_model(name), make_x(3)
    reports = []
    attribute(model, x, name, batch_size=batch_size,
              progress=lambda done, total: reports.append((done, total)))
    assert reports, "progress was never called"
    assert all(isinstance(d, int) and isinstance(t, int) for d, t in reports)
    totals = {t for _, t in reports}
    assert len(totals) == 1, f"the total changed during the call: {reports}"
    total = reports[-1][1]
    done = [d for d, _ in reports]
    assert all(0 <= d <= total for d in done)
    assert done == sorted(done), f"progress went backwards: {reports}"
    assert done[-1] == total
    if batch_size == 1:
        assert len(reports) >= 3  # at least one report per example


# --- registry ---------------------------------------------------------------------------------
def test_list_methods_entries():
    entries = sw.list_methods()
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)) and len(names) >= 10
    for expected in ("gradient", "grad_cam", "integrated_gradients", "smoothgrad",
                     "occlusion", "score_cam", "guided_backprop"):
        assert expected in names
    for e in entries:
        for key in ("name", "label", "family", "output", "params"):
            assert key in e, f"{e.get('name')} lacks {key!r}"
        assert isinstance(e["label"], str) and e["label"]
        assert isinstance(e["family"], str) and e["family"]
        assert e["output"] in ("input", "map")
        assert isinstance(e["params"], dict)
    assert SPECS["integrated_gradients"]["params"]["steps"] == 32
    assert SPECS["grad_cam"]["output"] == "map" and SPECS["gradient"]["output"] == "input"
    assert all(isinstance(e["class_agnostic"], bool) for e in entries)
    assert AGNOSTIC == {"eigen_cam", "attention_rollout"}
    # plain data: mutating the description does not change the registry
    entries[0]["params"]["injected"] = 1
    assert "injected" not in sw.list_methods()[0]["params"]


def test_class_agnostic_refuses_contrast_also_through_smoothgrad():
    with pytest.raises(sw.SaliencyError, match="'eigen_cam' is class-agnostic"):
        sw.attribute(make_cnn(), make_x(1), method="smoothgrad", base="eigen_cam", contrast=1,
                     samples=2)
    sw.attribute(make_cnn(), make_x(1), method="smoothgrad", base="eigen_cam", samples=2)


@pytest.mark.parametrize("name", sorted(VIT_ONLY))
def test_attention_methods_refuse_a_cnn_in_words(name):
    with pytest.raises(sw.SaliencyError, match="nn.MultiheadAttention.*SmallCNN has none"):
        sw.attribute(make_cnn(), make_x(1), method=name)


def test_unknown_method_suggests_close_match():
    with pytest.raises(sw.SaliencyError) as err:
        sw.attribute(make_cnn(), make_x(1), method="gradcam")
    assert "did you mean 'grad_cam'" in str(err.value).lower()
    assert isinstance(err.value, ValueError)


def test_unknown_param_lists_accepted_ones():
    with pytest.raises(sw.SaliencyError) as err:
        sw.attribute(make_cnn(), make_x(1), method="integrated_gradients", stepz=3)
    msg = str(err.value)
    assert "stepz" in msg
    for accepted in SPECS["integrated_gradients"]["params"]:
        assert accepted in msg


def test_smoothgrad_base_params_are_checked_against_the_base():
    model, x = make_cnn(), make_x(2)
    attr = sw.attribute(model, x, method="smoothgrad", base="integrated_gradients", steps=3,
                        samples=2)
    assert attr.params["base_params"]["steps"] == 3
    assert attr.params["base"] == "integrated_gradients" and attr.params["samples"] == 2
    with pytest.raises(sw.SaliencyError) as err:
        sw.attribute(model, x, method="smoothgrad", base="gradient", steps=3, samples=2)
    msg = str(err.value)
    assert "steps" in msg
    for accepted in ("base", "samples", "noise", "aggregation"):
        assert accepted in msg


def test_smoothgrad_over_integrated_gradients_matches_noise_free_ig():
    model, x = make_cnn(), make_x(2)
    sg = sw.attribute(model, x, method="smoothgrad", base="integrated_gradients", steps=3,
                      samples=2, noise=0.0, target=[1, 2])
    ig = sw.attribute(model, x, method="integrated_gradients", steps=3, target=[1, 2])
    torch.testing.assert_close(sg.values, ig.values, rtol=0, atol=1e-5)


def test_uncheckable_choice_param_rejected():
    with pytest.raises(sw.SaliencyError, match="rule"):
        sw.attribute(make_cnn(), make_x(1), method="integrated_gradients", rule="simpson")


def test_smoothgrad_base_params_dict_resolves_a_name_shared_with_the_base():
    model, x = make_cnn(), make_x(2)
    attr = sw.attribute(model, x, method="smoothgrad", base="lime", samples=2,
                        base_params={"samples": 40, "grid": 2})
    assert attr.params["samples"] == 2, "SmoothGrad's own samples"
    assert attr.params["base_params"]["samples"] == 40, "the base's samples"
    assert attr.params["base_params"]["grid"] == 2
    with pytest.raises(sw.SaliencyError, match="accepted parameters"):
        sw.attribute(model, x, method="smoothgrad", base="lime", base_params={"steps": 3})


@pytest.mark.parametrize("base, params", [("integrated_gradients", {"steps": 3,
                                                                    "baseline": "uniform"}),
                                          ("lime", {"base_params": {"samples": 24, "grid": 2}})])
def test_smoothgrad_over_a_random_base_does_not_depend_on_the_chunk_size(base, params):
    model, x = make_cnn(torch.float64), make_x(2, torch.float64)
    norm = ((0.5,) * x.shape[1], (0.25,) * x.shape[1])
    runs = [sw.attribute(model, x, method="smoothgrad", base=base, samples=3, seed=4,
                         normalization=norm, batch_size=bs, **params).values
            for bs in (1, 5, None)]
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=0, atol=1e-10)
