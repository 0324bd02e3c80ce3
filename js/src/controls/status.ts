import { h, on } from "../dom";
import { listen, type WidgetModel } from "../model";

/** Status words, a progress bar for long work, the cancel button, and errors in words. */
export function statusBar(model: WidgetModel, parent: HTMLElement): () => void {
  const text = h("span", { class: "sw-status", "data-testid": "status", role: "status", "aria-live": "polite" });
  const bar = h("progress", { class: "sw-progress", max: 1, "data-testid": "progress" });
  const cancel = h("button", { type: "button", class: "sw-button", "data-testid": "cancel", text: "cancel" });
  const error = h("pre", { class: "sw-error", "data-testid": "error" });
  parent.append(h("div", { class: "sw-status-row" }, text, bar, cancel), error);
  const show = () => {
    const status = model.get("status");
    text.dataset.status = status;
    const message = model.get("message");
    text.textContent = status === "computing" ? message || "computing…" : status === "error" ? "error" : "ready";
    const p = model.get("progress");
    bar.hidden = status !== "computing";
    if (p > 0) bar.value = p;
    else bar.removeAttribute("value"); // indeterminate until the first progress report
    cancel.disabled = status !== "computing";
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
  };
  show();
  const offModel = listen(model, ["status", "message", "progress", "error"], show);
  const offCancel = on(cancel, "click", () => model.send({ type: "cancel" }));
  return () => (offModel(), offCancel());
}
