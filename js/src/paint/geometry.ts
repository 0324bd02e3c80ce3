// Paint geometry at the model's input resolution, DOM-free (unit-tested in node).
//
// Coordinates are continuous image coordinates: pixel (i, j) covers [i, i + 1) × [j, j + 1), as
// viewport.toImage returns them, so a stroke lands on the same model-input pixels at any zoom
// and pan. A mask is a Uint8Array of H·W bytes, row-major, 0 or 1.
import { toImage, type Size, type ViewState } from "../viewport";

export interface Point {
  x: number;
  y: number;
}

/** An inclusive rectangle of pixels. */
export interface PixelRect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export type Tool = "brush" | "eraser" | "box";
export const TOOLS: Tool[] = ["brush", "eraser", "box"];

/** The image point under a screen point (CSS pixels in the panel's canvas) under the view. */
export function screenToImage(state: ViewState, sx: number, sy: number, view: Size, image: Size): Point {
  return toImage(state, sx, sy, view, image);
}

function clampRect(r: PixelRect, size: Size): PixelRect | null {
  const out = {
    x0: Math.max(0, r.x0),
    y0: Math.max(0, r.y0),
    x1: Math.min(size.width - 1, r.x1),
    y1: Math.min(size.height - 1, r.y1),
  };
  return out.x0 > out.x1 || out.y0 > out.y1 ? null : out;
}

/** Squared distance from (px, py) to the segment ab. */
function distance2(px: number, py: number, a: Point, b: Point): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const ex = a.x + t * dx - px;
  const ey = a.y + t * dy - py;
  return ex * ex + ey * ey;
}

/** Whether the segment ab meets the closed pixel square [i, i + 1] × [j, j + 1]
 *  (Liang–Barsky clipping). */
export function segmentMeetsPixel(a: Point, b: Point, i: number, j: number): boolean {
  let t0 = 0;
  let t1 = 1;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const clip = (p: number, q: number): boolean => {
    if (p === 0) return q >= 0; // parallel to this edge: inside its slab or not
    const r = q / p;
    if (p < 0) {
      if (r > t1) return false;
      if (r > t0) t0 = r;
    } else {
      if (r < t0) return false;
      if (r < t1) t1 = r;
    }
    return true;
  };
  return clip(-dx, a.x - i) && clip(dx, i + 1 - a.x) && clip(-dy, a.y - j) && clip(dy, j + 1 - a.y);
}

/** The pixels a brush of `diameter` (model-input pixels) covers when dragged from a to b: every
 *  pixel whose centre lies within diameter / 2 of the segment, and every pixel the segment itself
 *  passes through (so a 1-pixel brush draws a connected line and a click always paints the
 *  pixel under it). Calls `visit(index)` once per covered pixel inside the image. */
export function strokePixels(a: Point, b: Point, diameter: number, size: Size, visit: (index: number) => void): PixelRect | null {
  const r = Math.max(0, diameter) / 2;
  const box = clampRect(
    {
      x0: Math.floor(Math.min(a.x, b.x) - r),
      y0: Math.floor(Math.min(a.y, b.y) - r),
      x1: Math.floor(Math.max(a.x, b.x) + r),
      y1: Math.floor(Math.max(a.y, b.y) + r),
    },
    size,
  );
  if (!box) return null;
  const r2 = r * r + 1e-9; // a centre exactly on the circle is inside
  for (let j = box.y0; j <= box.y1; j++) {
    for (let i = box.x0; i <= box.x1; i++) {
      if (distance2(i + 0.5, j + 0.5, a, b) <= r2 || segmentMeetsPixel(a, b, i, j)) visit(j * size.width + i);
    }
  }
  return box;
}

/** Paint (value 1) or erase (value 0) a brush stroke from a to b; return how many bytes changed. */
export function paintStroke(mask: Uint8Array, size: Size, a: Point, b: Point, diameter: number, value: 0 | 1): number {
  let changed = 0;
  strokePixels(a, b, diameter, size, (k) => {
    if (mask[k] !== value) {
      mask[k] = value;
      changed++;
    }
  });
  return changed;
}

/** The pixels of the box dragged from a to b: every pixel the rectangle touches, the pixels under
 *  both corners included, clipped to the image; null when it lies outside. */
export function boxRect(a: Point, b: Point, size: Size): PixelRect | null {
  return clampRect(
    {
      x0: Math.floor(Math.min(a.x, b.x)),
      y0: Math.floor(Math.min(a.y, b.y)),
      x1: Math.floor(Math.max(a.x, b.x)),
      y1: Math.floor(Math.max(a.y, b.y)),
    },
    size,
  );
}

/** Fill the box dragged from a to b with `value`; return how many bytes changed. */
export function paintBox(mask: Uint8Array, size: Size, a: Point, b: Point, value: 0 | 1): number {
  const r = boxRect(a, b, size);
  if (!r) return 0;
  let changed = 0;
  for (let j = r.y0; j <= r.y1; j++) {
    for (let i = r.x0; i <= r.x1; i++) {
      const k = j * size.width + i;
      if (mask[k] !== value) {
        mask[k] = value;
        changed++;
      }
    }
  }
  return changed;
}

/** Whether any pixel is painted. */
export function anyPainted(mask: Uint8Array): boolean {
  for (let k = 0; k < mask.length; k++) if (mask[k]) return true;
  return false;
}

/** RGBA of the mask for drawing over a panel: a translucent fill, and an opaque edge on painted
 *  pixels that touch an unpainted one (4-neighbours; the image border counts as unpainted). */
export function maskRGBA(mask: Uint8Array, size: Size, fill: [number, number, number, number], edge: [number, number, number, number]): Uint8ClampedArray<ArrayBuffer> {
  const { width: w, height: h } = size;
  const out = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const k = y * w + x;
      if (!mask[k]) continue;
      const border =
        x === 0 || y === 0 || x === w - 1 || y === h - 1 || !mask[k - 1] || !mask[k + 1] || !mask[k - w] || !mask[k + w];
      out.set(border ? edge : fill, 4 * k);
    }
  }
  return out;
}
