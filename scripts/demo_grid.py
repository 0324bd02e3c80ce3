"""Explain one synthetic image with every registered method and save a PNG grid.

Uses a randomly initialised torchvision ResNet-18 (no weights are downloaded), so the maps show
what each method does mechanically, not what a trained model learned.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

import saliency_widgets as sw
from saliency_widgets.render import method_grid

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def synthetic_image(size: int) -> np.ndarray:
    """A red disc and a blue square on a soft gradient: (size, size, 3) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.3 + 0.3 * xx, 0.4 + 0.2 * yy, 0.5 - 0.2 * xx], axis=-1)
    disc = (xx - 0.35) ** 2 + (yy - 0.4) ** 2 < 0.04
    img[disc] = (0.9, 0.15, 0.1)
    square = (abs(xx - 0.72) < 0.12) & (abs(yy - 0.7) < 0.12)
    img[square] = (0.1, 0.2, 0.85)
    return img.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out/methods.png")
    parser.add_argument("--size", type=int, default=112, help="image side in pixels")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    img = synthetic_image(args.size)
    x = ((torch.from_numpy(img).permute(2, 0, 1) - torch.tensor(MEAN)[:, None, None])
         / torch.tensor(STD)[:, None, None])[None]
    # Cheaper settings for the expensive methods keep the demo under a minute on 2 CPU cores.
    overrides = {"occlusion": {"window": max(4, args.size // 8)},
                 "score_cam": {}, "integrated_gradients": {"steps": 16},
                 "smoothgrad": {"samples": 10}}
    attrs = []
    for spec in sw.list_methods():
        started = time.perf_counter()
        attrs.append(sw.attribute(model, x, method=spec["name"], normalization=(MEAN, STD),
                                  **overrides.get(spec["name"], {})))
        print(f"{spec['label']:<22} {time.perf_counter() - started:6.2f} s")
    fig = method_grid(img, attrs, labels=[m["label"] for m in sw.list_methods()])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out} ({math.ceil(out.stat().st_size / 1024)} KiB)")


if __name__ == "__main__":
    main()
