import { h, on } from "../dom";
import { listen, update, type Sign, type WidgetModel } from "../model";

const SIGNS: [Sign, string][] = [
  ["signed", "signed"],
  ["absolute", "absolute"],
  ["positive", "positive only"],
];

export function signSelect(model: WidgetModel, parent: HTMLElement): () => void {
  const select = h("select", { "data-testid": "sign", "aria-label": "sign" });
  select.append(...SIGNS.map(([v, text]) => new Option(text, v)));
  parent.append(h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "values" }), select));
  const show = () => (select.value = model.get("sign"));
  show();
  const offModel = listen(model, ["sign"], show);
  const offSelect = on(select, "change", () => update(model, { sign: select.value as Sign }));
  return () => (offModel(), offSelect());
}
