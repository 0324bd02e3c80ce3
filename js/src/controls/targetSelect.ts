import { className, h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";

/** The indices whose label (or index) contains `query`, case-insensitively. */
export function filterClasses(labels: string[], query: string): number[] {
  const q = query.trim().toLowerCase();
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (!q || String(i) === q || labels[i].toLowerCase().includes(q)) out.push(i);
  }
  return out;
}

/** The target selector: a search box filtering a native <select> of every class. */
export function targetSelect(model: WidgetModel, parent: HTMLElement): () => void {
  const search = h("input", { type: "search", placeholder: "search classes", "data-testid": "target-search", "aria-label": "search target class" });
  const select = h("select", { "data-testid": "target-select", "aria-label": "target class" });
  const count = h("span", { class: "sw-value" });
  parent.append(h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "target" }), search, select, count));
  const fill = () => {
    const labels = model.get("labels") ?? [];
    const target = model.get("target");
    const matches = filterClasses(labels, search.value);
    if (!matches.includes(target)) matches.unshift(target); // the current target always stays
    select.replaceChildren(...matches.map((i) => new Option(className(labels, i), String(i))));
    select.value = String(target);
    count.textContent = search.value ? `${matches.length} shown` : "";
  };
  fill();
  const offs = [
    listen(model, ["labels", "target"], fill),
    on(search, "input", fill),
    on(search, "keydown", (e) => {
      if (e.key !== "Enter") return;
      const first = filterClasses(model.get("labels") ?? [], search.value)[0];
      if (first !== undefined) update(model, { target: first });
    }),
    on(select, "change", () => update(model, { target: Number(select.value) })),
  ];
  return () => offs.forEach((off) => off());
}
