import { h, on } from "../dom";
import { listen, update, type MethodInfo, type WidgetModel } from "../model";

/** How the registry's families are shown, in this order; an unknown family comes last, as is. */
const FAMILIES: [string, string][] = [
  ["gradient", "gradients"],
  ["smoothing", "smoothing"],
  ["path", "path integrals"],
  ["relevance", "relevance rules"],
  ["cam", "CAM"],
  ["perturbation", "perturbation"],
  ["region", "regions"],
  ["surrogate", "surrogates"],
  ["transformer", "transformers"],
];

/** The methods grouped by family, families in FAMILIES' order, methods in registry order. */
export function groupByFamily(methods: MethodInfo[]): { family: string; label: string; methods: MethodInfo[] }[] {
  const order = new Map(FAMILIES.map(([f], i) => [f, i] as const));
  const groups = new Map<string, MethodInfo[]>();
  for (const m of methods) groups.set(m.family, [...(groups.get(m.family) ?? []), m]);
  return [...groups.entries()]
    .sort(([a], [b]) => (order.get(a) ?? order.size) - (order.get(b) ?? order.size))
    .map(([family, list]) => ({ family, label: FAMILIES.find(([f]) => f === family)?.[1] ?? family, methods: list }));
}

/** One toggle per registered method, built from the registry Python sends and grouped by
 *  family: a new method appears here without any JS change. */
export function methodToggles(model: WidgetModel, parent: HTMLElement): () => void {
  const row = h("div", { class: "sw-toggles", role: "group", "aria-label": "methods" });
  parent.append(row);
  const build = () => {
    row.replaceChildren(
      ...groupByFamily(model.get("methods") ?? []).map((g) =>
        h(
          "span",
          { class: "sw-family", "data-family": g.family },
          h("span", { class: "sw-family-label", text: g.label }),
          ...g.methods.map((m) =>
            h("button", {
              type: "button",
              class: "sw-toggle",
              "data-testid": "method-toggle",
              "data-method": m.name,
              "aria-pressed": "false",
              title: m.doc,
              text: m.label,
            }),
          ),
        ),
      ),
    );
    pressed();
  };
  const pressed = () => {
    const selected = new Set(model.get("methods_selected") ?? []);
    for (const b of row.querySelectorAll<HTMLButtonElement>("[data-testid=method-toggle]")) {
      b.setAttribute("aria-pressed", String(selected.has(b.dataset.method!)));
    }
  };
  build();
  const offs = [
    listen(model, ["methods"], build),
    listen(model, ["methods_selected"], pressed),
    on(row, "click", (e) => {
      const b = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-testid=method-toggle]");
      if (!b) return;
      const name = b.dataset.method!;
      const now = model.get("methods_selected") ?? [];
      update(model, { methods_selected: now.includes(name) ? now.filter((n) => n !== name) : [...now, name] });
    }),
  ];
  return () => offs.forEach((off) => off());
}
