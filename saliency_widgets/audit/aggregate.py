"""Aggregates over an audit's maps: mean maps, group disparity, map entropy (numpy only).

Every aggregate works on the *share* of each map's magnitude per pixel, ``p = |m| / Σ|m|``, so
maps of different raw scales weigh the same and a mean map is itself a distribution (it sums
to 1). An all-zero map has no such share: it is counted as ``blank`` and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def unit_mass(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(p (n, h·w) float64, blank (n,) bool)``: ``|m| / Σ|m|`` per map; blank rows NaN."""
    a = np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), -1)
    total = a.sum(1)
    blank = ~(total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = a / total[:, None]
    p[blank] = np.nan
    return p, blank


def entropy(maps: np.ndarray) -> np.ndarray:
    """Return ``(n,)`` float64: the Shannon entropy of ``|m| / Σ|m|`` over ``log(h·w)``.

    In [0, 1]: 0 when all the mass is on one pixel, 1 when it is spread evenly (the most
    diffuse map); NaN for an all-zero map.
    """
    p, blank = unit_mass(maps)
    d = p.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(1)
    h = h / math.log(d) if d > 1 else np.zeros_like(h)
    h[blank] = np.nan
    return h


@dataclass(frozen=True)
class MeanMaps:
    """Per key (class, group or confusion cell): the mean of ``|m| / Σ|m|`` and its spread.

    keys : tuple of the keys, in ascending order; mean, std : float64 ``(G, h, w)`` (std: the
    per-pixel standard deviation over the examples, ddof 0); count : examples averaged per key;
    blank : all-zero maps left out per key. A key whose maps are all blank has a NaN mean.
    """

    by: str
    method: str
    keys: tuple[Any, ...]
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    blank: np.ndarray

    def __getitem__(self, key: Any) -> np.ndarray:
        """The mean map of ``key``."""
        try:
            return self.mean[self.keys.index(key)]
        except ValueError:
            raise KeyError(f"{key!r} is not one of the keys {self.keys}") from None

    def mass_in(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """``(G,)``: each mean map's share inside ``(top, left, bottom, right)`` (map pixels)."""
        t, l, b, r = box
        return self.mean[:, t:b, l:r].sum(axis=(1, 2))


class MeanAccumulator:
    """Streams maps in; sums of ``p`` and ``p²`` per key in float64."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.sums: dict[Any, list] = {}

    def add(self, keys: list[Any], maps: np.ndarray) -> None:
        p, blank = unit_mass(maps)
        order: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            order.setdefault(key, []).append(i)
        for key, rows in order.items():
            acc = self.sums.setdefault(key, [np.zeros(p.shape[1]), np.zeros(p.shape[1]), 0, 0])
            idx = np.asarray(rows)
            ok = idx[~blank[idx]]
            acc[0] += p[ok].sum(0)
            acc[1] += (p[ok] ** 2).sum(0)
            acc[2] += len(ok)
            acc[3] += len(idx) - len(ok)

    def result(self, by: str, method: str) -> MeanMaps:
        keys = tuple(sorted(self.sums, key=_sort_key))
        G, (h, w) = len(keys), self.shape
        mean, std = np.full((G, h * w), np.nan), np.full((G, h * w), np.nan)
        count, blank = np.zeros(G, np.int64), np.zeros(G, np.int64)
        for g, key in enumerate(keys):
            s, s2, n, nb = self.sums[key]
            count[g], blank[g] = n, nb
            if n:
                mean[g] = s / n
                std[g] = np.sqrt(np.clip(s2 / n - mean[g] ** 2, 0, None))
        return MeanMaps(by=by, method=method, keys=keys, mean=mean.reshape(G, h, w),
                        std=std.reshape(G, h, w), count=count, blank=blank)


def _sort_key(key: Any) -> tuple:
    """Keys of mixed types (ints, text, None, pairs) in one stable order."""
    if key is None:
        return (0,)
    if isinstance(key, tuple):
        return (1, tuple(_sort_key(k) for k in key))
    if isinstance(key, (int, float)):
        return (2, key)
    return (3, str(key))


@dataclass(frozen=True)
class Disparity:
    """How differently two groups' attention is placed.

    value : ½·Σ|mean_a − mean_b| over pixels of the two mean maps (each sums to 1): 0 for the
    same mean map, 1 for disjoint supports. p_value : permutation test of "the group labels do
    not matter" ((1 + #permuted values ≥ value) / (1 + permutations)); NaN with 0 permutations.
    """

    method: str
    groups: tuple[Any, Any]
    value: float
    p_value: float
    permutations: int
    count: tuple[int, int]
    blank: tuple[int, int]

    def __repr__(self) -> str:
        return (f"Disparity({self.method}: {self.groups[0]!r} vs {self.groups[1]!r}, "
                f"value={self.value:.4f}, p={self.p_value:.4g}, n={self.count})")


def half_l1(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def permutation_test(pa: np.ndarray, pb: np.ndarray, permutations: int,
                     rng: np.random.Generator, chunk: int = 64) -> tuple[float, float]:
    """``(½‖mean(pa) − mean(pb)‖₁, p-value)`` with ``permutations`` random relabellings.

    Each relabelling keeps the group sizes; its group-a mean is a 0/1 selection matrix times the
    pooled maps, so ``chunk`` relabellings cost one matrix product.
    """
    na, nb = len(pa), len(pb)
    value = half_l1(pa.mean(0), pb.mean(0))
    if permutations == 0:
        return value, float("nan")
    pool = np.concatenate([pa, pb])
    total = pool.sum(0)
    n = na + nb
    exceed = 0
    tol = 1e-12 * max(1.0, value)  # ties up to rounding count as "at least as large"
    done = 0
    while done < permutations:
        c = min(chunk, permutations - done)
        select = np.zeros((c, n))
        for i in range(c):
            select[i, rng.permutation(n)[:na]] = 1.0
        sa = select @ pool
        d = 0.5 * np.abs(sa / na - (total - sa) / nb).sum(1)
        exceed += int((d >= value - tol).sum())
        done += c
    return value, (1 + exceed) / (1 + permutations)
