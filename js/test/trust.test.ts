import { describe, expect, it } from "vitest";
import type { Badge } from "../src/model";
import { bounds, extent, linePath, scrubIndex, stepAt, xPixel, yPixel } from "../src/trust/chart";
import { arrow, badgeTitle, beats, formatMetric, printedTolerance, rankText } from "../src/trust/format";
import { finiteSum } from "../src/trust/paint";
import { completenessWords, frameWords } from "../src/trust/pathView";
import { movedAt, scrubPixels } from "../src/trust/scrub";

describe("badge numbers", () => {
  it("prints 3 significant digits, exponents for very large or small values", () => {
    expect(formatMetric(0.123456)).toBe("0.123");
    expect(formatMetric(4.2149)).toBe("4.21");
    expect(formatMetric(-12.345)).toBe("-12.3");
    expect(formatMetric(1234.5)).toBe("1.23e+3");
    expect(formatMetric(0.5)).toBe("0.500");
    expect(formatMetric(123456)).toBe("1.23e+5");
    expect(formatMetric(0.00012345)).toBe("1.23e-4");
    expect(formatMetric(0)).toBe("0");
    expect(formatMetric(null)).toBe("…");
  });
  it("knows how far a printed number may be from the value", () => {
    expect(printedTolerance("0.123")).toBeCloseTo(0.0005, 12);
    expect(printedTolerance("123")).toBeCloseTo(0.5, 12);
    expect(printedTolerance("0.500")).toBeCloseTo(0.0005, 12);
    expect(printedTolerance("1.23e+5")).toBeCloseTo(500, 9);
    expect(printedTolerance("1.23e-4")).toBeCloseTo(5e-7, 15);
    for (const v of [0.123456, 4.2149, -12.345, 123456, 0.00012345, 7.77777]) {
      const text = formatMetric(v);
      expect(Math.abs(Number(text) - v)).toBeLessThanOrEqual(printedTolerance(text) * (1 + 1e-9));
    }
  });
  it("says the direction, the rank and whether a trivial map is beaten", () => {
    expect(arrow(true)).toBe("↑");
    expect(arrow(false)).toBe("↓");
    expect(rankText({ rank: 1, of: 3 })).toBe("#1/3");
    expect(rankText({ rank: 1, of: 1 })).toBe(""); // alone: no rank
    expect(rankText({ rank: null, of: 3 })).toBe("");
    expect(beats(0.2, 0.5, false)).toBe(true); // lower is better
    expect(beats(0.2, 0.5, true)).toBe(false);
    expect(beats(0.2, null, true)).toBeNull();
  });
  it("explains itself on hover: what, parameters, trivial maps, rank", () => {
    const b: Badge = {
      metric: "deletion", label: "Deletion AUC", family: "faithfulness", higher_is_better: false,
      doc: "Area under the objective as the most relevant pixels are deleted first.", state: "ready",
      error: "", value: 0.5, undefined: false, rank: 2, of: 3, params: [["steps", "24"], ["baseline", "black"]],
      random: 0.81234, edge: 0.7,
    };
    const text = badgeTitle(b);
    expect(text).toContain("lower is better");
    expect(text).toContain("steps=24, baseline=black");
    expect(text).toContain("random 0.812, edge (Sobel) 0.700");
    expect(text).toContain("Rank 2 of 3");
  });
});

