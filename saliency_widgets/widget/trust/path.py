"""The attribution path view: step through integrated gradients (node by node along α), SmoothGrad
(one noisy sample at a time and the running mean) or occlusion (the window sliding and the score
drop it records).

One job traces the panel's own computation (``api.attribution_path``, with the record's method,
parameters, target, contrast and seed), kept in the board's cache. The browser asks for one step
at a time (``path_step``) and gets that frame only (``path_frame``): 32 IG frames at 224² would
be about 19 MB at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...api import PATH_METHODS, attribution_path
from ...render import display_map
from ..jobs import Job
from ..panel import Entry, Panel, PanelKey
from ..payload import to_payload
from .badges import ready_panels
from .keys import PathKey
from .run import trust_job
from .words import param_text

POSITION = {"integrated_gradients": "α", "smoothgrad": "sample", "occlusion": "window"}


def frame_pixels(x: torch.Tensor, norm: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 of a ``(C, H, W)`` input-space tensor: normalization undone, clipped
    to [0, 1] (a noisy sample or a path point may leave the image's range)."""
    t = x.detach().to("cpu", torch.float32)
    if norm is not None:
        t = t * torch.tensor(norm[1]).view(-1, 1, 1) + torch.tensor(norm[0]).view(-1, 1, 1)
    if t.shape[0] != 3:
        t = t.mean(0, keepdim=True).expand(3, -1, -1)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class PathView:
    """``path_info`` / ``path_frame`` of the widget for the method in ``path_method``."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.pinned: tuple[PathKey, Any] | None = None
        self._frame_sent: tuple[str, int] | None = None

    def key(self, pkey: PanelKey) -> PathKey:
        label = self.host._board.label(pkey.method)
        return PathKey(panel=pkey, seed=self.host._seed, label=f"the path of {label}")

    def get(self, key: PathKey) -> Any:
        if self.pinned is not None and self.pinned[0] == key:
            return self.pinned[1]
        return self.host._board.cache.get(key)

    def store(self, key: PathKey, path: Any) -> None:
        self.host._board.cache.put(key, path)
        self.pinned = (key, path)

    def _find(self, panels: list[Panel]) -> tuple[Panel, PanelKey, Entry] | None:
        method = self.host.path_method
        for p, pkey, entry in ready_panels(panels):
            if p.method == method:
                return p, pkey, entry
        return None

    def show(self, panels: list[Panel]) -> None:
        host = self.host
        method = host.path_method
        if not method:
            info: dict[str, Any] = {}
        else:
            found = self._find(panels)
            label = host._board.label(method)
            if found is None:
                info = {"method": method, "label": label, "state": "waiting",
                        "message": f"select {label} (and wait for its map) to step through it"}
            else:
                key = self.key(found[1])
                path = self.get(key)
                if path is not None:
                    info = self._info(found[1], label, path)
                else:
                    board = host._board
                    state = ("error" if key in board.errors else
                             "cancelled" if key in board.cancelled else "computing")
                    info = {"method": method, "label": label, "state": state,
                            "error": board.errors.get(key, ""), "id": f"{found[1].id}:{state}"}
        if host.path_info != info:
            host.path_info = info
        self.show_frame(panels)

    def _info(self, pkey: PanelKey, label: str, path: Any) -> dict[str, Any]:
        attr = path.attribution
        info = {"method": pkey.method, "label": label, "state": "ready", "id": pkey.id,
                "steps": len(path), "position_name": POSITION[pkey.method],
                "positions": to_payload(path.positions.numpy()),
                "scores": (None if not bool(path.scores.isfinite().any())
                           else to_payload(path.scores.numpy())),
                "total": _num(attr.values.double().sum()),
                "params": param_text(dict(attr.params))}
        if "completeness_gap" in attr.extras:
            gap = float(attr.extras["completeness_gap"][0])
            relative = attr.extras["relative_completeness_gap"][0]
            info.update(gap=_num(gap), relative_gap=_num(relative),
                        change=_num(float(attr.values.double().sum()) - gap))
        return info

    def show_frame(self, panels: list[Panel] | None = None) -> None:
        """Send the frame ``path_step`` asks for (-1: the last), if it is not the one shown."""
        host = self.host
        info = host.path_info
        if info.get("state") != "ready":
            if host.path_frame:
                host.path_frame = {}
            self._frame_sent = None
            return
        found = self._find(host.panels if panels is None else panels)
        path = None if found is None else self.get(self.key(found[1]))
        if path is None:
            return
        n = len(path)
        k = min(max(int(host.path_step), -1), n - 1) % n
        if self._frame_sent == (info["id"], k):
            return
        self._frame_sent = (info["id"], k)
        f = path.frame(k)
        norm = host._prepared.normalization
        host.path_frame = {
            "id": info["id"], "index": k, "position": f.position, "score": _num(f.score),
            "weight": f.weight, "window": None if f.window is None else list(f.window),
            "input": to_payload(frame_pixels(f.input, norm)),
            "step": to_payload(display_map(f.step[None].cpu(), "signed")[0]),
            "running": to_payload(display_map(f.running[None].cpu(), "signed")[0]),
            "step_total": _num(f.step.double().sum()),
            "running_total": _num(f.running.double().sum())}

    def jobs(self, panels: list[Panel]) -> list[Job]:
        found = self._find(panels) if self.host.path_method else None
        if found is None:
            return []
        key = self.key(found[1])
        board = self.host._board
        if self.get(key) is not None or key in board.errors or key in board.cancelled:
            return []
        return [self._job(key, found[2])]

    def _job(self, key: PathKey, entry: Entry) -> Job:
        host, rec = self.host, entry.attribution
        model, x = host._model, host._prepared.x

        def fn(progress: Any, cancel: Any) -> Any:
            return attribution_path(model, x, list(rec.target), method=rec.method,
                                    contrast=None if rec.contrast is None else list(rec.contrast),
                                    layer=rec.layer, seed=rec.seed,
                                    normalization=rec.normalization, output=host._output,
                                    progress=progress, cancel=cancel, **dict(rec.params))

        return trust_job(host, key, key.panel.model[0], fn, self.store)


__all__ = ["PATH_METHODS", "PathView"]
