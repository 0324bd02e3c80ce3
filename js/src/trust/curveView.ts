// A panel's deletion / insertion curve: a small chart on axes shared by every panel, and a
// scrub slider that shows, in the panel, the image at that step (from the metric's own pixel
// order: nothing is sorted here and nothing asks the kernel) and the model's score there.
import { decode } from "../codecs";
import { h, on } from "../dom";
import type { CurvePart, Curves } from "../model";
import type { Scene } from "../panels";
import { extent, scrubIndex, stepAt, type Box } from "./chart";
import { formatMetric } from "./format";
import { movedAt, scrubPixels } from "./scrub";
import { LineChart, type Series } from "./svg";

type Kind = "deletion" | "insertion";
const KINDS: Kind[] = ["deletion", "insertion"];
const BOX: Box = { width: 280, height: 86, pad: 6 };

interface Decoded {
  y: Float32Array;
  counts: Int32Array;
  xs: Float32Array;
  substrate: Uint8Array;
  ranks: Int32Array;
  insert: boolean;
  value: number | null;
  random: Float32Array | null;
  edge: Float32Array | null;
}

/** The y ranges of every panel's curves, per kind: every chart uses the same axes. */
export class CurveAxes {
  private readonly series = new Map<string, Map<Kind, Float32Array[]>>();
  private readonly views = new Set<() => void>();

  set(method: string, kind: Kind, ys: Float32Array[] | null): void {
    const byKind = this.series.get(method) ?? new Map();
    if (ys) byKind.set(kind, ys);
    else byKind.delete(kind);
    this.series.set(method, byKind);
  }

  remove(method: string): void {
    this.series.delete(method);
    this.changed();
  }

  range(kind: Kind): [number, number] {
    const all: Float32Array[] = [];
    for (const byKind of this.series.values()) all.push(...(byKind.get(kind) ?? []));
    return extent(all);
  }

  subscribe(redraw: () => void): () => void {
    this.views.add(redraw);
    return () => this.views.delete(redraw);
  }

  changed(): void {
    for (const redraw of this.views) redraw();
  }
}

export class CurveView {
  readonly root: HTMLDivElement;
  private readonly chart = new LineChart(BOX, "sw-curve-chart");
  private readonly kinds: HTMLDivElement;
  private readonly range: HTMLInputElement;
  private readonly readout: HTMLSpanElement;
  private readonly back: HTMLButtonElement;
  private readonly cleanups: (() => void)[] = [];
  private id = "";
  private parts = new Map<Kind, Decoded>();
  private kind: Kind = "deletion";
  private step: number | null = null;

