// The attribution path: step through integrated gradients (α along the path: the interpolated
// input, the gradient there, the running sum), SmoothGrad (a noisy sample, its map, the running
// mean) or occlusion (the window, the drop it records, the map so far). The browser asks Python
// for one frame at a time (`path_step`), never all frames at once.
import { decode } from "../codecs";
import { h, on } from "../dom";
import { listen, type PathFrame, type PathInfo, type WidgetModel } from "../model";
import type { Display, Scene } from "../panels";
import { scrubIndex, type Box } from "./chart";
import { formatMetric } from "./format";
import { finiteSum, paintCanvas, paintMap } from "./paint";
import { LineChart } from "./svg";

export const PATH_METHODS = ["integrated_gradients", "smoothgrad", "occlusion"];
const BOX: Box = { width: 300, height: 80, pad: 6 };

const CAPTIONS: Record<string, [string, string, string]> = {
  integrated_gradients: ["input at α: x′ + α(x − x′)", "gradient at α", "running sum Σ wᵢ∇f(xᵢ)⊙(x − x′)"],
  smoothgrad: ["noisy sample", "its map", "running mean"],
  occlusion: ["occluded input", "score drop on the window", "map so far"],
};

/** What a frame means, in words (pure). */
export function frameWords(info: PathInfo, frame: PathFrame): string {
  const n = info.steps ?? 0;
  const k = (frame.index ?? 0) + 1;
  if (info.method === "integrated_gradients") {
    return `α = ${formatMetric(frame.position ?? null)} · node ${k} of ${n} · weight ${formatMetric(frame.weight ?? null)} · f(x′ + α(x − x′)) = ${formatMetric(frame.score ?? null)} · Σ running sum = ${formatMetric(frame.running_total ?? null)}`;
  }
  if (info.method === "smoothgrad") {
    return `sample ${k} of ${n} · Σ its map = ${formatMetric(frame.step_total ?? null)} · Σ running result = ${formatMetric(frame.running_total ?? null)}`;
  }
  const w = frame.window;
  const where = w ? ` at (y ${w[0]}, x ${w[1]}), ${w[2]} × ${w[3]} px` : "";
  return `window ${k} of ${n}${where} · score there ${formatMetric(frame.score ?? null)} · drop ${formatMetric(frame.step_total !== null && frame.step_total !== undefined && w ? frame.step_total / (w[2] * w[3]) : null)}`;
}

/** The completeness check of IG for its steps and rule (pure). */
export function completenessWords(info: PathInfo): string {
  if (info.gap === undefined || info.gap === null) return "";
  const params = new Map(info.params ?? []);
  return `at α = 1 the running sum is the IG map: Σ = ${formatMetric(info.total ?? null)}; f(x) − f(x′) = ${formatMetric(info.change ?? null)}; completeness gap ${formatMetric(info.gap)} (relative ${formatMetric(info.relative_gap ?? null)}) with steps=${params.get("steps") ?? "?"}, rule=${params.get("rule") ?? "?"}, baseline=${params.get("baseline") ?? "?"}`;
}

