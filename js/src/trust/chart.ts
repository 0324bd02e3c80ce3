// The small charts' maths (deletion/insertion curves, the sanity check's similarity, the path's
// score): shared axes, SVG paths, and which step a pointer or a slider position is on. Pure.

export interface Box {
  width: number;
  height: number;
  pad: number;
}

/** [min, max] over every finite value of every series ([0, 1] when there is none). */
export function bounds(series: ArrayLike<number>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.length; i++) {
      const v = s[i];
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo === Infinity ? [0, 1] : [lo, hi];
}

/** The y axis: bounds padded 5 %; a flat set gets a unit range around its value. Computed over
 *  every panel's curves, it gives the panels the same axes. */
export function extent(series: ArrayLike<number>[]): [number, number] {
  const [lo, hi] = bounds(series);
  if (hi === lo) return [lo - 0.5, hi + 0.5];
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

export function xPixel(x: number, xRange: [number, number], box: Box): number {
  const [a, b] = xRange;
  return box.pad + ((x - a) / (b - a || 1)) * (box.width - 2 * box.pad);
}

export function yPixel(y: number, yRange: [number, number], box: Box): number {
  const [lo, hi] = yRange;
  return box.height - box.pad - ((y - lo) / (hi - lo || 1)) * (box.height - 2 * box.pad);
}

/** An SVG path through the finite points (a gap where a value is not finite). */
export function linePath(xs: ArrayLike<number>, ys: ArrayLike<number>, xRange: [number, number],
  yRange: [number, number], box: Box): string {
  const parts: string[] = [];
  let pen = false;
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    if (!Number.isFinite(ys[i]) || !Number.isFinite(xs[i])) {
      pen = false;
      continue;
    }
    const px = xPixel(xs[i], xRange, box).toFixed(1);
    const py = yPixel(ys[i], yRange, box).toFixed(1);
    parts.push(`${pen ? "L" : "M"}${px} ${py}`);
    pen = true;
  }
  return parts.join(" ");
}

/** The step nearest to a horizontal position (pixels within the chart), 0 … n − 1. */
export function stepAt(px: number, xs: ArrayLike<number>, xRange: [number, number], box: Box): number {
  let best = 0;
  let dist = Infinity;
  for (let i = 0; i < xs.length; i++) {
    const d = Math.abs(xPixel(xs[i], xRange, box) - px);
    if (d < dist) {
      dist = d;
      best = i;
    }
  }
  return best;
}

/** The scrub position as a step index: a range input's value clamped to the curve's steps. */
export function scrubIndex(value: number | string, steps: number): number {
  const v = Math.round(Number(value));
  if (!Number.isFinite(v) || steps <= 0) return 0;
  return Math.max(0, Math.min(steps - 1, v));
}
