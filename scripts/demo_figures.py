"""The figures of the README's demo section, measured on the bundled demo models.

* the clean model ``shapes``: held-out accuracy (``demo.train.evaluate``: 2 000 clean images,
  seed 20 000); on 200 held-out images (seed 31) how Grad-CAM and IG (16 steps) localize the
  object: pointing game (4 px), relevance mass in the exact mask and within 4 px of it, beside
  what a uniform map scores; and where its gradient maps are non-zero (the global max over the
  class maps passes gradient to one position, so a map covers that position's receptive field);
* ``shapes_clever_hans`` on 400 images stamped with the watermark (seed 41): the share of
  other-class images it calls circles, the clean model's share (the control), and Grad-CAM's
  mass in the watermark's box on the flipped images;
* with ``--retrain``: the bundled weights retrained from their defaults (bit-for-bit equality
  and the time it took) and the clever Hans model trained with seed 0 (the same shortcut, a map
  that misses the box).

Run: ``python scripts/demo_figures.py --retrain --out docs/demo_figures.md --json
docs/demo_figures.json`` (about 4 minutes on 2 idle cores with --retrain, seconds without).
Markdown to stdout (and ``--out``), progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

import torch

import saliency_widgets as sw
from saliency_widgets.demo.data import WATERMARK_CLASS
from saliency_widgets.demo.train import evaluate, predict, train

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from _env import LoadMeter, header_markdown, run_header, write_outputs

LOCALIZATION = (("grad_cam", {}), ("integrated_gradients", {"steps": 16}))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def grow(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within Euclidean ``radius`` of the masks."""
    k = torch.arange(-radius, radius + 1)
    disc = ((k[:, None] ** 2 + k[None, :] ** 2) <= radius ** 2).float()[None, None]
    return torch.nn.functional.conv2d(masks.float()[:, None], disc, padding=radius)[:, 0] > 0


def scores(model, x, attr, masks) -> dict[str, float]:
    """Mean pointing game, mean and smallest relevance mass, share of undefined maps."""
    with warnings.catch_warnings():  # an all-zero map is undefined (NaN), counted below
        warnings.simplefilter("ignore", sw.SaliencyWarning)
        hit = sw.evaluate(model, x, attr, metric="pointing_game", masks=masks).scores
        mass = sw.evaluate(model, x, attr, metric="relevance_mass", masks=masks).scores
    return {"pointing": hit.nanmean().item(), "mass": mass.nanmean().item(),
            "mass_min": mass.nan_to_num(0.0).min().item(),
            "undefined": mass.isnan().float().mean().item()}


def clean_model(model) -> dict[str, Any]:
    held = sw.demo.sample(200, seed=31)
    out: dict[str, Any] = {"accuracy": evaluate(model)["accuracy"],
                           "mask_share": held.masks.float().mean().item()}
    for method, params in LOCALIZATION:
        attr = sw.attribute(model, held.x, held.labels, method=method,
                            normalization=sw.demo.NORMALIZATION, **params)
        out[method] = {"params": params, **scores(model, held.x, attr, held.masks),
                       "mass_within_4px": scores(model, held.x, attr,
                                                 grow(held.masks, 4))["mass"]}
    grad = sw.attribute(model, held.x, held.labels, method="gradient",
                        normalization=sw.demo.NORMALIZATION).values
    support = (grad.abs().flatten(2).sum(1) > 0).sum(1).float()  # non-zero pixels per map
    out["gradient_support_px"] = {"min": support.min().item(), "max": support.max().item()}
    return out


def shortcut(hans, clean) -> dict[str, Any]:
    s = sw.demo.sample(400, seed=41, watermark="all")
    other = s.labels != WATERMARK_CLASS
    pred = predict(hans, s.x)
    flipped = other & (pred == WATERMARK_CLASS)
    x, box = s.x[flipped], s.watermark_masks[flipped]
    attr = sw.attribute(hans, x, method="grad_cam", normalization=sw.demo.NORMALIZATION)
    ctrl = sw.attribute(clean, x, s.labels[flipped], method="grad_cam",
                        normalization=sw.demo.NORMALIZATION)
    return {"other_class_images": int(other.sum()), "flipped": int(flipped.sum()),
            "flip_rate": flipped.sum().item() / other.sum().item(),
            "clean_model_flip_rate": (predict(clean, s.x)[other] == WATERMARK_CLASS)
            .float().mean().item(),
            "box_share": box[0].float().mean().item(),
            "grad_cam_box": scores(hans, x, attr, box),
            "clean_model_grad_cam_box": scores(clean, x, ctrl, box)}


