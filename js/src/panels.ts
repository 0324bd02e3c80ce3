// One panel per selected method: title, timing, room for metric badges, a canvas and a readout.
// Panels share one view (zoom/pan) and one hover position: they stay linked.
import { decode } from "./codecs";
import { h, on } from "./dom";
import {
  childModels, PANEL_KEYS, readPanel, type ArrayPayload, type ChildModel, type Panel, type Sign, type WidgetModel,
} from "./model";
import { drawView, fitBackingStore, imageCanvas, putPixels } from "./render/canvas";
import { composite, displayValues, robustRange, sortedFinite, thresholdCut } from "./render/colormap";
import type { Store } from "./store";
import { panBy, pixelAt, resetView, toImage, wheelFactor, zoomAt, type Size, type ViewState } from "./viewport";

export type Hover = { x: number; y: number } | null;

/** Something that can take a drag on any panel instead of the pan (paint mode, paint/), and
 *  draw over every panel. Points are continuous image coordinates (viewport.toImage). */
export interface PanelTool {
  /** Whether the tool takes drags now (a double-click then does not reset the view either). */
  active(): boolean;
  /** A press: true when the tool takes this drag instead of a pan. */
  begin(at: { x: number; y: number }): boolean;
  move(at: { x: number; y: number }): void;
  end(): void;
  /** Draw over a panel's canvas after its picture, under the same view. */
  drawOver(canvas: HTMLCanvasElement, state: ViewState, view: Size, image: Size, dpr: number, hover: Hover): void;
}

export interface Scene {
  image: Uint8Array; // H·W·3
  size: Size;
  view: Size; // CSS size of every panel's canvas
}

export interface Display {
  lut: Uint8Array; // 256·4
  opacity: number;
  sign: Sign;
  clip: number;
  threshold: number;
}

interface Derived {
  id: string;
  signed: Float32Array;
  absolute: Float32Array | null;
  bySign: Map<Sign, { values: Float32Array; sorted: Float32Array }>;
}

/** A map payload, not null (nor the empty object some front ends keep for a None trait). */
function isPayload(p: unknown): p is ArrayPayload {
  return !!p && typeof p === "object" && "dtype" in p && "view" in p;
}

/** The CSS size of the panels' canvases for an image (all panels share it). */
export function viewSize(image: Size, width = 300): Size {
  const height = Math.round((width * image.height) / image.width);
  return { width, height: Math.max(120, Math.min(450, height)) };
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
}

