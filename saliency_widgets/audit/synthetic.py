"""A synthetic audit of any size, written through the real store, for testing readers.

No model runs: rows, maps and thumbnails are drawn from a seeded generator, so a 50 000-row
audit takes a few seconds and exercises exactly the files, commit rule and indexes a real audit
has (the explorer's paging, sorting and filtering are tested on it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from . import store
from .distributed import merge
from .result import Audit


def synthetic_audit(out: str | Path, n: int = 50_000, *, classes: int = 10,
                    methods: Sequence[str] = ("grad_cam",),
                    metrics: Sequence[str] = ("relevance_mass",),
                    groups: Sequence[str] = ("a", "b"), map_size: int = 16,
                    batch_size: int = 256, seed: int = 0) -> Audit:
    """Write and return an audit of ``n`` made-up examples in ``out`` (which must be new).

    About 80 % of the predictions are right; each map is a Gaussian blob (on the object for
    correct predictions, in a corner otherwise) plus noise; group = ``groups[i % len(groups)]``.
    Its manifest says ``"synthetic": true``, so ``sw.audit`` never resumes it.
    """
    out = Path(out)
    if (out / store.MANIFEST).exists():
        raise FileExistsError(f"{out} already holds an audit")
    (out / store.SHARDS).mkdir(parents=True, exist_ok=True)
    top_k = min(store.TOP_K, classes)
    cols = store.columns(list(methods), list(metrics), top_k)
    batches = math.ceil(n / batch_size)
    shape = (map_size, map_size)
    store.create_manifest(out, {
        "format": store.FORMAT, "version": store.VERSION, "synthetic": True,
        "identity": {"synthetic": seed}, "classes": classes, "top_k": top_k, "batches": batches,
        "length": n, "batch_size": batch_size, "map_shape": list(shape),
        "methods": list(methods), "metrics": list(metrics), "columns": [list(c) for c in cols],
        "info": {}})
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:map_size, 0:map_size] / max(1, map_size - 1)
    writer = store.Writer(out, out / store.DB, cols, durable=False)
    try:
        for k in range(batches):
            writer.put(_batch(k, min(batch_size, n - k * batch_size), batch_size, rng, classes,
                              methods, metrics, groups, top_k, cols, yy, xx))
    except BaseException:
        writer.close(quiet=True)
        raise
    writer.close()
    merge(out, cols, n, batches, durable=False)
    return Audit(out)


def _batch(k: int, m: int, b: int, rng: np.random.Generator, classes: int,
           methods: Sequence[str], metrics: Sequence[str], groups: Sequence[str], top_k: int,
           cols: list[tuple[str, str]], yy: np.ndarray, xx: np.ndarray) -> store.BatchOutput:
    idx = np.arange(k * b, k * b + m)
    label = rng.integers(0, classes, m)
    right = rng.random(m) < 0.8
    pred = np.where(right, label, (label + rng.integers(1, max(2, classes), m)) % classes)
    logits = rng.normal(0, 1, (m, classes))
    logits[np.arange(m), pred] += 4.0
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    order = np.argsort(-prob, axis=1, kind="stable")[:, :top_k]
    values = {"idx": idx, "batch": np.full(m, k), "label": label, "pred": pred,
              "confidence": prob[np.arange(m), pred], "loss": -np.log(prob[np.arange(m), label]),
              "correct": (pred == label).astype(np.int64),
              "group": [groups[i % len(groups)] for i in idx] if groups else [None] * m,
              "target": pred, "contrast": [None] * m}
    for j in range(top_k):
        values[f"top{j + 1}"] = order[:, j]
        values[f"top{j + 1}_prob"] = prob[np.arange(m), order[:, j]]
    shards = {}
    cy = np.where(right, rng.uniform(0.3, 0.7, m), 0.95)
    cx = np.where(right, rng.uniform(0.3, 0.7, m), 0.95)
    for name in methods:
        blob = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                      / 0.02) + 0.05 * rng.random((m, *yy.shape))
        scale = blob.reshape(m, -1).max(1)
        shards[name] = (blob / scale[:, None, None]).astype(np.float16)
        p = np.abs(shards[name].astype(np.float64)).reshape(m, -1)
        p /= p.sum(1, keepdims=True)
        values[f"scale:{name}"] = scale
        values[f"entropy:{name}"] = -(p * np.log(p, where=p > 0, out=np.zeros_like(p))).sum(1) \
            / math.log(p.shape[1])
        for metric in metrics:
            values[f"{metric}:{name}"] = np.where(rng.random(m) < 0.02, np.nan, rng.random(m))
    thumbs = np.zeros((m, *yy.shape, 3), dtype=np.uint8)
    thumbs[...] = (label[:, None, None, None] * 37 % 256).astype(np.uint8)
    shards["thumbs"] = thumbs
    columns = [values[c].tolist() if isinstance(values[c], np.ndarray) else values[c]
               for c, _ in cols]
    return store.BatchOutput(k, list(zip(*columns)), shards)
