import type { WidgetModel } from "../model";
import { slider } from "./slider";

export function opacityControl(model: WidgetModel, parent: HTMLElement): () => void {
  return slider(model, parent, "opacity", {
    label: "opacity", min: 0, max: 1, step: 0.05, testid: "opacity", format: (v) => `${Math.round(v * 100)}%`,
  });
}
