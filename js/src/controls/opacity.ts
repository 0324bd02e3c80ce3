import type { WidgetModel } from "../model";
import { slider } from "./slider";

export function opacityControl(model: WidgetModel, parent: HTMLElement): () => void {
  return slider(model, parent, "opacity", {
    label: "opacity", step: 0.05, testid: "opacity", format: (v) => `${Math.round(v * 100)}%`,
  });
}
