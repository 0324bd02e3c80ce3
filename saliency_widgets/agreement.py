"""``agreement``: how well maps agree with masks (e.g. painted by an expert), without the model.

The localization metrics read only the map and the mask, so the same metric functions that
``sw.evaluate`` runs are run here on the maps alone: the numbers are ``sw.evaluate``'s, for a
batch, with no model and no forward pass (the widget recomputes them live while a mask is
painted).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import torch

from . import api as _api  # noqa: F401  (registers every metric)
from ._types import Attribution, MetricResult
from .errors import SaliencyError
from .metrics._common import MetricContext, pixel_map
from .registry import METRICS

AGREEMENT = ("pointing_game", "relevance_mass", "relevance_rank", "top_k_iou")
_SHAPE_ONLY = "localization"  # the family whose metrics read x's shape only, never its values

Maps = Attribution | torch.Tensor


def _as_masks(masks: Any, B: int, H: int, W: int, device: torch.device) -> torch.Tensor:
    if isinstance(masks, np.ndarray):  # a read-only array (the widget's expert_mask) is copied
        masks = torch.from_numpy(masks if masks.flags.writeable else masks.copy())
    if not isinstance(masks, torch.Tensor):
        raise SaliencyError(f"masks must be a (B, H, W) or (H, W) bool tensor or array, got "
                            f"{type(masks).__name__}")
    if masks.dtype != torch.bool:
        raise SaliencyError(f"masks must be bool, got {masks.dtype}; e.g. masks > 0")
    if masks.shape == (H, W):
        masks = masks.expand(B, H, W)
    if masks.shape != (B, H, W):
        raise SaliencyError(f"masks have shape {tuple(masks.shape)}; for maps of shape "
                            f"(B={B}, H={H}, W={W}) they must be ({B}, {H}, {W}) or ({H}, {W})")
    return masks.to(device)


def _values(maps: Any, name: str) -> torch.Tensor:
    values = maps.values if isinstance(maps, Attribution) else maps
    if not isinstance(values, torch.Tensor) or values.dim() != 4:
        raise SaliencyError(f"{name}: expected an Attribution or a (B, C, H, W) tensor, got "
                            f"{getattr(values, 'shape', type(values).__name__)}")
    return values.detach()


def _metrics(metrics: Any) -> dict[str, dict[str, Any]]:
    if isinstance(metrics, str):
        raise SaliencyError(f"metrics must be a list of names or a {{name: params}} dict; got "
                            f"the single string {metrics!r} (wrap it in a list)")
    chosen = ({str(k): dict(v or {}) for k, v in metrics.items()}
              if isinstance(metrics, Mapping) else {str(m): {} for m in metrics})
    for name in chosen:
        if METRICS.get(name).family != _SHAPE_ONLY:
            raise SaliencyError(f"agreement takes localization metrics only (they need no "
                                f"model), got {name!r}; use sw.evaluate for it")
    return chosen


def _one(values: torch.Tensor, masks: Any, chosen: dict[str, dict[str, Any]]
         ) -> dict[str, MetricResult]:
    B, C, H, W = values.shape
    m = _as_masks(masks, B, H, W, values.device)
    shape = torch.zeros((), dtype=values.dtype, device=values.device).expand(B, C, H, W)
    out = {}
    for name, params in chosen.items():
        spec = METRICS.get(name)
        full = spec.check_params(params)
        started = time.perf_counter()
        mc = MetricContext(explainee=None, masks=m)  # type: ignore[arg-type]
        scored = spec.fn(mc, shape, values, **full)
        # The same record sw.evaluate builds (params with the resolved tolerance, etc.).
        out[name] = MetricResult(
            metric=spec.name, scores=scored.scores.detach().double().cpu(),
            higher_is_better=bool(spec.higher_is_better),
            params={**full, **mc.resolved}, extras=dict(mc.extras),
            seconds=time.perf_counter() - started)
    return out


def undefined(attributions: Maps, masks: Any, reduction: str = "sum") -> torch.Tensor:
    """Return ``(B,)`` bool: where every agreement metric is NaN (with a warning): an empty mask,
    or a map that is constant after the channel ``reduction``. A caller that scores live (the
    widget, at every stroke) skips those examples instead of warning each time."""
    values = _values(attributions, "attributions")
    B, _, H, W = values.shape
    m = pixel_map(values, reduction).flatten(1)
    empty = ~_as_masks(masks, B, H, W, values.device).flatten(1).any(1)
    return (empty | (m.amax(1) == m.amin(1))).cpu()


def agreement(attributions: Maps | Mapping[str, Maps], masks: Any, *,
              metrics: Any = AGREEMENT) -> dict[str, Any]:
    """Return each metric's :class:`MetricResult` for maps against masks, as ``sw.evaluate``.

    Parameters
    ----------
    attributions : Attribution, ``(B, C, H, W)`` tensor, or ``{name: either}``
        One set of maps, or several (e.g. one per method).
    masks : ``(B, H, W)`` or ``(H, W)`` bool tensor or numpy array
        ``(H, W)`` applies one mask to every example.
    metrics : names or ``{name: params}``
        Localization metrics; default the pointing game, relevance mass, relevance rank and the
        top-k IoU, each with its defaults (e.g. ``{"top_k_iou": {"top_k": 0.05}}``).

    Returns
    -------
    ``{metric: MetricResult}`` for one set of maps, ``{name: {metric: MetricResult}}`` for a dict.
    """
    chosen = _metrics(metrics)
    if isinstance(attributions, Mapping):
        return {str(k): _one(_values(v, str(k)), masks, chosen) for k, v in attributions.items()}
    return _one(_values(attributions, "attributions"), masks, chosen)
