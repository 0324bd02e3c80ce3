"""The widget's static assets: the built JS/CSS bundle and matplotlib colormap lookup tables."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"

# Offered in the colormap menu; any other matplotlib name can be set from Python.
COLORMAPS = ("RdBu_r", "coolwarm", "bwr", "seismic", "PiYG", "viridis", "inferno", "magma",
             "plasma", "cividis", "turbo", "jet", "hot", "gray", "Reds")

_MISSING_BUNDLE = """
export default { render({ el }) {
  const p = document.createElement("pre");
  p.className = "saliency-widget-missing";
  p.textContent = "saliency_widgets: the widget's JavaScript bundle is missing (%s).\\n" +
    "Build it with `npm ci && npm run build` in js/, or reinstall with `pip install .`";
  el.appendChild(p);
} };
"""


def bundle(name: str) -> Any:
    """The built file (a FileContents, so edits hot-reload with ANYWIDGET_HMR=1), or a fallback."""
    from anywidget._util import try_file_contents

    path = _STATIC / name
    if path.is_file():
        return try_file_contents(path)
    if name.endswith(".js"):
        log.warning("saliency_widgets: %s is missing; build js/ (npm ci && npm run build)", path)
        return _MISSING_BUNDLE % str(path).replace("\\", "/")
    return ""


def colormap_lut(name: str) -> np.ndarray:
    """``(256, 4)`` uint8 RGBA lookup table of a matplotlib colormap."""
    import matplotlib

    return matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256), bytes=True).astype(np.uint8)


def known_colormap(name: str) -> bool:
    import matplotlib

    return name in matplotlib.colormaps
