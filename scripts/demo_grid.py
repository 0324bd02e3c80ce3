"""Explain demo images with every registered method: a PNG grid and a localization table.

Runs on the bundled ``shapes`` model and generated images (no downloads). For each method it
prints its time and how well its maps localize the object on ``--images`` held-out images (the
pointing game and relevance mass against the exact object masks), and it saves the maps of the
first image as a grid.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import saliency_widgets as sw
from saliency_widgets.render import method_grid

# Cheaper settings for the expensive methods keep the whole run to seconds on 2 CPU cores.
# (The perturbation methods dominate: occlusion, RISE, LIME and KernelSHAP run a forward pass
# per window, mask or sample, so they get fewer of them here than their defaults.)
OVERRIDES = {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 10},
             "lime": {"samples": 128}, "kernel_shap": {"samples": 128},
             "occlusion": {"window": 8, "stride": 4}, "rise": {"samples": 200},
             "guided_ig": {"steps": 8}, "blur_ig": {"steps": 16}, "xrai": {"steps": 8},
             "gradient_shap": {"samples": 8}, "deeplift_shap": {"references": "black"}}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/methods.png")
    parser.add_argument("--images", type=int, default=16, help="held-out images to score")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(args.images, seed=args.seed)
    share = data.masks.float().mean().item()
    print(f"demo model 'shapes' on {args.images} images (seed {args.seed}); the objects cover "
          f"{share:.1%} of the pixels, so a uniform map would score relevance mass {share:.3f}")
    print(f"{'method':<22} {'seconds':>8} {'pointing':>9} {'mass':>6}")
    attrs, labels, skipped = [], [], []
    for spec in sw.list_methods():
        name = spec["name"]
        started = time.perf_counter()
        try:
            attr = sw.attribute(model, data.x, data.labels, method=name,
                                normalization=sw.demo.NORMALIZATION, **OVERRIDES.get(name, {}))
        except sw.SaliencyError as err:  # e.g. the attention methods need a vision transformer
            skipped.append(f"{spec['label']} ({str(err).split(';')[0]})")
            continue
        seconds = time.perf_counter() - started
        with warnings.catch_warnings():  # an all-zero map is undefined (NaN), said in the table
            warnings.simplefilter("ignore", sw.SaliencyWarning)
            hit, mass = (sw.evaluate(model, data.x, attr, metric=m, masks=data.masks).mean
                         for m in ("pointing_game", "relevance_mass"))
        print(f"{spec['label']:<22} {seconds:8.2f} {hit:9.2f} {mass:6.3f}")
        attrs.append(attr)
        labels.append(spec["label"])
    for reason in skipped:
        print(f"not for this model: {reason}")
    fig = method_grid(data.images[0], attrs, labels=labels)
    fig.suptitle(f"a {sw.demo.CLASSES[int(data.labels[0])]}: why this class?", fontsize=12)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out} ({math.ceil(out.stat().st_size / 1024)} KiB)")


if __name__ == "__main__":
    main()
