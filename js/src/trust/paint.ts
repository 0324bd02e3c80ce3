// A map drawn the way the panels draw theirs (the display settings: colormap, sign, clip,
// threshold, opacity), for the trust views' small canvases. Pure except `paintCanvas`.
import { composite, displayValues, robustRange, sortedFinite, thresholdCut } from "../render/colormap";
import type { Display } from "../panels";

/** RGBA of `image` with `signed` (or its absolute / positive form) blended over it. */
export function paintMap(
  image: Uint8Array,
  signed: Float32Array | null,
  absolute: Float32Array | null,
  display: Display,
  opacity = display.opacity,
): { rgba: Uint8ClampedArray; range: [number, number] | null; values: Float32Array | null } {
  const rgba = new Uint8ClampedArray((image.length / 3) * 4);
  if (!signed) {
    composite({ image, values: null, lut: display.lut, lo: 0, hi: 1, opacity: 0, cut: { cut: 0, all: true }, signed: true }, rgba);
    return { rgba, range: null, values: null };
  }
  const isSigned = display.sign === "signed";
  const values = displayValues(signed, absolute, display.sign);
  const sorted = sortedFinite(values, isSigned);
  const [lo, hi] = robustRange(sorted, display.clip, isSigned);
  const cut = thresholdCut(sorted, values.length, display.threshold);
  composite({ image, values, lut: display.lut, lo, hi, opacity, cut, signed: isSigned }, rgba);
  return { rgba, range: [lo, hi], values };
}

/** Σ of the finite values (a checksum the browser tests compare with the kernel's map). */
export function finiteSum(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) s += values[i];
  return s;
}

/** Put RGBA pixels into a canvas at the image's resolution (CSS scales it). */
export function paintCanvas(canvas: HTMLCanvasElement, width: number, height: number, rgba: Uint8ClampedArray): void {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.putImageData(new ImageData(rgba as Uint8ClampedArray<ArrayBuffer>, width, height), 0, 0);
}
