// A deletion / insertion step rebuilt in the browser from the metric's own pixel order (no
// sorting here, no kernel round trip): at step k the pixels with rank < counts[k] are moved.

/** RGB (H·W·3) of the image at a step: deletion replaces the moved pixels by the substrate,
 *  insertion copies them from the image into the substrate. */
export function scrubPixels(
  image: Uint8Array,
  substrate: Uint8Array,
  ranks: Int32Array,
  count: number,
  insert: boolean,
  out: Uint8Array = new Uint8Array(image.length),
): Uint8Array {
  const [start, end] = insert ? [substrate, image] : [image, substrate];
  for (let p = 0; p < ranks.length; p++) {
    const src = ranks[p] < count ? end : start;
    const i = 3 * p;
    out[i] = src[i];
    out[i + 1] = src[i + 1];
    out[i + 2] = src[i + 2];
  }
  return out;
}

/** How many pixels are moved at each step, and the fraction of the image that is. */
export function movedAt(counts: Int32Array, step: number, total: number): { count: number; fraction: number } {
  const count = counts[Math.max(0, Math.min(counts.length - 1, step))];
  return { count, fraction: total > 0 ? count / total : 0 };
}