describe("chart maths", () => {
  const box = { width: 110, height: 60, pad: 5 };
  it("shares one y range over every series, padded, ignoring non-finite values", () => {
    expect(bounds([[1, 2], [NaN, -3, Infinity]])).toEqual([-3, 2]);
    const [lo, hi] = extent([[1, 2], [-3]]);
    expect(lo).toBeCloseTo(-3.25, 12);
    expect(hi).toBeCloseTo(2.25, 12);
    expect(extent([[4, 4]])).toEqual([3.5, 4.5]);
    expect(extent([])).toEqual([-0.05, 1.05]);
  });
  it("maps values to pixels inside the padding, y upwards", () => {
    expect(xPixel(0, [0, 1], box)).toBe(5);
    expect(xPixel(1, [0, 1], box)).toBe(105);
    expect(yPixel(0, [0, 1], box)).toBe(55);
    expect(yPixel(1, [0, 1], box)).toBe(5);
    expect(linePath([0, 0.5, 1], [0, NaN, 1], [0, 1], [0, 1], box)).toBe("M5.0 55.0 M105.0 5.0");
    expect(linePath([0, 0.5, 1], [0, 0.5, 1], [0, 1], [0, 1], box)).toBe("M5.0 55.0 L55.0 30.0 L105.0 5.0");
  });
  it("finds the step under the pointer and clamps the scrub position", () => {
    const xs = [0, 0.25, 0.5, 0.75, 1];
    expect(stepAt(5, xs, [0, 1], box)).toBe(0);
    expect(stepAt(60, xs, [0, 1], box)).toBe(2); // 55 is x = 0.5
    expect(stepAt(1000, xs, [0, 1], box)).toBe(4);
    expect(scrubIndex("3", 25)).toBe(3);
    expect(scrubIndex(99, 25)).toBe(24);
    expect(scrubIndex(-2, 25)).toBe(0);
    expect(scrubIndex("2.6", 25)).toBe(3);
    expect(scrubIndex("x", 25)).toBe(0);
  });
});

describe("scrubbing a deletion / insertion curve", () => {
  // 2×2 image; ranks: pixel 2 goes first, then 0, 3, 1
  const image = new Uint8Array([10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]);
  const substrate = new Uint8Array(12).fill(0);
  const ranks = new Int32Array([1, 3, 0, 2]);
  it("moves exactly the pixels ranked below the step's count", () => {
    expect(Array.from(scrubPixels(image, substrate, ranks, 0, false))).toEqual(Array.from(image));
    expect(Array.from(scrubPixels(image, substrate, ranks, 1, false))).toEqual([10, 10, 10, 20, 20, 20, 0, 0, 0, 40, 40, 40]);
    expect(Array.from(scrubPixels(image, substrate, ranks, 2, false))).toEqual([0, 0, 0, 20, 20, 20, 0, 0, 0, 40, 40, 40]);
    expect(Array.from(scrubPixels(image, substrate, ranks, 4, false))).toEqual(Array.from(substrate));
  });
  it("insertion starts from the substrate and brings the image in, in the same order", () => {
    expect(Array.from(scrubPixels(image, substrate, ranks, 0, true))).toEqual(Array.from(substrate));
    expect(Array.from(scrubPixels(image, substrate, ranks, 1, true))).toEqual([0, 0, 0, 0, 0, 0, 30, 30, 30, 0, 0, 0]);
    expect(Array.from(scrubPixels(image, substrate, ranks, 4, true))).toEqual(Array.from(image));
  });
  it("reports the moved count and fraction at a step (clamped)", () => {
    const counts = new Int32Array([0, 1, 2, 3, 4]);
    expect(movedAt(counts, 2, 4)).toEqual({ count: 2, fraction: 0.5 });
    expect(movedAt(counts, 9, 4)).toEqual({ count: 4, fraction: 1 });
  });
});

describe("path view words", () => {
  it("describes an IG node and the completeness check", () => {
    const info = { method: "integrated_gradients", steps: 32, total: 2.6352, gap: 0.0013, relative_gap: 0.0005,
      change: 2.6339, params: [["steps", "32"], ["rule", "gauss_legendre"], ["baseline", "black"]] as [string, string][] };
    const words = frameWords(info, { index: 16, position: 0.53123, weight: 0.0481, score: 1.23, running_total: 0.84 });
    expect(words).toContain("α = 0.531");
    expect(words).toContain("node 17 of 32");
    expect(completenessWords(info)).toContain("completeness gap 0.00130 (relative 5.00e-4) with steps=32, rule=gauss_legendre");
    expect(completenessWords({ method: "smoothgrad" })).toBe("");
  });
  it("describes an occlusion window", () => {
    const words = frameWords({ method: "occlusion", steps: 9 }, { index: 4, window: [3, 3, 4, 4], score: 1.5, step_total: 8 });
    expect(words).toContain("window 5 of 9 at (y 3, x 3), 4 × 4 px");
    expect(words).toContain("drop 0.500");
  });
  it("sums finite values only (the tests' checksum)", () => {
    expect(finiteSum([1, NaN, 2.5, Infinity])).toBe(3.5);
  });
});
