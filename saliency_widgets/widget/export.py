"""The current panels as a matplotlib figure (``w.to_figure()``, ``w.save_png()``).

It applies the widget's display settings the way ``js/src/render/colormap.ts`` does: the same
sign, the same robust range (``render.robust_range``), the same top-k% threshold, colormap and
opacity.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..render.heatmap import display_map, robust_range

if TYPE_CHECKING:
    from .widget import SaliencyWidget


def threshold_mask(score: np.ndarray, top_percent: float) -> np.ndarray:
    """True for the ``top_percent`` % highest positive scores (ties at the cut are kept)."""
    flat = score.reshape(-1)
    keep = int(round(flat.size * top_percent / 100.0))
    if keep >= flat.size:
        return np.ones(score.shape, bool) if top_percent >= 100 else score > 0
    if keep <= 0:
        return np.zeros(score.shape, bool)
    cut = np.sort(flat)[flat.size - keep]
    return (score >= cut) & (score > 0)


def panels_figure(widget: "SaliencyWidget"):
    """Return a Figure with one overlay per computed panel, titled as in the widget."""
    import matplotlib.pyplot as plt

    attributions = widget.attributions
    titles = {p.method: p.title for p in widget.panels}
    n = max(1, len(attributions))
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    image = widget.display_image
    if not attributions:
        axes.flat[0].imshow(image)
        axes.flat[0].set_title("no map computed yet", fontsize=9)
    for ax, attr in zip(axes.flat, attributions):
        m = display_map(attr.values[:1], widget.sign)[0]
        signed = widget.sign == "signed"
        lo, hi = robust_range(m, widget.clip_percentile, signed=signed)
        score = np.abs(m) if signed else m
        shown = np.ma.masked_where(~threshold_mask(score, widget.threshold), m)
        ax.imshow(image, interpolation="nearest")
        ax.imshow(shown, cmap=widget.colormap, vmin=lo, vmax=hi, alpha=widget.opacity,
                  interpolation="nearest")
        ax.set_title(f"{titles.get(attr.method, attr.method)}\n{attr.seconds:.2f} s", fontsize=9)
    fig.tight_layout()
    return fig
