"""Expert masks painted in the widget: the ``expert_mask`` trait, its file format, and the maps'
live agreement with it.

The mask is an ``(H, W)`` numpy bool array at the model's input size (or None). It travels as a
uint8 buffer of 0/1 in both directions (``{view, dtype, shape}``, like every array here); the
browser paints it (``js/src/paint/``) and sends it, debounced, while a stroke goes on.

Files are PNG: lossless, 1 bit per pixel, so a mask round-trips exactly; and, unlike ``.npy``,
it opens in any image viewer and is the format annotation tools and segmentation data sets
already use for masks, so a mask painted here can be checked, corrected elsewhere and loaded back.

Agreement is ``sw.agreement`` (the same metric code as ``sw.evaluate``) of each ready panel's
map with the mask: pointing game, relevance mass, relevance rank and top-k IoU, each with its
defaults. It needs no model, so it is computed at once, in the thread that changed the mask or
the panels.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Sequence

import numpy as np
import torch
import traitlets as t

from ..agreement import AGREEMENT, agreement, undefined
from ..errors import SaliencyError
from .board import Extra, Layout
from .jobs import Job
from .payload import to_payload


def mask_to_json(value: np.ndarray | None, _: Any) -> dict[str, Any] | None:
    """The trait's wire form: ``{view: uint8 0/1 buffer, dtype: "uint8", shape: [H, W]}``."""
    return None if value is None else to_payload(value)


def mask_from_json(value: Any, _: Any) -> np.ndarray | None:
    """The browser's ``{view, dtype, shape}`` (any nonzero byte is painted) as a bool array."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or not {"view", "dtype", "shape"} <= set(value):
        raise t.TraitError(f"expert_mask from the browser must be {{view, dtype, shape}}, got "
                           f"{type(value).__name__}")
    if value["dtype"] != "uint8" or len(value["shape"]) != 2:
        raise t.TraitError(f"expert_mask from the browser must be (H, W) uint8, got "
                           f"{value['dtype']} {value['shape']}")
    view = value["view"]
    data = view if isinstance(view, (bytes, bytearray)) else memoryview(view).cast("B")
    h, w = (int(s) for s in value["shape"])
    if len(data) != h * w:
        raise t.TraitError(f"expert_mask from the browser has {len(data)} bytes for shape "
                           f"({h}, {w})")
    mask: np.ndarray = np.frombuffer(data, dtype=np.uint8).reshape(h, w) != 0
    return mask


def check_mask(value: Any, size: tuple[int, int]) -> np.ndarray | None:
    """Return a read-only ``(H, W)`` bool copy of ``value`` (or None); refuse anything else.

    A copy, so that editing the array given afterwards cannot make Python and the browser
    disagree about what is painted.
    """
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise t.TraitError(f"expert_mask must be an (H, W) = {size} numpy bool array or None, "
                           f"got {type(value).__name__}")
    if value.dtype != np.bool_:
        raise t.TraitError(f"expert_mask must be a bool array, got dtype {value.dtype}; e.g. "
                           f"mask > 0")
    if value.shape != size:
        raise t.TraitError(f"expert_mask must have the model's input size (H, W) = {size}, got "
                           f"shape {value.shape}")
    out = np.array(value, dtype=bool, order="C", copy=True)
    out.flags.writeable = False
    return out


def save_mask(mask: np.ndarray | None, path: str | pathlib.Path) -> pathlib.Path:
    """Write ``mask`` to ``path`` as a 1-bit PNG and return the path."""
    from PIL import Image

    if mask is None:
        raise SaliencyError("there is no expert mask to save (expert_mask is None); paint one "
                            "or set w.expert_mask first")
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise SaliencyError(f"masks are saved as PNG; give a path ending in .png, got "
                            f"{str(path)!r}")
    Image.fromarray(np.ascontiguousarray(mask, dtype=bool)).save(path, format="PNG")
    return path


# Single-channel PNG modes; a pixel is painted where it is nonzero (0/255 masks, palette masks).
_MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def load_mask(path: str | pathlib.Path, size: tuple[int, int]) -> np.ndarray:
    """Return the ``(H, W)`` bool mask in the PNG at ``path`` (nonzero = painted)."""
    from PIL import Image

    path = pathlib.Path(path)
    if not path.is_file():
        raise SaliencyError(f"no mask file at {str(path)!r}")
    with Image.open(path) as im:
        if im.format != "PNG":
            raise SaliencyError(f"{str(path)!r} is {im.format}, not PNG; masks are PNG files "
                                f"(w.save_mask writes them)")
        if im.mode not in _MASK_MODES:
            raise SaliencyError(f"{str(path)!r} has {im.mode} pixels; a mask is one channel "
                                f"(1-bit, grey or palette). Convert it, e.g. "
                                f"Image.open(p).convert('L'), and save it as PNG")
        if (im.height, im.width) != size:
            raise SaliencyError(f"the mask in {str(path)!r} is {im.height} × {im.width}, but the "
                                f"model's input is {size[0]} × {size[1]}; resize it with "
                                f"nearest-neighbour sampling first")
        pixels = np.asarray(im)
    return pixels.astype(bool) if pixels.dtype == np.bool_ else pixels != 0


class Agreement(Extra):
    """Each ready panel's agreement with the mask, memoized per (panel map, mask).

    An :class:`~.board.Extra` that needs no job: at each refresh it publishes the agreement of
    the panels just laid out (a map that became ready is scored at once); the widget also calls
    :meth:`update` when the mask changes.
    """

    def __init__(self, mask: Callable[[], np.ndarray | None],
                 publish: Callable[[dict[str, dict[str, float | None]]], None],
                 metrics: Sequence[str] = AGREEMENT) -> None:
        self.metrics = tuple(metrics)
        self._get_mask = mask
        self._publish = publish
        self._memo: dict[str, dict[str, float | None]] = {}
        self._mask: np.ndarray | None = None

    def jobs(self, layout: Layout) -> list[Job]:
        self.update(layout.panels)
        return []

    def update(self, panels: Sequence[Any]) -> None:
        """Publish the agreement of ``panels`` with the current mask."""
        self._publish(self.values(panels, self._get_mask()))

    def values(self, panels: Sequence[Any], mask: np.ndarray | None
               ) -> dict[str, dict[str, float | None]]:
        """``{method: {metric: value}}`` for the ready panels; None where undefined; ``{}``
        without a mask."""
        if mask is not self._mask:
            self._memo, self._mask = {}, mask
        if mask is None:
            return {}
        out = {}
        for panel in panels:
            if panel.state != "ready" or panel.entry is None:
                continue
            key = panel.id
            if key not in self._memo:
                self._memo[key] = self._score(panel.entry.attribution, mask)
            out[panel.method] = self._memo[key]
        return out

    def _score(self, attribution: Any, mask: np.ndarray) -> dict[str, float | None]:
        values = attribution.values[:1]
        masks = torch.from_numpy(np.array(mask))[None]
        if bool(undefined(values, masks)[0]):  # NaN for every metric: no warning per stroke
            return dict.fromkeys(self.metrics)
        scored = agreement(values, masks, metrics=self.metrics)
        out: dict[str, float | None] = {}
        for name, result in scored.items():
            v = float(result.scores[0])
            out[name] = None if v != v else v  # NaN cannot travel as JSON
        return out
