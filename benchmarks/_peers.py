"""The peers' calls that do the job of each of our methods, with their defaults and with the
batching setting most likely to be fastest.

Captum 0.9, pytorch-grad-cam 1.5.7, zennit 0.5.1, TorchCAM 0.5 and PAIR saliency 0.2.1 run on the
user's model as a user would call them (parameters requiring gradients, as after loading a
model). A peer that cannot do the job is left out with the reason in the item's note: the report
says "no peer" rather than comparing with something else.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from _contenders import NOISE, STEPS, Contender, Setup

RESEARCH_BATCH = {"fb": 10, "fwd": 16}  # the best peer settings in earlier measurements
Peers = tuple[list[Contender], str]


def peer_batches(args: argparse.Namespace, s: Setup, kind: str, n: int,
                 default: int | None) -> list[int]:
    """Batch settings to try besides the peer's default: the floor's fastest batch size for
    ``n`` passes and the earlier measurements' best (``--peer-batches`` overrides)."""
    if args.peer_batches:
        return sorted(set(args.peer_batches) - {default})
    from _floor import Term
    best = s.passes.best(Term(kind, n))[0]
    cands = {best, RESEARCH_BATCH[kind]} - {default}
    return sorted(b for b in cands if b <= max(n, 1)) or sorted(cands)


def _gc(cls_name: str, s: Setup, args: argparse.Namespace, layers: bool = True,
        **attrs: Any) -> Callable[[], Any]:
    """A pytorch-grad-cam call. The CAM object is created and released *inside* the call: while
    one is alive its hooks run on every forward of the model (also the other contenders'), so
    it must not outlive the call."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cls = getattr(pgc, cls_name)
    targets = [ClassifierOutputTarget(t) for t in s.targets]
    if layers:
        layer = s.model.get_submodule(args.cam_layer)
        found = [layer[-1] if isinstance(layer, torch.nn.Sequential) else layer]
    else:
        found = []

    def run() -> Any:
        with cls(model=s.model, target_layers=found) as cam:
            for k, v in attrs.items():
                setattr(cam, k, v)
            return cam(input_tensor=s.x, targets=targets)
    return run


def _pair_call(s: Setup) -> Callable[..., dict]:
    """PAIR's ``call_model_function`` on our model and device: gradients of the target logit
    with respect to its (N, H, W, C) numpy input."""
    import saliency.core as sc

    def call(batch: np.ndarray, call_model_args: Any = None, expected_keys: Any = None) -> dict:
        t = s.targets[call_model_args or 0]
        p = torch.from_numpy(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        p = p.to(s.device).requires_grad_(True)
        out = s.model(p)
        (g,) = torch.autograd.grad(out[:, t].sum(), p)
        return {sc.INPUT_OUTPUT_GRADIENTS: g.permute(0, 2, 3, 1).detach().cpu().numpy()}
    return call


@contextlib.contextmanager
def _quantile_shim() -> Iterator[None]:
    """PAIR 0.2.1's Guided IG passes ``np.quantile(..., interpolation=)``, removed in numpy 2."""
    original = np.quantile

    def quantile(a: Any, q: Any, *rest: Any, interpolation: Any = None, **kw: Any) -> Any:
        if interpolation is not None:
            kw.setdefault("method", interpolation)
        return original(a, q, *rest, **kw)

    np.quantile = quantile  # type: ignore[assignment]
    try:
        yield
    finally:
        np.quantile = original  # type: ignore[assignment]


def _hwc(s: Setup) -> np.ndarray:
    return s.x[0].permute(1, 2, 0).detach().cpu().numpy()


def peers_for(method: str, s: Setup, params: dict[str, Any],
              args: argparse.Namespace) -> Peers:
    """``(peer contenders, note)`` for ``method`` on setup ``s``."""
    if args.no_peers:
        return [], "peers not run (--no-peers)"
    builder = _BUILDERS.get(method)
    if builder is None:
        return [], "no peer library implements it"
    return builder(s, params, args)


