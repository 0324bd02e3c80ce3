// Drawing paint mode over every panel: the mask (filled in paint mode, outlined otherwise), the
// box being dragged, and the brush under the pointer, under the panels' shared view.
import { imageCanvas, putPixels } from "../render/canvas";
import { transformOf, type Size, type ViewState } from "../viewport";
import { maskRGBA } from "./geometry";
import type { PaintState } from "./state";

const FILL: [number, number, number, number] = [0, 220, 255, 90];
const EDGE: [number, number, number, number] = [0, 220, 255, 255];
const NONE: [number, number, number, number] = [0, 0, 0, 0];

export class PaintOverlay {
  private readonly filled: HTMLCanvasElement;
  private readonly outlined: HTMLCanvasElement;
  private drawn = -1;

  constructor(private readonly state: PaintState) {
    this.filled = imageCanvas(state.image);
    this.outlined = imageCanvas(state.image);
  }

  private refresh(): void {
    if (this.drawn === this.state.version) return;
    this.drawn = this.state.version;
    const mask = this.state.current;
    const size = this.state.image;
    const empty = new Uint8Array(size.width * size.height);
    putPixels(this.filled, size, maskRGBA(mask ?? empty, size, FILL, EDGE));
    putPixels(this.outlined, size, maskRGBA(mask ?? empty, size, NONE, EDGE));
  }

  drawOver(canvas: HTMLCanvasElement, view: ViewState, vsize: Size, image: Size, dpr: number, hover: { x: number; y: number } | null): void {
    const s = this.state;
    if (!s.pressed && s.current === null) return;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    this.refresh();
    const { scale, tx, ty } = transformOf(view, vsize, image);
    ctx.setTransform(scale * dpr, 0, 0, scale * dpr, tx * dpr, ty * dpr);
    ctx.imageSmoothingEnabled = false;
    if (s.current !== null) ctx.drawImage(s.pressed ? this.filled : this.outlined, 0, 0);
    if (s.pressed) {
      ctx.lineWidth = 1.5 / scale;
      ctx.strokeStyle = "rgba(0, 220, 255, 1)";
      const box = s.preview;
      if (box) ctx.strokeRect(box.x0, box.y0, box.x1 - box.x0 + 1, box.y1 - box.y0 + 1);
      if (hover && s.tool !== "box" && !s.painting) {
        ctx.setLineDash([3 / scale, 3 / scale]);
        ctx.beginPath();
        ctx.arc(hover.x + 0.5, hover.y + 0.5, Math.max(0.5, s.size / 2), 0, 2 * Math.PI);
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }
}
