import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";

/** Top-k predictions with probabilities; clicking one makes it the target. */
export function predictionList(model: WidgetModel, parent: HTMLElement): () => void {
  const list = h("div", { class: "sw-predictions", "data-testid": "predictions", role: "list" });
  parent.append(list);
  const build = () => {
    const target = model.get("target");
    list.replaceChildren(
      ...(model.get("predictions") ?? []).map((p) => {
        const bar = h("span", { class: "sw-prob-bar" });
        bar.style.width = `${Math.max(1, Math.round(p.prob * 100))}%`;
        return h(
          "button",
          { type: "button", class: "sw-prediction", role: "listitem", "data-testid": "prediction", "data-index": p.index, "aria-pressed": String(p.index === target), title: `class ${p.index}` },
          h("span", { class: "sw-prob-track" }, bar),
          h("span", { class: "sw-prob-label", text: p.label }),
          h("span", { class: "sw-prob", text: `${(p.prob * 100).toFixed(1)}%` }),
        );
      }),
    );
  };
  build();
  const offs = [
    listen(model, ["predictions", "target"], build),
    on(list, "click", (e) => {
      const b = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-testid=prediction]");
      if (b) update(model, { target: Number(b.dataset.index) });
    }),
  ];
  return () => offs.forEach((off) => off());
}
