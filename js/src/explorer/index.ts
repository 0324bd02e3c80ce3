// The explorer: a toolbar, the confusion matrix, one page of thumbnails, mean maps and SpRAy
// clusters, and the single-image widget on the example clicked. Each room returns its cleanup.
import type { RenderProps } from "@anywidget/types";
import { decode } from "../codecs";
import { h, on } from "../dom";
import { render as renderSaliency } from "../index";
import { childModels, type Model, type WidgetModel } from "../model";
import { putPixels } from "../render/canvas";
import { pageCount, rowShares, thumbnailPixels, withFilter } from "./logic";
import { put, watch, type Explorer, type ExplorerModel, type Filter } from "./model";
import "../widget.css";
import "./explorer.css";

function select(testid: string, label: string, options: [string, string][], value: string): HTMLSelectElement {
  const s = h("select", { "data-testid": testid, "aria-label": label, class: "sw-select" });
  s.replaceChildren(...options.map(([v, text]) => h("option", { value: v, text })));
  s.value = value;
  return s;
}

function toolbar(model: ExplorerModel, parent: HTMLElement): () => void {
  const row = h("div", { class: "sw-row sw-explorer-bar" });
  parent.append(row);
  const build = () => {
    const classes = model.get("classes") ?? [];
    const f = model.get("filter") ?? {};
    const classOptions: [string, string][] = [["", "any"], ...classes.map((c, i) => [String(i), c] as [string, string])];
    const method = select("gallery-method", "method", (model.get("audit_methods") ?? []).map((m) => [m, m]), model.get("method"));
    const sortBy = select("sort-by", "sort by", (model.get("columns") ?? []).map((c) => [c, c]), model.get("sort_by"));
    const order = h("button", { type: "button", class: "sw-button", "data-testid": "descending",
      "aria-pressed": String(model.get("descending")), text: model.get("descending") ? "↓ descending" : "↑ ascending" });
    const correct = select("filter-correct", "correctness", [["", "all"], ["correct", "correct"], ["wrong", "wrong"]], f.correct ?? "");
    const label = select("filter-label", "true class", classOptions, f.label === undefined ? "" : String(f.label));
    const pred = select("filter-pred", "predicted class", classOptions, f.pred === undefined ? "" : String(f.pred));
    const groups = model.get("groups") ?? [];
    const group = select("filter-group", "group", [["", "any"], ...groups.map((g) => [String(g), String(g)] as [string, string])],
      f.group === undefined ? "" : String(f.group));
    group.disabled = groups.length === 0;
    const field = (text: string, el: HTMLElement) => h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text }), el);
    row.replaceChildren(field("method", method), field("sort by", sortBy), order, field("show", correct),
      field("true", label), field("predicted", pred), field("group", group));
    const filterOn = (el: HTMLSelectElement, key: keyof Filter, parse: (v: string) => unknown) =>
      on(el, "change", () => put(model, { filter: withFilter(model.get("filter") ?? {}, key, el.value === "" ? null : parse(el.value)) }));
    offs.splice(0).forEach((off) => off());
    offs.push(
      on(method, "change", () => put(model, { method: method.value })),
      on(sortBy, "change", () => put(model, { sort_by: sortBy.value })),
      on(order, "click", () => put(model, { descending: !model.get("descending") })),
      filterOn(correct, "correct", (v) => v),
      filterOn(label, "label", Number),
      filterOn(pred, "pred", Number),
      filterOn(group, "group", (v) => groups.find((g) => String(g) === v) ?? v),
    );
  };
  const offs: (() => void)[] = [];
  build();
  const off = watch(model, ["classes", "groups", "audit_methods", "columns", "filter", "method", "sort_by", "descending"], build);
  return () => (off(), offs.forEach((o) => o()));
}

function confusionMatrix(model: ExplorerModel, parent: HTMLElement): () => void {
  const box = h("div", { class: "sw-confusion", "data-testid": "confusion" });
  parent.append(box);
  const build = () => {
    const classes = model.get("classes") ?? [];
    const k = classes.length;
    const counts = decode(model.get("confusion")) as Int32Array;
    const shares = rowShares(counts, k);
    const cell = model.get("filter")?.cell;
    const table = h("table", { class: "sw-confusion-table" });
    table.append(h("tr", {}, h("th", { text: "true ↓ / predicted →" }), ...classes.map((c) => h("th", { text: c }))));
    for (let r = 0; r < k; r++) {
      const tr = h("tr", {}, h("th", { text: classes[r] }));
      for (let c = 0; c < k; c++) {
        const chosen = !!cell && cell[0] === r && cell[1] === c;
        const td = h("td", { class: `sw-cell${r === c ? " sw-diag" : ""}${chosen ? " sw-chosen" : ""}`,
          "data-testid": "confusion-cell", "data-true": r, "data-pred": c, title: `${classes[r]} → ${classes[c]}`,
          text: String(counts[r * k + c]) });
        td.style.setProperty("--share", String(shares[r * k + c]));
        tr.append(td);
      }
      table.append(tr);
    }
    box.replaceChildren(h("div", { class: "sw-section-title", text: "confusion (click a cell to filter)" }), table);
  };
  build();
  const offClick = on(box, "click", (e) => {
    const td = (e.target as HTMLElement).closest<HTMLElement>("[data-testid=confusion-cell]");
    if (!td) return;
    const cellNow = model.get("filter")?.cell;
    const next: [number, number] = [Number(td.dataset.true), Number(td.dataset.pred)];
    const same = !!cellNow && cellNow[0] === next[0] && cellNow[1] === next[1];
    put(model, { filter: withFilter(model.get("filter") ?? {}, "cell", same ? null : next) });
  });
  const off = watch(model, ["confusion", "classes", "filter"], build);
  return () => (off(), offClick());
}

