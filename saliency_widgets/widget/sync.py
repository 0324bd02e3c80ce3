"""One lock around every synced-state write, from whichever thread.

ipywidgets keeps ``_holding_sync`` and ``_states_to_send`` unguarded, and ``send_state`` iterates
that live set: a trait written by the kernel thread while the worker thread leaves a
``hold_sync()`` block can be lost, sent twice, or raise "Set changed size during iteration".
traitlets' ``hold_trait_notifications`` (used by ``set_state``, messages from the browser) even
swaps ``notify_change`` on the instance for every thread. So each synced trait assignment, each
``hold_sync`` block, each notification and each state update from the browser takes one
re-entrant lock per widget family (a widget and its child panel models share it).

The writes are never deferred to the kernel's event loop: a cell that waits (``w.wait()``) blocks
that loop, and marimo or a plain script has none.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import ipywidgets


class LockedSync(ipywidgets.Widget):  # type: ignore[misc]  # ipywidgets ships no types
    """An ipywidgets ``Widget`` whose synced state is written under ``self._sync_lock``.

    Pass ``sync_lock=`` to share a lock with a parent widget.
    """

    def __init__(self, *, sync_lock: threading.RLock | None = None, **kwargs: Any) -> None:
        # set before ipywidgets' __init__, which already writes traits
        object.__setattr__(self, "_sync_lock", sync_lock or threading.RLock())
        super().__init__(**kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _synced(type(self)):
            with self._sync_lock:
                super().__setattr__(name, value)
        else:
            super().__setattr__(name, value)

    def notify_change(self, change: Any) -> None:
        with self._sync_lock:
            super().notify_change(change)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        with self._sync_lock:
            super().set_state(sync_data)

    def __del__(self) -> None:
        # ipywidgets closes a widget when it is collected; at interpreter exit its module's
        # globals may already be None (an AttributeError printed once per widget: a widget
        # holds a panel model per method, so a test run printed it hundreds of times)
        try:
            super().__del__()
        except (AttributeError, TypeError):
            pass

    @contextmanager
    def hold_sync(self) -> Iterator[None]:
        with self._sync_lock, super().hold_sync():
            yield


_SYNCED: dict[type, frozenset[str]] = {}


def _synced(cls: type) -> frozenset[str]:
    names = _SYNCED.get(cls)
    if names is None:
        names = _SYNCED[cls] = frozenset(cls.class_traits(sync=True))  # type: ignore[attr-defined]
    return names
