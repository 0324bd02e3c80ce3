// Turning a float map into overlay colours: the same rules as the Python side
// (saliency_widgets/render/heatmap.py robust_range, widget/export.py threshold_mask,
// matplotlib's colormap lookup), so the widget, to_figure() and save_png() agree.
import type { Sign } from "../model";

/** The map as displayed: signed keeps the sign, absolute is Σ_c|·| (sent by Python when the
 *  method has channels; |map| otherwise), positive keeps the evidence for the objective. */
export function displayValues(signed: Float32Array, absolute: Float32Array | null, sign: Sign): Float32Array {
  if (sign === "signed") return signed;
  if (sign === "absolute") {
    if (absolute) return absolute;
    return signed.map(Math.abs);
  }
  return signed.map((v) => (v > 0 ? v : 0));
}

/** Ascending copy without NaN/Inf (what numpy's percentile of the finite values sees). */
export function sortedFinite(values: ArrayLike<number>, abs = false): Float32Array {
  const out = new Float32Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) out[n++] = abs ? Math.abs(v) : v;
  }
  return out.subarray(0, n).sort();
}

/** numpy.percentile(a, q) with the default linear interpolation, for an ascending array. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = ((n - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const f = pos - lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * f;
}

/** Colour limits ignoring the top (100 − clip) % outliers; signed ranges are centred on zero.
 *  `sorted` holds |values| ascending when `signed`, else the values ascending. */
export function robustRange(sorted: ArrayLike<number>, clip: number, signed: boolean): [number, number] {
  const n = sorted.length;
  if (n === 0) return [-1, 1];
  if (signed) {
    let hi = percentileSorted(sorted, clip);
    if (!(hi > 0)) hi = sorted[n - 1] || 1;
    return [-hi, hi];
  }
  const lo = percentileSorted(sorted, 100 - clip);
  let hi = percentileSorted(sorted, clip);
  if (hi <= lo) hi = lo + (lo === 0 ? 1 : Math.abs(lo));
  return [lo, hi];
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The score a pixel needs to be among the top `topPercent` % (ties at the cut are kept):
 *  show a pixel when `score >= cut && (all || score > 0)`. `sortedScores` ascending. */
export function thresholdCut(sortedScores: ArrayLike<number>, total: number, topPercent: number) {
  if (topPercent >= 100) return { cut: -Infinity, all: true };
  const keep = roundHalfEven((total * topPercent) / 100);
  if (keep <= 0 || sortedScores.length === 0) return { cut: Infinity, all: false };
  if (keep >= sortedScores.length) return { cut: -Infinity, all: false };
  return { cut: sortedScores[sortedScores.length - keep], all: false };
}

/** matplotlib's lookup: index floor((v − lo) / (hi − lo) · 256), clamped to 0…255. */
export function lutIndex(v: number, lo: number, hi: number): number {
  const t = (v - lo) / (hi - lo);
  const i = Math.floor(t * 256);
  return i < 0 ? 0 : i > 255 ? 255 : i;
}

export interface CompositeInput {
  /** (H·W·3) RGB of the displayed image. */
  image: Uint8Array;
  /** (H·W) displayed values, or null for the image alone. */
  values: Float32Array | null;
  /** (256·4) RGBA lookup table of one colormap. */
  lut: Uint8Array;
  lo: number;
  hi: number;
  opacity: number;
  /** Scores compared with the threshold cut (|v| for signed maps, v otherwise). */
  cut: { cut: number; all: boolean };
  signed: boolean;
}

/** RGBA pixels: the image with the coloured map blended over it at `opacity`. */
export function composite(input: CompositeInput, out: Uint8ClampedArray): Uint8ClampedArray {
  const { image, values, lut, lo, hi, opacity, cut, signed } = input;
  const n = out.length / 4;
  for (let i = 0; i < n; i++) {
    let r = image[3 * i];
    let g = image[3 * i + 1];
    let b = image[3 * i + 2];
    if (values) {
      const v = values[i];
      const score = signed ? Math.abs(v) : v;
      if (Number.isFinite(v) && score >= cut.cut && (cut.all || score > 0)) {
        const k = 4 * lutIndex(v, lo, hi);
        const a = (opacity * lut[k + 3]) / 255;
        r = r * (1 - a) + lut[k] * a;
        g = g * (1 - a) + lut[k + 1] * a;
        b = b * (1 - a) + lut[k + 2] * a;
      }
    }
    out[4 * i] = r;
    out[4 * i + 1] = g;
    out[4 * i + 2] = b;
    out[4 * i + 3] = 255;
  }
  return out;
}
