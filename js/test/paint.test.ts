import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { bytesOf } from "../src/codecs";
import {
  boxRect, maskRGBA, paintBox, paintStroke, screenToImage, segmentMeetsPixel, strokePixels, type Point,
} from "../src/paint/geometry";
import { decodeMask, encodeMask, PaintState } from "../src/paint/state";
import { agreementItems, formatMetric } from "../src/paint/agreement";
import { zoomAt, panBy, resetView, transformOf, type Size } from "../src/viewport";

const size = (width: number, height: number): Size => ({ width, height });
const painted = (mask: Uint8Array, s: Size) => {
  const out: [number, number][] = [];
  for (let k = 0; k < mask.length; k++) if (mask[k]) out.push([k % s.width, Math.floor(k / s.width)]);
  return out;
};
const centre = (x: number, y: number): Point => ({ x: x + 0.5, y: y + 0.5 });

describe("brush rasterization at the model's input resolution", () => {
  const s = size(16, 12);
  it("a click with a 1-pixel brush paints exactly the pixel under it", () => {
    const m = new Uint8Array(16 * 12);
    expect(paintStroke(m, s, { x: 5.3, y: 7.8 }, { x: 5.3, y: 7.8 }, 1, 1)).toBe(1);
    expect(painted(m, s)).toEqual([[5, 7]]);
  });
  it("a click paints the pixels whose centres lie within the brush's radius", () => {
    const m = new Uint8Array(16 * 12);
    paintStroke(m, s, centre(8, 6), centre(8, 6), 3, 1); // radius 1.5: the 3 × 3 block (corners at √2)
    expect(painted(m, s).length).toBe(9);
    const m5 = new Uint8Array(16 * 12);
    paintStroke(m5, s, centre(8, 6), centre(8, 6), 5, 1); // radius 2.5: 5 × 5 less the 4 corners (√8)
    expect(painted(m5, s).length).toBe(21);
    expect(m5[4 * 16 + 6]).toBe(0); // corner (6, 4): distance √8 > 2.5
    expect(m5[4 * 16 + 7]).toBe(1); // (7, 4): distance √5 ≤ 2.5
  });
  it("equals an independent brute-force rasterization for random strokes and sizes", () => {
    let seed = 1;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let trial = 0; trial < 200; trial++) {
      const a = { x: rnd() * 20 - 2, y: rnd() * 16 - 2 };
      const b = { x: rnd() * 20 - 2, y: rnd() * 16 - 2 };
      const d = 1 + Math.floor(rnd() * 6);
      const got = new Set<number>();
      strokePixels(a, b, d, s, (k) => got.add(k));
      // reference: dense sampling of the segment (pixels it passes through) plus centre distances
      const want = new Set<number>();
      for (let j = 0; j < s.height; j++) {
        for (let i = 0; i < s.width; i++) {
          const px = i + 0.5, py = j + 0.5;
          const dx = b.x - a.x, dy = b.y - a.y;
          const t = Math.max(0, Math.min(1, ((px - a.x) * dx + (py - a.y) * dy) / (dx * dx + dy * dy || 1)));
          const dist = Math.hypot(a.x + t * dx - px, a.y + t * dy - py);
          let through = false;
          for (let k = 0; k <= 2000 && !through; k++) {
            const x = a.x + (k / 2000) * dx, y = a.y + (k / 2000) * dy;
            through = x > i && x < i + 1 && y > j && y < j + 1;
          }
          if (dist <= d / 2 || through) want.add(j * s.width + i);
        }
      }
      // sampling misses only segments that graze a pixel, which the exact test includes
      for (const k of want) expect(got.has(k)).toBe(true);
      for (const k of got) {
        if (!want.has(k)) {
          const i = k % s.width, j = Math.floor(k / s.width);
          expect(segmentMeetsPixel(a, b, i, j)).toBe(true);
        }
      }
    }
  });
  it("a fast drag with a 1-pixel brush leaves no gap (8-connected line)", () => {
    const m = new Uint8Array(16 * 12);
    paintStroke(m, s, { x: 0.2, y: 0.7 }, { x: 15.6, y: 11.1 }, 1, 1);
    const px = painted(m, s);
    for (let x = 0; x < 16; x++) expect(px.some(([i]) => i === x)).toBe(true);
    for (let y = 0; y < 12; y++) expect(px.some(([, j]) => j === y)).toBe(true);
  });
  it("clips at the image's edges and erases with value 0", () => {
    const m = new Uint8Array(16 * 12);
    paintStroke(m, s, { x: -5, y: -5 }, { x: 0.5, y: 0.5 }, 3, 1);
    expect(painted(m, s)).toEqual([[0, 0], [1, 0], [0, 1], [1, 1]]);
    expect(paintStroke(m, s, { x: -3, y: -3 }, { x: -2, y: -2 }, 1, 1)).toBe(0); // outside: nothing
    expect(paintStroke(m, s, centre(0, 0), centre(0, 0), 1, 0)).toBe(1);
    expect(painted(m, s)).toEqual([[1, 0], [0, 1], [1, 1]]);
  });
});

