"""The public entry points: validate → bind the model to an objective → run → record."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import torch
from torch import nn

from . import methods as _methods  # noqa: F401  (registers every method)
from . import metrics as _metrics  # noqa: F401  (registers every metric)
from ._types import Attribution, MetricResult, Prediction
from .baselines import parse_normalization, resolve_baseline
from .errors import Cancelled, SaliencyError
from .frames import PATH_METHODS, AttributionPath, PathFrame, RemovalCurve, build_path  # noqa: F401
from .metrics._common import MetricContext
from .metrics._curve import ranks_of, removal_order
from .model.copy import explainable, unwrap
from .model.explainee import Explainee, OutputSelector, select_output
from .model.layers import list_layers as _list_layers
from .model.version import fingerprint as _fingerprint
from .model.objective import Objective
from .precision import autocast_dtype, check_mode, switches
from .registry import METHODS, METRICS, Spec
from .trivial import TRIVIAL_MAPS, trivial_map
from .work import Progress, Work, callback, progress_bar

_HALF = (torch.float16, torch.bfloat16)


def list_methods() -> list[dict[str, Any]]:
    """Return one plain-data description per method: name, label, family, output kind,
    parameters with their defaults, and the allowed values of choice parameters."""
    return [METHODS.get(name).describe() for name in METHODS.names()]


def describe_method(method: str) -> dict[str, Any]:
    """Return one method's plain-data description (as in :func:`list_methods`); an unknown name
    fails with the close matches."""
    return METHODS.get(method).describe()


def method_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` checked against ``method`` and completed with its defaults (the values
    :func:`attribute` would record; equal settings give equal dicts)."""
    return check_params(METHODS.get(method), params)


