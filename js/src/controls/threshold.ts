import type { WidgetModel } from "../model";
import { slider } from "./slider";

/** Show only the top k % of pixels. */
export function thresholdControl(model: WidgetModel, parent: HTMLElement): () => void {
  return slider(model, parent, "threshold", {
    label: "show top", step: 1, testid: "threshold", format: (v) => `${Math.round(v)}%`,
  });
}
