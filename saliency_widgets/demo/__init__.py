"""The built-in demo: procedural shape images with exact object masks, and two small trained
CNNs (``"shapes"`` and its "clever Hans" twin ``"shapes_clever_hans"``), with no downloads.

>>> import saliency_widgets as sw
>>> data = sw.demo.sample(8, seed=0)                                   # doctest: +SKIP
>>> model = sw.demo.load_model("shapes")                               # doctest: +SKIP
>>> attr = sw.attribute(model, data.x, method="grad_cam")              # doctest: +SKIP
>>> sw.evaluate(model, data.x, attr, metric="pointing_game", masks=data.masks)  # doctest: +SKIP
"""

from .data import (CLASSES, WATERMARK_BOX, WATERMARK_CLASS, WATERMARK_P, DemoSample, sample,
                   watermark_box)
from .models import MODELS, NORMALIZATION, ShapesNet, load_model

__all__ = ["CLASSES", "MODELS", "NORMALIZATION", "WATERMARK_BOX", "WATERMARK_CLASS", "WATERMARK_P",
           "DemoSample", "ShapesNet", "load_model", "sample", "watermark_box"]