export class PathSection {
  readonly root: HTMLDivElement;
  private readonly select: HTMLSelectElement;
  private readonly view: HTMLDivElement;
  private readonly status: HTMLDivElement;
  private readonly canvases: HTMLCanvasElement[];
  private readonly captions: HTMLElement[];
  private readonly slider: HTMLInputElement;
  private readonly chart = new LineChart(BOX, "sw-path-chart");
  private readonly words: HTMLDivElement;
  private readonly check: HTMLDivElement;
  private readonly chartCaption = h("figcaption", { class: "sw-chart-caption" });
  private readonly cleanups: (() => void)[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private positions: Float32Array | null = null;
  private infoId = "";

  constructor(private readonly model: WidgetModel, private readonly scene: Scene, private readonly display: () => Display) {
    this.select = h("select", { "data-testid": "path-method", "aria-label": "attribution path" });
    this.status = h("div", { class: "sw-path-status", "data-testid": "path-status" });
    const ids = ["path-input", "path-step-map", "path-running"];
    this.canvases = ids.map((id) => h("canvas", { class: "sw-small-canvas sw-path-canvas", "data-testid": id }));
    this.captions = ids.map(() => h("figcaption"));
    this.slider = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "data-testid": "path-step", "aria-label": "step" });
    this.words = h("div", { class: "sw-path-words", "data-testid": "path-words" });
    this.check = h("div", { class: "sw-path-words", "data-testid": "path-completeness" });
    this.view = h(
      "div",
      { class: "sw-path-view", "data-testid": "path-view", hidden: true },
      this.status,
      h("div", { class: "sw-path-figures" }, ...this.canvases.map((c, i) => h("figure", {}, c, this.captions[i]))),
      h("div", { class: "sw-row" },
        h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "step" }), this.slider),
        h("figure", {}, this.chart.el, this.chartCaption)),
      this.words,
      this.check,
    );
    this.root = h(
      "div",
      { class: "sw-path" },
      h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "attribution path" }), this.select),
      this.view,
    );
    this.cleanups.push(
      listen(model, ["methods_selected", "methods", "path_method"], () => this.options()),
      listen(model, ["path_info"], () => this.info()),
      listen(model, ["path_frame"], () => this.frame()),
      on(this.select, "change", () => {
        model.set("path_method", this.select.value);
        model.set("path_step", -1);
        model.save_changes();
      }),
      on(this.slider, "input", () => this.request(scrubIndex(this.slider.value, Number(this.slider.max) + 1))),
    );
    this.options();
    this.info();
  }

  private options(): void {
    const selected = new Set(this.model.get("methods_selected") ?? []);
    const labels = new Map((this.model.get("methods") ?? []).map((m) => [m.name, m.label] as const));
    const current = this.model.get("path_method") ?? "";
    const names = PATH_METHODS.filter((m) => selected.has(m) || m === current);
    this.select.replaceChildren(new Option("off", ""), ...names.map((m) => new Option(labels.get(m) ?? m, m)));
    this.select.value = current;
    this.select.disabled = names.length === 0;
    this.select.title = names.length ? "step through a method's computation" : "select integrated gradients, SmoothGrad or occlusion to step through it";
  }

  /** Ask Python for frame `k` (at most one message per 60 ms while dragging). */
  private request(k: number): void {
    this.slider.value = String(k);
    this.status.textContent = `step ${k + 1}…`;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.model.set("path_step", Number(this.slider.value));
      this.model.save_changes();
    }, 60);
  }

  private info(): void {
    const info = this.model.get("path_info") ?? {};
    const method = info.method ?? "";
    this.view.hidden = !method;
    if (!method) return;
    this.view.dataset.method = method;
    this.view.dataset.state = info.state ?? "";
    const caps = CAPTIONS[method] ?? ["input", "step", "running"];
    this.captions.forEach((c, i) => (c.textContent = caps[i]));
    if (info.state !== "ready") {
      this.status.textContent = info.state === "waiting" ? info.message ?? "" : info.state === "error" ? `failed: ${info.error}` : info.state === "cancelled" ? "cancelled" : `tracing ${info.label}…`;
      this.check.textContent = "";
      return;
    }
    this.status.textContent = `${info.label}: ${info.steps} steps`;
    if (this.infoId !== info.id) {
      this.infoId = info.id ?? "";
      this.positions = info.positions ? (decode(info.positions) as Float32Array) : null;
      this.slider.max = String(Math.max(0, (info.steps ?? 1) - 1));
      const scores = info.scores ? (decode(info.scores) as Float32Array) : null;
      this.chart.el.style.display = scores ? "" : "none";
      this.chartCaption.textContent = !scores ? "" : method === "integrated_gradients"
        ? "the score along the path, α from 0 to 1" : "the score with each window covered";
      if (scores && this.positions) this.chart.draw([{ xs: this.positions, ys: scores, cls: "sw-line" }]);
    }
    this.check.textContent = completenessWords(info);
    this.frame();
  }

  private frame(): void {
    const info = this.model.get("path_info") ?? {};
    const frame = this.model.get("path_frame") ?? {};
    if (info.state !== "ready" || !frame.input || frame.id !== info.id) return;
    const { width, height } = this.scene.size;
    const display = this.display();
    const input = decode(frame.input) as Uint8Array;
    const step = decode(frame.step!) as Float32Array;
    const running = decode(frame.running!) as Float32Array;
    paintCanvas(this.canvases[0], width, height, paintMap(input, null, null, display).rgba);
    paintCanvas(this.canvases[1], width, height, paintMap(input, step, null, display, Math.max(display.opacity, 0.85)).rgba);
    paintCanvas(this.canvases[2], width, height, paintMap(this.scene.image, running, null, display).rgba);
    const k = frame.index ?? 0;
    for (const c of this.canvases) c.dataset.index = String(k);
    this.canvases[1].dataset.sum = finiteSum(step).toPrecision(8);
    this.canvases[2].dataset.sum = finiteSum(running).toPrecision(8);
    if (this.timer === null) this.slider.value = String(k);
    if (this.positions) this.chart.mark(this.positions[k]);
    this.words.textContent = frameWords(info, frame);
    this.status.textContent = `${info.label}: step ${k + 1} of ${info.steps}`;
  }

  restyle(): void {
    this.frame();
  }

  destroy(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    for (const off of this.cleanups) off();
    this.root.remove();
  }
}
