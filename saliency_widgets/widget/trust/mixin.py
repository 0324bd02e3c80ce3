"""The trust views' traits and wiring, mixed into ``SaliencyWidget``.

Traits (the testing contract): ``metrics_selected`` (badges shown on every panel),
``rank_by`` (a metric name, or "" for the selection's order), ``metric_results`` (read-only:
method → metric → value of the shown panels), ``sanity_check`` (run the randomization cascade),
``path_method`` / ``path_step`` (the attribution path view and its position). Per panel:
``Panel.badges``, ``Panel.curves``, ``Panel.sanity``.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
import traitlets as t

from ...api import PATH_METHODS, list_metrics
from ...errors import SaliencyError
from ..board import Extra, Layout
from ..jobs import Job
from ..panel import Panel
from .badges import Badges
from .keys import PathKey, SanityKey, mask_hash
from .path import PathView
from .sanity import Sanity

DEFAULT_METRICS = ("deletion", "insertion", "infidelity", "max_sensitivity")
# offered as toggles (any registered metric can be set from Python); localization needs masks
OFFERED = ("deletion", "insertion", "infidelity", "max_sensitivity", "avg_sensitivity",
           "road", "sparseness", "complexity")


def check_masks(masks: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``(1, H, W)`` bool on the input's device, or None; refused in words when it does not fit."""
    if masks is None:
        return None
    m = masks if isinstance(masks, torch.Tensor) else torch.from_numpy(np.array(masks))
    H, W = x.shape[-2:]
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3 or m.shape[0] != 1 or tuple(m.shape[1:]) != (H, W):
        raise SaliencyError(f"masks must be one ({H}, {W}) mask of the model's input (after "
                            f"preprocess), as a bool array or tensor; got shape "
                            f"{tuple(np.shape(masks))}")
    if m.dtype != torch.bool:
        if not bool(((m == 0) | (m == 1)).all()):
            raise SaliencyError("masks must be boolean (or 0/1) values")
        m = m != 0
    return m.to(x.device)


class _Trust(Extra):
    """One extra for all four views, so their work is ordered: badges of the map alone, then
    the path and the sanity check (asked for by a click), then the badges that need the model."""

    def __init__(self, host: Any, metrics: dict[str, dict[str, Any]]) -> None:
        self.badges = Badges(host, metrics)
        self.sanity = Sanity(host)
        self.path = PathView(host)
        self.results: dict[str, dict[str, float]] = {}

    def show(self, layout: Layout) -> None:
        self.results = self.badges.show(layout.panels)
        self.sanity.show(layout.panels)
        self.path.show(layout.panels)

    def jobs(self, layout: Layout) -> list[Job]:
        panels = layout.panels
        return (self.badges.jobs(panels, quick=True) + self.path.jobs(panels)
                + self.sanity.jobs(panels) + self.badges.jobs(panels, quick=False))


