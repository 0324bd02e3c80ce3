// The explorer's pure logic (no DOM): paging, filters, and drawing a map over a thumbnail.
import { composite } from "../render/colormap";
import type { Filter } from "./model";

/** Number of pages for `total` rows (at least 1, so "page 1 of 1" for an empty filter). */
export function pageCount(total: number, pageSize: number): number {
  return Math.max(1, Math.ceil(total / Math.max(1, pageSize)));
}

/** A filter with one key set (or removed when `value` is "" / null), others kept. A confusion
 *  cell and the label/pred filters exclude each other: choosing one clears the other. */
export function withFilter(filter: Filter, key: keyof Filter, value: unknown): Filter {
  const next: Record<string, unknown> = { ...filter };
  if (value === "" || value === null || value === undefined) delete next[key];
  else next[key] = value;
  if (key === "cell" && next.cell !== undefined) {
    delete next.label;
    delete next.pred;
  }
  if ((key === "label" || key === "pred") && next[key] !== undefined) delete next.cell;
  return next as Filter;
}

/** The RGBA pixels of thumbnail `i`: its image with its map (unit peak) over it, signed scale. */
export function thumbnailPixels(images: Uint8Array, maps: Float32Array | null, i: number, h: number,
  w: number, lut: Uint8Array, opacity: number): Uint8ClampedArray {
  const n = h * w;
  const image = images.subarray(i * n * 3, (i + 1) * n * 3);
  const values = maps ? maps.subarray(i * n, (i + 1) * n) : null;
  const out = new Uint8ClampedArray(n * 4);
  return composite({ image, values, lut, lo: -1, hi: 1, opacity: values ? opacity : 0,
    cut: { cut: 0, all: true }, signed: true }, out);
}

/** Row-normalised shares of a confusion matrix (rows: true class), for the cells' shading. */
export function rowShares(counts: ArrayLike<number>, k: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < k; r++) {
    let sum = 0;
    for (let c = 0; c < k; c++) sum += counts[r * k + c];
    for (let c = 0; c < k; c++) out.push(sum > 0 ? counts[r * k + c] / sum : 0);
  }
  return out;
}
