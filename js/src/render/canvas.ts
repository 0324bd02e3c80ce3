// Drawing a composited panel into its on-screen canvas under the shared view.
import { transformOf, type Size, type ViewState } from "../viewport";

/** An offscreen canvas holding one panel's composite at the image's own resolution. */
export function imageCanvas(size: Size): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.width = size.width;
  c.height = size.height;
  return c;
}

export function putPixels(target: HTMLCanvasElement, size: Size, rgba: Uint8ClampedArray): void {
  if (target.width !== size.width || target.height !== size.height) {
    target.width = size.width;
    target.height = size.height;
  }
  const ctx = target.getContext("2d");
  if (!ctx) return;
  ctx.putImageData(new ImageData(rgba as Uint8ClampedArray<ArrayBuffer>, size.width, size.height), 0, 0);
}

/** Size the canvas backing store for the device pixel ratio; return the CSS size. */
export function fitBackingStore(canvas: HTMLCanvasElement, css: Size, dpr: number): void {
  const w = Math.round(css.width * dpr);
  const h = Math.round(css.height * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  canvas.style.width = `${css.width}px`;
  canvas.style.height = `${css.height}px`;
}

/** Draw `source` (image resolution) with nearest-neighbour sampling: crisp pixels when zoomed. */
export function drawView(
  canvas: HTMLCanvasElement,
  source: HTMLCanvasElement,
  state: ViewState,
  view: Size,
  image: Size,
  dpr: number,
  hover: { x: number; y: number } | null,
): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#f4f4f5";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const { scale, tx, ty } = transformOf(state, view, image);
  ctx.imageSmoothingEnabled = false;
  ctx.setTransform(scale * dpr, 0, 0, scale * dpr, tx * dpr, ty * dpr);
  ctx.drawImage(source, 0, 0);
  if (hover) {
    // outline the hovered pixel in every panel (1 screen pixel wide at any zoom)
    ctx.lineWidth = 1 / scale;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.strokeRect(hover.x, hover.y, 1, 1);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    const e = 1 / scale;
    ctx.strokeRect(hover.x - e, hover.y - e, 1 + 2 * e, 1 + 2 * e);
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
}