class TrustViews(t.HasTraits):
    """Badges, curves, sanity check and attribution path (see the module docstring)."""

    metrics_selected = t.List(t.Unicode()).tag(sync=True)
    """Metric names shown as badges on every panel (``sw.evaluate`` with their defaults)."""
    metric_choices = t.List(t.Dict()).tag(sync=True)
    """The metrics offered as toggles: name, label, family, higher_is_better, doc, needs_masks
    (the localization metrics: usable with ``masks_given`` or a painted ``expert_mask``)."""
    masks_given = t.Bool(False).tag(sync=True)
    """Whether masks were given (``sw.show(masks=)`` or :meth:`set_masks`)."""
    rank_by = t.Unicode("").tag(sync=True)
    """Order the panels by this metric, best first ("" keeps the selection's order)."""
    metric_results = t.Dict(read_only=True)
    """method → metric → value (NaN when undefined) for the panels shown now."""
    sanity_check = t.Bool(False).tag(sync=True)
    """Randomize the model top-down, block by block, and re-explain every shown map."""
    path_method = t.Unicode("").tag(sync=True)
    """Step through this method's computation ("" hides the path view)."""
    path_step = t.Int(-1).tag(sync=True)
    """The step of the path shown (-1: the last)."""
    path_info = t.Dict().tag(sync=True)
    path_frame = t.Dict().tag(sync=True)

    # what the widget provides (declared for the type checker; set by SaliencyWidget)
    _prepared: Any
    _extras: list[Extra]
    _board: Any
    _sync_lock: Any
    _seed: int
    _refresh: Callable[..., None]

    if TYPE_CHECKING:  # the widget reads traits' own attributes (bounds) through traits()
        def traits(self, **metadata: Any) -> dict[str, Any]: ...

    def _init_trust(self, metrics: Sequence[str] | None, masks: Any) -> None:
        """Called by the widget's ``__init__`` before its first refresh."""
        self._given_masks = check_masks(masks, self._prepared.x)
        self._trust_masks = self._given_masks
        self._trust_mask_hash = mask_hash(self._trust_masks)
        self._trust = _Trust(self, {m["name"]: m for m in list_metrics()})
        self._extras.append(self._trust)
        self.metric_choices = self._offered()
        self.masks_given = self._given_masks is not None
        self.metrics_selected = list(DEFAULT_METRICS if metrics is None else
                                     ((metrics,) if isinstance(metrics, str) else metrics))

    def _offered(self) -> list[dict[str, Any]]:
        """The toggles: the same list whatever the masks (painting sends no new choices)."""
        info = self._metric_info()
        offered = [m for m in OFFERED if m in info]
        offered += [n for n, m in info.items() if m["family"] == "localization"]
        return [{**{k: info[n][k] for k in ("name", "label", "family", "doc",
                                            "higher_is_better")},
                 "needs_masks": info[n]["family"] == "localization"} for n in offered]

    def set_masks(self, masks: Any) -> None:
        """Score the localization badges against ``masks`` (one ``(H, W)`` bool mask of the
        model's input); None removes them (and their badges). A painted ``expert_mask`` takes
        precedence while there is one."""
        self._given_masks = check_masks(masks, self._prepared.x)
        self.masks_given = self._given_masks is not None
        self._use_masks()

    @t.observe("expert_mask")
    def _on_expert_mask(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._use_masks()

    def _use_masks(self) -> None:
        """The masks the localization badges use: the painted ``expert_mask``, or else the
        ``masks`` given to ``sw.show`` / :meth:`set_masks`."""
        painted = getattr(self, "expert_mask", None)
        m = check_masks(painted, self._prepared.x) if painted is not None else self._given_masks
        with self._sync_lock:
            self._trust_masks, self._trust_mask_hash = m, mask_hash(m)
            if m is None:  # no mask left: the localization badges go
                info = self._metric_info()
                kept = [n for n in self.metrics_selected if info[n]["family"] != "localization"]
                if kept != list(self.metrics_selected):
                    self.metrics_selected = kept
        self._refresh()

    # -- validation ----------------------------------------------------------------------------
    def _metric_info(self) -> dict[str, dict[str, Any]]:
        return self._trust.badges.info

    @t.validate("metrics_selected")
    def _valid_metrics(self, proposal: dict[str, Any]) -> list[str]:
        info, out = self._metric_info(), []
        for name in proposal["value"]:
            if name not in info:
                close = difflib.get_close_matches(str(name), list(info), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise t.TraitError(f"unknown metric {name!r}{hint} Available: "
                                   f"{', '.join(sorted(info))}")
            if info[name]["family"] == "localization" and self._trust_masks is None:
                raise t.TraitError(f"{name} scores the map against a ground-truth mask: paint "
                                   f"one (paint mode, or w.expert_mask = ...), or pass masks= "
                                   f"to sw.show / w.set_masks (one (H, W) bool mask of the "
                                   f"input)")
            if name not in out:
                out.append(name)
        return out

    @t.validate("rank_by")
    def _valid_rank_by(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"])
        if name and name not in self._metric_info():
            raise t.TraitError(f"rank_by must be '' or a metric name, got {name!r}")
        return name

    @t.validate("path_method")
    def _valid_path_method(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"])
        if name and name not in PATH_METHODS:
            raise t.TraitError(f"path_method must be '' or one of {', '.join(PATH_METHODS)}, "
                               f"got {name!r}")
        return name

    # -- changes -------------------------------------------------------------------------------
    @t.observe("metrics_selected", "rank_by", "sanity_check", "path_method")
    def _on_trust(self, change: dict[str, Any]) -> None:
        if not getattr(self, "_ready", False):
            return
        if change["name"] == "metrics_selected" and self.rank_by not in change["new"]:
            self.rank_by = ""
        if change["name"] in ("sanity_check", "path_method"):
            # a new request asks again for the checks and paths that failed or were cancelled
            board = self._board
            for key in [*board.errors, *board.cancelled]:
                if isinstance(key, (SanityKey, PathKey)):
                    board.errors.pop(key, None)
                    board.cancelled.discard(key)
        self._refresh()

    @t.observe("path_step")
    def _on_path_step(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            with self._sync_lock:
                self._trust.path.show_frame()

    # -- hooks for the widget's refresh --------------------------------------------------------
    def _trust_order(self, layout: Layout) -> list[Panel]:
        """The panels in the order ``rank_by`` asks for (after the extras' ``show``)."""
        results = self._trust.results
        if results != self.metric_results:
            self.set_trait("metric_results", results)
        if not self.rank_by:
            return layout.panels
        name = self.rank_by
        better = -1.0 if self._metric_info()[name]["higher_is_better"] else 1.0

        def order(item: tuple[int, Panel]) -> tuple[bool, float, int]:
            i, p = item
            v = results.get(p.method, {}).get(name, math.nan)
            ok = math.isfinite(v)
            return (not ok, better * v if ok else 0.0, i)

        return [p for _, p in sorted(enumerate(layout.panels), key=order)]
