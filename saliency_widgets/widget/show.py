"""``sw.show``: make a :class:`SaliencyWidget`, display it once, return it."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import nn

from .display import shown
from .widget import SaliencyWidget


def show(model: nn.Module, image: Any, *, preprocess: Callable[[Any], Any] | None = None,
         labels: Any = None, methods: Sequence[str] = ("gradient", "grad_cam"),
         mean: Any = None, std: Any = None, **options: Any) -> SaliencyWidget:
    """Display and return a :class:`SaliencyWidget` explaining ``model`` on ``image``.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits; never modified. Maps are computed where it lives (CPU or
        CUDA), in a background thread: the notebook stays responsive.
    image : PIL image, ``(H, W, 3)`` uint8 array, or ``(3, H, W)`` / ``(1, 3, H, W)`` float tensor
        Without ``preprocess``, uint8/PIL input becomes [0, 1] floats (like ``ToTensor``) and a
        float tensor is taken as the model's input.
    preprocess : callable, optional
        E.g. torchvision transforms or ``weights.transforms()``. The widget shows the pixels the
        model saw (after resize/crop), with the normalization found in ``preprocess`` undone.
    labels : list of names, torchvision weights enum, or None (class indices)
    methods : names from ``sw.list_methods()`` shown first
    mean, std : the model's input normalization, when ``preprocess`` does not reveal it
    **options
        ``target``, ``contrast`` (an index or ``"runner_up"``), ``top_k``, ``cache_bytes``,
        ``output`` (which model output holds the logits), ``seed``, ``params`` (per method, e.g.
        ``{"integrated_gradients": {"steps": 64}}``; values the editor cannot show, such as
        tensors or a list of layers for ``layer_cam``, are kept in Python and used as given),
        ``references`` (a reference set for every method that takes one), and the display options
        ``colormap``, ``opacity``, ``sign``, ``clip_percentile``, ``threshold``.
        ``metrics`` (default deletion, insertion, infidelity, max-sensitivity; ``()`` for none)
        are shown as badges on every panel, computed in the background after the maps, and
        ``masks`` (one ``(H, W)`` bool mask of the model's input) adds the localization metrics.
    """
    return shown(SaliencyWidget(model, image, preprocess=preprocess, labels=labels,
                                methods=methods, mean=mean, std=std, **options))
