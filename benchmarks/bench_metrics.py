#!/usr/bin/env python
"""Time of every registered metric next to Captum's ``infidelity`` and ``sensitivity_max``.

Setup: torchvision ``resnet18(weights=None)`` (weights drawn with seed 0, eval mode), one seeded
input of ``--size`` px (224 by default, 112 with ``--quick``), ImageNet normalization, two
explanations made once with ``sw.attribute``: ``gradient`` and ``grad_cam``. Each metric scores
both maps with its defaults (the localization metrics get a central box as their mask).

Captum is the only peer timed: ``captum.metrics.infidelity`` with the same number of Gaussian
perturbations and the same σ (``noise`` × the image's value range), and
``captum.metrics.sensitivity_max`` with the same number of samples and the same L∞ radius,
re-explaining with Captum's own ``Saliency(abs=False)`` or ``LayerGradCam`` (on ``layer4``,
ReLU, upsampled bilinearly as ours). Quantus is not installed and is not a dependency: it is
not timed.

Each round runs every contender once, in an order rotated by the round; the table reports the
median over ``--rounds`` rounds (≥3; ``--quick``: 2 rounds) after one warm-up call each.

    python benchmarks/bench_metrics.py --quick
    python benchmarks/bench_metrics.py --device cuda --out bench_metrics.md
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

import saliency_widgets as sw
from _common import fmt_s, log, sync  # noqa: E402

EXPLANATIONS = ("gradient", "grad_cam")
NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CAPTUM_PEER = {"infidelity": "captum.metrics.infidelity",
               "max_sensitivity": "captum.metrics.sensitivity_max"}


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b <= 0:
        return "-"
    return f"{a / b:.2f}×"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="112 px, 2 rounds (a smoke run)")
    p.add_argument("--size", type=int, default=None, help="image side (default 224; quick 112)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3; quick 2)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--metrics", default=None,
                   help="comma-separated subset of the registered metrics (default: all)")
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    args.size = args.size or (112 if args.quick else 224)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if not args.quick and args.rounds < 3:
        p.error("--rounds must be ≥ 3 (medians); use --quick for a smoke run")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda asked for, but torch.cuda.is_available() is False")
    return args


def metric_params(name: str, samples: dict[str, int]) -> dict:
    """The defaults, with the sample counts made explicit (Captum gets the same)."""
    if name in samples:
        return {"samples": samples[name]}
    return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    warnings.simplefilter("ignore", sw.SaliencyWarning)
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require")
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor(NORMALIZATION[0]).view(1, 3, 1, 1)
    std = torch.tensor(NORMALIZATION[1]).view(1, 3, 1, 1)
    pixels = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    x = ((pixels - mean) / std).to(device)
    B, S = args.batch, args.size
    masks = torch.zeros(B, S, S, dtype=torch.bool)
    masks[:, S // 4: 3 * S // 4, S // 4: 3 * S // 4] = True
    masks = masks.to(device)
    with torch.no_grad():
        target = model(x).argmax(1).tolist()

    names = [m["name"] for m in sw.list_metrics()]
    if args.metrics:
        wanted = [n.strip() for n in args.metrics.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise SystemExit(f"unknown metric(s) {unknown}; registered: {names}")
        names = [n for n in names if n in wanted]
    defaults = {m["name"]: m["params"] for m in sw.list_metrics()}
    samples = {"infidelity": defaults["infidelity"]["samples"],
               "max_sensitivity": defaults["max_sensitivity"]["samples"]}
    noise = defaults["infidelity"]["noise"]
    radius = defaults["max_sensitivity"]["radius"]

    log(f"explaining ({', '.join(EXPLANATIONS)}) at {S} px on {device} …")
    attrs = {e: sw.attribute(model, x, target, method=e, normalization=NORMALIZATION)
             for e in EXPLANATIONS}

    # --- contenders: (row, explanation, who) -> callable -----------------------------------
    contenders: dict[tuple[str, str, str], Callable[[], object]] = {}
    for name in names:
        for e in EXPLANATIONS:
            params = metric_params(name, samples)
            contenders[(name, e, "ours")] = (
                lambda name=name, e=e, params=params: sw.evaluate(
                    model, x, attrs[e], metric=name, masks=masks, seed=0, **params))

    captum_ok = importlib.util.find_spec("captum") is not None
    if captum_ok:
        from captum.attr import LayerAttribution, LayerGradCam, Saliency
        from captum.metrics import infidelity, sensitivity_max

        value_range = (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # (B,)
        sigma = (noise * value_range).view(-1, 1, 1, 1)
        r_abs = float((radius * value_range).max())  # B = 1 by default: exactly ours
        cg = torch.Generator(device=device)

        def gaussian(inputs: torch.Tensor):
            cg.manual_seed(0)
            eps = torch.randn(inputs.shape, generator=cg, device=device, dtype=inputs.dtype)
            eps = eps * sigma.repeat_interleave(inputs.shape[0] // B, dim=0)
            return eps, inputs - eps

        saliency = Saliency(model)
        gradcam = LayerGradCam(model, model.layer4)

        def explain_gradient(inputs, target):
            return saliency.attribute(inputs, target=target, abs=False)

        def explain_grad_cam(inputs, target):
            inputs = inputs[0] if isinstance(inputs, tuple) else inputs
            cam = gradcam.attribute(inputs, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(cam, inputs.shape[-2:], "bilinear")

        explain = {"gradient": explain_gradient, "grad_cam": explain_grad_cam}
        for e in EXPLANATIONS:
            phi = attrs[e].values.expand_as(x)  # Captum needs the input's shape
            if "infidelity" in names:
                contenders[("infidelity", e, "captum")] = (
                    lambda phi=phi: infidelity(model, gaussian, x, phi, target=target,
                                               n_perturb_samples=samples["infidelity"]))
            if "max_sensitivity" in names:
                contenders[("max_sensitivity", e, "captum")] = (
                    lambda e=e: sensitivity_max(explain[e], x, perturb_radius=r_abs,
                                                n_perturb_samples=samples["max_sensitivity"],
                                                target=target))

    # --- warm-up, then interleaved rounds -----------------------------------------------------
    keys = list(contenders)
    times: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    nan_rows: set[tuple[str, str]] = set()
    log(f"warm-up: {len(keys)} contenders")
    for k in keys:
        out = contenders[k]()
        if k[2] == "ours" and bool(torch.isnan(out.scores).all()):
            nan_rows.add(k[:2])
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        shift = r % len(keys)
        for k in keys[shift:] + keys[:shift]:
            sync(device)
            t0 = time.perf_counter()
            contenders[k]()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}

    # --- the table ------------------------------------------------------------------------------
    dev_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else (platform.processor() or platform.machine()))
    lines = [
        f"# Metric timings ({datetime.date.today().isoformat()})",
        "",
        f"resnet18(weights=None, seed 0, eval), batch {B}, {S}×{S}, device {device} "
        f"({dev_name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"median of {args.rounds} round(s) after a warm-up{' (--quick)' if args.quick else ''}.",
        f"Samples: infidelity {samples['infidelity']} (σ = {noise} × range), max_sensitivity "
        f"{samples['max_sensitivity']} (radius {radius} × range); Captum gets the same.",
        "Captum re-explains with its own Saliency(abs=False) / LayerGradCam(layer4) + bilinear "
        "upsampling." if captum_ok else "Captum is not installed: no Captum timings.",
        "Quantus: not installed (not a dependency of this project), so no Quantus timings.",
        "",
        "| metric | " + " | ".join(f"{e}: ours | Captum | ours/Captum" for e in EXPLANATIONS)
        + " |",
        "|---|" + "---:|---:|---:|" * len(EXPLANATIONS),
    ]
    for name in names:
        cells = [name]
        for e in EXPLANATIONS:
            ours = med.get((name, e, "ours"))
            peer = med.get((name, e, "captum"))
            mark = " (NaN)" if (name, e) in nan_rows else ""
            cells += [fmt_s(ours) + mark, fmt_s(peer), fmt_ratio(ours, peer)]
        lines.append("| " + " | ".join(cells) + " |")
    if nan_rows:
        lines += ["", "(NaN): the metric is undefined for this explanation and returns at once "
                      "(completeness needs a method with a baseline, e.g. integrated gradients)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
