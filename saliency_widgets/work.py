"""Chunked execution of batched work: automatic chunk size, progress, cancellation, OOM back-off.

Every method and metric runs its perturbed inputs (IG steps, noise samples, occlusion windows,
Score-CAM masks) through :meth:`Work.run`, so these guarantees hold everywhere:

* chunks are sized per device (on a 2-core CPU large batches are *slower* per image; on a GPU
  larger batches pay off) and ``batch_size`` overrides the choice;
* ``cancel`` is checked before each chunk and raises :class:`~saliency_widgets.errors.Cancelled`;
* ``progress(done, total)`` is called after each chunk;
* on CUDA an out-of-memory error halves the chunk and retries it.

Public calls that take ``progress`` are decorated with :func:`progress_bar`, so they also accept
``progress=True``: a ``tqdm.auto`` bar (a widget in notebooks, text in a terminal) fed by the same
callback; the computation never sees the difference.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

import torch

from .errors import Cancelled, SaliencyError

ProgressFn = Callable[[int, int], None]
Progress = ProgressFn | bool | None  # what the public calls accept
F = TypeVar("F", bound=Callable[..., Any])

# One 224×224 RGB image has 150 528 values. Per-image time of resnet18 on 2 CPU threads (this
# project's CI machine, benchmarks/bench_methods.py calibration) at batch 1/2/4/8/16/32:
# forward 29.6/25.2/23.6/25.2/27.5/28.7 ms, forward+backward 67.8/56.2/54.5/49.6/48.5/54.8 ms.
# So 4 images per forward chunk and 8 per forward+backward chunk (within 2 % of 16 at half the
# memory). On a GPU, batches of 64 at 224² keep the device busy far from memory limits.
# "patches" (incremental occlusion, item_numel = the largest tensor one window holds): small
# patch convolutions use the cores better in larger batches (resnet18, 1 thread, per window:
# 23.1/18.0/17.5 ms at 4/16/32 windows per chunk).
_REF_NUMEL = 3 * 224 * 224
_CPU_IMAGES = {"backward": 8, "forward": 4, "patches": 24}
_CUDA_IMAGES = {"backward": 64, "forward": 128, "patches": 128}
_MAX_CHUNK = 256


def auto_chunk(device: torch.device, item_numel: int, kind: str) -> int:
    """Return how many inputs of ``item_numel`` values to evaluate at once on ``device``."""
    table = _CUDA_IMAGES if device.type == "cuda" else _CPU_IMAGES
    images = table[kind] * _REF_NUMEL / max(1, item_numel)
    return int(max(1, min(_MAX_CHUNK, images)))


class Work:
    """Progress, cancellation and chunk sizing for one API call."""

    def __init__(self, device: torch.device, batch_size: int | None = None,
                 progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise SaliencyError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if cancel is not None and not hasattr(cancel, "is_set"):
            raise SaliencyError("cancel must be a threading.Event (or have .is_set()), "
                                f"got {type(cancel).__name__}")
        if progress is not None and not callable(progress):
            raise SaliencyError(f"progress must be callable(done, total), got {progress!r}")
        self.device = device
        self.batch_size = batch_size
        self._progress = progress
        self._cancel = cancel
        self._scopes: list[tuple[int, int]] = []

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("cancelled by the caller; nothing was changed")

    def chunk_size(self, item_numel: int, kind: str) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return auto_chunk(self.device, item_numel, kind)

    def report(self, done: int, total: int) -> None:
        """Report inner progress, mapped through the enclosing scopes to the caller's scale."""
        for index, count in reversed(self._scopes):
            done, total = index * total + done, count * total
        if self._progress is not None:
            self._progress(done, total)

    def scope(self, index: int, count: int) -> _Scope:
        """Progress of the work inside is part ``index`` of ``count`` equal parts."""
        return _Scope(self, index, count)

    def run(self, total: int, step: Callable[[int, int], object], *, item_numel: int,
            kind: str = "backward", report: bool = True) -> None:
        """Call ``step(i, j)`` for consecutive chunks ``[i, j)`` covering ``range(total)``.

        ``step`` must compute first and store last, so a retried chunk stores nothing twice.
        ``report=False`` keeps short preliminary passes out of the progress count.
        """
        chunk = self.chunk_size(item_numel, kind)
        i = 0
        while i < total:
            self.check_cancel()
            j = min(total, i + chunk)
            try:
                step(i, j)
                out_of_memory = False
            except torch.cuda.OutOfMemoryError as err:
                if self.batch_size is not None:
                    raise SaliencyError(f"out of GPU memory with batch_size={self.batch_size}; "
                                        f"pass a smaller batch_size, or None to let the chunk "
                                        f"size adapt") from err
                if chunk == 1:
                    raise
                out_of_memory = True
            if out_of_memory:  # outside the except block, so the traceback no longer pins memory
                chunk = max(1, chunk // 2)
                torch.cuda.empty_cache()
                continue
            i = j
            if report:
                self.report(i, total)


@contextmanager
def reporter(progress: Progress, desc: str) -> Iterator[ProgressFn | None]:
    """Yield the ``progress(done, total)`` callback for ``progress``: None for None/False, the
    callable itself, or for True one that drives a ``tqdm.auto`` bar, closed on exit."""
    if progress is None or progress is False:
        yield None
        return
    if progress is not True:
        if not callable(progress):
            raise SaliencyError(f"progress must be True (a tqdm bar) or callable(done, total), "
                                f"got {progress!r}")
        yield progress
        return
    try:
        from tqdm.auto import tqdm
    except ImportError as err:
        raise SaliencyError("progress=True draws a tqdm bar, but tqdm is not installed: "
                            "pip install tqdm, or pass progress= a callable(done, total)") from err
    # Counts are chunks of different sizes (and sub-steps of nested calls): show a percentage.
    bar = tqdm(total=1, desc=desc, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                              "[{elapsed}<{remaining}]")

    def report(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield report
        bar.n = bar.total  # done, also where the last chunk was not reported
        bar.refresh()
    finally:
        bar.close()


def callback(progress: Progress) -> ProgressFn | None:
    """The callable a :func:`progress_bar` function holds for ``progress`` (True has become the
    bar's callback by then; None and False mean none)."""
    return None if progress is None or isinstance(progress, bool) else progress


def progress_bar(fn: F) -> F:
    """Let ``fn``'s keyword ``progress`` also be True (a tqdm bar named after the call)."""

    @functools.wraps(fn)
    def call(*args: Any, progress: Progress = None, **kwargs: Any) -> Any:
        what = next((kwargs[k] for k in ("method", "metric") if isinstance(kwargs.get(k), str)),
                    None)
        desc = fn.__name__ if what is None else f"{fn.__name__} {what}"
        with reporter(progress, desc) as report:
            return fn(*args, progress=report, **kwargs)

    return call  # type: ignore[return-value]


class _Scope:
    def __init__(self, work: Work, index: int, count: int) -> None:
        self.work, self.index, self.count = work, index, count

    def __enter__(self) -> Work:
        self.work._scopes.append((self.index, self.count))
        return self.work

    def __exit__(self, *exc: object) -> None:
        self.work._scopes.pop()
