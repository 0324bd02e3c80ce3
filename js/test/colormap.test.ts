import { describe, expect, it } from "vitest";
import { composite, displayValues, lutIndex, percentileSorted, robustRange, roundHalfEven, sortedFinite, thresholdCut } from "../src/render/colormap";

// A 256-entry LUT whose entry k is (k, 255 - k, 7, 255): the index is readable from the colour.
const lut = new Uint8Array(256 * 4);
for (let k = 0; k < 256; k++) lut.set([k, 255 - k, 7, 255], 4 * k);

describe("percentiles and ranges (numpy / render.robust_range semantics)", () => {
  it("interpolates linearly like numpy.percentile", () => {
    const s = new Float32Array([1, 2, 3, 4]);
    expect(percentileSorted(s, 50)).toBeCloseTo(2.5); // np.percentile([1,2,3,4], 50) == 2.5
    expect(percentileSorted(s, 99.5)).toBeCloseTo(3.985); // np.percentile(..., 99.5)
    expect(percentileSorted(s, 0)).toBe(1);
    expect(percentileSorted(s, 100)).toBe(4);
  });

  it("centres signed ranges on zero and ignores outliers", () => {
    const values = new Float32Array(1000).map((_, i) => (i % 2 ? -1 : 1) * (i / 1000));
    values[3] = -1000; // one outlier
    const [lo, hi] = robustRange(sortedFinite(values, true), 99, true);
    expect(lo).toBe(-hi);
    expect(hi).toBeLessThan(1.01);
    expect(hi).toBeGreaterThan(0.98);
  });

  it("unsigned ranges use both tails, with a fallback for flat maps", () => {
    const s = sortedFinite(new Float32Array([5, 1, 3, NaN, Infinity]));
    expect(Array.from(s)).toEqual([1, 3, 5]);
    expect(robustRange(s, 100, false)).toEqual([1, 5]);
    expect(robustRange(new Float32Array([0, 0]), 99, false)).toEqual([0, 1]);
    expect(robustRange(new Float32Array([0, 0]), 99, true)).toEqual([-1, 1]);
    expect(robustRange(new Float32Array([]), 99, true)).toEqual([-1, 1]);
  });
});

describe("display values", () => {
  const signed = new Float32Array([-2, 0, 3]);
  it("signed is the map, positive clips negatives, absolute prefers Python's Σ|·|", () => {
    expect(displayValues(signed, null, "signed")).toBe(signed);
    expect(Array.from(displayValues(signed, null, "positive"))).toEqual([0, 0, 3]);
    expect(Array.from(displayValues(signed, null, "absolute"))).toEqual([2, 0, 3]);
    const absSum = new Float32Array([4, 1, 3]);
    expect(displayValues(signed, absSum, "absolute")).toBe(absSum);
  });
});

describe("thresholding (top k %)", () => {
  const scores = sortedFinite(new Float32Array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]));
  it("keeps the top k % (Python's round-half-even count), ties included", () => {
    expect(thresholdCut(scores, 10, 30)).toEqual({ cut: 6, all: false });
    expect(thresholdCut(scores, 10, 25)).toEqual({ cut: 7, all: false }); // round(2.5) == 2
    expect(thresholdCut(scores, 10, 100)).toEqual({ cut: -Infinity, all: true });
    expect(thresholdCut(scores, 10, 1).cut).toBe(Infinity); // round(0.1) == 0: nothing
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(roundHalfEven(-2.5)).toBe(-2);
  });
});

describe("colormap application", () => {
  it("maps like matplotlib: floor(t * 256) clamped to 0…255", () => {
    expect(lutIndex(-1, -1, 1)).toBe(0);
    expect(lutIndex(1, -1, 1)).toBe(255); // t == 1 → last entry
    expect(lutIndex(0, -1, 1)).toBe(128);
    expect(lutIndex(5, -1, 1)).toBe(255);
    expect(lutIndex(-5, -1, 1)).toBe(0);
  });

  it("blends the coloured map over the image at the given opacity", () => {
    const image = new Uint8Array([100, 100, 100, 100, 100, 100]);
    const values = new Float32Array([1, -1]);
    const out = composite({ image, values, lut, lo: -1, hi: 1, opacity: 1, cut: { cut: -Infinity, all: true }, signed: true }, new Uint8ClampedArray(8));
    expect(Array.from(out)).toEqual([255, 0, 7, 255, 0, 255, 7, 255]);
    const half = composite({ image, values, lut, lo: -1, hi: 1, opacity: 0.5, cut: { cut: -Infinity, all: true }, signed: true }, new Uint8ClampedArray(8));
    expect(Array.from(half.subarray(0, 4))).toEqual([178, 50, 54, 255]); // (100+255)/2 rounds to even
  });

  it("leaves thresholded-out, NaN, and no-map pixels as the image", () => {
    const image = new Uint8Array([10, 20, 30, 40, 50, 60, 70, 80, 90]);
    const values = new Float32Array([0.9, 0.1, NaN]);
    const sorted = sortedFinite(values, true);
    const cut = thresholdCut(sorted, 3, 34); // round(1.02) = 1 pixel
    const out = composite({ image, values, lut, lo: -1, hi: 1, opacity: 1, cut, signed: true }, new Uint8ClampedArray(12));
    expect(Array.from(out.subarray(4, 12))).toEqual([40, 50, 60, 255, 70, 80, 90, 255]);
    expect(out[0]).toBe(lutIndex(0.9, -1, 1));
    const bare = composite({ image, values: null, lut, lo: 0, hi: 1, opacity: 1, cut, signed: true }, new Uint8ClampedArray(12));
    expect(Array.from(bare)).toEqual([10, 20, 30, 255, 40, 50, 60, 255, 70, 80, 90, 255]);
  });
});
