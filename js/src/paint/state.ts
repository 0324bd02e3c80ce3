// Paint mode as a state machine, DOM-free: the local mask, the tool, the gesture in progress, and
// the debounced hand-over of the mask to Python. The panels call begin/move/end with image
// coordinates (see geometry.ts); the drawing over the panels lives in overlay.ts.
import type { ArrayPayload } from "../model";
import { bytesOf } from "../codecs";
import type { Size } from "../viewport";
import { anyPainted, boxRect, paintBox, paintStroke, type PixelRect, type Point, type Tool } from "./geometry";

export interface PaintIO {
  /** Send the mask to Python (null: no mask). */
  send(mask: Uint8Array | null): void;
  /** Something to draw changed (the mask, the box preview, the mode). */
  redraw(): void;
}

/** The trait's wire form: 0/1 bytes, exactly as Python sends them back (so no echo differs). */
export function encodeMask(mask: Uint8Array, size: Size): ArrayPayload {
  const copy = mask.slice(); // later strokes must not change what was sent
  return { view: new DataView(copy.buffer), dtype: "uint8", shape: [size.height, size.width] };
}

/** A mask payload from Python as a fresh 0/1 array, or null (no mask, or not this image's size). */
export function decodeMask(payload: ArrayPayload | null | undefined, size: Size): Uint8Array | null {
  if (!payload || typeof payload !== "object" || !("view" in payload) || !payload.view) return null;
  const [h, w] = payload.shape ?? [];
  if (payload.dtype !== "uint8" || h !== size.height || w !== size.width) return null;
  const bytes = bytesOf(payload.view);
  if (bytes.length !== h * w) return null;
  const out = new Uint8Array(h * w);
  for (let k = 0; k < out.length; k++) out[k] = bytes[k] ? 1 : 0;
  return out;
}

function sameMask(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

type Gesture = { tool: Tool; start: Point; last: Point } | null;

export class PaintState {
  /** While true, a drag on a panel paints instead of panning. */
  pressed = false;
  tool: Tool = "brush";
  /** Brush diameter in model-input pixels (the brush_size trait). */
  size = 8;
  private mask: Uint8Array | null = null;
  private gesture: Gesture = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private unsent = false;
  /** Bumped whenever the mask changes (the overlay re-renders it once per change). */
  version = 0;

  constructor(
    readonly image: Size,
    private readonly io: PaintIO,
    /** ms between two masks sent while a stroke goes on */
    readonly debounce = 120,
  ) {}

  get current(): Uint8Array | null {
    return this.mask;
  }

  /** The box being dragged (for the preview), in pixels. */
  get preview(): PixelRect | null {
    const g = this.gesture;
    return g && g.tool === "box" ? boxRect(g.start, g.last, this.image) : null;
  }

  get painting(): boolean {
    return this.gesture !== null;
  }

  /** The mask Python holds changed (set from Python, loaded, or the echo of ours). */
  fromModel(payload: ArrayPayload | null | undefined): void {
    const next = decodeMask(payload, this.image);
    if (sameMask(next, this.mask)) return;
    this.mask = next;
    this.version++;
    this.io.redraw();
  }

  setPressed(on: boolean): void {
    this.pressed = on;
    if (!on) this.cancelGesture();
    this.io.redraw();
  }

  /** A press on a panel: true when paint mode takes the drag. */
  begin(at: Point): boolean {
    if (!this.pressed) return false;
    this.gesture = { tool: this.tool, start: at, last: at };
    if (this.tool !== "box") this.stroke(at, at);
    this.io.redraw();
    return true;
  }

  move(at: Point): void {
    const g = this.gesture;
    if (!g) return;
    if (g.tool !== "box") this.stroke(g.last, at);
    g.last = at;
    this.io.redraw();
  }

  end(): void {
    const g = this.gesture;
    if (!g) return;
    this.gesture = null;
    if (g.tool === "box") {
      const mask = this.ensure();
      if (paintBox(mask, this.image, g.start, g.last, 1)) this.changed();
    }
    this.flush(); // the stroke is over: Python gets it now, not after the debounce
    this.io.redraw();
  }

  cancelGesture(): void {
    if (this.gesture) this.end();
  }

  /** Remove the mask (Python's expert_mask becomes None). */
  clear(): void {
    this.gesture = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.unsent = false;
    if (this.mask !== null) {
      this.mask = null;
      this.version++;
    }
    this.io.send(null);
    this.io.redraw();
  }

  /** Send pending edits now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.unsent) return;
    this.unsent = false;
    this.io.send(this.mask);
  }

  dispose(): void {
    this.flush();
  }

  private ensure(): Uint8Array {
    if (this.mask === null) this.mask = new Uint8Array(this.image.width * this.image.height);
    return this.mask;
  }

  private stroke(a: Point, b: Point): void {
    const erase = this.tool === "eraser";
    if (erase && this.mask === null) return; // nothing to erase
    if (paintStroke(this.ensure(), this.image, a, b, this.size, erase ? 0 : 1)) this.changed();
  }

  private changed(): void {
    this.version++;
    this.unsent = true;
    // coalesced: during a long stroke at most one mask per `debounce` ms goes to Python (so the
    // agreement follows the brush), never one per pointer event
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.debounce);
  }

  /** Whether any pixel is painted (an all-erased mask is still a mask: it is sent as it is). */
  get empty(): boolean {
    return this.mask === null || !anyPainted(this.mask);
  }
}
