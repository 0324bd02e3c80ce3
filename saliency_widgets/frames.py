"""Step by step: what a method or a metric did, one frame at a time (for teaching views).

* :class:`AttributionPath` replays a traced run of integrated gradients (node by node along the
  path), SmoothGrad (noisy sample by sample) or occlusion (window by window). The method reports
  its own per-step values while it computes (``Explainee.trace``), so the frames come from the
  same arithmetic as its result: the running map after the last step *is* the method's map.
* :class:`RemovalCurve` is a deletion or insertion result with the pixel order it used, so the
  input at any step of the curve can be rebuilt without sorting again.

``api.attribution_path`` and ``api.removal_curve`` build them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ._types import Attribution, MetricResult
from .errors import SaliencyError
from .methods.occlusion import spread

PATH_METHODS = ("integrated_gradients", "smoothgrad", "occlusion")


@dataclass(frozen=True)
class PathFrame:
    """One step of an attribution path (example 0 of the batch).

    ``input`` is what the model saw at this step (input space, ``(C, H, W)``); ``step`` is
    this step's own map (IG: the gradient at the node; SmoothGrad: the base map of this noisy
    sample; occlusion: the recorded score drop painted over the window); ``running`` is the map
    after this step (IG: the running sum Σ_{αᵢ ≤ α} wᵢ ∇f(x′ + αᵢ(x − x′)) ⊙ (x − x′); SmoothGrad:
    the running mean / mean square / variance; occlusion: the mean drop over the windows so
    far). After the last step ``running`` equals the method's map.
    """

    index: int
    position: float     # IG: α; SmoothGrad: the sample number (1-based); occlusion: the window
    input: torch.Tensor
    step: torch.Tensor
    running: torch.Tensor
    score: float        # the objective at ``input`` (NaN where the method does not compute it)
    weight: float       # IG: the node's quadrature weight; 1/n for SmoothGrad; 1 for occlusion
    window: tuple[int, int, int, int] | None = None  # occlusion: (y0, x0, height, width)


@dataclass(frozen=True)
class AttributionPath:
    """A traced method run, frame by frame: ``len(path)`` steps, ``path.frame(k)``."""

    method: str
    attribution: Attribution
    positions: torch.Tensor       # (n,) float64: α, sample number or window index
    scores: torch.Tensor          # (n,) float64 objective at each step's input (NaN if unknown)
    _data: dict[str, Any] = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors it keeps (for byte-bounded caches)."""
        total = self.attribution.values.element_size() * self.attribution.values.numel()
        for v in self._data.values():
            items = v if isinstance(v, list) else [v]
            total += sum(t.element_size() * t.numel() for t in items
                         if isinstance(t, torch.Tensor))
        return total

    def frame(self, k: int) -> PathFrame:
        """Return step ``k`` (0 ≤ k < len(self)); a negative ``k`` counts from the end."""
        n = len(self)
        if isinstance(k, bool) or not isinstance(k, int) or not -n <= k < n:
            raise SaliencyError(f"step {k!r} is out of range for a path of {n} steps "
                                f"(valid 0–{n - 1})")
        k %= n
        return {"integrated_gradients": _ig_frame, "smoothgrad": _smoothgrad_frame,
                "occlusion": _occlusion_frame}[self.method](self, k)


def _ig_frame(path: AttributionPath, k: int) -> PathFrame:
    d = path._data
    # The method's own accumulation, node by node in the same order and dtype, so the running
    # sum after the last node is bit for bit the method's result.
    acc = torch.zeros_like(d["x"], dtype=d["weights"].dtype)
    for i in range(k + 1):
        acc += d["grads"][i].to(acc.dtype) * d["weights"][i].view(-1, 1, 1, 1)
    running = d["diff"].to(acc.dtype) * acc
    return PathFrame(index=k, position=float(path.positions[k]), input=d["points"][k][0],
                     step=d["grads"][k][0], running=running[0], score=float(path.scores[k]),
                     weight=float(d["weights"][k]))


def _smoothgrad_frame(path: AttributionPath, k: int) -> PathFrame:
    d = path._data
    return PathFrame(index=k, position=float(path.positions[k]), input=d["noisy"][k][0],
                     step=d["values"][k][0], running=d["running"][k][0],
                     score=float("nan"), weight=1.0 / len(path))


