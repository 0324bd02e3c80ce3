"""The floor of each method: exactly the model passes its map needs, on a frozen model.

A method's floor is what any implementation has to pay. It is measured, not computed: the same
passes are run as plain PyTorch on a copy of the model whose parameters do not require
gradients, as the engine explains (no weight-gradient graph is built, ~0.8× the cost of a
backward pass with trainable parameters). The passes:

* ``fwd``  a forward pass under ``torch.no_grad()``;
* ``fb``   a forward pass and ``torch.autograd.grad`` of the target logit to the input;
* ``fl``   a forward pass whose graph starts at a layer's output, and the gradient of the target
  logit to that output only (Grad-CAM and its kin need nothing below the layer).

A :class:`Recipe` lists the terms of one call: how many images go through which pass, in chunks
of the fastest batch size (or of a fixed size where the method's steps must run one after another,
as Guided IG's), plus host work the method cannot avoid (XRAI's segmentation). Passes that only
feed diagnostics (completeness checks) or resolve ``target=None`` are not part of a floor: the
benchmarks pass the target.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from _common import sync

KINDS = ("fwd", "fb", "fl")


@dataclass(frozen=True)
class Term:
    kind: str                 # "fwd" | "fb" | "fl"
    images: int               # images through this pass, in all
    chunk: int | None = None  # a fixed chunk size (sequential steps); None: the fastest one
    layer: str | None = None  # "fl": the module whose output the backward stops at

    def words(self) -> str:
        what = {"fwd": "fwd", "fb": "fb", "fl": f"fwd+bwd to {self.layer}"}[self.kind]
        seq = f" in steps of {self.chunk}" if self.chunk else ""
        return f"{self.images} {what}{seq}"


@dataclass(frozen=True)
class Recipe:
    terms: tuple[Term, ...]
    host: Callable[[], Any] | None = None  # unavoidable host work, run once per call
    host_words: str = ""
    note: str = ""                         # what the floor leaves out, in words

    def words(self) -> str:
        parts = [t.words() for t in self.terms]
        if self.host_words:
            parts.append(self.host_words)
        return " + ".join(parts)

    def count(self, kind: str) -> int:
        return sum(t.images for t in self.terms if t.kind == kind)


@dataclass
class ModelInfo:
    """What the recipes need to know about the model and the input."""
    batch: int
    size: int
    cam_layer: str | None = None        # CAM methods' layer (torchvision name)
    channels: int | None = None         # channels at the CAM layer
    first_block: str | None = None      # ViT: the first encoder block's ln_1 (gradient rollout)
    extras: dict[str, Any] = field(default_factory=dict)


def frozen(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose parameters do not require gradients."""
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def windows(size: int, window: int, stride: int) -> int:
    per_side = (size - window) // stride + 1
    return per_side * per_side


def recipe(method: str, params: dict[str, Any], info: ModelInfo) -> Recipe:
    """The floor of ``method`` with ``params`` on a batch of ``info.batch`` images."""
    B = info.batch
    fb = lambda n, **kw: Term("fb", n, **kw)  # noqa: E731
    fwd = lambda n, **kw: Term("fwd", n, **kw)  # noqa: E731
    fl = Term("fl", B, layer=info.cam_layer)
    if method in ("gradient", "input_x_gradient", "guided_backprop", "deconvolution",
                  "guided_grad_cam", "fullgrad"):
        return Recipe((fb(B),))
    if method == "lrp":
        return Recipe((fb(B),), note="each rule layer's backward redoes its conv (zennit too)")
    if method == "deeplift":
        return Recipe((fb(2 * B),), note="input and reference in one pass")
    if method == "deeplift_shap":
        refs = params["references"]
        r = 1 if refs is None else int(refs.shape[0] if refs.dim() == 4 else refs.shape[1])
        return Recipe((fb(2 * B * r),))
    if method == "integrated_gradients":
        return Recipe((fb(params["steps"] * B),))
    if method == "smoothgrad":
        return Recipe((fb(params["samples"] * B),))
    if method == "gradient_shap":
        return Recipe((fb(params["samples"] * B),))
    if method == "blur_ig":
        return Recipe((fb(params["steps"] * B),))
    if method == "guided_ig":
        return Recipe((fb(params["steps"] * B, chunk=B),),
                      note="its steps run one after another (each moves the path point)")
    if method == "xrai":
        return Recipe((fb(2 * params["steps"] * B),), host=info.extras.get("xrai_host"),
                      host_words=f"{B}× Felzenszwalb at 6 scales" if info.extras.get(
                          "xrai_host") else "",
                      note="not in the floor: the greedy ranking of the dilated regions (PAIR "
                           "does the same work)")
    if method == "rise":
        return Recipe((fwd(params["samples"] * B),))
    if method == "occlusion":
        n = windows(info.size, params["window"], params["stride"])
        return Recipe((fwd((n + 1) * B),))
    if method == "score_cam":
        extra = 0 if params.get("channel_softmax") else B  # f(x · 0), its reference score
        return Recipe((fwd(B + extra), fwd(info.channels * B)))
    if method == "ablation_cam":
        return Recipe((fwd(B), fwd(info.channels * B)))
    if method in ("grad_cam", "grad_cam_plusplus", "hires_cam", "xgrad_cam", "layer_cam"):
        return Recipe((fl,))
    if method in ("cam", "eigen_cam", "attention_rollout"):
        return Recipe((fwd(B),), note="eigen_cam adds one SVD per image" if method ==
                      "eigen_cam" else "")
    if method in ("gradient_rollout", "legrad"):
        return Recipe((Term("fl", B, layer=info.first_block),),
                      note="backward to the first block's attention input (slightly more "
                           "than the attention probabilities need)")
    if method in ("lime", "kernel_shap"):
        grid = params.get("grid", 8)
        cells = grid * grid if isinstance(grid, int) else grid[0] * grid[1]
        n = params["samples"] if params.get("samples") else max(64, 8 * cells)  # as ours
        return Recipe((fwd(n * B),), note="grid segments; samples=None → max(64, 8·cells)")
    raise KeyError(f"no floor recipe for {method!r}")


