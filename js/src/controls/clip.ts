import type { WidgetModel } from "../model";
import { slider } from "./slider";

/** Percentile clipping: the colour range ignores values above this percentile. */
export function clipControl(model: WidgetModel, parent: HTMLElement): () => void {
  return slider(model, parent, "clip_percentile", {
    label: "clip at percentile", step: 0.1, testid: "clip", format: (v) => v.toFixed(1),
  });
}
