// The trait contract with saliency_widgets/widget/widget.py: identical snake_case names.
import type { AnyModel } from "@anywidget/types";

/** A numpy array sent as a binary buffer (see codecs.ts). */
export interface ArrayPayload {
  view: DataView | ArrayBuffer | ArrayBufferView;
  dtype: string;
  shape: number[];
}

export type PanelState = "ready" | "computing" | "error" | "cancelled";
export type Sign = "signed" | "absolute" | "positive";

export interface Panel {
  id: string;
  method: string;
  label: string;
  /** "tabby" or "tabby rather than tiger cat" */
  objective: string;
  /** label · objective */
  title: string;
  state: PanelState;
  error: string;
  seconds: number | null;
  target: number | null;
  contrast: number | null;
  signed: ArrayPayload | null;
  absolute: ArrayPayload | null;
}

export interface MethodInfo {
  name: string;
  label: string;
  family: string;
  output: string;
  uses_layer: boolean;
  stochastic: boolean;
  params: Record<string, unknown>;
  choices: Record<string, unknown[]>;
  doc: string;
}

export interface Prediction {
  index: number;
  label: string;
  prob: number;
}

export interface Model {
  image: ArrayPayload;
  panels: Panel[];
  colormaps: { names: string[]; lut: ArrayPayload };
  methods: MethodInfo[];
  labels: string[];
  predictions: Prediction[];
  progress: number;
  message: string;
  methods_selected: string[];
  params: Record<string, Record<string, unknown>>;
  target: number;
  contrast: number | null;
  contrast_mode: "none" | "runner_up" | "class";
  colormap: string;
  opacity: number;
  sign: Sign;
  clip_percentile: number;
  threshold: number;
  status: "idle" | "computing" | "error";
  error: string;
}

export type WidgetModel = AnyModel<Model>;

/** Call `callback` whenever one of `names` changes; return the cleanup that stops it. */
export function listen(model: WidgetModel, names: (keyof Model)[], callback: () => void): () => void {
  const events = names.map((n) => `change:${String(n)}` as const);
  for (const e of events) model.on(e, callback);
  return () => {
    for (const e of events) model.off(e, callback);
  };
}

/** Set traits locally (listeners fire at once) and send them to Python in one message. */
export function update(model: WidgetModel, patch: Partial<Model>): void {
  for (const [key, value] of Object.entries(patch)) {
    model.set(key as keyof Model, value as never);
  }
  model.save_changes();
}
