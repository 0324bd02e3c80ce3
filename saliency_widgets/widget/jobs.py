"""One background worker per widget: runs one job at a time off the kernel's message loop.

A new selection replaces the queue; the running job is cancelled when it is no longer wanted
(its ``cancel`` event is set, and the engine stops at its next chunk with ``Cancelled``).

A callback that fails is reported through ``on_failure`` (the widget shows it and warns), never
swallowed.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from ..errors import Cancelled

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At interpreter exit, stop every worker at its job's next chunk and wait for it: a daemon
    thread frozen inside a torch op aborts the process ("terminate called without an active
    exception"), e.g. a script that exits while badges are still computed in the background."""
    workers = list(_LIVE)
    for worker in workers:
        worker.close()
    for worker in workers:
        thread = worker._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=30)


@dataclass
class Job:
    """``run(progress, cancel)`` computes; the callbacks are called from the worker thread."""

    key: Hashable
    run: Callable[[ProgressFn, threading.Event], Any]
    on_done: Callable[[Hashable, Any], None]
    on_error: Callable[[Hashable, BaseException], None]
    on_cancelled: Callable[[Hashable], None]
    on_progress: Callable[[Hashable, int, int], None] = lambda key, done, total: None
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: bool = False  # set before its last callback runs: it will never run again


class Worker:
    """A daemon thread that runs :class:`Job` s one at a time, newest selection first."""

    def __init__(self, name: str = "saliency-widget", *,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self._name = name
        self._on_failure = on_failure
        self._cv = threading.Condition()
        self._queue: list[Job] = []
        self._running: Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        _LIVE.add(self)

    # -- called from the kernel thread ---------------------------------------------------------
    def schedule(self, jobs: list[Job]) -> None:
        """Make ``jobs`` the whole queue. The running job goes on only if its key is in ``jobs``."""
        with self._cv:
            if self._closed:
                raise RuntimeError("this widget was closed; open a new one with sw.show()")
            wanted = {job.key for job in jobs}
            running = self._running
            if running is not None and running.key not in wanted:
                running.cancel.set()
            keep_running = (running is not None and not running.cancel.is_set()
                            and not running.finished)
            kept = running.key if keep_running and running is not None else None
            self._queue = [job for job in jobs if not (keep_running and job.key == kept)]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def cancel(self) -> list[Hashable]:
        """Cancel the running job and drop the queue; return the keys that will not complete."""
        with self._cv:
            dropped, self._queue = self._queue, []
            keys = [job.key for job in dropped]
            if self._running is not None:
                self._running.cancel.set()
                keys.insert(0, self._running.key)
            self._cv.notify_all()
        for job in dropped:  # outside the lock: callbacks take the widget's lock
            self._safely(job.on_cancelled, job.key)
        return keys

    @property
    def running_key(self) -> Hashable | None:
        with self._cv:
            return None if self._running is None else self._running.key

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running is not None or bool(self._queue)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job runs or waits; return False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._running is not None or self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def close(self) -> None:
        """Cancel everything and stop the thread."""
        self.cancel()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    # -- the worker thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._queue.pop(0)
                self._running = job
            try:
                self._run(job)
            finally:
                with self._cv:
                    self._running = None
                    self._cv.notify_all()

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            job.on_progress(job.key, done, total)

        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            result = job.run(progress, job.cancel)
        except Cancelled:
            job.finished = True
            self._safely(job.on_cancelled, job.key)
        except BaseException as err:
            job.finished = True
            self._safely(job.on_error, job.key, err)
        else:
            job.finished = True
            self._safely(job.on_done, job.key, result)

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a callback; a failure must not kill the worker thread, nor pass unseen."""
        try:
            fn(*args)
        except Exception as err:
            if self._on_failure is None:
                log.exception("saliency widget: a job callback failed")
                return
            try:
                self._on_failure(err)
            except Exception:
                log.exception("saliency widget: a job callback failed, and so did its report")