describe("box", () => {
  const s = size(10, 8);
  it("covers every pixel the dragged rectangle touches, corners' pixels included, either direction", () => {
    expect(boxRect({ x: 7.9, y: 6.2 }, { x: 2.1, y: 1.5 }, s)).toEqual({ x0: 2, y0: 1, x1: 7, y1: 6 });
    const m = new Uint8Array(80);
    expect(paintBox(m, s, { x: 2.1, y: 1.5 }, { x: 7.9, y: 6.2 }, 1)).toBe(6 * 6);
    expect(paintBox(m, s, { x: -4, y: -4 }, { x: 30, y: 0.5 }, 1)).toBe(10); // clipped: row 0
    expect(boxRect({ x: -4, y: -4 }, { x: -1, y: -1 }, s)).toBeNull();
  });
});

describe("screen → model-input pixels under zoom and pan", () => {
  const image = size(64, 48);
  const view = size(300, 225);
  it("lands on the pixel drawn under the pointer at any zoom and pan", () => {
    let state = resetView(image);
    state = zoomAt(state, 4, 120, 80, view, image);
    state = panBy(state, -37, 22, view, image);
    const { scale, tx, ty } = transformOf(state, view, image);
    // the screen point at the centre of pixel (20, 13) as drawn
    const sx = (20 + 0.5) * scale + tx;
    const sy = (13 + 0.5) * scale + ty;
    const p = screenToImage(state, sx, sy, view, image);
    expect(p.x).toBeCloseTo(20.5, 9);
    expect(p.y).toBeCloseTo(13.5, 9);
    const m = new Uint8Array(64 * 48);
    paintStroke(m, image, p, p, 1, 1);
    expect(painted(m, image)).toEqual([[20, 13]]);
    // a brush of 5 model pixels covers 5 model pixels whatever the zoom: the same 21 pixels
    const z = new Uint8Array(64 * 48);
    paintStroke(z, image, p, p, 5, 1);
    expect(painted(z, image).length).toBe(21);
  });
});

