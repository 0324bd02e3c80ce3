// Each panel's agreement with the painted mask, in words and numbers, at the panel's foot:
// [data-testid=agreement][data-method=M], one [data-metric] span per metric.
import { h } from "../dom";
import { listen, type WidgetModel } from "../model";

/** The metrics as the widget names them (saliency_widgets/agreement.py AGREEMENT). */
export const METRICS: { key: string; label: string; title: string }[] = [
  { key: "pointing_game", label: "pointing", title: "Pointing game: does the map's maximum fall on (or near) the painted region?" },
  { key: "relevance_mass", label: "mass", title: "Relevance mass: share of the positive relevance inside the painted region" },
  { key: "relevance_rank", label: "rank", title: "Relevance rank: share of the top-|mask| pixels inside the painted region" },
  { key: "top_k_iou", label: "IoU", title: "Top-k IoU: overlap of the map's top 10 % with the painted region" },
];

/** One metric's value as shown: the pointing game as hit / miss, the others with 2 decimals,
 *  "—" where undefined (an empty mask, or a constant map that points nowhere). */
export function formatMetric(key: string, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (key === "pointing_game") return value >= 1 ? "hit" : "miss";
  return value.toFixed(2);
}

/** The agreement line of one method, or null when there is nothing to show (no mask). */
export function agreementItems(values: Record<string, number | null> | undefined) {
  if (!values) return null;
  return METRICS.map((m) => ({ ...m, text: formatMetric(m.key, values[m.key]), value: values[m.key] ?? null }));
}

export interface Decorated {
  readonly root: HTMLElement;
  readonly method: string;
}

/** Keeps an agreement line in every panel; `update()` after the panels or the values change. */
export function agreementLines(model: WidgetModel, views: Map<string, Decorated>) {
  const update = () => {
    const all = model.get("agreement") ?? {};
    for (const [method, view] of views) {
      let line = view.root.querySelector<HTMLElement>(":scope > [data-testid=agreement]");
      if (!line) {
        line = h("div", { class: "sw-agreement", "data-testid": "agreement", "data-method": method, "aria-label": "agreement with the painted mask" });
        view.root.append(line); // under the canvas: a line appearing mid-stroke must not move it
      }
      const items = agreementItems(all[method]);
      line.hidden = items === null;
      if (!items) {
        line.replaceChildren();
        continue;
      }
      line.replaceChildren(
        h("span", { class: "sw-agreement-label", text: "vs mask" }),
        ...items.map((it) =>
          h("span", { class: "sw-agreement-item", "data-metric": it.key, "data-value": it.value === null ? "" : String(it.value), title: it.title },
            h("span", { class: "sw-agreement-name", text: it.label }), ` ${it.text}`),
        ),
      );
    }
  };
  const off = listen(model, ["agreement"], update);
  return { update, cleanup: off };
}
