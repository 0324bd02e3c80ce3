// Which metrics are shown as badges (toggles built from the metrics Python offers), and the
// "rank by" select that orders the panels by one of them (Python orders them).
import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";
import { arrow } from "./format";

export function metricControls(model: WidgetModel, parent: HTMLElement): () => void {
  const toggles = h("span", { class: "sw-family", role: "group", "aria-label": "metrics" });
  const select = h("select", { "data-testid": "rank-by", "aria-label": "rank by" });
  parent.append(
    h("span", { class: "sw-family-label", text: "metrics" }),
    toggles,
    h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "rank by" }), select),
  );
  const build = () => {
    const selected = model.get("metrics_selected") ?? [];
    const choices = model.get("metric_choices") ?? [];
    const known = new Set(choices.map((c) => c.name));
    const extra = selected.filter((m) => !known.has(m)).map((name) => ({ name, label: name, doc: "", higher_is_better: true, needs_masks: false }));
    const masks = !!model.get("masks_given") || !!model.get("expert_mask");
    toggles.replaceChildren(
      ...[...choices, ...extra].map((c) =>
        h("button", {
          type: "button", class: "sw-toggle", "data-testid": "metric-toggle", "data-metric": c.name,
          "aria-pressed": String(selected.includes(c.name)),
          disabled: !!c.needs_masks && !masks && !selected.includes(c.name),
          title: c.needs_masks && !masks ? `${c.doc} Needs a mask: paint one, or pass masks= to sw.show.` : c.doc,
          text: `${c.label.replace(/ AUC$/, "")} ${arrow(c.higher_is_better)}`,
        }),
      ),
    );
    const labels = new Map(choices.map((c) => [c.name, c.label] as const));
    select.replaceChildren(new Option("selection order", ""), ...selected.map((m) => new Option(labels.get(m) ?? m, m)));
    select.value = model.get("rank_by") ?? "";
  };
  build();
  const offs = [
    listen(model, ["metric_choices", "metrics_selected", "rank_by", "masks_given", "expert_mask"], build),
    on(toggles, "click", (e) => {
      const b = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-testid=metric-toggle]");
      if (!b) return;
      const name = b.dataset.metric!;
      const now = model.get("metrics_selected") ?? [];
      update(model, { metrics_selected: now.includes(name) ? now.filter((n) => n !== name) : [...now, name] });
    }),
    on(select, "change", () => update(model, { rank_by: select.value })),
  ];
  return () => offs.forEach((off) => off());
}
