"""Matplotlib figures of attributions: one grid builder for papers, the demo and the widget.

``overlay_grid`` draws maps over the picture the way the widget does (``js/src/render``): the
same robust colour range (``robust_range``), top-k% threshold, colormap and opacity.
``method_grid`` is the quick form for a list of :class:`Attribution` records; the widget's
``to_figure()`` passes its panels and display settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._types import Attribution
from .heatmap import display_map, robust_range, threshold_mask


@dataclass(frozen=True)
class Overlay:
    """One panel: a title, a ``(H, W)`` map, whether it is drawn on a signed (zero-centred)
    scale, and its colormap (None: the grid's)."""

    title: str
    values: np.ndarray
    signed: bool = True
    colormap: str | None = None


def overlay_grid(image: np.ndarray, overlays: Sequence[Overlay], *, colormap: str = "RdBu_r",
                 opacity: float = 0.6, clip_percentile: float = 99.5, threshold: float = 100.0,
                 show_input: bool = False, gray_background: bool = False,
                 empty_title: str = "no map computed yet") -> Any:
    """Return a matplotlib Figure with one overlay per map, 4 columns at most.

    ``image`` is ``(H, W, 3)`` uint8 or floats in [0, 1]: the pixels the model saw.
    ``threshold`` keeps the top ``threshold`` % of pixels (by |value| on a signed scale).
    """
    import matplotlib.pyplot as plt

    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    n = max(1, len(overlays) + int(show_input))
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    slots = iter(axes.flat)
    if show_input or not overlays:
        ax = next(slots)
        ax.imshow(img)
        ax.set_title("input" if show_input else empty_title, fontsize=9)
    background = img.mean(axis=2) if gray_background else img
    for ax, o in zip(slots, overlays):
        lo, hi = robust_range(o.values, clip_percentile, signed=o.signed)
        score = np.abs(o.values) if o.signed else o.values
        shown = np.ma.masked_where(~threshold_mask(score, threshold), o.values)
        ax.imshow(background, cmap="gray" if gray_background else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.imshow(shown, cmap=o.colormap or colormap, vmin=lo, vmax=hi, alpha=opacity,
                  interpolation="nearest")
        ax.set_title(o.title, fontsize=9)
    fig.tight_layout()
    return fig


def method_grid(image: np.ndarray, attributions: Sequence[Attribution], *,
                labels: Sequence[str] | None = None, sign: str = "signed",
                overlay_alpha: float = 0.6, example: int = 0) -> Any:
    """Return a matplotlib Figure: the image, then each attribution as an overlay on gray.

    A map with negative values is drawn signed (RdBu_r, centred on zero), any other on inferno.
    """
    overlays = []
    for i, attr in enumerate(attributions):
        m = display_map(attr.values[example:example + 1], sign)[0]
        signed = sign == "signed" and bool((m < 0).any())
        title = labels[i] if labels else attr.method
        if attr.contrast is not None:
            title += f"\n{attr.target[example]} rather than {attr.contrast[example]}"
        overlays.append(Overlay(f"{title}\n{attr.seconds:.2f} s", m, signed,
                                "RdBu_r" if signed else "inferno"))
    return overlay_grid(image, overlays, opacity=overlay_alpha, show_input=True,
                        gray_background=True)
