import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";

/** One toggle per registered method, built from the registry Python sends: a new method
 *  appears here without any JS change. */
export function methodToggles(model: WidgetModel, parent: HTMLElement): () => void {
  const row = h("div", { class: "sw-toggles", role: "group", "aria-label": "methods" });
  parent.append(row);
  const build = () => {
    row.replaceChildren(
      ...(model.get("methods") ?? []).map((m) =>
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
