// The randomization sanity check: a button that randomizes the model top-down, block by block
// (in Python, on copies), a depth slider, and for each shown method its map at that depth beside
// the original, the similarity curve, and the verdict in words. The depth is browser state: all
// depths of a map arrive at once.
import { decode } from "../codecs";
import { h, on } from "../dom";
import { listen, update, type Panel, type SanityData, type WidgetModel } from "../model";
import type { Display, Scene } from "../panels";
import { extent, scrubIndex, type Box } from "./chart";
import { formatMetric } from "./format";
import { finiteSum, paintCanvas, paintMap } from "./paint";
import { LineChart } from "./svg";

const BOX: Box = { width: 220, height: 70, pad: 6 };

interface Row {
  root: HTMLDivElement;
  original: HTMLCanvasElement;
  map: HTMLCanvasElement;
  chart: LineChart;
  caption: HTMLDivElement;
  verdict: HTMLDivElement;
  label: string;
  panelId: string;
  signed: Float32Array | null; // the original map
  absolute: Float32Array | null;
  dataId: string;
  data: SanityData | null;
  steps: number;
  depthSigned: Float32Array | null; // (steps, H, W)
  depthAbsolute: Float32Array | null;
  curve: Float32Array | null;
}

export class SanitySection {
  readonly root: HTMLDivElement;
  private readonly button: HTMLButtonElement;
  private readonly slider: HTMLInputElement;
  private readonly depthText: HTMLSpanElement;
  private readonly list: HTMLDivElement;
  private readonly rows = new Map<string, Row>();
  private readonly cleanups: (() => void)[] = [];
  private depth = 0;

