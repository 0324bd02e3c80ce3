"""The explained score: ``logit[target] − logit[contrast]`` per example.

Targets given as ``None`` (the predicted class) and the ``"runner_up"`` contrast are resolved
from the first forward pass of the original input, so resolving them costs no extra pass. With
``contrast == target`` the score is ``l − l``, exactly zero, and so is every map built from it.

Nothing here waits for the device: the indices travel to it asynchronously, and resolution
happens on the device (which rows are resolved is a device tensor), so a GPU call keeps queueing
work instead of stopping after each forward pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .._types import runner_up
from ..errors import SaliencyError

_UNRESOLVED = -1


def _as_indices(spec: Any, batch: int, what: str) -> list[int] | None:
    """``None`` → None; an int → repeated; a sequence/tensor of ``batch`` ints → a list."""
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise SaliencyError(f"{what} must be an int class index, got a bool ({spec!r})")
    if isinstance(spec, int):
        return [int(spec)] * batch
    if isinstance(spec, torch.Tensor):
        if spec.dtype.is_floating_point or spec.dtype == torch.bool:
            raise SaliencyError(f"{what} must hold integer class indices, got dtype {spec.dtype}")
        if spec.dim() == 0:
            return [int(spec)] * batch
        spec = spec.reshape(-1).tolist()
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        values = list(spec)
        if len(values) != batch:
            raise SaliencyError(f"{what} has {len(values)} entries but the batch has {batch} "
                                f"examples; give one index per example or a single int")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise SaliencyError(f"{what} must hold ints, got {values!r}")
        return [int(v) for v in values]
    raise SaliencyError(f"{what} must be None, an int or one int per example, got {spec!r}")


def _on(values: list[int], device: torch.device) -> torch.Tensor:
    """A long tensor on ``device`` without waiting for it (``non_blocking`` host-to-device copy:
    the values are staged at once, so the host list can go)."""
    return torch.tensor(values, dtype=torch.long).to(device, non_blocking=True)


class Objective:
    """Per-example target and contrast indices, on the model's device."""

    def __init__(self, target: Any, contrast: Any, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.device = device
        self.num_classes: int | None = None
        given = _as_indices(target, batch, "target")
        self._explicit_target = given is not None
        self.target = _on(given if given is not None else [_UNRESOLVED] * batch, device)
        self.runner_up = isinstance(contrast, str)
        if self.runner_up and contrast != "runner_up":
            raise SaliencyError(f"contrast={contrast!r} is not understood; use None, an int, one "
                                f"int per example, or 'runner_up'")
        cgiven = None if self.runner_up else _as_indices(contrast, batch, "contrast")
        self.has_contrast = self.runner_up or cgiven is not None
        self.contrast = (_on(cgiven if cgiven is not None else [_UNRESOLVED] * batch, device)
                         if self.has_contrast else None)
        self._explicit = (given or []) + (cgiven or [])
        # Every row resolved (known on the host), or which rows are (on the device)
        self._all_resolved = self._explicit_target and not self.runner_up
        self._done: torch.Tensor | None = None

    @property
    def resolved(self) -> bool:
        """Whether every row is resolved (waits for the device when targets were not given)."""
        return self._all_resolved or (self._done is not None and bool(self._done.all()))

    def check_classes(self, num_classes: int) -> None:
        """Range-check explicit indices once the number of classes is known (before any
        backward)."""
        if self.num_classes is not None:
            return
        self.num_classes = num_classes
        for v in self._explicit:
            if not 0 <= v < num_classes:
                raise SaliencyError(
                    f"class index {v} is out of range for a model with {num_classes} classes "
                    f"(valid 0–{num_classes - 1})")
        if self.runner_up and num_classes < 2:
            raise SaliencyError("contrast='runner_up' needs a model with at least 2 classes")

    def resolve(self, logits: torch.Tensor, rows: torch.Tensor) -> None:
        """Fill unresolved targets/contrasts of ``rows`` from the logits of the original input
        (rows resolved before keep their values: the first pass decides)."""
        if self._all_resolved:
            return
        if self._done is None:
            self._done = torch.zeros(self.batch, dtype=torch.bool, device=self.device)
        done = self._done[rows]
        logits = logits.detach()
        if not self._explicit_target:
            self.target[rows] = torch.where(done, self.target[rows], logits.argmax(1))
        if self.runner_up:
            self.contrast[rows] = torch.where(  # type: ignore[index]
                done, self.contrast[rows], runner_up(logits, self.target[rows]))  # type: ignore[index]
        self._done[rows] = True

    def score(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Return ``(n,)``: the objective for each row, row ``r`` explaining example ``rows[r]``."""
        t = self.target[rows]
        s = logits.gather(1, t[:, None])[:, 0]
        if self.contrast is not None:
            s = s - logits.gather(1, self.contrast[rows][:, None])[:, 0]
        return s

    def self_contrast(self) -> torch.Tensor:
        """``(B,)`` bool: examples whose contrast equals their target (their maps are zero)."""
        if self.contrast is None:
            return torch.zeros(self.batch, dtype=torch.bool, device=self.device)
        return self.contrast == self.target

    def take(self, index: torch.Tensor) -> Objective:
        """An objective for a batch whose row ``r`` is a copy of example ``index[r]``."""
        if not self.resolved:
            raise RuntimeError("resolve the objective before taking rows from it")
        new = object.__new__(Objective)
        new.__dict__.update(self.__dict__)
        new.batch = int(index.numel())
        new.target = self.target[index]
        new.contrast = None if self.contrast is None else self.contrast[index]
        new._all_resolved, new._done = True, None
        return new

    def as_lists(self) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        target = tuple(int(v) for v in self.target.tolist())
        contrast = None if self.contrast is None else tuple(int(v) for v in self.contrast.tolist())
        return target, contrast
