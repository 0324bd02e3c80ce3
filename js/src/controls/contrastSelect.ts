import { className, h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";

/** Contrast: none, the runner-up (re-resolved by Python when the target changes), or a class. */
export function contrastSelect(model: WidgetModel, parent: HTMLElement): () => void {
  const select = h("select", { "data-testid": "contrast-select", "aria-label": "contrast class" });
  const runnerUp = new Option("runner-up", "runner-up");
  parent.append(h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "rather than" }), select));
  const build = () => {
    const labels = model.get("labels") ?? [];
    select.replaceChildren(new Option("none", ""), runnerUp, ...labels.map((_, i) => new Option(className(labels, i), String(i))));
    show();
  };
  const show = () => {
    const mode = model.get("contrast_mode");
    const contrast = model.get("contrast");
    const labels = model.get("labels") ?? [];
    runnerUp.text = mode === "runner_up" && contrast !== null ? `runner-up: ${className(labels, contrast)}` : "runner-up";
    select.value = mode === "none" ? "" : mode === "runner_up" ? "runner-up" : String(contrast ?? "");
  };
  build();
  const offs = [
    listen(model, ["labels"], build),
    listen(model, ["contrast", "contrast_mode"], show),
    on(select, "change", () => {
      const v = select.value;
      if (v === "") update(model, { contrast_mode: "none", contrast: null });
      else if (v === "runner-up") update(model, { contrast_mode: "runner_up" });
      else update(model, { contrast_mode: "class", contrast: Number(v) });
    }),
  ];
  return () => offs.forEach((off) => off());
}
