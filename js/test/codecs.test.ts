import { describe, expect, it } from "vitest";
import { bytesOf, decode } from "../src/codecs";

describe("decode", () => {
  it("reads a DataView that is a window on a larger buffer (byteOffset respected)", () => {
    const whole = new Float32Array([99, 1.5, -2, 3.25, 4, 98]);
    const view = new DataView(whole.buffer, 4, 16); // elements 1…4 only
    const out = decode({ view, dtype: "float32", shape: [2, 2] });
    expect(Array.from(out)).toEqual([1.5, -2, 3.25, 4]);
    expect(out.byteOffset).toBe(4); // zero-copy
  });

  it("copies when the offset is not aligned to the element size", () => {
    const bytes = new Uint8Array(1 + 8);
    new DataView(bytes.buffer).setFloat32(1, 0.5, true);
    new DataView(bytes.buffer).setFloat32(5, -7, true);
    const out = decode({ view: new DataView(bytes.buffer, 1, 8), dtype: "float32", shape: [2] });
    expect(Array.from(out)).toEqual([0.5, -7]);
  });

  it("decodes uint8 images and ArrayBuffers", () => {
    const raw = new Uint8Array([1, 2, 3, 4, 5, 6]);
    expect(Array.from(decode({ view: raw.buffer, dtype: "uint8", shape: [1, 2, 3] }))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(bytesOf(new Uint8Array(raw.buffer, 2, 3)))).toEqual([3, 4, 5]);
  });

  it("rejects a payload whose size does not match its shape, and unknown dtypes", () => {
    const view = new DataView(new ArrayBuffer(12));
    expect(() => decode({ view, dtype: "float32", shape: [2, 2] })).toThrow(/needs 16 bytes, got 12/);
    expect(() => decode({ view, dtype: "float64", shape: [1] })).toThrow(/unsupported dtype/);
  });
});