def _captum_simple(cls_name: str, **kw: Any) -> Callable[..., Peers]:
    def build(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
        import captum.attr as ca
        cls = getattr(ca, cls_name)
        return [Contender(f"captum {cls_name}", "peer", lambda: cls(s.model).attribute(
            s.x, target=s.targets, **kw), default=True)], ""
    return build


def _ig(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import IntegratedGradients

    def ig(b: int | None) -> Callable[[], Any]:
        return lambda: IntegratedGradients(s.model).attribute(
            s.x, target=s.targets, n_steps=STEPS, method="gausslegendre", internal_batch_size=b)
    out = [Contender("captum ibs=None", "peer", ig(None), default=True)]
    out += [Contender(f"captum ibs={b}", "peer", ig(b), batch=b)
            for b in peer_batches(args, s, "fb", STEPS * s.batch, None)]
    return out, ""


def _smoothgrad(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import NoiseTunnel, Saliency
    stdev = float(NOISE * (s.x.max() - s.x.min()))  # ours: noise × (max − min) per example

    def nt(b: int | None) -> Callable[[], Any]:
        return lambda: NoiseTunnel(Saliency(s.model)).attribute(
            s.x, nt_type="smoothgrad", nt_samples=STEPS, nt_samples_batch_size=b,
            stdevs=stdev, target=s.targets, abs=False)
    out = [Contender("captum bs=None", "peer", nt(None), default=True)]
    out += [Contender(f"captum bs={b}", "peer", nt(b), batch=b)
            for b in peer_batches(args, s, "fb", STEPS * s.batch, None)]
    return out, ""


def _grad_cam(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import LayerAttribution, LayerGradCam
    layer = s.model.get_submodule(args.cam_layer)

    def lgc() -> Any:
        a = LayerGradCam(s.model, layer).attribute(s.x, target=s.targets, relu_attributions=True)
        return LayerAttribution.interpolate(a, tuple(s.x.shape[-2:]), "bilinear")
    return [Contender("captum LayerGradCam", "peer", lgc, default=True),
            Contender("grad-cam GradCAM", "peer", _gc("GradCAM", s, args), default=True)], ""


def _gc_only(cls_name: str, layers: bool = True) -> Callable[..., Peers]:
    def build(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
        return [Contender(f"grad-cam {cls_name}", "peer", _gc(cls_name, s, args, layers),
                          default=True)], ""
    return build


def _guided_grad_cam(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import GuidedGradCam
    layer = s.model.get_submodule(args.cam_layer)
    return [Contender("captum GuidedGradCam", "peer", lambda: GuidedGradCam(
        s.model, layer).attribute(s.x, target=s.targets), default=True)], ""


def _occlusion(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import Occlusion
    c, w, st = s.x.shape[1], args.window, args.stride
    n = ((args.size - w) // st + 1) ** 2 + 1

    def occ(b: int) -> Callable[[], Any]:
        return lambda: Occlusion(s.model).attribute(
            s.x, sliding_window_shapes=(c, w, w), strides=(c, st, st), target=s.targets,
            perturbations_per_eval=b)
    out = [Contender("captum ppe=1", "peer", occ(1), default=True, batch=1)]
    out += [Contender(f"captum ppe={b}", "peer", occ(b), batch=b)
            for b in peer_batches(args, s, "fwd", n, 1)]
    return out, ""


def _channel_batched(cls_name: str, default: int) -> Callable[..., Peers]:
    """pytorch-grad-cam's Score-CAM / Ablation-CAM, whose ``batch_size`` batches the channels."""
    def build(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
        k = s.info.channels or 1
        out = [Contender(f"grad-cam bs={default}", "peer", _gc(cls_name, s, args),
                         default=True, batch=default)]
        out += [Contender(f"grad-cam bs={b}", "peer", _gc(cls_name, s, args, batch_size=b),
                          batch=b) for b in peer_batches(args, s, "fwd", k, default)]
        return out, ""
    return build


def _cam(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from torchcam.methods import CAM
    size = tuple(s.x.shape[-2:])

    def run() -> Any:
        with CAM(s.model, args.cam_layer, fc_layer="fc") as extractor:
            with torch.no_grad():
                s.model(s.x)
            maps = extractor(s.targets, normalized=False)[0]
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)
    return [Contender("torchcam CAM", "peer", run, default=True)], ""


def _legrad(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from torchcam.methods import LeGrad
    blocks = list(s.model.encoder.layers)

    def run() -> Any:
        with LeGrad(s.model, blocks) as extractor:
            scores = s.model(s.x)
            return extractor(s.targets, scores, normalized=False)[0]
    return [Contender("torchcam LeGrad", "peer", run, default=True)], ""


def _lrp(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer
    net = copy.deepcopy(s.model)  # its canonizers merge batch norms into the weights meanwhile
    composite = EpsilonPlusFlat(canonizers=[ResNetCanonizer()])
    rows = torch.arange(s.batch, device=s.device)
    t = torch.tensor(s.targets, device=s.device)

    def run() -> Any:
        xr = s.x.clone().requires_grad_(True)
        with composite.context(net) as m:
            out = m(xr)
            w = torch.zeros_like(out)
            w[rows, t] = 1
            (r,) = torch.autograd.grad(out, xr, out.detach() * w)
        return r
    note = "" if "resnet" in s.model_name else "zennit's ResNetCanonizer assumes a ResNet"
    return [Contender("zennit EpsilonPlusFlat", "peer", run, default=True)], note


def _gradient_shap(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    from captum.attr import GradientShap
    samples = 32
    return [Contender("captum GradientShap", "peer", lambda: GradientShap(s.model).attribute(
        s.x, baselines=s.references, n_samples=samples, stdevs=0.0, target=s.targets),
        default=True)], ""


def _deeplift(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    if "resnet" in s.model_name:
        return [], ("Captum's DeepLift is wrong on torchvision ResNets (one in-place ReLU module "
                    "reused per block): no peer timed")
    from captum.attr import DeepLift
    return [Contender("captum DeepLift", "peer", lambda: DeepLift(s.model).attribute(
        s.x, target=s.targets), default=True)], ""


def _deeplift_shap(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
    if "resnet" in s.model_name:
        return [], ("Captum's DeepLiftShap is wrong on torchvision ResNets (one in-place ReLU "
                    "module reused per block): no peer timed")
    from captum.attr import DeepLiftShap
    return [Contender("captum DeepLiftShap", "peer", lambda: DeepLiftShap(s.model).attribute(
        s.x, baselines=s.references, target=s.targets), default=True)], ""


def _pair(kind: str) -> Callable[..., Peers]:
    """PAIR's Blur IG, Guided IG or XRAI, with our steps (PAIR works one image at a time)."""
    def build(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
        if s.batch > 1:
            return [], "PAIR saliency explains one image per call: timed at batch 1 only"
        import saliency.core as sc
        call, x = _pair_call(s), _hwc(s)
        defaults = next(m for m in __import__("saliency_widgets").list_methods()
                        if m["name"] == kind)["params"]
        steps = params.get("steps", defaults["steps"])
        if kind == "blur_ig":
            def blur(b: int) -> Callable[[], Any]:
                return lambda: sc.BlurIG().GetMask(x, call, call_model_args=0, steps=steps,
                                                   max_sigma=_blur_sigma(s), batch_size=b)
            out = [Contender("PAIR BlurIG bs=1", "peer", blur(1), default=True, batch=1)]
            out += [Contender(f"PAIR BlurIG bs={b}", "peer", blur(b), batch=b)
                    for b in peer_batches(args, s, "fb", steps, 1)]
            return out, ""
        if kind == "guided_ig":
            base = np.zeros_like(x)

            def guided() -> Any:
                with _quantile_shim():
                    return sc.GuidedIG().GetMask(x, call, call_model_args=0, x_baseline=base,
                                                 x_steps=steps)
            return [Contender("PAIR GuidedIG", "peer", guided, default=True)], (
                "PAIR's Guided IG through a numpy-2 np.quantile shim")

        def xrai(b: int) -> Callable[[], Any]:
            def run() -> Any:
                ig = sc.IntegratedGradients()
                bases = [np.zeros_like(x), np.ones_like(x) * x.max()]
                attrs = [ig.GetMask(x, call, call_model_args=0, x_steps=steps, x_baseline=bl,
                                    batch_size=b) for bl in bases]
                return sc.XRAI().GetMask(x, call, call_model_args=0,
                                         base_attribution=np.mean(attrs, axis=0), batch_size=b)
            return run
        out = [Contender("PAIR XRAI bs=1", "peer", xrai(1), default=True, batch=1)]
        out += [Contender(f"PAIR XRAI bs={b}", "peer", xrai(b), batch=b)
                for b in peer_batches(args, s, "fb", 2 * steps, 1)]
        return out, "PAIR's XRAI given our IG steps from two baselines (its default is 2 × 100)"
    return build


def _blur_sigma(s: Setup) -> float:
    """Our default ``max_sigma`` for this image size (``blur_ig``'s resolved parameter)."""
    import saliency_widgets as sw
    attr = sw.attribute(s.model, s.x[:1], s.targets[:1], method="blur_ig", steps=1)
    return float(attr.params["max_sigma"])


def _surrogate(cls_name: str) -> Callable[..., Peers]:
    """Captum's Lime / KernelShap on our 8 × 8 grid of segments with our sample count."""
    def build(s: Setup, params: dict[str, Any], args: argparse.Namespace) -> Peers:
        import captum.attr as ca
        cls = getattr(ca, cls_name)
        h = w = s.size
        grid = 8
        rows = (torch.arange(h, device=s.device) * grid // h)[:, None]
        cols = (torch.arange(w, device=s.device) * grid // w)[None, :]
        mask = (rows * grid + cols)[None, None].expand(1, 3, h, w)
        n = max(64, 8 * grid * grid)  # ours: samples=None → max(64, 8·M)

        def run(b: int) -> Callable[[], Any]:
            return lambda: cls(s.model).attribute(s.x, target=s.targets, feature_mask=mask,
                                                  n_samples=n, perturbations_per_eval=b)
        out = [Contender(f"captum {cls_name} ppe=1", "peer", run(1), default=True, batch=1)]
        out += [Contender(f"captum {cls_name} ppe={b}", "peer", run(b), batch=b)
                for b in peer_batches(args, s, "fwd", n, 1)]
        return out, ""
    return build


_BUILDERS: dict[str, Callable[..., Peers]] = {
    "gradient": _captum_simple("Saliency", abs=False),
    "input_x_gradient": _captum_simple("InputXGradient"),
    "guided_backprop": _captum_simple("GuidedBackprop"),
    "deconvolution": _captum_simple("Deconvolution"),
    "integrated_gradients": _ig,
    "smoothgrad": _smoothgrad,
    "grad_cam": _grad_cam,
    "grad_cam_plusplus": _gc_only("GradCAMPlusPlus"),
    "hires_cam": _gc_only("HiResCAM"),
    "xgrad_cam": _gc_only("XGradCAM"),
    "layer_cam": _gc_only("LayerCAM"),
    "eigen_cam": _gc_only("EigenCAM"),
    "fullgrad": _gc_only("FullGrad", layers=False),
    "guided_grad_cam": _guided_grad_cam,
    "occlusion": _occlusion,
    "score_cam": _channel_batched("ScoreCAM", 16),
    "ablation_cam": _channel_batched("AblationCAM", 32),
    "cam": _cam,
    "legrad": _legrad,
    "lrp": _lrp,
    "gradient_shap": _gradient_shap,
    "deeplift": _deeplift,
    "deeplift_shap": _deeplift_shap,
    "blur_ig": _pair("blur_ig"),
    "guided_ig": _pair("guided_ig"),
    "xrai": _pair("xrai"),
    "lime": _surrogate("Lime"),
    "kernel_shap": _surrogate("KernelShap"),
}
