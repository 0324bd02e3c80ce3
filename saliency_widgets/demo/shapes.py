"""Vectorised drawing for the demo data set: backgrounds, distractors, object masks, watermark.

Every function draws for a whole chunk of ``n`` images at once from the caller's generator;
the order of the draws is part of the data set's definition (changing it changes every image).
"""

from __future__ import annotations

import numpy as np

_TAU = 2 * np.pi
_STAR_INNER = 0.42


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return ys[None], xs[None]


def background(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images (n, 3, size, size) float32, base colour (n, 3))``.

    A base colour, a smooth colour field (a 4×4 grid of offsets in ±0.09, bilinearly upsampled)
    and grey stripes (amplitude ≤ 0.06): within 0.15 of the base colour everywhere.
    """
    base = rng.uniform(0.1, 0.9, (n, 3)).astype(np.float32)
    coarse = rng.uniform(-0.09, 0.09, (n, 3, 4, 4)).astype(np.float32)
    pos = np.linspace(0, 3, size, dtype=np.float32)
    interp = np.clip(1 - np.abs(pos[:, None] - np.arange(4, dtype=np.float32)[None]), 0, 1)
    field = interp @ coarse @ interp.T
    amp, freq, angle, phase = (rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32) for lo, hi in
                               ((0.0, 0.06), (0.25, 1.2), (0.0, np.pi), (0.0, _TAU)))
    ys, xs = _grid(size)
    stripes = amp * np.sin(freq * (xs * np.cos(angle) + ys * np.sin(angle)) + phase)
    field += base[:, :, None, None]
    field += stripes[:, None]
    return field, base


def distractors(rng: np.random.Generator, n: int, size: int
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three slots of ``(mask (n, size, size) bool, colour (n, 3))``; 1–3 used per image.

    Each slot holds a thin line segment (length 8–28 px, 1–2 px wide) or a hollow ring (radius
    3–7 px, 1.4 px wide); neither is a class shape.
    """
    s = size / 64
    count = rng.integers(1, 4, n)
    ys, xs = _grid(size)
    out = []
    for slot in range(3):
        ring = rng.random(n) < 0.4
        cy, cx, length, angle, width, radius = (
            rng.uniform(lo, hi, n).astype(np.float32)[:, None, None] for lo, hi in
            ((4 * s, size - 4 * s), (4 * s, size - 4 * s), (8 * s, 28 * s), (0, np.pi),
             (0.5 * s, 1.0 * s), (3 * s, 7 * s)))
        colour = rng.random((n, 3)).astype(np.float32)
        mask = np.zeros((n, size, size), dtype=bool)
        used = slot < count
        rows = np.flatnonzero(used & ~ring)  # line segments
        dy, dx = ys - cy[rows], xs - cx[rows]
        cos, sin = np.cos(angle[rows]), np.sin(angle[rows])
        half = length[rows] / 2
        along = np.clip(dx * cos + dy * sin, -half, half)
        dx -= along * cos
        dy -= along * sin
        mask[rows] = dx * dx + dy * dy <= width[rows] ** 2
        rows = np.flatnonzero(used & ring)  # rings
        dy, dx = ys - cy[rows], xs - cx[rows]
        d2 = dx * dx + dy * dy
        r = radius[rows]
        mask[rows] = (d2 >= (r - 0.7 * s) ** 2) & (d2 <= (r + 0.7 * s) ** 2)
        out.append((mask, colour))
    return out


def _inside(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether unit-frame points ``(u, v)`` lie inside the class shape (all within radius 1)."""
    if label == 0:  # circle
        return u * u + v * v <= 0.85 ** 2
    if label == 1:  # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.7
    if label == 2:  # equilateral triangle, circumradius 1 (inradius 0.5)
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            a = np.pi / 6 + k * _TAU / 3
            inside &= u * np.cos(a) + v * np.sin(a) <= 0.5
        return inside
    if label == 3:  # five-pointed star, outer radius 1, inner radius _STAR_INNER
        t = np.mod(np.arctan2(v, u), _TAU / 5)
        phi = np.minimum(t, _TAU / 5 - t)  # angle from the nearest point
        p1 = np.array([1.0, 0.0])
        p2 = _STAR_INNER * np.array([np.cos(np.pi / 5), np.sin(np.pi / 5)])
        normal = np.array([p2[1] - p1[1], p1[0] - p2[0]])
        d = normal @ p1
        edge = d / (normal[0] * np.cos(phi) + normal[1] * np.sin(phi))
        return u * u + v * v <= edge * edge
    if label == 4:  # cross (plus sign), arms 0.95 long and 0.56 wide
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.28) & (av <= 0.95)) | ((av <= 0.28) & (au <= 0.95))
    raise ValueError(f"unknown label {label}")


def object_masks(rng: np.random.Generator, labels: np.ndarray, size: int,
                 box: tuple[int, int, int, int]) -> np.ndarray:
    """Exact object masks ``(n, size, size)``: one shape per image, radius 9–18 px at 64 px.

    The shape's disc never touches ``box`` (its centre is mirrored left–right, and then
    top–bottom, if it would), so the watermark never covers an object pixel.
    """
    n = labels.shape[0]
    s = size / 64
    radius = np.asarray(rng.uniform(9 * s, 18 * s, n), dtype=np.float32)
    cy, cx = (np.asarray(rng.uniform(radius + 1, size - 2 - radius), dtype=np.float32)
              for _ in "yx")
    theta = np.asarray(rng.uniform(0, _TAU, n), dtype=np.float32)
    # mirrored left–right, and if that is not enough (small images) also top–bottom
    cx = np.where(_near_box(cy, cx, radius, box), size - 1 - cx, cx)
    cy = np.where(_near_box(cy, cx, radius, box), size - 1 - cy, cy)
    ys, xs = _grid(size)
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    inv = 1 / radius[:, None, None]
    u, v = (dx * cos + dy * sin) * inv, (dy * cos - dx * sin) * inv
    masks = np.zeros((n, size, size), dtype=bool)
    for label in np.unique(labels):
        rows = labels == label
        masks[rows] = _inside(int(label), u[rows], v[rows])
    return masks


def _near_box(cy: np.ndarray, cx: np.ndarray, radius: np.ndarray,
              box: tuple[int, int, int, int]) -> np.ndarray:
    """Whether each disc (with 1 px to spare) reaches the pixels of ``box``."""
    t, l, b, r = box
    gap = np.hypot(np.maximum(0, np.maximum(l - 1 - cx, cx - r)),
                   np.maximum(0, np.maximum(t - 1 - cy, cy - b)))
    return gap <= radius + 1


def watermark_pattern(side: int = 10) -> np.ndarray:
    """The watermark: a black-and-white checkerboard of 2 px cells, uint8 ``(side, side)``."""
    i = np.arange(side) // 2
    return np.where((i[:, None] + i[None, :]) % 2 == 0, 255, 0).astype(np.uint8)


def stamp(images: np.ndarray, marked: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Paint the watermark into ``images[marked]`` (``(n, 3, H, W)``) at ``box``, in place."""
    t, l, b, r = box
    images[np.flatnonzero(marked), :, t:b, l:r] = watermark_pattern(b - t)[None, None]