def model_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Return where and in which floating dtype the model computes: its first parameter's device
    and dtype (CPU float32 for a model without parameters)."""
    for p in unwrap(model).parameters():
        return p.device, (p.dtype if p.dtype.is_floating_point else torch.float32)
    return torch.device("cpu"), torch.float32


def list_metrics() -> list[dict[str, Any]]:
    """Return one plain-data description per metric, with ``higher_is_better`` and parameters."""
    return [METRICS.get(name).describe() for name in METRICS.names()]


def list_layers(model: nn.Module, *, limit: int = 64) -> list[str]:
    """Return the names of ``model``'s modules worth explaining at, shallow (input side) first.

    Every name is accepted by ``layer=`` of the methods that read a layer (``uses_layer`` in
    :func:`list_methods`): the modules at most two levels deep that are or contain a
    convolution, and the layer the automatic choice knows, in every block (torchvision's ViT:
    each encoder block's ``ln_1``). At most ``limit`` names. The model is not modified.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SaliencyError(f"limit must be an int ≥ 1, got {limit!r}")
    return _list_layers(model, limit)


def _nonfinite_input() -> None:
    raise SaliencyError("x contains NaN or Inf values; clean or re-normalize the input")


def check_input(model: nn.Module, x: Any, *, finite: bool = True) -> None:
    """Raise a :class:`SaliencyError` naming the fix for any input the methods cannot take.

    ``finite=False`` leaves the NaN/Inf check to the caller (``attribute`` queues it so a GPU
    call need not wait for the device before it starts).
    """
    if not isinstance(x, torch.Tensor):
        raise SaliencyError(f"x must be a torch.Tensor of shape (B, C, H, W), got "
                            f"{type(x).__name__}; sw.show() accepts images and arrays")
    if not x.dtype.is_floating_point:
        raise SaliencyError(f"x has dtype {x.dtype}; convert it to floating point as the model "
                            f"expects, e.g. x.float() / 255 followed by the model's normalization")
    if x.dim() == 3:
        raise SaliencyError(f"x has shape {tuple(x.shape)}, which lacks the batch dimension; "
                            f"use x.unsqueeze(0)")
    if x.dim() != 4:
        raise SaliencyError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise SaliencyError("x is an empty batch (B = 0)")
    if finite and not bool(torch.isfinite(x).all()):
        _nonfinite_input()
    param = next(iter(unwrap(model).parameters()), None)
    if param is not None:
        if param.device != x.device:
            raise SaliencyError(f"x is on {x.device} but the model is on {param.device}; move "
                                f"the input with x.to({str(param.device)!r})")
        if param.dtype.is_floating_point and param.dtype != x.dtype:
            raise SaliencyError(f"x is {x.dtype} but the model's parameters are {param.dtype}; "
                                f"use x.to({param.dtype}) (or convert the model)")


def predict(model: nn.Module, x: torch.Tensor, *, output: OutputSelector = None,
            top_k: int = 5, batch_size: int | None = None) -> Prediction:
    """Return the model's :class:`Prediction` for ``x``: logits, probabilities and the top ``k``.

    The same input checks, output selection (``output=``) and model hygiene as
    :func:`attribute`: the model runs as a structural copy in eval mode and is never modified.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise SaliencyError(f"top_k must be a positive int, got {top_k!r}")
    check_input(model, x)
    work = Work(x.device, batch_size)
    parts: list[torch.Tensor] = []

    def step(i: int, j: int) -> None:
        out = select_output(net(x[i:j]), output)
        if out.dim() != 2 or out.shape[0] != j - i:
            raise SaliencyError(f"the model must return (B, classes) logits; for a batch of "
                                f"{j - i} it returned shape {tuple(out.shape)}. Select the "
                                f"logits with output=, or flatten extra dimensions")
        parts.append(out.detach())

    with torch.no_grad(), explainable(model) as net:
        work.run(x.shape[0], step, item_numel=x[0].numel(), kind="forward", report=False)
    logits = torch.cat(parts).to("cpu", torch.float64)
    if not bool(torch.isfinite(logits).all()):
        raise SaliencyError("the model produced NaN or Inf logits for this input; check the "
                            "input's scale and the model's weights")
    probs = torch.softmax(logits, 1)
    top = torch.topk(probs, min(top_k, probs.shape[1]), dim=1)
    return Prediction(logits=logits, probs=probs, top_classes=top.indices, top_probs=top.values)


def fingerprint(model: nn.Module) -> int:
    """Return an int that changes when the model's weights change (cheap; about 1 µs a tensor).

    Seen: parameters or buffers replaced or written in place by autograd-visible operations
    (optimizer steps, ``load_state_dict``, ``copy_``). Not seen: writes through ``.data``.
    """
    return _fingerprint(model)


def check_params(spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` checked against the registry, with defaults filled in (see
    :meth:`Spec.check_params`: choices, validators, a wrapped method's parameters)."""
    return spec.check_params(params)


@progress_bar
def attribute(model: nn.Module, x: torch.Tensor, target: Any = None, *, method: str,
              contrast: Any = None, layer: str | nn.Module | None = None, seed: int = 0,
              normalization: Any = None, batch_size: int | None = None,
              progress: Progress = None,
              cancel: threading.Event | None = None, output: OutputSelector = None,
              precision: str = "fp32", **params: Any) -> Attribution:
    """Return an :class:`Attribution` explaining ``logit[target] − logit[contrast]``.

    Parameters
    ----------
    model : nn.Module
        Never modified, not even during the call (it is explained through a structural copy
        sharing its weights). Explained in eval mode.
    x : Tensor ``(B, C, H, W)``
        Preprocessed input on the model's device.
    target : None, int, or one int per example
        None explains the predicted class.
    method : str
        A name from :func:`list_methods`.
    contrast : None, int, one int per example, or ``"runner_up"``
        Explain "why target rather than contrast". ``contrast == target`` gives zeros.
        Class-agnostic methods (``class_agnostic`` in :func:`list_methods`) refuse it.
    layer : str, nn.Module, a list of them, or None
        For CAM methods; None chooses automatically. A list is for ``layer_cam`` only.
    seed : int
        Seeds a private ``torch.Generator``; the global RNG is never used.
    normalization : ``(mean, std)`` or None
        The model's input normalization, so named baselines (``"black"``…) mean pixel values.
    batch_size : int or None
        Inputs per model call; None chooses per device. Results do not depend on it.
    progress : callable(done, total), True, or None
        Called between chunks; True shows a ``tqdm.auto`` bar instead. The result is the same.
    cancel : threading.Event
        When set, the work stops at the next chunk and :class:`Cancelled` is raised.
    output : key, index or callable
        Selects the logits when the model returns a dict, tuple or other object.
    precision : ``"fp32"``, ``"tf32"`` or ``"bf16"``
        ``"fp32"``: IEEE float32 (TF32 off, also for cuDNN convolutions, which PyTorch runs in
        TF32 by default on a GPU). ``"tf32"``: CUDA matmuls and convolutions in TensorFloat-32.
        ``"bf16"``: the model runs under bfloat16 autocast. The process-wide switches are put
        back as they were after the call; see :mod:`saliency_widgets.precision`.
    **params
        The method's parameters (see ``list_methods()``).
    """
    return _attribute(model, x, target, method=method, contrast=contrast, layer=layer, seed=seed,
                      normalization=normalization, batch_size=batch_size, progress=progress,
                      cancel=cancel, output=output, trace=None, params=params,
                      precision=precision)


def _attribute(model: nn.Module, x: torch.Tensor, target: Any, *, method: str, contrast: Any,
               layer: Any, seed: int, normalization: Any, batch_size: int | None,
               progress: Progress, cancel: threading.Event | None,
               output: OutputSelector, trace: Callable[..., None] | None,
               params: dict[str, Any], precision: str = "fp32") -> Attribution:
    spec, full = _method_call(method, params, layer, seed, contrast)
    precision = check_mode(precision)
    started = time.perf_counter()
    values, ctx, objective, norm_record = _run_method(
        model, x, target, spec, full, contrast=contrast, layer=layer, seed=seed,
        normalization=normalization, batch_size=batch_size, progress=callback(progress),
        cancel=cancel, output=output, differentiable=False, trace=trace, precision=precision)
    values = values.detach()
    if values.dtype in _HALF:
        values = values.float()
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    resolved_target, resolved_contrast = objective.as_lists()
    layer_name = ctx.layer_record()
    return Attribution(values=values, method=spec.name, target=resolved_target,
                       contrast=resolved_contrast, params={**full, **ctx.resolved},
                       layer=layer_name, seed=seed, normalization=norm_record,
                       seconds=time.perf_counter() - started, extras=ctx.notes,
                       logits=ctx.original_logits(), precision=precision)


def attribute_graph(model: nn.Module, x: torch.Tensor, target: Any = None, *, method: str,
                    contrast: Any = None, layer: str | nn.Module | None = None, seed: int = 0,
                    normalization: Any = None, batch_size: int | None = None,
                    cancel: threading.Event | None = None, output: OutputSelector = None,
                    precision: str = "fp32", **params: Any) -> torch.Tensor:
    """Return the map :func:`attribute` computes, still in the autograd graph of ``x``.

    Internal (the attacks differentiate a map with respect to its input). The same method code
    runs, on an :class:`Explainee` in differentiable mode (every gradient taken with
    ``create_graph=True``, nothing detached), so the values equal :func:`attribute`'s. ``x`` may
    require grad; the model is used through its structural copy, whose parameters never do.
    """
    spec, full = _method_call(method, params, layer, seed, contrast)
    values, _, _, _ = _run_method(
        model, x, target, spec, full, contrast=contrast, layer=layer, seed=seed,
        normalization=normalization, batch_size=batch_size, progress=None, cancel=cancel,
        output=output, differentiable=True, precision=check_mode(precision))
    return values.float() if values.dtype in _HALF else values


def _method_call(method: str, params: dict[str, Any], layer: Any,
                 seed: Any, contrast: Any) -> tuple[Spec, dict[str, Any]]:
    """The method's spec and its checked parameters; refuses a layer it does not use, and a
    contrast for a class-agnostic method."""
    spec = METHODS.get(method)
    full = spec.check_params(params)
    acting = spec.acting(full)  # SmoothGrad acts as its base: its layer, its class-agnosticism
    if layer is not None and not acting.uses_layer:
        users = ", ".join(n for n in METHODS.names() if METHODS.get(n).uses_layer)
        raise SaliencyError(f"method {acting.name!r} does not use a layer; drop layer= or pick "
                            f"a method that reads one ({users})")
    if contrast is not None and acting.class_agnostic:
        raise SaliencyError(f"method {acting.name!r} is class-agnostic: its map does not depend "
                            f"on the target, so contrast={contrast!r} cannot change it; drop "
                            f"contrast= or pick a class-specific method")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SaliencyError(f"seed must be an int, got {seed!r}")
    return spec, full


def _run_method(model: nn.Module, x: torch.Tensor, target: Any, spec: Spec,
                full: dict[str, Any], *, contrast: Any, layer: Any, seed: int,
                normalization: Any, batch_size: int | None,
                progress: Callable[[int, int], None] | None, cancel: threading.Event | None,
                output: OutputSelector, differentiable: bool,
                trace: Callable[..., None] | None = None, precision: str = "fp32"
                ) -> tuple[torch.Tensor, Explainee, Objective, Any]:
    """Bind the model to the objective and run the method: ``(values, ctx, objective, norm)``.

    Checks that need the device's answer (NaN/Inf input or logits) are queued and judged once,
    after the method (:meth:`Explainee.settle`); if the method fails first, a failed check is
    the error reported.
    """
    check_input(model, x, finite=False)
    B, C = x.shape[:2]
    norm, norm_record = parse_normalization(normalization, C, x.device, x.dtype)
    work = Work(x.device, batch_size, progress, cancel)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    original = unwrap(model)
    with switches(precision, x.device), torch.inference_mode(False), \
            explainable(model) as net:
        # A copy, so a model that edits its input in place cannot reach x; a differentiable
        # copy keeps x's graph.
        xin = x.clone() if differentiable and x.requires_grad else x.detach().clone()
        objective = Objective(target, contrast, B, x.device)
        ctx = Explainee(net, original, objective, work, output=output, layer=layer,
                        generator=generator, normalization=norm)
        ctx.differentiable = differentiable
        ctx.trace = trace
        ctx.autocast = autocast_dtype(precision)
        ctx.later(~torch.isfinite(xin.detach()).all(), _nonfinite_input)
        values = _settled(ctx, lambda: spec.fn(ctx, xin, **full))
    return values, ctx, objective, norm_record


def _settled(ctx: Explainee, run: Callable[[], Any]) -> Any:
    """``run()``, then the queued checks; when ``run`` fails, a failed check is raised instead
    (a NaN input is the better explanation of whatever broke downstream)."""
    try:
        out = run()
    except Cancelled:
        raise
    except Exception as err:
        try:
            ctx.settle(warn=False)
        except SaliencyError as check:
            raise check from err
        except Exception:  # the device itself failed: report the original error
            pass
        raise
    ctx.settle()
    return out


def _check_map(values: Any, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        raise SaliencyError(f"attribution must be an Attribution or a tensor, got "
                            f"{type(values).__name__}")
    B, C, H, W = x.shape
    if values.dim() != 4 or values.shape[0] != B or values.shape[2:] != (H, W) \
            or values.shape[1] not in (1, C):
        raise SaliencyError(f"attribution has shape {tuple(values.shape)}; for an input of "
                            f"shape {tuple(x.shape)} it must be ({B}, {C} or 1, {H}, {W})")
    return values.detach().to(x.device)


@progress_bar
def evaluate(model: nn.Module, x: torch.Tensor, attribution: Attribution | torch.Tensor, *,
             metric: str, seed: int = 0, masks: torch.Tensor | None = None,
             explain: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
             target: Any = None, contrast: Any = None, normalization: Any = None,
             batch_size: int | None = None, progress: Progress = None,
             cancel: threading.Event | None = None, output: OutputSelector = None,
             precision: str | None = None, **params: Any) -> MetricResult:
    """Score one attribution with one metric (see :func:`list_metrics`); per example.

    ``attribution`` is an :class:`Attribution` (its target, contrast, normalization and method
    are reused; metrics that re-explain rebuild the explanation from it) or a plain tensor, with
    ``target``/``contrast``/``normalization`` given here and ``explain=callable(model, x)`` for
    metrics that re-explain (a given ``explain`` is used with a record too, e.g. for a record
    made with a tensor baseline, which cannot be replayed). The user's model is never modified.
    ``progress`` is a callable(done, total), or True for a ``tqdm.auto`` bar.
    ``precision`` (see :func:`attribute`) applies to the metric's own model passes; None takes
    the record's (``"fp32"`` for a plain tensor). Re-explanations replay the record's.
    """
    spec = METRICS.get(metric)
    full = spec.check_params(params)
    check_input(model, x)
    record = attribution if isinstance(attribution, Attribution) else None
    if precision is None:
        precision = record.precision if record is not None else "fp32"
    precision = check_mode(precision)
    values = _check_map(record.values if record is not None else attribution, x)
    if record is not None:
        for name, given, have in (("target", target, record.target),
                                  ("contrast", contrast, record.contrast)):
            if given is not None and _as_tuple(given, x.shape[0]) != have:
                raise SaliencyError(f"{name}={given!r} differs from the attribution record's "
                                    f"{have}; omit it to evaluate the recorded objective")
        target, contrast = list(record.target), (None if record.contrast is None
                                                 else list(record.contrast))
        normalization = normalization if normalization is not None else record.normalization
    if masks is not None:
        if not isinstance(masks, torch.Tensor):
            raise SaliencyError(f"masks must be a (B, H, W) bool tensor, got "
                                f"{type(masks).__name__}")
        masks = masks.to(x.device)
    started = time.perf_counter()
    norm, _ = parse_normalization(normalization, x.shape[1], x.device, x.dtype)
    work = Work(x.device, batch_size, callback(progress), cancel)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with switches(precision, x.device), torch.inference_mode(False), \
            explainable(model) as net:
        xin = x.detach().clone()  # a model that edits its input in place cannot reach x
        objective = Objective(target, contrast, x.shape[0], x.device)
        ctx = Explainee(net, unwrap(model), objective, work, output=output,
                        layer=record.layer if record is not None else None,
                        generator=generator, normalization=norm)
        ctx.autocast = autocast_dtype(precision)
        if not objective.resolved:  # a plain tensor with target=None: the predicted class
            ctx.work.run(x.shape[0], lambda i, j: ctx.scores(
                xin[i:j], torch.arange(i, j, device=x.device), original=True),
                item_numel=xin[0].numel(), kind="forward", report=False)
        mc = MetricContext(explainee=ctx, masks=masks, record=record,
                           explain=_explainer(model, record, explain, batch_size,
                                              cancel, output))
        mc.explain_on = _explainer_on(record, explain, batch_size, cancel, output)
        scored = _settled(ctx, lambda: spec.fn(mc, xin, values, **full))
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return MetricResult(metric=spec.name, scores=scored.scores.detach().double().cpu(),
                        curve=None if scored.curve is None else scored.curve.detach().cpu(),
                        curve_x=None if scored.curve_x is None else scored.curve_x.cpu(),
                        higher_is_better=bool(spec.higher_is_better),
                        params={**full, **mc.resolved}, extras=dict(mc.extras),
                        seconds=time.perf_counter() - started, precision=precision)


def _as_tuple(spec: Any, batch: int) -> tuple[int, ...] | str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, int):
        return (spec,) * batch
    return tuple(int(v) for v in (spec.tolist() if isinstance(spec, torch.Tensor) else spec))


def _record_call(record: Attribution) -> dict[str, Any]:
    """The keyword arguments that reproduce ``record`` (for re-explaining perturbed inputs)."""
    params = dict(record.params)
    if params.get("baseline") == "tensor":
        raise SaliencyError("this metric re-explains perturbed inputs, but the attribution used "
                            "a tensor baseline; pass explain=callable(model, x) instead")
    return {"method": record.method, "layer": record.layer, "seed": record.seed,
            "normalization": record.normalization, "precision": record.precision, **params}


def _explainer(model: nn.Module, record: Attribution | None, explain: Callable | None,
               batch_size: int | None, cancel: threading.Event | None,
               output: OutputSelector
               ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """``explain(inputs, rows)``: maps of perturbed inputs, row r explaining example rows[r]."""
    on = _explainer_on(record, explain, batch_size, cancel, output)
    if on is None:
        return None
    return lambda xb, rows: on(model, xb, rows)


def _explainer_on(record: Attribution | None, explain: Callable | None,
                  batch_size: int | None, cancel: threading.Event | None,
                  output: OutputSelector, progress: Callable[[int, int], None] | None = None
                  ) -> Callable[..., torch.Tensor] | None:
    """``explain_on(model, inputs, rows)``: the same explanation with another model.

    An explicit ``explain`` wins over the record (it is the documented fix for records that cannot
    be replayed, e.g. a tensor baseline); such records fail only when a metric re-explains.
    """
    if explain is not None:
        def user(net: nn.Module, xb: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            out = explain(net, xb)
            if not isinstance(out, torch.Tensor):
                raise SaliencyError(f"explain(model, x) must return a tensor, got "
                                    f"{type(out).__name__}")
            return out.detach()
        return user
    if record is not None:
        targets = torch.tensor(record.target)
        contrasts = None if record.contrast is None else torch.tensor(record.contrast)

        def on(net: nn.Module, xb: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            call = _record_call(record)  # raises here, not for metrics that never re-explain
            r = rows.cpu()
            return attribute(net, xb, targets[r].tolist(), batch_size=batch_size,
                             contrast=None if contrasts is None else contrasts[r].tolist(),
                             cancel=cancel, output=output, progress=progress, **call).values
        return on
    return None


# -- step-by-step views (the widget's teaching and trust views) ----------------------------------
def attribution_path(model: nn.Module, x: torch.Tensor, target: Any = None, *, method: str,
                     contrast: Any = None, layer: Any = None, seed: int = 0,
                     normalization: Any = None,
                     batch_size: int | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     cancel: threading.Event | None = None, output: OutputSelector = None,
                     **params: Any) -> AttributionPath:
    """Return the :class:`~saliency_widgets.frames.AttributionPath` of one image: the method's
    run step by step (``path.frame(k)``), and its :class:`Attribution` (``path.attribution``).

    For ``integrated_gradients`` (the nodes along the path, by α), ``smoothgrad`` (one noisy
    sample at a time) and ``occlusion`` (one window at a time). The method reports its own
    per-step values as it computes, so the running map after the last step equals
    ``path.attribution.values`` bit for bit, and that equals :func:`attribute` with the same
    arguments. Arguments as in :func:`attribute`; ``x`` is one image ``(1, C, H, W)``.
    """
    if method not in PATH_METHODS:
        METHODS.get(method)  # an unknown name fails with the close matches
        raise SaliencyError(f"no attribution path for method {method!r}; the path view steps "
                            f"through {', '.join(PATH_METHODS)}")
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] != 1:
        raise SaliencyError(f"attribution_path follows one image; x has a batch of "
                            f"{x.shape[0]}: pass x[i:i + 1]")
    events: list[dict[str, Any]] = []

    def trace(name: str, **step: Any) -> None:
        if name == method:  # tensors are copied: the method updates some in place afterwards
            events.append({k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                           for k, v in step.items()})

    attr = _attribute(model, x, target, method=method, contrast=contrast, layer=layer,
                      seed=seed, normalization=normalization, batch_size=batch_size,
                      progress=progress, cancel=cancel, output=output, trace=trace,
                      params=params)
    return build_path(method, attr, x.detach(), events)


def removal_curve(model: nn.Module, x: torch.Tensor, attribution: Attribution | torch.Tensor, *,
                  metric: str = "deletion", seed: int = 0, target: Any = None,
                  contrast: Any = None, normalization: Any = None,
                  batch_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None, output: OutputSelector = None,
                  **params: Any) -> RemovalCurve:
    """Return :func:`evaluate` of ``deletion`` or ``insertion`` as a
    :class:`~saliency_widgets.frames.RemovalCurve`: the result with the pixel order the metric
    used (``ranks``), the pixel counts of its steps and its substrate, so the input at any step
    can be rebuilt (``curve.image(k)``) without sorting again."""
    if metric not in ("deletion", "insertion"):
        raise SaliencyError(f"removal_curve is for 'deletion' or 'insertion', got {metric!r}")
    result = evaluate(model, x, attribution, metric=metric, seed=seed, target=target,
                      contrast=contrast, normalization=normalization, batch_size=batch_size,
                      progress=progress, cancel=cancel, output=output, **params)
    record = attribution if isinstance(attribution, Attribution) else None
    values = _check_map(record.values if record is not None else attribution, x)
    B, C, H, W = x.shape
    p = result.params
    ranks = ranks_of(removal_order(values, p["reduction"], p["tie_seed"])).view(B, H, W)
    if normalization is None and record is not None:
        normalization = record.normalization
    norm, _ = parse_normalization(normalization, C, x.device, x.dtype)
    spec = params.get("baseline") if p["baseline"] == "tensor" else p["baseline"]
    # the metric resolves its substrate first, from a generator seeded with ``seed``
    generator = torch.Generator(device=x.device).manual_seed(seed)
    substrate, _ = resolve_baseline(spec, x.detach(), norm, generator, owner=metric)
    if result.curve_x is None:  # deletion and insertion always return their curve
        raise SaliencyError(f"{metric} returned no curve")
    counts = torch.round(result.curve_x * (H * W)).long()
    return RemovalCurve(result=result, ranks=ranks.cpu(), counts=counts,
                        substrate=substrate.expand_as(x).detach(), insert=metric == "insertion",
                        x=x.detach())


def evaluate_trivial(model: nn.Module, x: torch.Tensor, kind: str, *, metric: str,
                     target: Any = None, contrast: Any = None, normalization: Any = None,
                     seed: int = 0, masks: torch.Tensor | None = None,
                     batch_size: int | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     cancel: threading.Event | None = None, output: OutputSelector = None,
                     **params: Any) -> MetricResult:
    """Return :func:`evaluate` of a trivial map (``"random"`` or ``"edge"``, see
    :mod:`saliency_widgets.trivial`) on ``metric``: what a map that ignores the model scores.

    Metrics that re-explain get the same trivial map of their perturbed inputs (the random map
    is the same for every input; the edge map is recomputed)."""
    if kind not in TRIVIAL_MAPS:
        raise SaliencyError(f"unknown trivial map {kind!r}; use one of {TRIVIAL_MAPS}")
    check_input(model, x)

    def explain(net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        return trivial_map(kind, xb, normalization=normalization, seed=seed).to(xb.dtype)

    values = trivial_map(kind, x, normalization=normalization, seed=seed).to(x.dtype)
    return evaluate(model, x, values, metric=metric, seed=seed, masks=masks, explain=explain,
                    target=target, contrast=contrast, normalization=normalization,
                    batch_size=batch_size, progress=progress, cancel=cancel, output=output,
                    **params)


def randomization_maps(model: nn.Module, x: torch.Tensor, attribution: Attribution, *,
                       seed: int = 0, batch_size: int | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None, output: OutputSelector = None,
                       **params: Any) -> tuple[MetricResult, list[torch.Tensor]]:
    """Return ``model_randomization``'s :class:`MetricResult` and the map it re-explained at
    each step of its randomization (CPU tensors, in the order of ``result.curve``'s columns):
    the maps its similarity curve compares with the original."""
    if not isinstance(attribution, Attribution):
        raise SaliencyError("randomization_maps re-explains with randomized models: pass the "
                            "Attribution record from sw.attribute")
    on = _explainer_on(attribution, None, batch_size, cancel, output)
    if on is None:  # not with a record
        raise SaliencyError("randomization_maps could not rebuild the explanation")
    maps: list[torch.Tensor] = []

    def explain(net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        out = on(net, xb, torch.arange(xb.shape[0]))
        maps.append(out.detach().cpu())
        return out

    result = evaluate(model, x, attribution, metric="model_randomization", seed=seed,
                      explain=explain, batch_size=batch_size, progress=progress, cancel=cancel,
                      output=output, **params)
    return result, maps


def attack(model: nn.Module, x: torch.Tensor, **kwargs: Any) -> Any:
    """Return ``sw.attack(model, x, **kwargs)``, an ``sw.AttackResult`` (``attacks/attack.py``).

    The widget reaches the attacks through the API. ``attacks/`` is built on this module
    (``attribute``, ``attribute_graph``), so it is imported when called, not at the top.
    """
    from .attacks import attack as run

    return run(model, x, **kwargs)
