"""``sw.audit``: the engine over a whole data set, in fixed batches, crash-safe and resumable.

Every map comes from :func:`saliency_widgets.api.attribute` and every score from
:func:`~saliency_widgets.api.evaluate`, called on one batch at a time exactly as a user would
call them: the audit adds storage and bookkeeping, never a second way to compute a map. The
predictions come from the first method's own forward pass (``Attribution.logits``), so the
audit costs the methods and metrics plus writing their results.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from .. import api
from ..baselines import parse_normalization
from ..errors import SaliencyError
from ..model.copy import unwrap
from ..registry import METHODS, METRICS
from ..work import auto_chunk
from . import store
from .aggregate import entropy
from .data import Batch, Source
from .distributed import (committed, mark_done, merge, rank_db, wait_for_markers, wait_for_merge,
                          world)
from .pixels import map_shape, small_maps, thumbnails
from .result import Audit

TARGETS = ("label", "pred", "pred_vs_label")
_MAX_BATCH = 256


@dataclass
class Plan:
    """The resolved arguments that decide the results."""

    methods: dict[str, tuple[str | None, dict[str, Any]]]  # name → (layer, full params)
    metrics: dict[str, dict[str, Any]]
    target: str
    seed: int
    normalization: Any
    output: Any


@dataclass
class Job:
    """What every batch of one run shares."""

    plan: Plan
    shape: tuple[int, int]  # of the stored maps and thumbnails
    norm: Any  # (mean, std) CPU tensors or None
    classes: int
    top_k: int
    cols: list[tuple[str, str]]
    device: torch.device
    dtype: torch.dtype
    warned: list[bool]  # the thumbnails' scaling warning was shown
    layers: dict[str, str] = field(default_factory=dict)  # automatic layers, once resolved
    warnings: dict[tuple[type, str], int] = field(default_factory=dict)  # engine warnings seen


def _selection(what: str, spec: Any) -> dict[str, dict[str, Any]]:
    if isinstance(spec, str):
        raise SaliencyError(f"{what} must be a list of names or a {{name: params}} dict; got the "
                            f"single string {spec!r} (wrap it in a list: [{spec!r}])")
    if isinstance(spec, Mapping):
        return {str(k): dict(v or {}) for k, v in spec.items()}
    return {str(name): {} for name in spec}


def make_plan(methods: Any, metrics: Any, target: str, seed: int, normalization: Any,
              output: Any) -> Plan:
    """Check every argument before any work (unknown names and parameters fail here)."""
    if target not in TARGETS:
        raise SaliencyError(f"target={target!r} is not understood; use 'label' (explain the "
                            f"true class), 'pred' (the prediction) or 'pred_vs_label' (the "
                            f"prediction rather than the truth)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SaliencyError(f"seed must be an int ≥ 0, got {seed!r}")
    chosen: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for name, params in _selection("methods", methods).items():
        spec = METHODS.get(name)
        layer = params.pop("layer", None)
        if layer is not None and not isinstance(layer, str):
            raise SaliencyError(f"{name}: give the layer by name (e.g. 'layer4'), got "
                                f"{type(layer).__name__}; the audit records it in its manifest")
        chosen[spec.name] = (layer, api.check_params(spec, params))
    scored = {METRICS.get(m).name: METRICS.get(m).check_params(p)
              for m, p in _selection("metrics", metrics).items()}
    if scored and not chosen:
        raise SaliencyError("metrics score maps: give at least one method")
    return Plan(chosen, scored, target, seed, normalization, output)


def _jsonable(value: Any) -> Any:
    """Plain JSON for the manifest (tensors as their hash, so they can be compared)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return {"tensor_sha256": store.sha256_bytes([t.reshape(-1).view(torch.uint8).numpy()
                                                     .tobytes()]),
                "shape": list(t.shape), "dtype": str(t.dtype)}
    if isinstance(value, np.ndarray):
        return _jsonable(torch.from_numpy(np.ascontiguousarray(value)))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(value):
        return f"callable {getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


