import { describe, expect, it } from "vitest";
import { pageCount, rowShares, thumbnailPixels, withFilter } from "../src/explorer/logic";

describe("explorer paging and filters", () => {
  it("counts pages, at least one", () => {
    expect(pageCount(0, 24)).toBe(1);
    expect(pageCount(24, 24)).toBe(1);
    expect(pageCount(25, 24)).toBe(2);
    expect(pageCount(50000, 24)).toBe(2084);
  });
  it("sets, clears and keeps filter keys; a cell and label/pred exclude each other", () => {
    expect(withFilter({}, "correct", "wrong")).toEqual({ correct: "wrong" });
    expect(withFilter({ correct: "wrong", label: 2 }, "label", null)).toEqual({ correct: "wrong" });
    expect(withFilter({ label: 2, pred: 0 }, "cell", [1, 0])).toEqual({ cell: [1, 0] });
    expect(withFilter({ cell: [1, 0], group: "a" }, "pred", 3)).toEqual({ pred: 3, group: "a" });
    expect(withFilter({ cell: [1, 0] }, "cell", null)).toEqual({});
  });
  it("shades confusion cells by their share of the true class's row", () => {
    expect(rowShares([3, 1, 0, 0], 2)).toEqual([0.75, 0.25, 0, 0]);
  });
});

describe("thumbnails", () => {
  const lut = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) lut.set([i, 0, 255 - i, 255], i * 4);
  it("draws the i-th image of the page, with its map over it, and only that one", () => {
    const images = new Uint8Array([10, 10, 10, 20, 20, 20, /* image 1 */ 100, 100, 100, 200, 200, 200]);
    const maps = new Float32Array([0, 0, /* map 1 */ 1, -1]);
    const plain = thumbnailPixels(images, null, 1, 1, 2, lut, 0.6);
    expect(Array.from(plain)).toEqual([100, 100, 100, 255, 200, 200, 200, 255]);
    const over = thumbnailPixels(images, maps, 1, 1, 2, lut, 0.6);
    expect(over[0]).toBeGreaterThan(over[2]); // +1: the red end of this LUT
    expect(over[4]).toBeLessThan(over[6]); // −1: the blue end
  });
});