def retrain(clean, hans) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, bundled in (("shapes", clean), ("shapes_clever_hans", hans)):
        log(f"retraining {name} from its defaults")
        started = time.perf_counter()
        model, metrics = train(name, log=lambda m: None)
        state, ref = model.state_dict(), bundled.state_dict()
        out[name] = {"seconds": time.perf_counter() - started, "metrics": metrics,
                     "bit_for_bit": all(torch.equal(state[k], ref[k]) for k in ref)}
    log("training shapes_clever_hans with seed 0")
    seed0, metrics = train("shapes_clever_hans", seed=0, log=lambda m: None)
    out["shapes_clever_hans_seed0"] = {"metrics": metrics, **shortcut(seed0, clean)}
    return out


def pct(v: float) -> str:
    return f"{v:.1%}"


def markdown(head: dict[str, Any], data: dict[str, Any]) -> str:
    c, h = data["clean"], data["shortcut"]
    load = "?" if data["foreign_load"] is None else f"{data['foreign_load']:.0%}"
    lines = header_markdown("Demo models: the README's figures", head) + [
        "", f"Other processes used {load} of the CPUs during the run.", "",
        "## shapes (clean)", "",
        f"Held-out accuracy (2 000 clean images, seed 20 000): **{pct(c['accuracy'])}**.", "",
        f"200 held-out images (seed 31); the objects cover {pct(c['mask_share'])} of the pixels "
        f"(what a uniform map scores as relevance mass).", "",
        "| method | pointing game (4 px) | relevance mass | mass within 4 px | undefined maps |",
        "|---|---|---|---|---|"]
    for method, params in LOCALIZATION:
        r = c[method]
        label = method + (f" ({', '.join(f'{k} {v}' for k, v in params.items())})"
                          if params else "")
        lines.append(f"| {label} | {pct(r['pointing'])} | {pct(r['mass'])} | "
                     f"{pct(r['mass_within_4px'])} | {pct(r['undefined'])} |")
    g = c["gradient_support_px"]
    lines += ["", f"Gradient maps are non-zero on {g['min']:.0f}–{g['max']:.0f} of the 4 096 "
              f"pixels: the global max over the class maps passes gradient to one position "
              f"only, so a map covers that position's 34 × 34 px receptive field (1 156 pixels, "
              f"fewer where it leaves the image).", "",
              "## shapes_clever_hans (watermark on every image, 400 images, seed 41)", "",
              f"* other-class images called circles: **{pct(h['flip_rate'])}** ({h['flipped']} "
              f"of {h['other_class_images']}); the clean model: "
              f"{pct(h['clean_model_flip_rate'])}",
              f"* Grad-CAM's mass in the watermark's box ({pct(h['box_share'])} of the image) "
              f"on the flipped images: mean **{pct(h['grad_cam_box']['mass'])}**, smallest "
              f"{pct(h['grad_cam_box']['mass_min'])}; the clean model's Grad-CAM on the same "
              f"images: {pct(h['clean_model_grad_cam_box']['mass'])}"]
    r = data.get("retrain")
    if r:
        lines += ["", "## Retraining", ""]
        for name in ("shapes", "shapes_clever_hans"):
            lines.append(f"* `{name}` from its defaults: {r[name]['seconds']:.0f} s; identical "
                         f"to the bundled weights: **{'yes' if r[name]['bit_for_bit'] else 'NO'}**")
        s0 = r["shapes_clever_hans_seed0"]
        lines.append(f"* `shapes_clever_hans` with seed 0: flips {pct(s0['flip_rate'])} of the "
                     f"other-class images; Grad-CAM's mass in the box on them "
                     f"{pct(s0['grad_cam_box']['mass'])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--retrain", action="store_true",
                   help="also retrain both models (bit-for-bit check) and seed 0 (~4 min)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    head = run_header("scripts/demo_figures.py", torch.device("cpu"), "fp32", args.threads)
    clean, hans = sw.demo.load_model("shapes"), sw.demo.load_model("shapes_clever_hans")
    meter = LoadMeter()
    meter.start()
    data: dict[str, Any] = {"clean": clean_model(clean), "shortcut": shortcut(hans, clean)}
    if args.retrain:
        data["retrain"] = retrain(clean, hans)
    data["foreign_load"] = meter.stop()
    text = markdown(head, data)
    print(text)
    write_outputs(text, {"header": head, **data}, args.out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
