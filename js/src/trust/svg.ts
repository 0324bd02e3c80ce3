// Small SVG charts, built with the DOM (attributes only; no user text as markup).
import { bounds, extent, linePath, xPixel, yPixel, type Box } from "./chart";

const NS = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export interface Series {
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  cls: string;
}

/** A line chart with a step marker: `draw` redraws its series on given (shared) ranges. */
export class LineChart {
  readonly el: SVGSVGElement;
  private readonly lines: SVGGElement;
  private readonly marker: SVGLineElement;
  private readonly labels: SVGGElement;
  xRange: [number, number] = [0, 1];

  constructor(readonly box: Box, cls: string) {
    this.el = svg("svg", { class: cls, width: box.width, height: box.height, viewBox: `0 0 ${box.width} ${box.height}` });
    this.lines = svg("g");
    this.labels = svg("g", { class: "sw-chart-labels" });
    this.marker = svg("line", { class: "sw-chart-marker", y1: box.pad, y2: box.height - box.pad, visibility: "hidden" });
    this.el.append(
      svg("rect", { class: "sw-chart-frame", x: box.pad, y: box.pad, width: box.width - 2 * box.pad, height: box.height - 2 * box.pad }),
      this.lines, this.marker, this.labels,
    );
  }

  draw(series: Series[], yRange: [number, number] | null = null, xRange: [number, number] | null = null): void {
    this.xRange = xRange ?? bounds(series.map((s) => s.xs));
    const y = yRange ?? extent(series.map((s) => s.ys));
    this.lines.replaceChildren(...series.map((s) => svg("path", { class: s.cls, d: linePath(s.xs, s.ys, this.xRange, y, this.box) })));
    const label = (text: string, yv: number) => {
      const t = svg("text", { x: 2, y: Math.max(8, Math.min(this.box.height - 2, yPixel(yv, y, this.box) + 3)) });
      t.textContent = text;
      return t;
    };
    this.labels.replaceChildren(label(short(y[1]), y[1]), label(short(y[0]), y[0]));
  }

  mark(x: number | null): void {
    if (x === null) {
      this.marker.setAttribute("visibility", "hidden");
      return;
    }
    const px = xPixel(x, this.xRange, this.box).toFixed(1);
    this.marker.setAttribute("x1", px);
    this.marker.setAttribute("x2", px);
    this.marker.setAttribute("visibility", "visible");
  }
}

function short(v: number): string {
  if (!Number.isFinite(v)) return "";
  const a = Math.abs(v);
  return a >= 1e4 || (a < 1e-2 && a > 0) ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}
