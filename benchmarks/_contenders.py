"""What one benchmark item runs: ours, the peers and the floor, for one (model, method, batch).

* ``ours``   ``sw.attribute(model, x, targets, method=..., precision=...)``, automatic chunks;
* peers      the peer libraries with their defaults and their fastest batching settings
             (``benchmarks/_peers.py``); "peer best" is whichever peer contender is fastest;
* ``floor``  the passes the method's map needs, as plain PyTorch on a frozen copy of the model
             (``benchmarks/_floor.py``), in chunks of the fastest batch size.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torchvision
from torch import nn

import saliency_widgets as sw
from _floor import ModelInfo, Passes, layer_channels, recipe

# Methods benchmarked on CNNs and on ViTs (the transformer family reads self-attention).
VIT_METHODS = ("attention_rollout", "gradient_rollout", "legrad")
STEPS = 50          # IG steps and SmoothGrad samples (the peers get the same)
NOISE = 0.15        # SmoothGrad noise, a fraction of the input's (max − min)
REFERENCES = 4      # DeepLIFT-SHAP's reference set: 4 seeded draws


@dataclass
class Setup:
    """One model and one batch of inputs, with what the recipes and peers need to know."""
    model_name: str
    model: nn.Module
    x: torch.Tensor
    targets: list[int]
    device: torch.device
    size: int
    info: ModelInfo
    passes: Passes
    vit: bool = False
    references: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Contender:
    key: str                      # unique within an item, e.g. "captum ibs=10"
    role: str                     # "ours" | "peer" | "floor"
    fn: Callable[[], Any]
    default: bool = False         # the peer library's default call
    batch: int | None = None      # batching setting (peers, floor)
    k: int = 1                    # calls per timed sample
    warm_s: float | None = None
    samples: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)   # own CPU seconds per call
    retaken: int = 0              # samples discarded for foreign load
    output: Any = None
    agree: float | None = None    # Pearson r of the map with ours
    mem_mb: float | None = None   # peak extra memory of one call
    mem_note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


@dataclass
class Item:
    method: str
    model_name: str
    batch: int
    work: str                     # the floor in words
    est_s: float                  # the floor's calibrated estimate
    chunks: list[int]
    contenders: list[Contender]
    note: str = ""                # what a reader must know (no peer, a peer restriction…)
    rounds: int = 0
    warmed: bool = True
    skipped: str = ""             # why the item was not measured (time budget)
    ours_params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)   # from our record (e.g. a path taken)

    def get(self, role: str) -> list[Contender]:
        return [c for c in self.contenders if c.role == role]


def build_model(name: str, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval().to(device)


def build_setup(name: str, batch: int, args: argparse.Namespace, device: torch.device,
                model: nn.Module | None = None, passes: Passes | None = None) -> Setup:
    """The model (built once per name: pass it again for other batch sizes), ``batch`` seeded
    ``randn`` images, their predicted classes as targets, and the floor's passes."""
    model = build_model(name, device) if model is None else model
    x = torch.randn(batch, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        targets = [int(t) for t in model(x).argmax(1).tolist()]
    vit = isinstance(model, torchvision.models.VisionTransformer)
    if passes is None:
        passes = Passes(model, x[:1], targets[0], device, args.floor_batches, args.calib_time,
                        args.max_load, args.retakes)
    if vit:
        info = ModelInfo(batch=batch, size=args.size,
                         first_block="encoder.layers.encoder_layer_0.ln_1")
    else:
        info = ModelInfo(batch=batch, size=args.size, cam_layer=args.cam_layer,
                         channels=layer_channels(model, x, args.cam_layer))
        info.extras["xrai_host"] = xrai_host(x)
    refs = 0.1 * torch.randn(REFERENCES, 3, args.size, args.size,
                             generator=torch.Generator().manual_seed(5)).to(device)
    return Setup(name, model, x, targets, device, args.size, info, passes, vit, refs)


def xrai_host(x: torch.Tensor) -> Callable[[], None] | None:
    """XRAI's unavoidable host work: Felzenszwalb segmentation of each image at its 6 scales
    (as ``saliency_widgets/methods/_regions.py`` and PAIR run it), or None without skimage."""
    try:
        from skimage.segmentation import felzenszwalb
        from skimage.transform import resize

        from saliency_widgets.methods._regions import MIN_SIZE, SCALES, SIGMA, WORK_SIZE
    except ImportError:
        return None
    images = [im.permute(1, 2, 0).double().cpu().numpy() for im in x]

    def run() -> None:
        for im in images:
            lo, hi = im.min(), im.max()
            small = resize((im - lo) / (hi - lo) * 2 - 1, WORK_SIZE, order=3, mode="constant",
                           preserve_range=True, anti_aliasing=True)
            for scale in SCALES:
                felzenszwalb(small, scale=scale, sigma=SIGMA, min_size=MIN_SIZE)
    return run


def bench_params(method: str, s: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Our parameters for ``method`` in this benchmark (the peers get the same settings)."""
    layer = {"layer": args.cam_layer} if method in LAYER_METHODS else {}
    if method == "integrated_gradients":
        return {"steps": STEPS, "rule": "gauss_legendre"}
    if method == "smoothgrad":
        return {"samples": STEPS, "noise": NOISE}
    if method == "occlusion":
        return {"window": args.window, "stride": args.stride}
    if method == "score_cam":
        return {**layer, "channel_softmax": True}  # pytorch-grad-cam's map, the same cost
    if method == "rise":
        return {"samples": args.rise_samples}
    if method == "deeplift_shap":
        return {"references": s.references}
    if method == "gradient_shap":
        return {"references": s.references}
    return layer


LAYER_METHODS = {m["name"] for m in sw.list_methods() if m["uses_layer"]}


def full_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the method's defaults filled in (what the floor recipes read)."""
    spec = next(m for m in sw.list_methods() if m["name"] == method)
    return {**spec["params"], **params}


def build_item(method: str, s: Setup, args: argparse.Namespace,
               peers: Callable[[str, Setup, dict[str, Any], argparse.Namespace],
                               tuple[list[Contender], str]]) -> Item:
    params = bench_params(method, s, args)
    model, x, targets = s.model, s.x, s.targets

    def ours() -> Any:
        attr = sw.attribute(model, x, targets, method=method, precision=args.precision,
                            **params)
        item.extras = {k: v for k, v in attr.extras.items()
                       if k in ("occlusion_path", "windows")}
        return attr.values

    rec = recipe(method, full_params(method, params), s.info)
    floor_run, est, chunks = s.passes.call(rec)
    peer_list, note = peers(method, s, params, args)
    if rec.note:
        note = f"{note}; floor: {rec.note}" if note else f"floor: {rec.note}"
    item = Item(method, s.model_name, s.batch, rec.words(), est, chunks,
                [Contender("ours", "ours", ours), *peer_list,
                 Contender("floor", "floor", floor_run, batch=chunks[0] if chunks else None)],
                note=note, ours_params={k: (v if not isinstance(v, torch.Tensor)
                                            else f"tensor{tuple(v.shape)}")
                                        for k, v in params.items()})
    return item
