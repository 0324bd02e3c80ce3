"""Why a map is blank, in words: a panel with nothing to show says what happened and what to try.

An all-zero or constant map drawn on a colour scale shows either nothing or a made-up range. The
common causes each have a fix: a self-contrast (the objective is 0), a ReLU'd CAM whose weighted
activations are all negative (often where the model is unsure), or an objective that does not
change with the input (saturation, a dead layer).
"""

from __future__ import annotations

import numpy as np

from .._types import Attribution


def blank_note(attr: Attribution, signed: np.ndarray, label: str) -> str:
    """Return a sentence or two on why ``signed`` (one ``(H, W)`` map) is blank, or ``""``."""
    finite = signed[np.isfinite(signed)]
    if finite.size and float(finite.max()) != float(finite.min()):
        return ""
    if finite.size == 0:
        return (f"{label} returned no finite value (NaN or Inf everywhere), so there is nothing to "
                f"draw. Check the model's output for this input, or try another method.")
    value = float(finite[0])
    target = attr.target[0]
    contrast = None if attr.contrast is None else attr.contrast[0]
    if contrast == target:
        return ("The target and the contrast are the same class, so the explained score "
                "logit[target] − logit[contrast] is 0 everywhere, and so is every map. "
                "Pick another contrast class, or none.")
    if value == 0.0 and attr.params.get("relu") is True:
        where = f" at layer {attr.layer}" if attr.layer else ""
        return (f"Every weighted activation{where} is negative for this objective, so the ReLU "
                f"leaves an all-zero {label} map. This happens where the model is unsure or the "
                f"evidence speaks against the class. Try relu=False to see the negative evidence, "
                f"a contrast class, or another layer.")
    if value == 0.0:
        return (f"The {label} map is zero everywhere: the explained score does not change with "
                f"the input here (a saturated or dead part of the model, or a method that needs "
                f"more steps or samples). Try integrated gradients, a contrast class, or "
                f"another target.")
    return (f"The {label} map has the same value ({value:.3g}) at every pixel, so a colour scale "
            f"would show nothing. Try another method, a contrast class, or another target.")
