// Zoom and pan as pure maths. The view is shared by every panel (linked), lives in JS only,
// and is never synced to Python.

/** Zoom 1 fits the whole image; (cx, cy) is the image point at the centre of the view. */
export interface ViewState {
  zoom: number;
  cx: number;
  cy: number;
}

export interface Size {
  width: number;
  height: number;
}

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 64;

export function resetView(image: Size): ViewState {
  return { zoom: 1, cx: image.width / 2, cy: image.height / 2 };
}

/** Screen pixels per image pixel at zoom 1 (the whole image fits the view). */
export function fitScale(view: Size, image: Size): number {
  return Math.min(view.width / image.width, view.height / image.height);
}

export function scaleOf(state: ViewState, view: Size, image: Size): number {
  return fitScale(view, image) * state.zoom;
}

/** The affine map image → screen: screen = image * scale + (tx, ty). */
export function transformOf(state: ViewState, view: Size, image: Size) {
  const scale = scaleOf(state, view, image);
  return { scale, tx: view.width / 2 - state.cx * scale, ty: view.height / 2 - state.cy * scale };
}

/** The image coordinates (continuous) under a screen point. */
export function toImage(state: ViewState, sx: number, sy: number, view: Size, image: Size) {
  const { scale, tx, ty } = transformOf(state, view, image);
  return { x: (sx - tx) / scale, y: (sy - ty) / scale };
}

/** The image pixel under a screen point, or null outside the image. */
export function pixelAt(state: ViewState, sx: number, sy: number, view: Size, image: Size) {
  const p = toImage(state, sx, sy, view, image);
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return null;
  return { x, y };
}

/** Keep the centre on the image, so the image can never be panned out of sight. */
export function clampView(state: ViewState, image: Size): ViewState {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, state.zoom));
  if (zoom === MIN_ZOOM) return resetView(image);
  return {
    zoom,
    cx: Math.min(image.width, Math.max(0, state.cx)),
    cy: Math.min(image.height, Math.max(0, state.cy)),
  };
}

/** Zoom by `factor`, keeping the image point under the screen point (sx, sy) fixed. */
export function zoomAt(state: ViewState, factor: number, sx: number, sy: number, view: Size, image: Size): ViewState {
  const anchor = toImage(state, sx, sy, view, image);
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, state.zoom * factor));
  const scale = fitScale(view, image) * zoom;
  const next = {
    zoom,
    cx: anchor.x - (sx - view.width / 2) / scale,
    cy: anchor.y - (sy - view.height / 2) / scale,
  };
  return clampView(next, image);
}

/** Pan by a drag of (dx, dy) screen pixels: the image follows the pointer. */
export function panBy(state: ViewState, dx: number, dy: number, view: Size, image: Size): ViewState {
  const scale = scaleOf(state, view, image);
  return clampView({ zoom: state.zoom, cx: state.cx - dx / scale, cy: state.cy - dy / scale }, image);
}

/** The wheel's zoom factor: smooth for trackpads, one notch of a mouse wheel ≈ ×1.16. */
export function wheelFactor(deltaY: number, deltaMode = 0): number {
  const pixels = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return Math.exp(-pixels * 0.0015);
}
