"""Matplotlib figures of attributions (for papers, the demo, and the widget's export)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._types import Attribution

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure
from .heatmap import display_map, robust_range


def method_grid(image: np.ndarray, attributions: Sequence[Attribution], *,
                labels: Sequence[str] | None = None, sign: str = "signed",
                overlay_alpha: float = 0.6, example: int = 0) -> Figure:
    """Return a matplotlib Figure: the image, then each attribution as an overlay.

    ``image`` is ``(H, W, 3)`` in [0, 1] or uint8, the pixels the model saw.
    """
    import matplotlib.pyplot as plt

    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    n = len(attributions) + 1
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(img)
    axes.flat[0].set_title("input", fontsize=10)
    for i, attr in enumerate(attributions, start=1):
        m = display_map(attr.values[example:example + 1], sign)[0]
        signed = sign == "signed" and bool((m < 0).any())
        lo, hi = robust_range(m, signed=signed)
        ax = axes.flat[i]
        ax.imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=1)
        ax.imshow(m, cmap="RdBu_r" if signed else "inferno", vmin=lo, vmax=hi,
                  alpha=overlay_alpha, interpolation="nearest")
        title = labels[i - 1] if labels else attr.method
        if attr.contrast is not None:
            title += f"\n{attr.target[example]} rather than {attr.contrast[example]}"
        ax.set_title(f"{title}\n{attr.seconds:.2f} s", fontsize=9)
    fig.tight_layout()
    return fig
