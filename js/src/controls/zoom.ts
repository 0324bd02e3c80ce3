import { h, on } from "../dom";
import type { Store } from "../store";
import { resetView, zoomAt, type Size, type ViewState } from "../viewport";

/** Zoom buttons acting on the shared (JS-only) view; the wheel and drag live on the canvases. */
export function zoomButtons(parent: HTMLElement, view: Store<ViewState>, viewSize: Size, image: Size): () => void {
  const zin = h("button", { type: "button", class: "sw-button", "data-testid": "zoom-in", title: "zoom in", text: "+" });
  const zout = h("button", { type: "button", class: "sw-button", "data-testid": "zoom-out", title: "zoom out", text: "−" });
  const reset = h("button", { type: "button", class: "sw-button", "data-testid": "zoom-reset", title: "reset zoom", text: "reset" });
  const label = h("span", { class: "sw-value", "data-testid": "zoom-level" });
  parent.append(h("div", { class: "sw-field" }, h("span", { class: "sw-field-label", text: "zoom" }), zout, zin, reset, label));
  const centre = (f: number) => view.set(zoomAt(view.get(), f, viewSize.width / 2, viewSize.height / 2, viewSize, image));
  const show = (s: ViewState) => (label.textContent = `${s.zoom.toFixed(2)}×`);
  show(view.get());
  const offs = [
    on(zin, "click", () => centre(1.5)),
    on(zout, "click", () => centre(1 / 1.5)),
    on(reset, "click", () => view.set(resetView(image))),
    view.subscribe(show),
  ];
  return () => offs.forEach((off) => off());
}
