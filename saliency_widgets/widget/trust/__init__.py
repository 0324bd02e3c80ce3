"""The widget's trust and teaching views: metric badges with trivial baselines, scrubbable
deletion/insertion curves, the randomization sanity check, and the attribution path.

Each is a ``board.Extra``: work the widget schedules after the maps, in its one worker, cached in
the board's byte-bounded cache and written to the panels' synced traits. ``mixin.TrustViews``
holds their traits and wiring; ``js/src/trust/`` draws them.
"""

from .mixin import DEFAULT_METRICS, TrustViews

__all__ = ["DEFAULT_METRICS", "TrustViews"]
