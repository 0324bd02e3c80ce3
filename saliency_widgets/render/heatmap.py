"""From an attribution to a 2-D array and a colour range, as the widget and figures show it."""

from __future__ import annotations

import numpy as np
import torch

from ..reduce import reduce_channels

SIGNS = ("signed", "absolute", "positive")


def display_map(values: torch.Tensor, sign: str = "signed", reduction: str = "sum") -> np.ndarray:
    """Return ``(B, H, W)`` float32: channels reduced by the shared reduction, sign applied.

    ``signed`` keeps the sign, ``absolute`` shows magnitudes, ``positive`` keeps the evidence
    *for* the objective only.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")
    if sign == "absolute" and reduction == "sum":
        reduction = "abs"  # |Σ_c| hides channels that cancel; Σ_c |·| is the magnitude
    m = reduce_channels(values.detach().float(), reduction).cpu().numpy()
    if sign == "absolute":
        m = np.abs(m)
    elif sign == "positive":
        m = np.clip(m, 0, None)
    return m.astype(np.float32)


def robust_range(m: np.ndarray, clip_percentile: float = 99.5, signed: bool = True
                 ) -> tuple[float, float]:
    """Colour limits that ignore the top ``100 − clip_percentile`` % outliers.

    Signed maps get a range centred on zero, so zero is always the colormap's middle.
    """
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return -1.0, 1.0
    if signed:
        hi = float(np.percentile(np.abs(finite), clip_percentile))
        hi = hi if hi > 0 else float(np.abs(finite).max()) or 1.0
        return -hi, hi
    lo = float(np.percentile(finite, 100 - clip_percentile))
    hi = float(np.percentile(finite, clip_percentile))
    if hi <= lo:
        hi = lo + (1.0 if lo == 0 else abs(lo))
    return lo, hi


def threshold_mask(score: np.ndarray, top_percent: float) -> np.ndarray:
    """True for the ``top_percent`` % highest positive scores (ties at the cut are kept), as
    the widget's threshold control shows them (``js/src/render/colormap.ts``)."""
    flat = score.reshape(-1)
    keep = round(flat.size * top_percent / 100.0)
    if keep >= flat.size:
        return np.ones(score.shape, bool) if top_percent >= 100 else score > 0
    if keep <= 0:
        return np.zeros(score.shape, bool)
    cut = np.sort(flat)[flat.size - keep]
    mask: np.ndarray = (score >= cut) & (score > 0)
    return mask