function gallery(model: ExplorerModel, parent: HTMLElement): () => void {
  const grid = h("div", { class: "sw-gallery", "data-testid": "gallery" });
  const pager = h("div", { class: "sw-row sw-pager" });
  const prev = h("button", { type: "button", class: "sw-button", "data-testid": "page-prev", text: "‹ previous" });
  const next = h("button", { type: "button", class: "sw-button", "data-testid": "page-next", text: "next ›" });
  const where = h("span", { class: "sw-page-info", "data-testid": "page-info" });
  pager.append(prev, where, next);
  parent.append(pager, grid);
  const build = () => {
    const rows = model.get("page_rows") ?? [];
    const classes = model.get("classes") ?? [];
    const images = model.get("page_images");
    const maps = model.get("page_maps");
    const lut = decode(model.get("lut")) as Uint8Array;
    const total = model.get("total");
    const page = model.get("page");
    const pages = pageCount(total, model.get("page_size"));
    where.textContent = `page ${page + 1} of ${pages} · ${total} examples`;
    prev.disabled = page <= 0;
    next.disabled = page + 1 >= pages;
    grid.dataset.page = String(page);
    if (!images || rows.length === 0) {
      grid.replaceChildren(h("div", { class: "sw-empty", text: "no example passes the filter" }));
      return;
    }
    const [, hgt, wid] = images.shape;
    const pixels = decode(images) as Uint8Array;
    const values = maps ? (decode(maps) as Float32Array) : null;
    const selected = model.get("selected");
    grid.replaceChildren(...rows.map((r, i) => {
      const canvas = h("canvas", { class: "sw-thumb", width: wid, height: hgt });
      putPixels(canvas, { width: wid, height: hgt }, thumbnailPixels(pixels, values, i, hgt, wid, lut, 0.6));
      const wrong = !r.correct;
      const caption = wrong ? `${classes[r.label]} → ${classes[r.pred]}` : classes[r.label];
      const value = r.value === null || r.value === undefined ? "" : ` · ${Number(r.value).toPrecision(3)}`;
      return h("button", { type: "button", class: `sw-item${wrong ? " sw-wrong" : ""}${selected === r.idx ? " sw-selected" : ""}`,
        "data-testid": "gallery-item", "data-index": r.idx, title: `#${r.idx}: ${caption}` },
        canvas, h("span", { class: "sw-item-caption", text: `#${r.idx} ${caption}${value}` }));
    }));
  };
  build();
  const offs = [
    watch(model, ["page_rows", "page_images", "page_maps", "total", "page", "page_size", "selected", "lut"], build),
    on(prev, "click", () => put(model, { page: Math.max(0, model.get("page") - 1) })),
    on(next, "click", () => put(model, { page: model.get("page") + 1 })),
    on(grid, "click", (e) => {
      const item = (e.target as HTMLElement).closest<HTMLElement>("[data-testid=gallery-item]");
      if (item) put(model, { selected: Number(item.dataset.index) });
    }),
  ];
  return () => offs.forEach((o) => o());
}

function mapStrip(maps: Explorer["mean_maps"]["maps"], titles: string[], lut: Uint8Array, counts?: number[]): HTMLElement[] {
  if (!maps) return [];
  const [g, hgt, wid] = maps.shape;
  const values = decode(maps) as Float32Array;
  const out: HTMLElement[] = [];
  for (let i = 0; i < g; i++) {
    const m = values.subarray(i * hgt * wid, (i + 1) * hgt * wid);
    let peak = 0;
    for (const v of m) if (Number.isFinite(v)) peak = Math.max(peak, Math.abs(v));
    const rgba = new Uint8ClampedArray(hgt * wid * 4);
    for (let p = 0; p < m.length; p++) { // a heat scale of the mean |map| share (0 … peak)
      const k = 4 * Math.min(255, Math.max(0, Math.round(128 + 127 * (peak > 0 ? m[p] / peak : 0))));
      rgba.set([lut[k], lut[k + 1], lut[k + 2], 255], p * 4);
    }
    const canvas = h("canvas", { class: "sw-thumb", width: wid, height: hgt });
    putPixels(canvas, { width: wid, height: hgt }, rgba);
    const caption = counts ? `${titles[i]} (${counts[i]})` : titles[i];
    out.push(h("figure", { class: "sw-mean" }, canvas, h("figcaption", { text: caption })));
  }
  return out;
}

