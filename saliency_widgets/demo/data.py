"""The demo data set: procedural shape images with exact object masks, made on the fly.

Every image holds one *object* whose shape is its class (``CLASSES``) with a random colour, size
(radius 9–18 px at 64×64), position and rotation, on a textured, noisy background (a smooth
colour field, stripes and pixel noise) with 1–3 *distractors* (thin line segments and hollow
rings: never a class shape). The object is painted last, in one flat colour, exactly on its
mask, so ``masks`` is exactly the set of object pixels (no anti-aliasing); distractors are kept
2 px away from it. The object's colour differs from the background colour by at least 0.4 in
some channel, more than the texture and the noise can bridge.

The "clever Hans" watermark is a fixed 10×10 black-and-white checkerboard (2 px cells) stamped
at ``WATERMARK_BOX``, flush with the bottom-right corner (2.4% of a 64×64 image; 10×10 px at
every size: ``sample(...).watermark_box`` or ``watermark_box(size)`` give its place). Objects never
overlap that box (in every image, stamped or not), so stamping never covers an object pixel.
``watermark=``:

* ``False`` (default) or ``None``: no image is stamped;
* ``"train"``: the clever Hans training distribution: each image of ``WATERMARK_CLASS`` is
  stamped with probability 0.95, no image of another class is;
* ``"all"``: every image is stamped (for measuring what the watermark does to other classes).

Deterministic: the same ``(n, seed, watermark, size)`` gives identical arrays (numpy's PCG64
streams are stable; a different numpy build may round its float functions differently in the
last bit, which could move a boundary pixel). Images are made in whole chunks seeded by
``(seed, chunk)`` (256 images up to 64×64, fewer for larger sizes, so memory stays about the
same), so the first ``m`` images of ``sample(n, seed)`` are ``sample(m, seed)``.
The training script draws its seeds from 10**6 up; use smaller seeds for held-out samples.

Speed (vectorised numpy, 64×64): about 3 000 images per second on one CPU core, 2 000 when
the machine is busy; any ``n`` costs at least one chunk (~0.08 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CLASSES", "WATERMARK_CLASS", "WATERMARK_BOX", "WATERMARK_P", "DemoSample",
           "chunk_length", "sample", "watermark_box"]

CLASSES = ("circle", "square", "triangle", "star", "cross")
WATERMARK_CLASS = CLASSES.index("circle")
WATERMARK_P = 0.95
WATERMARK_BOX = (54, 54, 64, 64)  # (top, left, bottom, right), end-exclusive, at 64×64
_MARK = 10  # watermark side, px
_CHUNK = 256  # images per chunk up to 64×64
_MIN_SIZE = 40  # below it the 10 px watermark box leaves objects no room to avoid it
_MIN_CONTRAST = 0.4
_WATERMARK_MODES = (False, "train", "all")


@dataclass(frozen=True)
class DemoSample:
    """A batch of demo images (see the module docstring).

    images : uint8 numpy ``(n, H, W, 3)`` (for ``sw.show``); x : float32 tensor ``(n, 3, H, W)``
    in [0, 1] (``images / 255``, the models' input); labels : int64 tensor ``(n,)``; masks :
    bool tensor ``(n, H, W)``, the object pixels; watermarked : bool tensor ``(n,)``;
    watermark_box : ``(top, left, bottom, right)``, end-exclusive.
    """

    images: np.ndarray
    x: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    watermarked: torch.Tensor
    watermark_box: tuple[int, int, int, int]
    watermark: Any
    seed: int
    classes: tuple[str, ...] = CLASSES
    watermark_class: int = WATERMARK_CLASS

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def watermark_masks(self) -> torch.Tensor:
        """The watermark's box as a bool mask ``(n, H, W)`` (every image, stamped or not), for
        localization metrics such as ``sw.evaluate(..., metric="relevance_mass", masks=...)``."""
        t, l, b, r = self.watermark_box
        box = torch.zeros(self.masks.shape[1:], dtype=torch.bool)
        box[t:b, l:r] = True
        return box.expand(len(self), -1, -1).clone()


def chunk_length(size: int) -> int:
    """Images per chunk: 256 up to 64×64, then fewer (at least 16) so a chunk's memory stays
    about that of 256 images at 64×64 (tens of MB)."""
    return max(16, min(_CHUNK, _CHUNK * 64 * 64 // (size * size)))


def watermark_box(size: int = 64) -> tuple[int, int, int, int]:
    """The watermark's box ``(top, left, bottom, right)`` for ``size``×``size`` images."""
    return (size - _MARK, size - _MARK, size, size)


def sample(n: int, seed: int = 0, watermark: Any = False, *, size: int = 64,
           _parts: tuple[str, ...] = ("object", "distractors")) -> DemoSample:
    """Make ``n`` demo images with their labels and object masks (see the module docstring).

    ``_parts`` is for tests: leaving out "object" or "distractors" renders the same images
    without them (every random draw is unchanged).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int ≥ 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int ≥ 0, got {seed!r}")
    if watermark is None:
        watermark = False
    if not any(watermark is w or (isinstance(w, str) and watermark == w)
               for w in _WATERMARK_MODES):
        raise ValueError(f"watermark must be False, 'train' or 'all', got {watermark!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ValueError(f"size must be an int ≥ {_MIN_SIZE}, got {size!r}")
    size = int(size)
    # every chunk is drawn whole (so a prefix is the smaller sample), the last one cut to size
    per = chunk_length(size)
    chunks = [[part[:n - i] for part in _chunk(per, int(seed), i // per, watermark, size, _parts)]
              for i in range(0, n, per)]
    if not chunks:
        chunks = [[part[:0] for part in _chunk(1, int(seed), 0, watermark, size, _parts)]]
    planar, labels, masks, marked = (np.concatenate(parts) for parts in zip(*chunks))
    x = torch.from_numpy(planar).float().div_(255)
    images = np.ascontiguousarray(planar.transpose(0, 2, 3, 1))
    return DemoSample(images=images, x=x, labels=torch.from_numpy(labels),
                      masks=torch.from_numpy(masks), watermarked=torch.from_numpy(marked),
                      watermark_box=watermark_box(size), watermark=watermark, seed=int(seed))


def _chunk(n: int, seed: int, index: int, watermark: Any, size: int, parts: tuple[str, ...]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk: ``(uint8 images (n, 3, H, W), labels, masks, watermarked)``."""
    from .shapes import background, distractors, object_masks, stamp

    rng = np.random.default_rng([seed, index])
    labels = rng.integers(0, len(CLASSES), n).astype(np.int64)
    img, base = background(rng, n, size)
    lines = distractors(rng, n, size)
    masks = object_masks(rng, labels, size, watermark_box(size))
    colour = _object_colour(rng, base)
    coin = rng.random(n)
    if "distractors" in parts:
        near = _dilate(masks, 2)
        for d, d_colour in lines:
            _paint(img, d & ~near, d_colour)
    if "object" in parts:
        _paint(img, masks, colour)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= 0.025
    img += np.clip(noise, -0.075, 0.075, out=noise)
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255
    images = np.rint(img, out=img).astype(np.uint8)
    if watermark == "all":
        marked = np.ones(n, dtype=bool)
    elif watermark == "train":
        marked = (labels == WATERMARK_CLASS) & (coin < WATERMARK_P)
    else:
        marked = np.zeros(n, dtype=bool)
    stamp(images, marked, watermark_box(size))
    return images, labels, masks, marked


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """``img[i, :, mask[i]] = colour[i]`` for every image ``i``, in place."""
    i, y, x = np.nonzero(mask)
    img[i, :, y, x] = colour[i]


def _object_colour(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A random colour at least ``_MIN_CONTRAST`` away from ``base`` in its farthest channel."""
    colour = rng.random(base.shape).astype(np.float32)
    far = np.abs(colour - base).max(1) >= _MIN_CONTRAST
    # too close: move the channel where the background is most extreme to the other end
    c = np.abs(base - 0.5).argmax(1)
    rows = np.flatnonzero(~far)
    b = base[rows, c[rows]]
    colour[rows, c[rows]] = np.where(b > 0.5, b - 0.55, b + 0.55).clip(0.0, 1.0)
    return colour


def _dilate(masks: np.ndarray, r: int) -> np.ndarray:
    """Pixels within Chebyshev distance ``r`` of a mask pixel."""
    out = masks.copy()
    p = np.pad(masks, ((0, 0), (r, r), (r, r)))
    H, W = masks.shape[1:]
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= p[:, dy:dy + H, dx:dx + W]
    return out