def _occlusion_frame(path: AttributionPath, k: int) -> PathFrame:
    d = path._data
    x, base = d["x"], d["baseline"]
    (ny, nx), (wh, ww), (sh, sw) = d["grid"], d["window"], d["stride"]
    H, W = x.shape[-2:]
    y0, x0 = (k // nx) * sh, (k % nx) * sw
    inside = torch.zeros((1, 1, H, W), dtype=torch.bool, device=x.device)
    inside[..., y0:y0 + wh, x0:x0 + ww] = True
    occluded = torch.where(inside, base, x)
    drop = d["drops"][:, k].view(-1, 1, 1, 1)
    step = torch.where(inside, drop, torch.zeros_like(drop))
    used = torch.arange(ny * nx) <= k
    running, _ = spread(d["drops"], used, (ny, nx), (wh, ww), (sh, sw), (H, W))
    return PathFrame(index=k, position=float(k), input=occluded[0], step=step[0],
                     running=running[0], score=float(path.scores[k]), weight=1.0,
                     window=(int(y0), int(x0), int(wh), int(ww)))


def build_path(method: str, attribution: Attribution, x: torch.Tensor,
               events: list[dict[str, Any]]) -> AttributionPath:
    """Return the :class:`AttributionPath` of a traced run (``events``: what the method
    reported through ``Explainee.trace``, in order)."""
    if method == "integrated_gradients":
        setup = next(e for e in events if e["stage"] == "setup")
        nodes: dict[int, dict[str, Any]] = {}
        for e in events:
            if e["stage"] != "node":
                continue
            for r, k in enumerate(e["nodes"].tolist()):
                nodes[k] = {"points": e["points"][r:r + 1], "grads": e["grads"][r:r + 1],
                            "score": float(e["scores"][r])}
        order = sorted(nodes)
        base = setup["baseline"].expand_as(x)
        data = {"x": x, "diff": x - base, "weights": setup["weights"],
                "points": [nodes[k]["points"] for k in order],
                "grads": [nodes[k]["grads"] for k in order]}
        return AttributionPath(method, attribution,
                               positions=setup["alphas"].detach().double().cpu(),
                               scores=torch.tensor([nodes[k]["score"] for k in order],
                                                   dtype=torch.float64), _data=data)
    if method == "smoothgrad":
        data = {key: [e[key] for e in events] for key in ("noisy", "values", "running")}
        n = len(events)
        return AttributionPath(method, attribution,
                               positions=torch.arange(1, n + 1, dtype=torch.float64),
                               scores=torch.full((n,), float("nan"), dtype=torch.float64),
                               _data=data)
    if method == "occlusion":
        (e,) = events
        drops = e["drops"]
        data = {"x": x, "baseline": e["baseline"].expand_as(x), "drops": drops,
                "grid": e["grid"], "window": e["window"], "stride": e["stride"]}
        scores = (e["scores"][0] - drops[0]).detach().double().cpu()
        return AttributionPath(method, attribution,
                               positions=torch.arange(drops.shape[1], dtype=torch.float64),
                               scores=scores, _data=data)
    raise SaliencyError(f"no attribution path for method {method!r}; the path view steps "
                        f"through {', '.join(PATH_METHODS)}")


@dataclass(frozen=True)
class RemovalCurve:
    """A deletion or insertion result with the pixel order it used.

    ``ranks[b, i, j]`` is pixel (i, j)'s position in the metric's removal order (0 = moved
    first; ties broken as the metric breaks them); at step ``k`` the pixels with
    ``rank < counts[k]`` are moved (deletion: replaced by ``substrate``; insertion: copied from
    the image into ``substrate``), and the model's objective there is ``result.curve[b, k]``.
    """

    result: MetricResult
    ranks: torch.Tensor      # (B, H, W) int64
    counts: torch.Tensor     # (steps + 1,) int64
    substrate: torch.Tensor  # (B, C, H, W): the deletion fill / the insertion start
    insert: bool
    x: torch.Tensor = field(repr=False)

    def image(self, k: int) -> torch.Tensor:
        """``(B, C, H, W)``: the input the model scored at step ``k`` of the curve."""
        moved = (self.ranks < self.counts[k]).unsqueeze(1)
        start, end = (self.substrate, self.x) if self.insert else (self.x, self.substrate)
        return torch.where(moved, end, start)