function aggregates(model: ExplorerModel, parent: HTMLElement): () => void {
  const box = h("div", { class: "sw-aggregates", "data-testid": "mean-maps" });
  parent.append(box);
  const build = () => {
    const mm = model.get("mean_maps") ?? {};
    const lut = decode(model.get("lut")) as Uint8Array;
    const classes = model.get("classes") ?? [];
    const by = select("mean-by", "mean maps by", [["label", "true class"], ["pred", "predicted class"], ["group", "group"], ["cell", "confusion cell"]], model.get("mean_by"));
    const d = mm.disparity;
    const disparity = d ? h("div", { class: "sw-disparity", "data-testid": "disparity",
      text: `disparity ${d.groups[0]} vs ${d.groups[1]}: ${d.value.toFixed(3)} (½·L1 of the mean maps, 0 … 1), permutation p = ${d.p_value.toPrecision(2)}` }) : "";
    const strip = h("div", { class: "sw-strip" }, ...mapStrip(mm.maps, mm.titles ?? [], lut, mm.counts));
    const cl = model.get("clusters") ?? {};
    const clusterClass = select("cluster-class", "SpRAy class", [["", "choose a class"], ...classes.map((c, i) => [String(i), c] as [string, string])],
      model.get("cluster_label") === null ? "" : String(model.get("cluster_label")));
    const k = h("input", { type: "number", min: 2, max: 12, value: model.get("cluster_k"), "data-testid": "cluster-k", class: "sw-number", "aria-label": "clusters" });
    const clusterStrip = cl.maps ? h("div", { class: "sw-strip", "data-testid": "clusters" },
      ...mapStrip(cl.maps, (cl.sizes ?? []).map((s, i) => `cluster ${i}: ${s}`), lut)) : "";
    const hint = cl.maps ? h("div", { class: "sw-muted", text: `SpRAy on ${cl.label_name}: ${cl.k} clusters (the eigengap suggests ${cl.suggested_k})` }) : "";
    box.replaceChildren(
      h("div", { class: "sw-section-title" }, `mean |map| share (${mm.method ?? ""}) by `, by), disparity, strip,
      h("div", { class: "sw-section-title" }, "SpRAy clusters of ", clusterClass, " k ", k), hint, clusterStrip);
    offs.splice(0).forEach((o) => o());
    offs.push(
      on(by, "change", () => put(model, { mean_by: by.value as Explorer["mean_by"] })),
      on(clusterClass, "change", () => put(model, { cluster_label: clusterClass.value === "" ? null : Number(clusterClass.value) })),
      on(k, "change", () => put(model, { cluster_k: Math.max(2, Math.min(12, Number(k.value) || 2)) })),
    );
  };
  const offs: (() => void)[] = [];
  build();
  const off = watch(model, ["mean_maps", "clusters", "mean_by", "cluster_label", "cluster_k", "classes"], build);
  return () => (off(), offs.forEach((o) => o()));
}

function detailView(model: ExplorerModel, parent: HTMLElement): () => void {
  const box = h("div", { class: "sw-detail", "data-testid": "detail" });
  parent.append(box);
  let unmount: (() => void) | null = null;
  let generation = 0;
  const show = async () => {
    const ref = model.get("detail");
    const selected = model.get("selected");
    box.hidden = selected === null || !ref;
    if (!ref || selected === null || unmount) return;
    const mine = ++generation;
    const [child] = await childModels<Model>(model as unknown as WidgetModel, [ref]);
    if (mine !== generation || unmount) return;
    unmount = renderSaliency({ model: child as unknown as WidgetModel, el: box });
  };
  void show();
  const off = watch(model, ["detail", "selected"], () => void show());
  return () => {
    generation++;
    off();
    unmount?.();
  };
}

function status(model: ExplorerModel, parent: HTMLElement): () => void {
  const text = h("div", { class: "sw-status", "data-testid": "explorer-status", role: "status" });
  const error = h("pre", { class: "sw-error", "data-testid": "explorer-error" });
  parent.append(text, error);
  const show = () => {
    text.dataset.status = model.get("status");
    text.textContent = model.get("status") === "computing" ? model.get("message") || "computing…" : "";
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
  };
  show();
  return watch(model, ["status", "message", "error"], show);
}

function render({ model, el }: RenderProps<Explorer>): () => void {
  const root = h("div", { class: "saliency-explorer" });
  el.append(root);
  const top = h("div", { class: "sw-explorer-top" });
  const left = h("div", { class: "sw-explorer-main" });
  const right = h("div", { class: "sw-explorer-side" });
  top.append(left, right);
  root.append(top);
  const cleanups = [
    toolbar(model, left),
    status(model, left),
    gallery(model, left),
    confusionMatrix(model, right),
    aggregates(model, right),
    detailView(model, root),
  ];
  return () => {
    for (const off of cleanups) off();
    root.remove();
  };
}

export default { render };