/** A CSS gradient through 17 entries of a lookup table (the colour bar under each panel). */
export function cssGradient(lut: Uint8Array): string {
  const stops: string[] = [];
  for (let i = 0; i <= 16; i++) {
    const k = 4 * Math.min(255, i * 16);
    stops.push(`rgb(${lut[k]}, ${lut[k + 1]}, ${lut[k + 2]}) ${(i / 16) * 100}%`);
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/** A feature drawn inside each panel (the trust views' badges and curve): told about every
 *  update of the panel, destroyed with it. */
export interface PanelAddon {
  update(panel: Panel): void;
  destroy(): void;
}

export class PanelView {
  readonly root: HTMLDivElement;
  /** The badge slot under the title, and a slot under the readout, for addons. */
  readonly badges: HTMLDivElement;
  readonly extras: HTMLDivElement;
  readonly addons: PanelAddon[] = [];
  /** An RGB image shown instead of the map (a deletion step while scrubbing); null: the map. */
  private override: Uint8Array | null = null;
  readonly canvas: HTMLCanvasElement;
  private readonly title: HTMLDivElement;
  private readonly objective: HTMLDivElement;
  private readonly timing: HTMLSpanElement;
  private readonly note: HTMLDivElement;
  private readonly readout: HTMLDivElement;
  private readonly colorbar: HTMLDivElement;
  private readonly colorbarRow: HTMLDivElement;
  private readonly rangeLo: HTMLSpanElement;
  private readonly rangeHi: HTMLSpanElement;
  private readonly source: HTMLCanvasElement;
  private readonly cleanups: (() => void)[] = [];
  private derived: Derived | null = null;
  private shown: Float32Array | null = null;
  panel: Panel | null = null;
  dirty = true;

  constructor(
    readonly method: string,
    private readonly scene: Scene,
    view: Store<ViewState>,
    hover: Store<Hover>,
    onRetry: () => void,
    private readonly tool: PanelTool | null = null,
  ) {
    this.canvas = h("canvas", { class: "sw-canvas", tabindex: 0, "aria-label": `${method} heatmap` });
    this.title = h("div", { class: "sw-panel-title" });
    this.objective = h("div", { class: "sw-panel-objective", "data-testid": "objective" });
    this.timing = h("span", { class: "sw-panel-timing" });
    this.note = h("div", { class: "sw-panel-note", "data-testid": "panel-note" });
    this.readout = h("div", { class: "sw-readout", "data-testid": "readout" });
    this.colorbar = h("div", { class: "sw-colorbar", "data-testid": "colorbar" }); // not a canvas: one canvas per panel
    this.rangeLo = h("span", { class: "sw-range" });
    this.rangeHi = h("span", { class: "sw-range" });
    this.colorbarRow = h("div", { class: "sw-colorbar-row" }, this.rangeLo, this.colorbar, this.rangeHi);
    const retry = h("button", { class: "sw-button sw-retry", type: "button", "data-testid": "retry", text: "retry" });
    this.note.append(h("span", { class: "sw-note-text" }), retry);
    this.badges = h("div", { class: "sw-badges", "data-testid": "badges" });
    this.extras = h("div", { class: "sw-panel-extras" });
    this.root = h(
      "div",
      { class: "sw-panel", "data-testid": "panel", "data-method": method },
      h("div", { class: "sw-panel-head" }, this.title, this.timing),
      this.objective,
      this.badges,
      h("div", { class: "sw-canvas-wrap" }, this.canvas, this.note),
      this.colorbarRow,
      this.readout,
      this.extras,
    );
    this.source = imageCanvas(scene.size);
    fitBackingStore(this.canvas, scene.view, window.devicePixelRatio || 1);
    this.listen(view, hover, onRetry, retry);
  }

  private listen(view: Store<ViewState>, hover: Store<Hover>, onRetry: () => void, retry: HTMLButtonElement) {
    const c = this.canvas;
    const { size, view: vsize } = this.scene;
    let drag: { x: number; y: number; id: number } | null = null;
    let tooling: number | null = null; // the pointer whose drag the tool took
    const tool = this.tool;
    this.cleanups.push(
      on(retry, "click", onRetry),
      on(
        c,
        "wheel",
        (e) => {
          e.preventDefault(); // zoom the panels, not the notebook
          view.set(zoomAt(view.get(), wheelFactor(e.deltaY, e.deltaMode), e.offsetX, e.offsetY, vsize, size));
        },
        { passive: false },
      ),
      on(c, "pointerdown", (e) => {
        if (tool?.begin(toImage(view.get(), e.offsetX, e.offsetY, vsize, size))) {
          tooling = e.pointerId;
          c.setPointerCapture?.(e.pointerId);
          return;
        }
        drag = { x: e.clientX, y: e.clientY, id: e.pointerId };
        c.setPointerCapture?.(e.pointerId);
        c.classList.add("sw-dragging");
      }),
      on(c, "pointermove", (e) => {
        if (tooling !== null) tool!.move(toImage(view.get(), e.offsetX, e.offsetY, vsize, size));
        else if (drag) {
          view.set(panBy(view.get(), e.clientX - drag.x, e.clientY - drag.y, vsize, size));
          drag = { ...drag, x: e.clientX, y: e.clientY };
        }
        hover.set(pixelAt(view.get(), e.offsetX, e.offsetY, vsize, size));
      }),
      on(c, "pointerup", (e) => {
        if (tooling !== null) {
          tooling = null;
          tool!.end();
          c.releasePointerCapture?.(e.pointerId);
        }
        if (drag) c.releasePointerCapture?.(e.pointerId);
        drag = null;
        c.classList.remove("sw-dragging");
      }),
      on(c, "pointercancel", () => {
        if (tooling !== null) tool!.end();
        tooling = null;
        drag = null;
        c.classList.remove("sw-dragging");
      }),
      on(c, "pointerleave", () => hover.set(null)),
      on(c, "dblclick", () => {
        if (!tool?.active()) view.set(resetView(size));
      }),
      on(c, "keydown", (e) => {
        // keyboard zoom and pan on a focused panel: + − 0 and the arrow keys
        const s = view.get();
        const mid = [vsize.width / 2, vsize.height / 2] as const;
        const step = 40;
        const moves: Record<string, () => ViewState> = {
          "+": () => zoomAt(s, 1.5, ...mid, vsize, size),
          "=": () => zoomAt(s, 1.5, ...mid, vsize, size),
          "-": () => zoomAt(s, 1 / 1.5, ...mid, vsize, size),
          "0": () => resetView(size),
          ArrowLeft: () => panBy(s, step, 0, vsize, size),
          ArrowRight: () => panBy(s, -step, 0, vsize, size),
          ArrowUp: () => panBy(s, 0, step, vsize, size),
          ArrowDown: () => panBy(s, 0, -step, vsize, size),
        };
        const move = moves[e.key];
        if (!move) return;
        e.preventDefault();
        e.stopPropagation(); // keep Jupyter's command-mode shortcuts out of it
        view.set(move());
      }),
    );
  }

  /** Take a new panel description from Python; decode its maps only when they changed. */
  setPanel(panel: Panel): void {
    const prev = this.panel;
    this.panel = panel;
    this.root.dataset.state = panel.state;
    this.title.textContent = panel.label;
    this.objective.textContent = panel.objective;
    this.root.title = panel.title;
    this.timing.textContent = panel.seconds === null ? "" : `${panel.seconds.toFixed(2)} s`;
    const text = this.note.querySelector(".sw-note-text") as HTMLSpanElement;
    const words = { ready: panel.note, computing: "computing…", cancelled: "cancelled", error: panel.error };
    text.textContent = words[panel.state];
    const blank = panel.state === "ready" && !!panel.note;
    this.note.dataset.kind = blank ? "blank" : panel.state;
    this.note.hidden = panel.state === "ready" && !blank;
    // a blank map gets words, not a made-up colour scale
    this.colorbarRow.style.visibility = blank ? "hidden" : "";
    const ready = panel.state === "ready" && isPayload(panel.signed);
    if (!ready) {
      this.derived = null;
    } else if (!this.derived || this.derived.id !== panel.id) {
      this.derived = {
        id: panel.id,
        signed: decode(panel.signed!) as Float32Array,
        absolute: isPayload(panel.absolute) ? (decode(panel.absolute) as Float32Array) : null,
        bySign: new Map(),
      };
    }
    if (!prev || prev.id !== panel.id || prev.state !== panel.state) this.dirty = true;
    for (const addon of this.addons) addon.update(panel);
  }

  /** Show `image` (RGB, the scene's size) instead of the map, or the map again (null). */
  setOverride(image: Uint8Array | null): void {
    this.override = image;
    this.dirty = true;
  }

  /** Recompute the composite (image + coloured map) after a data or display change. */
  recomposite(display: Display): void {
    const { size } = this.scene;
    const rgba = new Uint8ClampedArray(size.width * size.height * 4);
    const d = this.derived;
    if (!d || this.override) {
      this.shown = null;
      composite({ image: this.override ?? this.scene.image, values: null, lut: display.lut, lo: 0, hi: 1, opacity: 0, cut: { cut: 0, all: true }, signed: true }, rgba);
      this.rangeLo.textContent = "";
      this.rangeHi.textContent = "";
    } else {
      let entry = d.bySign.get(display.sign);
      const signed = display.sign === "signed";
      if (!entry) {
        const values = displayValues(d.signed, d.absolute, display.sign);
        entry = { values, sorted: sortedFinite(values, signed) };
        d.bySign.set(display.sign, entry);
      }
      const [lo, hi] = robustRange(entry.sorted, display.clip, signed);
      const cut = thresholdCut(entry.sorted, entry.values.length, display.threshold);
      composite({ image: this.scene.image, values: entry.values, lut: display.lut, lo, hi, opacity: display.opacity, cut, signed }, rgba);
      this.shown = entry.values;
      this.rangeLo.textContent = formatValue(lo);
      this.rangeHi.textContent = formatValue(hi);
    }
    putPixels(this.source, size, rgba);
    this.drawColorbar(display.lut);
    this.dirty = false;
  }

  private drawColorbar(lut: Uint8Array): void {
    this.colorbar.style.background = cssGradient(lut);
  }

  draw(state: ViewState, hover: Hover): void {
    const dpr = window.devicePixelRatio || 1;
    fitBackingStore(this.canvas, this.scene.view, dpr);
    drawView(this.canvas, this.source, state, this.scene.view, this.scene.size, dpr, hover);
    this.tool?.drawOver(this.canvas, state, this.scene.view, this.scene.size, dpr, hover);
    const c = this.canvas.dataset;
    c.zoom = state.zoom.toFixed(4);
    c.cx = state.cx.toFixed(3);
    c.cy = state.cy.toFixed(3);
    if (this.derived) c.drawn = this.derived.id;
    else delete c.drawn;
    if (hover) {
      const where = `x ${hover.x}, y ${hover.y}`;
      const v = this.shown ? this.shown[hover.y * this.scene.size.width + hover.x] : null;
      this.readout.textContent = v === null ? where : `${where}: ${formatValue(v)}`;
    } else {
      this.readout.textContent = this.shown ? "hover for values" : "";
    }
  }

  destroy(): void {
    for (const off of this.cleanups) off();
    for (const addon of this.addons) addon.destroy();
    this.root.remove();
  }
}

/** Keep one view per panel child model, in the order of the model's `panels` references.
 *  A view follows its child model's changes itself: a finished job updates one panel only. */
export interface PanelLike {
  readonly root: HTMLElement;
  setPanel(panel: Panel): void;
  destroy(): void;
}

export class PanelSync<V extends PanelLike = PanelView> {
  private generation = 0;
  private readonly bindings = new Map<string, { child: ChildModel<Panel>; off: () => void }>();

  constructor(
    private readonly model: WidgetModel,
    private readonly container: Pick<HTMLElement, "append">,
    private readonly views: Map<string, V>,
    private readonly make: (method: string) => V,
    private readonly changed: () => void,
  ) {}

  /** Resolve the current references (asynchronously) and reconcile; stale resolutions lose. */
  async sync(): Promise<void> {
    const generation = ++this.generation;
    const children = await childModels<Panel>(this.model, this.model.get("panels") ?? []);
    if (generation !== this.generation) return;
    const byMethod = new Map(children.map((c) => [c.get("method"), c] as const));
    for (const [method, pv] of this.views) {
      if (!byMethod.has(method)) {
        this.unbind(method);
        pv.destroy();
        this.views.delete(method);
      }
    }
    for (const [method, child] of byMethod) {
      let pv = this.views.get(method);
      if (!pv) {
        pv = this.make(method);
        this.views.set(method, pv);
      }
      if (this.bindings.get(method)?.child !== child) this.bind(method, child, pv);
      pv.setPanel(readPanel(child));
      this.container.append(pv.root); // appending an existing child moves it: keeps the order
    }
    this.changed();
  }

  private bind(method: string, child: ChildModel<Panel>, pv: V): void {
    this.unbind(method);
    // One update per message: a front end may fire "change:key" for each key as it applies a
    // message (marimo does), so read the panel once they are all applied.
    let queued = false;
    const update = () => {
      if (queued) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        if (this.bindings.get(method)?.child !== child) return; // unbound meanwhile
        pv.setPanel(readPanel(child));
        this.changed();
      });
    };
    const events = PANEL_KEYS.map((k) => `change:${String(k)}`);
    for (const e of events) child.on(e, update);
    this.bindings.set(method, { child, off: () => events.forEach((e) => child.off(e, update)) });
  }

  private unbind(method: string): void {
    this.bindings.get(method)?.off();
    this.bindings.delete(method);
  }

  destroy(): void {
    this.generation++;
    for (const method of [...this.bindings.keys()]) this.unbind(method);
  }
}
