"""The trust views in words: parameters as text, and the sanity check's verdict."""

from __future__ import annotations

import math
from typing import Any, Mapping

FLAG_SIMILARITY = 0.5
"""A map whose similarity to the original (by default the Spearman rank correlation of |map|)
stays at or above this once every block of the model is randomized is flagged: it barely depends
on what the model learned."""


def param_text(params: Mapping[str, Any]) -> list[list[str]]:
    """``[[name, value as text], ...]``: a metric's parameters for the badge's hover text."""
    out = []
    for name, value in params.items():
        if isinstance(value, float):
            text = f"{value:g}"
        elif isinstance(value, (tuple, list)):
            text = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif value is None:
            text = "auto"
        else:
            text = str(value)
        out.append([str(name), text])
    return out


def _name(similarity: str) -> str:
    return {"spearman_abs": "rank correlation of |map|", "spearman": "rank correlation",
            "ssim": "SSIM",
            "hog": "HOG correlation"}.get(similarity, similarity)


def sanity_flag(label: str, final: float, blocks: int, similarity: str) -> str:
    """The verdict on a map that barely changes under full randomization ("" otherwise)."""
    if not math.isfinite(final) or final < FLAG_SIMILARITY:
        return ""
    return (f"{label} barely changes: with all {blocks} blocks of the model randomized, its map "
            f"still has {_name(similarity)} {final:.2f} with the original (flagged at "
            f"≥ {FLAG_SIMILARITY:g}). It may show the image's structure more than what the "
            f"model learned (Adebayo et al. 2018).")


def sanity_passed(label: str, final: float, similarity: str) -> str:
    """The verdict on a map that changes."""
    if not math.isfinite(final):
        return (f"{label}: the original map is constant, so there is no ranking to compare "
                f"(similarity undefined).")
    return (f"{label} changes with the weights: {_name(similarity)} {final:.2f} with the "
            f"original once every block is randomized (flagged at ≥ {FLAG_SIMILARITY:g}).")
