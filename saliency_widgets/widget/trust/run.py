"""Jobs of the trust views on the widget's worker, handled like the maps' jobs: retried when the
weights move mid-run, progress in the status line, failures shown and warned, cancels respected.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

from ...api import fingerprint
from ...errors import SaliencyError
from ..compute import TRIES, _moved_mid_pass
from ..jobs import Job

Run = Callable[[Callable[[int, int], None], threading.Event], Any]


def guarded(model: Any, weights: int, fn: Run) -> Run:
    """``fn`` run on the weights ``weights`` (the fingerprint of the map it scores), or None.

    None when the weights have moved since that map was made: its panel will be computed afresh
    (and scored again). A run during which they move is discarded and run again, as for maps.
    """

    def run(progress: Callable[[int, int], None], cancel: threading.Event) -> Any:
        for _ in range(TRIES):
            before = fingerprint(model)
            if before != weights:
                return None
            try:
                out = fn(progress, cancel)
            except RuntimeError as err:
                if _moved_mid_pass(err):
                    continue
                raise
            if fingerprint(model) == before:
                return out
        raise SaliencyError(f"the model's weights changed during each of {TRIES} tries (a cell "
                            f"is training it?); call w.refresh() once training stops")

    return run


def trust_job(host: Any, key: Any, weights: int, fn: Run,
              store: Callable[[Any, Any], None]) -> Job:
    """A :class:`Job` for ``key`` whose result ``store(key, result)`` keeps (under the lock)."""

    def done(key: Hashable, result: Any) -> None:
        if result is not None:
            with host._sync_lock:
                store(key, result)
        host._refresh()

    def failed(key: Hashable, err: BaseException) -> None:
        text = str(err) if isinstance(err, SaliencyError) else f"{type(err).__name__}: {err}"
        with host._sync_lock:
            host._board.errors[key] = text
        host._refresh(schedule=False)
        host._warn(f"saliency widget: {key.label} failed: {text}")  # type: ignore[attr-defined]

    def cancelled(key: Hashable) -> None:
        host._refresh(schedule=False)

    last = [0.0]

    def progress(key: Hashable, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.1 and done < total:
            return
        last[0] = now
        with host.hold_sync():
            host.progress = done / total if total else 0.0
            host.message = f"computing {key.label}: {done}/{total}"  # type: ignore[attr-defined]

    return Job(key=key, run=guarded(host._model, weights, fn), on_done=done, on_error=failed,
               on_cancelled=cancelled, on_progress=progress)