def model_sha256(model: nn.Module) -> str:
    """A hash of the state_dict: names, dtypes, shapes and bytes of every tensor."""
    parts: list[bytes] = []
    for name, t in unwrap(model).state_dict().items():
        t = t.detach().cpu().contiguous()
        parts += [name.encode(), str(t.dtype).encode(), str(tuple(t.shape)).encode(),
                  t.reshape(-1).view(torch.uint8).numpy().tobytes()]
    return store.sha256_bytes(parts)


def batch_sha256(batch: Batch) -> str:
    parts = [batch.x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(),
             batch.labels.numpy().tobytes()]
    if batch.masks is not None:
        parts.append(batch.masks.cpu().numpy().tobytes())
    if batch.groups is not None:
        parts.append(json.dumps(batch.groups).encode())
    return store.sha256_bytes(parts)


def batch_seed(seed: int, k: int) -> int:
    """The seed of batch ``k``: independent streams per (seed, k), whatever ran before."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in unwrap(model).parameters():
        return p.device, (p.dtype if p.dtype.is_floating_point else torch.float32)
    return torch.device("cpu"), torch.float32


def _progress(progress: Any, total: int) -> Callable[[int], None]:
    if callable(progress) and not isinstance(progress, bool):
        return lambda done: progress(done, total)
    if not progress:
        return lambda done: None
    started, last = time.perf_counter(), [0.0]

    def show(done: int) -> None:
        now = time.perf_counter()
        if done == 0 or (now - last[0] < 0.5 and done < total):
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        left = (total - done) / rate if rate > 0 else float("nan")
        sys.stderr.write(f"\raudit: {done}/{total} examples, {rate:.0f}/s"
                         + (f", {left:.0f} s left   " if done < total else " " * 12))
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def audit(model: nn.Module, data: Any, *, methods: Any = ("grad_cam",), metrics: Any = (),
          masks: Any = None, groups: Any = None, target: str = "label",
          out: str | Path | None = None, batch_size: int | None = None, map_size: int = 64,
          normalization: Any = None, progress: Any = True, resume: bool = True, seed: int = 0,
          output: Any = None) -> Audit:
    """Audit ``model`` on ``data``: one table row, one small map per method and one thumbnail
    per example, stored in ``out``. Returns the :class:`Audit`.

    Parameters
    ----------
    data
        A map-style ``Dataset``, a ``DataLoader`` with a sequential sampler (its workers are
        used), ``(x, labels)`` / ``(x, labels, masks)`` tensors, or a ``sw.demo.sample(...)``.
        Items are ``(image, label)``, ``(image, label, mask)`` or dicts with ``image``,
        ``label``, ``mask``, ``group``. Images are the model's input (preprocessed).
    methods, metrics
        Names, or ``{name: params}``; CAM methods take ``layer`` (a name) among their params.
        Each metric scores each method's map: column ``"{metric}:{method}"``.
    masks
        ``(N, H, W)`` bool masks for localization metrics (or from the items).
    groups
        One label per example, or the key of the dict items (the demo sample: ``"watermarked"``).
    target
        ``"label"`` explains the true class, ``"pred"`` the prediction, ``"pred_vs_label"`` the
        prediction rather than the true class (for correct ones, rather than the runner-up).
    out
        The folder of the audit (a temporary one, removed with the Audit object, when None).
        An existing audit there is resumed; different arguments, data or model are refused.
    batch_size
        Examples per batch, the unit of seeding, storage and resumption (stored; None: the
        stored one, else the DataLoader's, else chosen for the device).
    map_size
        The longer side, in pixels, of the stored maps and thumbnails (never above the image).
    normalization
        ``(mean, std)`` of the model's input: named baselines and the thumbnails' pixels.
    progress
        True prints progress to stderr; a callable gets ``(done, total)``.
    resume
        False refuses an ``out`` that already holds an audit.
    seed
        Batch ``k`` is explained with the seed derived from ``(seed, k)``.
    output
        Selects the logits when the model returns a dict, tuple or other object.
    """
    rank, size = world()
    if size > 1 and out is None:
        raise SaliencyError(f"under torchrun (WORLD_SIZE={size}) every rank must write into one "
                            f"shared folder: pass out='path/visible/to/every/rank'")
    plan = make_plan(methods, metrics, target, seed, normalization, output)
    source = Source(data, masks=masks, groups=groups)
    if out is not None:
        return _run(model, source, plan, Path(out), batch_size, map_size, progress, resume,
                    rank, size, temporary=False)
    folder = Path(tempfile.mkdtemp(prefix="sw-audit-"))
    try:
        return _run(model, source, plan, folder, batch_size, map_size, progress, resume, rank,
                    size, temporary=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nobody can resume a folder they never saw
        raise


def _run(model: nn.Module, source: Source, plan: Plan, out: Path, batch_size: int | None,
         map_size: int, progress: Any, resume: bool, rank: int, size: int, *,
         temporary: bool) -> Audit:
    target, seed, normalization, output = plan.target, plan.seed, plan.normalization, plan.output
    out.mkdir(parents=True, exist_ok=True)
    store.check_new_folder(out)
    (out / store.SHARDS).mkdir(exist_ok=True)
    (out / store.RANKS).mkdir(exist_ok=True)
    existing = store.read_manifest(out) if (out / store.MANIFEST).exists() else None
    if existing is not None and not resume:
        raise SaliencyError(f"{str(out)!r} already holds an audit; pass resume=True to continue "
                            f"it (arguments must match) or choose another out=")
    device, dtype = _device_dtype(model)
    b = _batch_size(batch_size, existing, source, device)
    first = next(source.batches([0], b))
    image_shape = tuple(first.x.shape[1:])
    shape = map_shape(image_shape[1], image_shape[2], map_size)
    norm, norm_record = parse_normalization(normalization, image_shape[0], torch.device("cpu"),
                                            torch.float32)
    classes = api.predict(model, first.x[:1].to(device, dtype), output=output,
                          top_k=1).num_classes
    top_k = min(store.TOP_K, classes)
    cols = store.columns(list(plan.methods), list(plan.metrics), top_k)
    batches = math.ceil(source.length / b)
    manifest = {
        "format": store.FORMAT, "version": store.VERSION,
        "identity": {
            "model_sha256": model_sha256(model),
            "data": {"length": source.length, "image_shape": list(image_shape),
                     "first_batch_sha256": batch_sha256(first)},
            "methods": {m: {"layer": layer, "params": _jsonable(p)}
                        for m, (layer, p) in plan.methods.items()},
            "metrics": {m: _jsonable(p) for m, p in plan.metrics.items()},
            "target": target, "seed": seed, "batch_size": b, "map_shape": list(shape),
            "normalization": _jsonable(norm_record),
            "masks": None if source.given_masks is None else _jsonable(source.given_masks),
            "groups": source.groups_identity(),
            "output": _jsonable(output),
        },
        "classes": classes, "top_k": top_k, "batches": batches, "length": source.length,
        "batch_size": b, "map_shape": list(shape), "methods": list(plan.methods),
        "metrics": list(plan.metrics), "columns": [list(c) for c in cols],
        "info": _info(device, size),
    }
    found = store.create_manifest(out, json.loads(json.dumps(manifest)))
    if found is not None:
        _check_same(out, found, json.loads(json.dumps(manifest)))

    job = Job(plan, shape, norm, classes, top_k, cols, device, dtype, [False])
    mine = [k for k in range(batches) if k % size == rank and k not in committed(out)]
    writer = store.Writer(out, out / store.DB if size == 1 else rank_db(out, rank), cols)
    report = _progress(progress, sum(min(b, source.length - k * b) for k in mine))
    done = 0
    try:
        report(0)
        todo = iter(mine)
        if mine and mine[0] == 0:  # the first batch is already loaded
            next(todo)
            writer.put(_compute(model, first, job))
            done += len(first.labels)
            report(done)
        for batch in source.batches(list(todo), b):
            if tuple(batch.x.shape[1:]) != image_shape:
                raise SaliencyError(f"batch {batch.k} has images of shape "
                                    f"{tuple(batch.x.shape[1:])} but the first batch "
                                    f"{image_shape}; every image must have one shape (resize "
                                    f"them in the data set's transform)")
            writer.put(_compute(model, batch, job))
            done += len(batch.labels)
            report(done)
    except BaseException:
        writer.close(quiet=True)
        raise
    writer.close()
    _summarize_warnings(job)
    if size > 1:
        mark_done(out, rank, size)
        if rank != 0:
            wait_for_merge(out)
            return Audit(out, remove=temporary)
        wait_for_markers(out, size)
    if not store.is_complete(out / store.DB):  # a finished audit is not merged again
        merge(out, cols, source.length, batches)
    return Audit(out, remove=temporary)


def _batch_size(batch_size: Any, existing: dict | None, source: Source,
                device: torch.device) -> int:
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SaliencyError(f"batch_size must be a positive int or None, got {batch_size!r}")
        return batch_size
    if existing is not None:
        return int(existing["batch_size"])
    if source.default_batch_size:
        return int(source.default_batch_size)
    # a few engine chunks per batch: per-batch costs (a transaction, fsyncs) stay negligible
    numel = next(source.batches([0], 1)).x[0].numel()
    return min(_MAX_BATCH, 4 * auto_chunk(device, numel, "backward"))


def _info(device: torch.device, size: int) -> dict[str, Any]:
    from .. import __version__
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "saliency_widgets": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "device": str(device), "world_size": size}


def _check_same(out: Path, have: dict[str, Any], want: dict[str, Any]) -> None:
    """Refuse to mix two audits in one folder, naming what differs."""
    a, b = have.get("identity", {}), want["identity"]
    if a.get("model_sha256") != b["model_sha256"]:
        raise SaliencyError(f"{str(out)!r} holds an audit of another model (its state_dict hash "
                            f"is {str(a.get('model_sha256'))[:12]}…, this model's "
                            f"{b['model_sha256'][:12]}…); use another out= for a new audit")
    diffs = [f"{key}: stored {a.get(key)!r}, now {b[key]!r}" for key in b
             if key not in ("model_sha256", "data") and a.get(key) != b[key]]
    if diffs:  # first: the batch size also changes the first batch's hash
        raise SaliencyError(f"{str(out)!r} holds an audit made with other arguments ("
                            + "; ".join(diffs) + "). Call again with the same arguments to "
                            "resume it, or use another out= for a new audit")
    if a.get("data") != b["data"]:
        what = ("length" if a.get("data", {}).get("length") != b["data"]["length"] else
                "image shape" if a["data"].get("image_shape") != b["data"]["image_shape"] else
                "first batch")
        raise SaliencyError(f"{str(out)!r} holds an audit of other data (the {what} differs: "
                            f"stored {a.get('data')}, now {b['data']}); random transforms "
                            f"change the data on every read, so audit with deterministic ones. "
                            f"Use another out= for a new audit")


def _summarize_warnings(job: Job) -> None:
    for (category, key), count in job.warnings.items():
        if count > 1:
            warnings.warn(f"{count - 1} more batches warned the same: {key}", category,
                          stacklevel=3)


def _compute(model: nn.Module, batch: Batch, job: Job) -> store.BatchOutput:
    """One batch through the engine: the rows and shards it leaves behind.

    The engine's warnings name examples by their place in the batch: they are re-issued with
    the batch's data-set range, once per kind of warning (then counted, summarized at the end).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = _engine(model, batch, job)
    for w in caught:
        text = str(w.message)
        key = (w.category, re.sub(r"\[[\d, ]+\]", "[…]", text))
        job.warnings[key] = job.warnings.get(key, 0) + 1
        if job.warnings[key] == 1:
            last = batch.start + len(batch.labels) - 1
            warnings.warn(f"batch {batch.k} (examples {batch.start}–{last}, positions within "
                          f"the batch): {text}", w.category, stacklevel=3)
    return done


def _engine(model: nn.Module, batch: Batch, job: Job) -> store.BatchOutput:
    plan, k, n = job.plan, batch.k, len(batch.labels)
    x = batch.x.to(device=job.device, dtype=job.dtype, non_blocking=True)
    labels = batch.labels
    _check_labels(labels, job.classes, batch.start)
    seed = batch_seed(plan.seed, k)
    masks = None if batch.masks is None else batch.masks.to(job.device)
    target: Any = labels.tolist() if plan.target == "label" else None
    contrast: Any = None
    logits = None
    if plan.target == "pred_vs_label":
        logits = api.predict(model, x, output=plan.output, top_k=2).logits
        two = logits.detach().double().cpu().topk(2, dim=1).indices
        pred, runner = two[:, 0], two[:, 1]
        target, contrast = pred.tolist(), torch.where(pred != labels, labels, runner).tolist()
    values: dict[str, Any] = {}
    shards: dict[str, np.ndarray] = {}
    for i, (name, (layer, params)) in enumerate(plan.methods.items()):
        attr = api.attribute(model, x, target, method=name, contrast=contrast,
                             layer=layer or job.layers.get(name), seed=seed,
                             normalization=plan.normalization, output=plan.output, **params)
        if layer is None and isinstance(attr.layer, str):
            # the automatic choice (always one layer), without probing it again
            job.layers[name] = attr.layer
        if logits is None:
            logits = attr.logits
        if target is None:
            target = list(attr.target)  # "pred": resolved from the same logits
        unit, scale = small_maps(attr.values, job.shape)
        shards[name] = unit
        values[f"scale:{name}"] = scale
        values[f"entropy:{name}"] = entropy(unit)
        for metric, mparams in plan.metrics.items():
            res = api.evaluate(model, x, attr, metric=metric, seed=seed, masks=masks,
                               output=plan.output, **mparams)
            values[f"{metric}:{name}"] = res.scores.numpy()
        if i == 0:
            store.kill_point("batch", k)  # mid-batch: a map computed, nothing written
    if logits is None:  # no methods: predictions only
        logits = api.predict(model, x, output=plan.output, top_k=1).logits
    lg = logits.detach().double().cpu()
    logp = torch.log_softmax(lg, dim=1)
    prob = logp.exp()
    pred = lg.argmax(1)
    order = torch.sort(prob, dim=1, descending=True, stable=True).indices[:, :job.top_k]
    rows_n = torch.arange(n)
    values.update({
        "idx": np.arange(batch.start, batch.start + n), "batch": np.full(n, k),
        "label": labels.numpy(), "pred": pred.numpy(),
        "confidence": prob[rows_n, pred].numpy(), "loss": (-logp[rows_n, labels]).numpy(),
        "correct": (pred == labels).numpy().astype(np.int64),
        "group": batch.groups if batch.groups is not None else [None] * n,
        "target": pred.numpy() if target is None else np.asarray(target),
        "contrast": [None] * n if contrast is None else np.asarray(contrast)})
    for j in range(job.top_k):
        values[f"top{j + 1}"] = order[:, j].numpy()
        values[f"top{j + 1}_prob"] = prob[rows_n, order[:, j]].numpy()
    columns = [values[name].tolist() if isinstance(values[name], np.ndarray) else values[name]
               for name, _ in job.cols]
    rows = list(zip(*columns))
    shards["thumbs"] = thumbnails(batch.x, job.norm, job.shape, job.warned)
    return store.BatchOutput(k, rows, shards)


def _check_labels(labels: torch.Tensor, classes: int, start: int) -> None:
    bad = ((labels < 0) | (labels >= classes)).nonzero()
    if len(bad):
        i = int(bad[0, 0])
        raise SaliencyError(f"example {start + i} has label {int(labels[i])}, out of range for "
                            f"a model with {classes} classes (valid 0–{classes - 1})")
