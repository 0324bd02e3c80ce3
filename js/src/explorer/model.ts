// The explorer's trait contract with saliency_widgets/widget/explorer.py.
import type { AnyModel } from "@anywidget/types";
import type { ArrayPayload } from "../model";

export interface Row {
  idx: number;
  label: number;
  pred: number;
  correct: number | boolean;
  group: string | number | null;
  confidence: number | null;
  loss: number | null;
  value: number | null; // the sort column's value
}

export interface Filter {
  correct?: "correct" | "wrong";
  label?: number;
  pred?: number;
  group?: string | number;
  cell?: [number, number];
}

export interface Explorer {
  classes: string[];
  groups: (string | number)[];
  audit_methods: string[];
  columns: string[];
  total: number;
  page_rows: Row[];
  page_images: ArrayPayload | null;
  page_maps: ArrayPayload | null;
  confusion: ArrayPayload;
  mean_maps: { by?: string; method?: string; titles?: string[]; counts?: number[]; maps?: ArrayPayload;
    disparity?: { groups: string[]; value: number; p_value: number } | null };
  clusters: { label?: number; label_name?: string; k?: number; sizes?: number[]; suggested_k?: number; maps?: ArrayPayload };
  lut: ArrayPayload;
  detail: string | null; // "IPY_MODEL_<id>" of the single-image widget
  status: "idle" | "computing" | "error";
  message: string;
  error: string;
  method: string;
  sort_by: string;
  descending: boolean;
  filter: Filter;
  page: number;
  page_size: number;
  selected: number | null;
  mean_by: "label" | "pred" | "group" | "cell";
  cluster_label: number | null;
  cluster_k: number;
}

export type ExplorerModel = AnyModel<Explorer>;

/** Set traits locally and send them to Python in one message. */
export function put(model: ExplorerModel, patch: Partial<Explorer>): void {
  for (const [key, value] of Object.entries(patch)) model.set(key as keyof Explorer, value as never);
  model.save_changes();
}

export function watch(model: ExplorerModel, names: (keyof Explorer)[], callback: () => void): () => void {
  const events = names.map((n) => `change:${String(n)}` as const);
  for (const e of events) model.on(e, callback);
  return () => {
    for (const e of events) model.off(e, callback);
  };
}