  constructor(
    readonly method: string,
    private readonly scene: Scene,
    private readonly axes: CurveAxes,
    private readonly show: (image: Uint8Array | null) => void,
  ) {
    this.kinds = h("div", { class: "sw-curve-kinds", role: "group", "aria-label": "curve" });
    this.range = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "data-testid": "curve-scrub", "data-method": method, "aria-label": "scrub the curve" });
    this.readout = h("span", { class: "sw-curve-readout", "data-testid": "curve-readout" });
    this.back = h("button", { type: "button", class: "sw-button sw-curve-back", text: "map", title: "show the map again" });
    this.root = h(
      "div",
      { class: "sw-curve", "data-testid": "curve", "data-method": method, hidden: true },
      h("div", { class: "sw-curve-head" }, this.kinds, this.back),
      this.chart.el,
      this.range,
      this.readout,
    );
    this.cleanups.push(
      on(this.range, "input", () => this.scrub(scrubIndex(this.range.value, this.steps()))),
      on(this.back, "click", () => this.scrub(null)),
      on(this.kinds, "click", (e) => {
        const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-kind]");
        if (b) this.choose(b.dataset.kind as Kind);
      }),
      ...this.dragging(),
      axes.subscribe(() => this.draw()),
    );
  }

  /** Dragging along the chart scrubs too (the pointer is captured while the button is down). */
  private dragging(): (() => void)[] {
    const el = this.chart.el as unknown as HTMLElement;
    let down = false;
    const at = (e: PointerEvent) => {
      const part = this.parts.get(this.kind);
      if (!part) return;
      const box = el.getBoundingClientRect();
      const px = ((e.clientX - box.left) / (box.width || BOX.width)) * BOX.width;
      this.scrub(stepAt(px, part.xs, this.chart.xRange, BOX));
    };
    return [
      on(el, "pointerdown", (e) => {
        down = true;
        el.setPointerCapture?.(e.pointerId);
        at(e);
      }),
      on(el, "pointermove", (e) => down && at(e)),
      on(el, "pointerup", () => (down = false)),
      on(el, "pointercancel", () => (down = false)),
    ];
  }

  private steps(): number {
    return this.parts.get(this.kind)?.y.length ?? 0;
  }

  /** New curves from Python (decoded only when their id changes). */
  setCurves(curves: Curves | null): void {
    const id = curves?.id ?? "";
    if (id === this.id) return;
    this.id = id;
    this.parts.clear();
    if (curves && curves.ranks) {
      const ranks = decode(curves.ranks) as Int32Array;
      const total = this.scene.size.width * this.scene.size.height;
      for (const kind of KINDS) {
        const p = curves[kind] as CurvePart | undefined;
        if (!p) continue;
        const counts = decode(p.counts) as Int32Array;
        this.parts.set(kind, {
          y: decode(p.y) as Float32Array, counts, xs: Float32Array.from(counts, (c) => c / total),
          substrate: decode(p.substrate) as Uint8Array, ranks: p.ranks ? (decode(p.ranks) as Int32Array) : ranks,
          insert: p.insert, value: p.value,
          random: p.random ? (decode(p.random) as Float32Array) : null,
          edge: p.edge ? (decode(p.edge) as Float32Array) : null,
        });
      }
    }
    for (const kind of KINDS) {
      const p = this.parts.get(kind);
      this.axes.set(this.method, kind, p ? [p.y, ...(p.random ? [p.random] : []), ...(p.edge ? [p.edge] : [])] : null);
    }
    if (!this.parts.has(this.kind)) this.kind = this.parts.has("deletion") ? "deletion" : "insertion";
    this.root.hidden = this.parts.size === 0;
    this.kinds.replaceChildren(
      ...KINDS.filter((k) => this.parts.has(k)).map((k) =>
        h("button", { type: "button", class: "sw-toggle", "data-kind": k, "aria-pressed": String(k === this.kind), text: k }),
      ),
    );
    this.range.max = String(Math.max(0, this.steps() - 1));
    this.scrub(null);
    this.axes.changed(); // the shared axes may have moved: every chart redraws
  }

  private choose(kind: Kind): void {
    if (!this.parts.has(kind) || kind === this.kind) return;
    this.kind = kind;
    for (const b of this.kinds.querySelectorAll<HTMLButtonElement>("button")) b.setAttribute("aria-pressed", String(b.dataset.kind === kind));
    this.range.max = String(Math.max(0, this.steps() - 1));
    this.scrub(null);
    this.draw();
  }

  /** Show step `k` of the curve in the panel (null: the map again). */
  scrub(k: number | null): void {
    const part = this.parts.get(this.kind);
    this.step = part ? k : null;
    this.root.dataset.step = this.step === null ? "" : String(this.step);
    this.back.hidden = this.step === null;
    if (!part || this.step === null) {
      this.show(null);
      this.chart.mark(null);
      this.readout.textContent = part ? `${this.kind} AUC ${formatMetric(part.value)} · drag to see the steps` : "";
      return;
    }
    const { size } = this.scene;
    const total = size.width * size.height;
    const { count, fraction } = movedAt(part.counts, this.step, total);
    this.range.value = String(this.step);
    this.show(scrubPixels(this.scene.image, part.substrate, part.ranks, count, part.insert));
    this.chart.mark(part.xs[this.step]);
    const verb = part.insert ? "inserted" : "deleted";
    this.readout.textContent = `step ${this.step}/${part.y.length - 1}: ${(100 * fraction).toFixed(1)} % ${verb} · score ${formatMetric(part.y[this.step])}`;
  }

  draw(): void {
    const part = this.parts.get(this.kind);
    if (!part) return;
    const series: Series[] = [{ xs: part.xs, ys: part.y, cls: "sw-line" }];
    if (part.random) series.unshift({ xs: part.xs, ys: part.random, cls: "sw-line-random" });
    if (part.edge) series.unshift({ xs: part.xs, ys: part.edge, cls: "sw-line-edge" });
    this.chart.draw(series, this.axes.range(this.kind), [0, 1]);
    this.chart.mark(this.step === null ? null : part.xs[this.step]);
  }

  destroy(): void {
    for (const off of this.cleanups) off();
    this.axes.remove(this.method);
    this.show(null);
    this.root.remove();
  }
}
