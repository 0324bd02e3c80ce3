import { describe, expect, it } from "vitest";
import { clampView, fitScale, MAX_ZOOM, panBy, pixelAt, resetView, toImage, transformOf, wheelFactor, zoomAt } from "../src/viewport";

const image = { width: 224, height: 112 };
const view = { width: 300, height: 150 };

describe("viewport", () => {
  it("fits the image at zoom 1 and centres it", () => {
    const s = resetView(image);
    expect(fitScale(view, image)).toBeCloseTo(300 / 224);
    const { tx, ty } = transformOf(s, view, image);
    expect(tx).toBeCloseTo(0);
    expect(ty).toBeCloseTo(0);
    expect(pixelAt(s, 0, 0, view, image)).toEqual({ x: 0, y: 0 });
    expect(pixelAt(s, 299.9, 149.9, view, image)).toEqual({ x: 223, y: 111 });
    expect(pixelAt(s, -1, 10, view, image)).toBeNull();
  });

  it("keeps the image point under the cursor fixed while zooming", () => {
    const s0 = resetView(image);
    const before = toImage(s0, 200, 40, view, image);
    const s1 = zoomAt(s0, 3, 200, 40, view, image);
    expect(s1.zoom).toBe(3);
    const after = toImage(s1, 200, 40, view, image);
    expect(after.x).toBeCloseTo(before.x, 9);
    expect(after.y).toBeCloseTo(before.y, 9);
  });

  it("zooming in then out by the same factor at the same point is the identity", () => {
    const s0 = zoomAt(resetView(image), 2, 100, 100, view, image);
    const s1 = zoomAt(zoomAt(s0, 1.7, 30, 60, view, image), 1 / 1.7, 30, 60, view, image);
    expect(s1.zoom).toBeCloseTo(s0.zoom);
    expect(s1.cx).toBeCloseTo(s0.cx);
    expect(s1.cy).toBeCloseTo(s0.cy);
  });

  it("pans with the pointer and never loses the image", () => {
    const s = zoomAt(resetView(image), 4, 150, 75, view, image);
    const scale = fitScale(view, image) * 4;
    const p = panBy(s, 40, -20, view, image);
    expect(p.cx).toBeCloseTo(s.cx - 40 / scale);
    expect(p.cy).toBeCloseTo(s.cy + 20 / scale);
    const far = panBy(s, 1e6, 1e6, view, image);
    expect(far.cx).toBe(0);
    expect(far.cy).toBe(0);
  });

  it("clamps zoom to [1, MAX] and snaps back to the fitted view at zoom 1", () => {
    expect(zoomAt(resetView(image), 1e9, 0, 0, view, image).zoom).toBe(MAX_ZOOM);
    expect(clampView({ zoom: 0.2, cx: 5, cy: 5 }, image)).toEqual(resetView(image));
    expect(wheelFactor(-100)).toBeGreaterThan(1);
    expect(wheelFactor(100) * wheelFactor(-100)).toBeCloseTo(1);
    expect(wheelFactor(3, 1)).toBeCloseTo(wheelFactor(48, 0));
  });
});
