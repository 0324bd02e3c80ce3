// A labelled range input bound to one numeric trait. Its range is the trait's own bounds (the
// `limits` trait), so the slider never disagrees with Python. The view updates at once (model.set
// fires local listeners); the value reaches Python at most every 150 ms (one message).
import { h, on } from "../dom";
import type { Model, WidgetModel } from "../model";

type NumericKey = "opacity" | "clip_percentile" | "threshold" | "brush_size";

export function slider(
  model: WidgetModel,
  parent: HTMLElement,
  key: NumericKey,
  opts: { label: string; step: number; testid: string; format: (v: number) => string },
): () => void {
  const [min, max] = model.get("limits")[key];
  const input = h("input", { type: "range", min, max, step: opts.step, "data-testid": opts.testid, "aria-label": opts.label });
  const value = h("span", { class: "sw-value" });
  parent.append(h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: opts.label }), input, value));
  let timer: ReturnType<typeof setTimeout> | null = null;
  const show = () => {
    const v = model.get(key) as Model[NumericKey];
    input.value = String(v);
    value.textContent = opts.format(v);
  };
  show();
  const handler = () => show();
  model.on(`change:${key}`, handler);
  const offInput = on(input, "input", () => {
    model.set(key, Number(input.value));
    if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        model.save_changes();
      }, 150);
    }
  });
  return () => {
    offInput();
    model.off(`change:${key}`, handler);
    if (timer !== null) {
      clearTimeout(timer);
      model.save_changes();
    }
  };
}