  constructor(private readonly model: WidgetModel, private readonly scene: Scene, private readonly display: () => Display) {
    this.button = h("button", { type: "button", class: "sw-button", "data-testid": "sanity-run" });
    this.slider = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "data-testid": "sanity-depth", "aria-label": "randomization depth" });
    this.depthText = h("span", { class: "sw-sanity-depth", "data-testid": "sanity-depth-text" });
    this.list = h("div", { class: "sw-sanity-rows" });
    this.root = h(
      "div",
      { class: "sw-sanity", "data-testid": "sanity" },
      h("div", { class: "sw-row" }, this.button, h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "depth" }), this.slider), this.depthText),
      this.list,
    );
    this.cleanups.push(
      on(this.button, "click", () => update(model, { sanity_check: !model.get("sanity_check") })),
      on(this.slider, "input", () => this.setDepth(scrubIndex(this.slider.value, this.maxSteps() + 1))),
      listen(model, ["sanity_check"], () => this.layout()),
    );
    this.layout();
  }

  private maxSteps(): number {
    let n = 0;
    for (const r of this.rows.values()) n = Math.max(n, r.steps);
    return n;
  }

  private layout(): void {
    const on = !!this.model.get("sanity_check");
    this.button.textContent = on ? "hide the sanity check" : "sanity check: randomize the model";
    this.button.setAttribute("aria-pressed", String(on));
    this.button.title = "Re-draw the model's weights from the top block down, one more block at a time (on copies), and re-explain: a map that explains the model must change (Adebayo et al. 2018).";
    this.slider.disabled = !on;
    this.list.hidden = !on;
    this.slider.max = String(this.maxSteps());
    if (this.depth > this.maxSteps()) this.depth = this.maxSteps();
    this.slider.value = String(this.depth);
    this.drawAll();
  }

  /** A panel's state (from its addon): its original map and its cascade, if any. */
  set(method: string, panel: Panel): void {
    let row = this.rows.get(method);
    const data = panel.sanity;
    if (!data) {
      if (row) this.remove(method);
      return;
    }
    if (!row) {
      row = this.makeRow(method);
      this.rows.set(method, row);
      this.list.append(row.root);
    }
    row.label = panel.label;
    if (row.panelId !== panel.id) {
      row.panelId = panel.id;
      row.signed = panel.signed && "view" in panel.signed ? (decode(panel.signed) as Float32Array) : null;
      row.absolute = panel.absolute && "view" in panel.absolute ? (decode(panel.absolute) as Float32Array) : null;
    }
    if (row.dataId !== data.id) {
      row.dataId = data.id;
      row.data = data;
      const ready = data.state === "ready" && !!data.signed && !!data.curve;
      row.depthSigned = ready ? (decode(data.signed!) as Float32Array) : null;
      row.depthAbsolute = ready && data.absolute ? (decode(data.absolute) as Float32Array) : null;
      row.curve = ready ? (decode(data.curve!) as Float32Array) : null;
      row.steps = ready ? row.curve!.length : 0;
    }
    this.layout();
  }

  remove(method: string): void {
    this.rows.get(method)?.root.remove();
    this.rows.delete(method);
    this.layout();
  }

  private makeRow(method: string): Row {
    const original = h("canvas", { class: "sw-small-canvas", "data-testid": "sanity-original", "data-method": method });
    const map = h("canvas", { class: "sw-small-canvas", "data-testid": "sanity-map", "data-method": method });
    const chart = new LineChart(BOX, "sw-sanity-chart");
    const caption = h("div", { class: "sw-sanity-caption" });
    const verdict = h("div", { class: "sw-sanity-verdict", "data-testid": "sanity-verdict", "data-method": method });
    const root = h(
      "div",
      { class: "sw-sanity-row", "data-method": method },
      h("figure", {}, original, h("figcaption", { text: "original" })),
      h("figure", {}, map, caption),
      h("div", { class: "sw-sanity-side" }, chart.el,
        h("span", { class: "sw-chart-caption", text: "similarity to the original map by depth (dashed: the flag threshold)" }), verdict),
    );
    return { root, original, map, chart, caption, verdict, label: method, panelId: "", signed: null, absolute: null, dataId: "", data: null, steps: 0, depthSigned: null, depthAbsolute: null, curve: null };
  }

  setDepth(depth: number): void {
    this.depth = depth;
    this.slider.value = String(depth);
    this.drawAll();
  }

  /** The display controls changed (colormap, sign, clip…). */
  restyle(): void {
    this.drawAll();
  }

  private drawAll(): void {
    const blocks = [...this.rows.values()].find((r) => r.steps === this.maxSteps())?.data?.blocks ?? [];
    this.depthText.textContent = this.depth === 0
      ? "depth 0: the trained model"
      : `depth ${this.depth}: randomized ${blocks.slice(0, this.depth).join(", ")}`;
    if (this.list.hidden) return;
    for (const row of this.rows.values()) this.drawRow(row);
  }

  private drawRow(row: Row): void {
    const { width, height } = this.scene.size;
    const display = this.display();
    const n = width * height;
    paintCanvas(row.original, width, height, paintMap(this.scene.image, row.signed, row.absolute, display).rgba);
    const data = row.data;
    row.verdict.classList.toggle("sw-flag", !!data?.flag);
    if (!data || data.state !== "ready" || !row.depthSigned || !row.curve) {
      row.verdict.textContent = data?.state === "error" ? `failed: ${data.error}` : data?.state === "cancelled" ? "cancelled" : "randomizing and re-explaining…";
      row.caption.textContent = "";
      row.map.dataset.depth = "";
      paintCanvas(row.map, width, height, paintMap(this.scene.image, null, null, display).rgba);
      row.chart.draw([]);
      return;
    }
    const d = Math.min(this.depth, row.steps);
    const signed = d === 0 ? row.signed : row.depthSigned.subarray((d - 1) * n, d * n);
    const absolute = d === 0 ? row.absolute : row.depthAbsolute ? row.depthAbsolute.subarray((d - 1) * n, d * n) : null;
    paintCanvas(row.map, width, height, paintMap(this.scene.image, signed, absolute, display).rgba);
    row.map.dataset.depth = String(d);
    row.map.dataset.sum = signed ? finiteSum(signed).toPrecision(8) : "";
    const sim = d === 0 ? 1 : row.curve[d - 1];
    row.caption.textContent = d === 0 ? "depth 0 (trained)" : `depth ${d}: ${data.similarity === "spearman_abs" ? "ρ(|map|)" : data.similarity} ${formatMetric(sim)}`;
    const xs = Float32Array.from({ length: row.steps + 1 }, (_, i) => i);
    const ys = Float32Array.from([1, ...row.curve]);
    const threshold = data.threshold ?? 0.5;
    row.chart.draw(
      [{ xs: [0, row.steps], ys: [threshold, threshold], cls: "sw-line-threshold" }, { xs, ys, cls: "sw-line" }],
      extent([ys, [0, 1]]), [0, row.steps],
    );
    row.chart.mark(d);
    row.verdict.textContent = data.verdict ?? "";
  }

  destroy(): void {
    for (const off of this.cleanups) off();
    this.root.remove();
  }
}
