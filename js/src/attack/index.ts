// The attack controls, wired: the settings row (budget, steps, kind), an attack button in every
// panel ([data-testid=attack-run][data-method=M]), and the attack views under the panels
// ([data-testid=attack-view][data-method=M]). The attacks run in Python (widget/attack.py).
import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";
import type { Display, PanelView } from "../panels";
import type { Size } from "../viewport";
import { epsilonText } from "./format";
import { AttackPanel } from "./view";

const EPSILONS = [1, 2, 4, 8, 16].map((k) => k / 255);

export function attackRoom(
  model: WidgetModel,
  parent: HTMLElement,
  root: HTMLElement,
  container: HTMLElement,
  views: Map<string, PanelView>,
  image: Size,
  picture: Uint8Array,
  display: () => Display,
) {
  const eps = h("select", { "data-testid": "attack-epsilon", "aria-label": "attack budget" });
  eps.append(...EPSILONS.map((e) => new Option(`ε ${epsilonText(e)}`, String(e))));
  const steps = h("input", { type: "number", min: 1, max: 500, step: 1, "data-testid": "attack-steps", "aria-label": "attack steps" });
  const kind = h("select", { "data-testid": "attack-kind", "aria-label": "attack kind" });
  kind.append(new Option("untargeted", "untargeted"), new Option("targeted (box)", "targeted"));
  parent.append(
    h("div", { class: "sw-field", title: "red-team a map: move it within an L∞ budget while the prediction stays put" },
      h("span", { class: "sw-field-label", text: "attack" }), eps, kind, steps, h("span", { class: "sw-field-label", text: "steps" })),
  );
  const showSettings = () => {
    const s = model.get("attack_settings") ?? {};
    const e = Number(s.epsilon);
    if (!EPSILONS.some((x) => String(x) === String(e)) && Number.isFinite(e)) eps.append(new Option(`ε ${epsilonText(e)}`, String(e)));
    eps.value = String(e);
    kind.value = String(s.kind ?? "untargeted");
    steps.value = String(s.steps ?? 10);
  };
  showSettings();
  const set = (patch: Record<string, unknown>) => update(model, { attack_settings: { ...(model.get("attack_settings") ?? {}), ...patch } });

  const panels = new Map<string, AttackPanel>();
  const decorate = () => {
    const d = display();
    const wanted = new Set<string>();
    for (const [method, pv] of views) {
      let button = pv.root.querySelector<HTMLButtonElement>("[data-testid=attack-run]");
      if (!button) {
        button = h("button", { type: "button", class: "sw-button sw-attack-run", "data-testid": "attack-run", "data-method": method, title: "attack this map: move it while the prediction stays put", text: "attack" });
        (pv.root.querySelector(".sw-panel-head") ?? pv.root).append(button);
      }
      const panel = pv.panel;
      const data = panel?.attack ?? null;
      const busy = !!data && ["waiting", "queued", "running"].includes(data.state);
      button.disabled = panel?.state !== "ready" || busy;
      if (!data || !panel) continue;
      wanted.add(method);
      let ap = panels.get(method);
      if (!ap) {
        ap = new AttackPanel(method, panel.label, image, picture, () => model.send({ type: "attack_cancel", method }));
        panels.set(method, ap);
      }
      if (ap.data !== data) ap.set(data, d);
      container.append(ap.root); // in panel order
    }
    for (const [method, ap] of panels) {
      if (!wanted.has(method)) {
        ap.destroy();
        panels.delete(method);
      }
    }
    container.hidden = panels.size === 0;
  };
  const restyle = () => {
    const d = display();
    for (const ap of panels.values()) ap.restyle(d);
  };
  const offs = [
    on(root, "click", (e) => {
      const b = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-testid=attack-run]");
      if (b && !b.disabled) model.send({ type: "attack", method: b.dataset.method });
    }),
    on(eps, "change", () => set({ epsilon: Number(eps.value) })),
    on(kind, "change", () => set({ kind: kind.value })),
    on(steps, "change", () => {
      const n = Math.round(Number(steps.value));
      if (n >= 1) set({ steps: n });
      else showSettings();
    }),
    listen(model, ["attack_settings"], showSettings),
  ];
  return {
    decorate,
    restyle,
    cleanup: () => {
      offs.forEach((off) => off());
      for (const ap of panels.values()) ap.destroy();
      panels.clear();
    },
  };
}
