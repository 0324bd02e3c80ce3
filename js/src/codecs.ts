// The one place where binary buffers from Python become typed arrays.
import type { ArrayPayload } from "./model";

const CTORS = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
} as const;

export type DType = keyof typeof CTORS;
export type TypedArray = InstanceType<(typeof CTORS)[DType]>;

/** The bytes of a DataView / ArrayBuffer / typed array, respecting its byteOffset and length. */
export function bytesOf(view: DataView | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (view instanceof ArrayBuffer) return new Uint8Array(view);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Decode a `{view, dtype, shape}` payload into a typed array of prod(shape) elements. */
export function decode(payload: ArrayPayload): TypedArray {
  const Ctor = CTORS[payload.dtype as DType];
  if (!Ctor) throw new Error(`unsupported dtype ${payload.dtype}`);
  const bytes = bytesOf(payload.view);
  const n = payload.shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== n * Ctor.BYTES_PER_ELEMENT) {
    throw new Error(
      `payload of shape [${payload.shape}] ${payload.dtype} needs ${n * Ctor.BYTES_PER_ELEMENT} bytes, got ${bytes.byteLength}`,
    );
  }
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) {
    return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  }
  // A view at an unaligned offset cannot back a Float32Array etc.: copy it once.
  return new Ctor(bytes.slice().buffer as ArrayBuffer, 0, n);
}
