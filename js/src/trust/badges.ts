// The badge row of a panel: value, direction, rank among the shown methods, and what a random
// and an edge map score, with the hover text saying what the metric measures.
import { h } from "../dom";
import type { Badge } from "../model";
import { arrow, badgeTitle, beats, formatMetric, rankText } from "./format";

export function renderBadges(slot: HTMLElement, method: string, badges: Badge[]): void {
  slot.replaceChildren(
    ...badges.map((b) => {
      const value = b.state === "ready" ? (b.undefined ? "n/a" : formatMetric(b.value)) : b.state === "error" ? "failed" : b.state === "cancelled" ? "cancelled" : "…";
      const better = [beats(b.value, b.random, b.higher_is_better), beats(b.value, b.edge, b.higher_is_better)];
      const el = h(
        "span",
        {
          class: "sw-badge",
          "data-testid": "badge",
          "data-method": method,
          "data-metric": b.metric,
          "data-state": b.state,
          // does the map beat both trivial maps? ("" until all three are known)
          "data-beats": better.includes(null) ? "" : String(better.every(Boolean)),
          title: badgeTitle(b),
        },
        h("span", { class: "sw-badge-name", text: b.label.replace(/ AUC$/, "") }),
        h("span", { class: "sw-badge-value", "data-testid": "badge-value", text: value }),
        h("span", { class: "sw-badge-arrow", text: arrow(b.higher_is_better) }),
        h("span", { class: "sw-badge-rank", text: rankText(b) }),
      );
      if (b.random !== null || b.edge !== null) {
        el.append(h("span", { class: "sw-badge-trivial", "data-testid": "badge-trivial", text: `rand ${formatMetric(b.random)} · edge ${formatMetric(b.edge)}` }));
      }
      return el;
    }),
  );
}