class Passes:
    """Plain passes of a frozen copy of ``model`` on ``x`` (its rows repeated to fill a batch),
    and their calibrated per-image times."""

    def __init__(self, model: nn.Module, x: torch.Tensor, target: int, device: torch.device,
                 batches: list[int], calib_time: float = 0.6, max_load: float = 1.0,
                 retakes: int = 0, calib_passes: int = 3) -> None:
        self.model = frozen(model)
        self.x, self.t, self.device = x, target, device
        self.batches = batches
        self.calib_time, self.calib_passes = calib_time, calib_passes
        self.max_load, self.retakes = max_load, retakes
        self.per_image: dict[str, dict[int, float]] = {}

    def one(self, kind: str, b: int, layer: str | None = None) -> Callable[[], None]:
        """One pass of ``kind`` at batch ``b`` (its input prepared outside the timing)."""
        n = self.x.shape[0]
        xb = self.x.repeat(-(-b // n), 1, 1, 1)[:b].contiguous()
        model, t = self.model, self.t
        if kind == "fwd":
            def run() -> None:
                with torch.no_grad():
                    model(xb)
            return run
        if kind == "fb":
            def run() -> None:
                xi = xb.detach().requires_grad_(True)
                torch.autograd.grad(model(xi)[:, t].sum(), xi)
            return run
        if kind != "fl":
            raise ValueError(f"unknown pass kind {kind!r}")
        module = model.get_submodule(layer)
        held: list[torch.Tensor] = []

        def cut(m: nn.Module, i: Any, out: torch.Tensor) -> torch.Tensor:
            a = out.detach().requires_grad_(True)
            held.append(a)
            return a

        def run() -> None:
            handle = module.register_forward_hook(cut)
            try:
                out = model(xb)
            finally:
                handle.remove()
            torch.autograd.grad(out[:, t].sum(), held.pop())
        return run

    def key(self, term: Term) -> str:
        return term.kind if term.kind != "fl" else f"fl:{term.layer}"

    def calibrate(self, term: Term) -> dict[int, float]:
        """Per-image seconds at each batch size: the fastest of ``calib_passes`` interleaved
        samples (a sample disturbed by other processes is retaken)."""
        from _env import LoadMeter
        key = self.key(term)
        if key in self.per_image:
            return self.per_image[key]
        runs = {b: self.one(term.kind, b, term.layer) for b in self.batches}
        reps: dict[int, int] = {}
        for b, run in runs.items():  # warm-up call; sets the calls per sample
            t0 = time.perf_counter()
            run()
            sync(self.device)
            one = time.perf_counter() - t0
            reps[b] = max(1, min(50, round(self.calib_time / self.calib_passes / max(one, 1e-6))))
        samples: dict[int, list[float]] = {b: [] for b in runs}
        meter = LoadMeter()
        for _ in range(self.calib_passes):
            for b, run in runs.items():
                for attempt in range(self.retakes + 1):
                    meter.start()
                    t0 = time.perf_counter()
                    for _ in range(reps[b]):
                        run()
                    sync(self.device)
                    wall = time.perf_counter() - t0
                    foreign = meter.stop()
                    if foreign is None or foreign <= self.max_load or attempt == self.retakes:
                        break
                    time.sleep(0.5)
                samples[b].append(wall / reps[b] / b)
        self.per_image[key] = {b: min(v) for b, v in samples.items()}
        return self.per_image[key]

    def best(self, term: Term) -> tuple[int, float]:
        """The chunk size for ``term`` and its per-image seconds (fastest batch ≤ the images)."""
        table = self.calibrate(term)
        if term.chunk is not None:
            b = term.chunk
            return b, table.get(b, min(table.values()))
        options = {b: v for b, v in table.items() if b <= term.images} or {
            min(table): table[min(table)]}
        b = min(options, key=options.get)
        return b, options[b]

    def call(self, rec: Recipe, calibrated: bool = True) -> tuple[Callable[[], None], float,
                                                                  list[int]]:
        """``(run, estimated seconds, chunk sizes)`` of the floor of ``rec``. Without
        calibration every term runs as one chunk (the per-call overhead benchmark)."""
        parts: list[Callable[[], None]] = []
        est, chunks = 0.0, []
        for term in rec.terms:
            if calibrated:
                b, per = self.best(term)
                est += per * term.images
            else:
                b = term.chunk or term.images
            chunks.append(b)
            full = self.one(term.kind, b, term.layer) if term.images >= b else None
            rest = self.one(term.kind, term.images % b, term.layer) if term.images % b else None
            parts.append(_chunked(full, term.images // b, rest))
        host = rec.host

        def run() -> None:
            for part in parts:
                part()
            if host is not None:
                host()
        return run, est, chunks


def _chunked(full: Callable[[], None] | None, count: int,
             rest: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:
        for _ in range(count):
            full()  # type: ignore[misc]
        if rest is not None:
            rest()
    return run


def layer_channels(model: nn.Module, x: torch.Tensor, layer: str) -> int:
    """Channels of ``layer``'s output for input ``x`` (one forward pass)."""
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        handle.remove()
    out = seen[0]
    return int(out.shape[1] if out.dim() == 4 else out.shape[-1])