describe("mask payloads", () => {
  const s = size(5, 3);
  it("encode: 0/1 bytes in a copy, shape (H, W); decode: a fresh 0/1 array, respecting byteOffset", () => {
    const m = new Uint8Array(15);
    m[3] = 1;
    const p = encodeMask(m, s);
    m[4] = 1; // a later stroke does not change what was sent
    expect(p.dtype).toBe("uint8");
    expect(p.shape).toEqual([3, 5]);
    expect([...bytesOf(p.view)]).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const big = new Uint8Array(40);
    big.set([0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7], 10);
    const back = decodeMask({ view: new DataView(big.buffer, 10, 15), dtype: "uint8", shape: [3, 5] }, s)!;
    expect([...back]).toEqual([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(decodeMask(null, s)).toBeNull();
    expect(decodeMask({ view: new DataView(new ArrayBuffer(15)), dtype: "uint8", shape: [5, 3] }, s)).toBeNull();
  });
});

describe("paint state", () => {
  const s = size(20, 10);
  let sent: (Uint8Array | null)[];
  let redraws: number;
  let state: PaintState;
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    redraws = 0;
    state = new PaintState(s, { send: (m) => sent.push(m && m.slice()), redraw: () => redraws++ }, 100);
  });
  afterEach(() => vi.useRealTimers());

  it("does not take a drag unless pressed (the panel pans)", () => {
    expect(state.begin(centre(1, 1))).toBe(false);
    expect(state.current).toBeNull();
  });
  it("paints along a stroke, sends at most one mask per interval while it goes on, and the last at its end", () => {
    state.setPressed(true);
    state.size = 1;
    expect(state.begin(centre(1, 1))).toBe(true);
    state.move(centre(5, 1));
    state.move(centre(9, 1));
    expect(sent.length).toBe(0);
    vi.advanceTimersByTime(100);
    expect(sent.length).toBe(1); // live during the stroke
    expect(painted(sent[0]!, s).length).toBe(9);
    state.move(centre(12, 1));
    state.end();
    expect(sent.length).toBe(2); // the stroke's end is sent at once
    expect(painted(sent[1]!, s).map(([x]) => x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    vi.advanceTimersByTime(500);
    expect(sent.length).toBe(2); // nothing pending
    expect(redraws).toBeGreaterThan(3);
  });
  it("box paints on release only (a preview while dragging); eraser clears", () => {
    state.setPressed(true);
    state.tool = "box";
    state.begin({ x: 2.2, y: 2.2 });
    state.move({ x: 5.5, y: 4.5 });
    expect(state.preview).toEqual({ x0: 2, y0: 2, x1: 5, y1: 4 });
    expect(state.current).toBeNull();
    state.end();
    expect(painted(state.current!, s).length).toBe(12);
    expect(sent.length).toBe(1);
    state.tool = "eraser";
    state.size = 1;
    state.begin(centre(2, 2));
    state.move(centre(5, 2));
    state.end();
    expect(painted(state.current!, s).length).toBe(8);
    state.clear();
    expect(sent[sent.length - 1]).toBeNull();
    expect(state.current).toBeNull();
  });
  it("takes masks from Python (no resend), ignores the echo of its own", () => {
    const m = new Uint8Array(200);
    m[42] = 1;
    const v0 = state.version;
    state.fromModel(encodeMask(m, s));
    expect(state.current![42]).toBe(1);
    expect(state.version).toBe(v0 + 1);
    state.fromModel(encodeMask(m, s)); // the same mask again: nothing changes
    expect(state.version).toBe(v0 + 1);
    expect(sent.length).toBe(0);
    state.fromModel(null);
    expect(state.current).toBeNull();
  });
  it("releasing the toggle mid-stroke finishes the stroke", () => {
    state.setPressed(true);
    state.begin(centre(1, 1));
    state.setPressed(false);
    expect(state.painting).toBe(false);
    expect(sent.length).toBe(1);
  });
});

describe("mask overlay pixels", () => {
  it("fills painted pixels and marks those that touch an unpainted one as edge", () => {
    const s = size(5, 5);
    const m = new Uint8Array(25);
    for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) m[y * 5 + x] = 1;
    const rgba = maskRGBA(m, s, [1, 2, 3, 4], [9, 9, 9, 255]);
    expect([...rgba.subarray(4 * 12, 4 * 12 + 4)]).toEqual([1, 2, 3, 4]); // the centre: fill
    expect([...rgba.subarray(4 * 6, 4 * 6 + 4)]).toEqual([9, 9, 9, 255]); // a corner: edge
    expect([...rgba.subarray(0, 4)]).toEqual([0, 0, 0, 0]); // unpainted: transparent
  });
});

describe("agreement line", () => {
  it("shows hit/miss, two decimals, and — where undefined; nothing without a mask", () => {
    expect(formatMetric("pointing_game", 1)).toBe("hit");
    expect(formatMetric("pointing_game", 0)).toBe("miss");
    expect(formatMetric("relevance_mass", 0.1234)).toBe("0.12");
    expect(formatMetric("top_k_iou", null)).toBe("—");
    expect(agreementItems(undefined)).toBeNull();
    const items = agreementItems({ pointing_game: 1, relevance_mass: 0.5, relevance_rank: null, top_k_iou: 0.25 })!;
    expect(items.map((i) => i.text)).toEqual(["hit", "0.50", "—", "0.25"]);
  });
});
