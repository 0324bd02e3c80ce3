"""``data_randomization``: the data randomization test (Adebayo et al., NeurIPS 2018,
arXiv:1810.03292).

A map that explains what the model *learned from its data* must change when the same
architecture is trained, by the same procedure, on the same images with randomly permuted labels
(memorised: high training accuracy, no generalisation). The test compares the map of the model
trained on the true labels with the map of the permuted-label model, made with the same method,
parameters, seed and *resolved target classes*, per example, with the four similarity measures
of ``model_randomization`` (``metrics/_similarity.py``): Spearman of ``|map|`` (default) and of
the signed map, SSIM, and HOG correlation. Lower is better (a method passing the test loses
similarity). Training the permuted-label model is the user's part: ``scripts/data_randomization.py``
does it for the demo data and states how long it takes.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable

import torch
from torch import nn

from ._types import Attribution, MetricResult
from .api import _check_map, _explainer_on, check_input
from .errors import SaliencyError, SaliencyWarning
from .metrics._common import pixel_map
from .metrics._similarity import SIMILARITIES, similarities
from .model.explainee import OutputSelector
from .reduce import REDUCTIONS
from .work import Progress, callback, progress_bar


@progress_bar
def data_randomization(model: nn.Module, random_model: nn.Module, x: torch.Tensor,
                       attribution: Attribution | torch.Tensor, *,
                       similarity: str = "spearman_abs", reduction: str = "sum",
                       explain: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                       batch_size: int | None = None, cancel: threading.Event | None = None,
                       output: OutputSelector = None, progress: Progress = None) -> MetricResult:
    """Return the similarity of ``attribution`` (made on ``model``) to the same explanation made
    on ``random_model``, a copy of the architecture trained on permuted labels; per example.

    Parameters
    ----------
    model, random_model : nn.Module
        The model trained on the true labels, and the one trained on permuted labels (same
        input format). Neither is modified.
    x : Tensor ``(B, C, H, W)``
    attribution : Attribution or Tensor
        A record from ``sw.attribute(model, x, ...)``: ``random_model`` is explained with the
        same method, parameters, seed and resolved target (and contrast). A plain tensor needs
        ``explain=callable(model, x) -> map``.
    similarity : str
        The score: one of ``spearman_abs``, ``spearman``, ``ssim``, ``hog``; all four are in
        ``extras``, with ``random_map`` (the re-explanation).
    reduction : str
        Channel reduction before comparing (``sum``, ``abs``, ``max_abs``).
    progress : callable(done, total), True, or None
        Progress of the re-explanation; True shows a ``tqdm.auto`` bar.

    Returns
    -------
    MetricResult
        ``metric="data_randomization"``, ``higher_is_better=False``; NaN (with a warning) where
        the original map is constant.
    """
    if similarity not in SIMILARITIES:
        raise SaliencyError(f"data_randomization: similarity={similarity!r}; use one of "
                            f"{SIMILARITIES}")
    if reduction not in REDUCTIONS:
        raise SaliencyError(f"data_randomization: reduction={reduction!r}; use one of "
                            f"{REDUCTIONS}")
    check_input(model, x)
    check_input(random_model, x)
    record = attribution if isinstance(attribution, Attribution) else None
    values = _check_map(record.values if record is not None else attribution, x)
    on = _explainer_on(record, explain, batch_size, cancel, output, callback(progress))
    if on is None:
        raise SaliencyError("data_randomization re-explains x with random_model, but the "
                            "attribution is a plain tensor: pass the Attribution record from "
                            "sw.attribute, or explain=callable(model, x) -> tensor")
    started = time.perf_counter()
    new = torch.as_tensor(on(random_model, x, torch.arange(x.shape[0], device=x.device)))
    new = new.detach().to(x.device)
    if new.dim() != 4 or new.shape[0] != x.shape[0] or new.shape[2:] != x.shape[2:]:
        raise SaliencyError(f"data_randomization: the re-explained map has shape "
                            f"{tuple(new.shape)}; expected ({x.shape[0]}, C or 1, "
                            f"{x.shape[2]}, {x.shape[3]})")
    sims = {k: v.cpu() for k, v in similarities(pixel_map(values, reduction),
                                                 pixel_map(new, reduction)).items()}
    score = sims[similarity]
    if bool(torch.isnan(score).any()):
        idx = torch.isnan(score).nonzero()[:, 0].tolist()
        warnings.warn(f"data_randomization: undefined (NaN) for example(s) {idx}: the "
                      f"original map is constant{' or under 4 px' if similarity == 'hog' else ''}",
                      SaliencyWarning, stacklevel=2)
    extras: dict[str, Any] = {**sims, "random_map": new.cpu()}
    return MetricResult(metric="data_randomization", scores=score.double(),
                        higher_is_better=False,
                        params={"similarity": similarity, "reduction": reduction},
                        extras=extras, seconds=time.perf_counter() - started)
