import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";

/** The colormap menu: every lookup table Python sent; choosing one needs no round trip. */
export function colormapSelect(model: WidgetModel, parent: HTMLElement): () => void {
  const select = h("select", { "data-testid": "colormap", "aria-label": "colormap" });
  parent.append(h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "colormap" }), select));
  const fill = () => {
    const names = model.get("colormaps")?.names ?? [];
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    select.value = model.get("colormap");
  };
  fill();
  const offModel = listen(model, ["colormaps", "colormap"], fill);
  const offSelect = on(select, "change", () => update(model, { colormap: select.value }));
  return () => (offModel(), offSelect());
}
