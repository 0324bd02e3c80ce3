#!/usr/bin/env python
"""Time of every registered metric next to Captum's and Quantus' where they compute the same.

Setup: torchvision ``resnet18(weights=None)`` (weights drawn with seed 0, eval mode), one seeded
input of ``--size`` px (224 by default, 112 with ``--quick``), ImageNet normalization, two
explanations made once with ``sw.attribute``: ``gradient`` and ``grad_cam``. Each metric scores
both maps with its defaults (the localization metrics get a central box as their mask);
``model_randomization`` and ``road`` included.

Peers, each given the same work:

* Captum ``infidelity`` with the same number of Gaussian perturbations, the same σ (``noise`` ×
  the image's value range) and ``normalize=True`` (our default: the map rescaled by the optimal
  β, so the score does not depend on the map's scale); ``sensitivity_max`` with the same samples
  and L∞ radius, re-explaining with Captum's ``Saliency(abs=False)`` or ``LayerGradCam``
  (``layer4``, ReLU, upsampled bilinearly as ours).
* Quantus 0.6 where the definitions coincide (``tests/test_quantus.py`` shows each):
  ``Sparseness``, ``Complexity``, ``PointingGame``, ``RelevanceMassAccuracy``,
  ``RelevanceRankAccuracy``, ``MaxSensitivity`` (same samples and radius, re-explaining with our
  ``sw.attribute``), ``ROAD`` (same percentages and noise) and ``MPRT`` (cascading, re-explaining
  with ``sw.attribute``; it randomizes every parameterized layer, ours the blocks, so it does more
  work: its time is shown, with that note). Quantus' ``Infidelity`` perturbs square patches, not
  Gaussian noise: not timed.

Each round runs every contender once, in an order rotated by the round; the table reports the
median over ``--rounds`` rounds (≥3; ``--quick``: 2 rounds) after one warm-up call each.

    python benchmarks/bench_metrics.py --quick
    python benchmarks/bench_metrics.py --out docs/bench/metrics_cpu.md \
        --json docs/bench/metrics_cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

import saliency_widgets as sw  # noqa: E402
from _common import fmt_s, log, sync  # noqa: E402
from _env import LoadMeter, header_markdown, run_header, write_outputs  # noqa: E402

EXPLANATIONS = ("gradient", "grad_cam")
NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PEERS = ("captum", "quantus")
QUIET = {"disable_warnings": True, "display_progressbar": False}
NOTES = {("model_randomization", "quantus"): "Quantus MPRT randomizes every parameterized "
                                             "layer (62 on resnet18), ours the blocks"}


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or a != a or b != b or b <= 0:
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
    p.add_argument("--no-quantus", action="store_true", help="skip the Quantus contenders")
    p.add_argument("--out", default=None, help="write the markdown table to this file")
    p.add_argument("--json", default=None, help="write every sample to this JSON file")
    args = p.parse_args(argv)
    args.size = args.size or (112 if args.quick else 224)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if not args.quick and args.rounds < 3:
        p.error("--rounds must be ≥ 3 (medians); use --quick for a smoke run")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda asked for, but torch.cuda.is_available() is False")
    return args


@contextlib.contextmanager
def global_rngs_kept() -> Iterator[None]:
    """Quantus draws from the global numpy / torch RNGs (MPRT even re-seeds torch's): keep
    ours as they were, so each round starts from the same state."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(0)
        torch.manual_seed(0)
        try:
            yield
        finally:
            np.random.set_state(state)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    warnings.simplefilter("ignore")  # peers' deprecation and hook warnings would bury the log
    head = run_header("benchmarks/bench_metrics.py", device, "fp32", threads=args.threads,
                      size=args.size, batch=args.batch, rounds=args.rounds)

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

    # --- contenders: (metric, explanation, who) -> callable -------------------------------------
    contenders: dict[tuple[str, str, str], Callable[[], object]] = {}
    for name in names:
        for e in EXPLANATIONS:
            contenders[(name, e, "ours")] = (
                lambda name=name, e=e: sw.evaluate(model, x, attrs[e], metric=name, masks=masks,
                                                   seed=0))

    value_range = (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # (B,)
    r_abs = float((radius * value_range).max())  # B = 1 by default: exactly ours
    captum_ok = importlib.util.find_spec("captum") is not None
    if captum_ok:
        add_captum(contenders, names, model, x, target, attrs, samples, noise, r_abs, B, device)
    quantus_ok = not args.no_quantus and importlib.util.find_spec("quantus") is not None
    if quantus_ok:
        add_quantus(contenders, names, model, x, target, attrs, masks, samples, r_abs, defaults,
                    device)

    # --- warm-up, then interleaved rounds -------------------------------------------------------
    keys = list(contenders)
    times: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    loads: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    failed: dict[tuple[str, str, str], str] = {}
    nan_rows: set[tuple[str, str]] = set()
    log(f"warm-up: {len(keys)} contenders")
    for k in keys:
        try:
            out = contenders[k]()
        except Exception as err:  # a peer refusing this input must not lose the run
            failed[k] = f"{type(err).__name__}: {str(err)[:120]}"
            log(f"{k}: failed: {failed[k]}")
            continue
        if k[2] == "ours" and bool(torch.isnan(out.scores).all()):
            nan_rows.add(k[:2])
    keys = [k for k in keys if k not in failed]
    meter = LoadMeter()
    started = time.perf_counter()
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        shift = r % len(keys)
        for k in keys[shift:] + keys[:shift]:
            sync(device)
            meter.start()
            t0 = time.perf_counter()
            contenders[k]()
            sync(device)
            times[k].append(time.perf_counter() - t0)
            load = meter.stop()
            if load is not None:
                loads[k].append(load)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    all_loads = [v for k in keys for v in loads[k]]

    # --- the table ------------------------------------------------------------------------------
    head["load_note"] = (f"Other processes' CPU load during the samples: median "
                         f"{statistics.median(all_loads):.0%} of all cores." if all_loads else "")
    lines = header_markdown("Metric timings", head)
    lines += ["", f"resnet18(weights=None, seed 0, eval), batch {B}, {S}×{S}, median of "
                  f"{args.rounds} round(s) after a warm-up{' (--quick)' if args.quick else ''}.",
              f"Samples: infidelity {samples['infidelity']} (σ = {noise} × range), "
              f"max_sensitivity {samples['max_sensitivity']} (radius {radius} × range); the "
              f"peers get the same.",
              "Captum: infidelity with normalize=True (as ours), sensitivity_max re-explaining "
              "with its own Saliency(abs=False) / LayerGradCam(layer4) + bilinear upsampling."
              if captum_ok else "Captum is not installed: no Captum timings.",
              "Quantus 0.6: the metrics whose definitions coincide with ours (see the module "
              "doc); its Infidelity perturbs patches, not Gaussian noise, so it is not timed."
              if quantus_ok else "Quantus not timed (not installed, or --no-quantus).",
              ""]
    cols = ["metric"]
    for e in EXPLANATIONS:
        cols += [f"{e}: ours", "Captum", "ours/Captum", "Quantus", "ours/Quantus"]
    lines += ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for name in names:
        cells = [name]
        for e in EXPLANATIONS:
            ours = med.get((name, e, "ours"))
            mark = " (NaN)" if (name, e) in nan_rows else ""
            cells.append(fmt_s(ours) + mark)
            for peer in PEERS:
                theirs = med.get((name, e, peer))
                cells += [fmt_s(theirs), fmt_ratio(ours, theirs)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{metric} / {who}: {v}" for (metric, who), v in NOTES.items()
             if any((metric, e, who) in med for e in EXPLANATIONS)]
    notes += [f"{k[0]} ({k[1]}) / {k[2]}: failed, not timed: {v}" for k, v in failed.items()]
    if nan_rows:
        notes.append("(NaN): the metric is undefined for this explanation and returns at once "
                     "(completeness needs a method with a baseline, e.g. integrated gradients).")
    if notes:
        lines += [""] + [f"* {n}" for n in notes]
    lines += ["", f"Timed rounds took {(time.perf_counter() - started) / 60:.1f} min."]
    text = "\n".join(lines)
    print(text)
    data = {"header": head,
            "rows": [{"metric": k[0], "explanation": k[1], "who": k[2], "samples_s": v,
                      "median_s": med.get(k), "load": loads[k]} for k, v in times.items() if v],
             "failed": {"/".join(k): v for k, v in failed.items()},
             "nan": sorted("/".join(k) for k in nan_rows)}
    write_outputs(text, data, args.out, args.json)
    return 0


def add_captum(contenders: dict, names: list[str], model: torch.nn.Module, x: torch.Tensor,
               target: list[int], attrs: dict, samples: dict, noise: float, r_abs: float, B: int,
               device: torch.device) -> None:
    from captum.attr import LayerAttribution, LayerGradCam, Saliency
    from captum.metrics import infidelity, sensitivity_max

    value_range = (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    sigma = (noise * value_range).view(-1, 1, 1, 1)
    cg = torch.Generator(device=device)

    def gaussian(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cg.manual_seed(0)
        eps = torch.randn(inputs.shape, generator=cg, device=device, dtype=inputs.dtype)
        eps = eps * sigma.repeat_interleave(inputs.shape[0] // B, dim=0)
        return eps, inputs - eps

    saliency = Saliency(model)
    gradcam = LayerGradCam(model, model.layer4)

    def explain_gradient(inputs: Any, target: Any) -> torch.Tensor:
        return saliency.attribute(inputs, target=target, abs=False)

    def explain_grad_cam(inputs: Any, target: Any) -> torch.Tensor:
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        cam = gradcam.attribute(inputs, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, inputs.shape[-2:], "bilinear")

    explain = {"gradient": explain_gradient, "grad_cam": explain_grad_cam}
    for e in EXPLANATIONS:
        phi = attrs[e].values.expand_as(x)  # Captum needs the input's shape
        if "infidelity" in names:
            contenders[("infidelity", e, "captum")] = (
                lambda phi=phi: infidelity(model, gaussian, x, phi, target=target,
                                           n_perturb_samples=samples["infidelity"],
                                           normalize=True))
        if "max_sensitivity" in names:
            contenders[("max_sensitivity", e, "captum")] = (
                lambda e=e: sensitivity_max(explain[e], x, perturb_radius=r_abs,
                                            n_perturb_samples=samples["max_sensitivity"],
                                            target=target))


def add_quantus(contenders: dict, names: list[str], model: torch.nn.Module, x: torch.Tensor,
                target: list[int], attrs: dict, masks: torch.Tensor, samples: dict, r_abs: float,
                defaults: dict, device: torch.device) -> None:
    import quantus

    xb = x.detach().cpu().numpy()
    yb = np.asarray(target)
    sb = masks[:, None].cpu().numpy()
    dev = str(device)

    def explainer(e: str) -> Callable[..., np.ndarray]:
        def explain(model: torch.nn.Module, inputs: Any, targets: Any, **kw: Any) -> np.ndarray:
            xt = torch.as_tensor(inputs, device=device)
            return sw.attribute(model, xt, [int(t) for t in targets], method=e,
                                normalization=NORMALIZATION).values.detach().cpu().numpy()
        return explain

    road = defaults["road"]
    made: dict[str, Callable[[], Any]] = {
        "sparseness": lambda: quantus.Sparseness(abs=True, normalise=True, **QUIET),
        "complexity": lambda: quantus.Complexity(abs=True, normalise=True, **QUIET),
        "pointing_game": lambda: quantus.PointingGame(**QUIET),
        "relevance_mass": lambda: quantus.RelevanceMassAccuracy(**QUIET),
        "relevance_rank": lambda: quantus.RelevanceRankAccuracy(**QUIET),
        "max_sensitivity": lambda: quantus.MaxSensitivity(
            nr_samples=samples["max_sensitivity"], lower_bound=r_abs, normalise=False,
            abs=False, **QUIET),
        "road": lambda: quantus.ROAD(percentages=list(road["percentages"]),
                                     noise=road["noise"], **QUIET),
        "model_randomization": lambda: quantus.MPRT(**QUIET),
    }
    for name, make in made.items():
        if name not in names:
            continue
        for e in EXPLANATIONS:
            values = attrs[e].values.detach()
            # the map ours scores (reduction "sum" over channels), except where Quantus compares
            # it with its own re-explanations, which come in the method's shape
            if name not in ("max_sensitivity", "model_randomization"):
                values = values.sum(1, keepdim=True)
            a = values.cpu().numpy()

            def run(make: Callable[[], Any] = make, a: np.ndarray = a, e: str = e) -> Any:
                with global_rngs_kept():
                    return make()(model=model, x_batch=xb, y_batch=yb, a_batch=a, s_batch=sb,
                                  device=dev, explain_func=explainer(e))
            contenders[(name, e, "quantus")] = run


if __name__ == "__main__":
    sys.exit(main())
