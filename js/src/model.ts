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

/** One panel's state: a child model of its own (see saliency_widgets/widget/panel.py). */
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
  /** Why the map is blank (all zero or constant), in words; "" otherwise. */
  note: string;
  /** The attack on this map (saliency_widgets/widget/attack.py), or null. */
  attack: AttackView | null;
  /** The trust views (saliency_widgets/widget/trust/, js/src/trust/). */
  badges: Badge[];
  curves: Curves | null;
  sanity: SanityData | null;
}

/** A map's display payloads: the channel-summed map, and Σ|channel| for multi-channel maps. */
export interface MapPayloads {
  signed: ArrayPayload;
  absolute: ArrayPayload | null;
}

/** What a panel's attack view shows (see saliency_widgets/widget/attack.py). */
export interface AttackView {
  id: string;
  state: "waiting" | "queued" | "running" | "ready" | "error" | "cancelled";
  settings: Record<string, unknown>;
  progress?: number;
  error?: string;
  // when ready:
  image?: ArrayPayload; // the attacked picture (H, W, 3) uint8
  perturbation?: ArrayPayload; // 0.5 + gain · δ, (H, W, 3) uint8
  gain?: number;
  linf?: number;
  original?: MapPayloads;
  attacked?: MapPayloads;
  summary?: Record<string, number | boolean | null>;
  surrogate?: boolean;
  step_size?: number;
}

export const PANEL_KEYS: (keyof Panel)[] = [
  "id", "method", "label", "objective", "title", "state", "error", "seconds", "target", "contrast",
  "signed", "absolute", "note", "attack", "badges", "curves", "sanity",
];

/** One metric badge of a panel: sw.evaluate's value, its rank among the shown methods, and
 *  what a random and an edge map score on the same metric. */
export interface Badge {
  metric: string;
  label: string;
  family: string;
  higher_is_better: boolean;
  doc: string;
  state: PanelState;
  error: string;
  value: number | null;
  /** true when the metric is undefined for this map (NaN) */
  undefined: boolean;
  rank: number | null;
  of: number;
  params: [string, string][];
  random: number | null;
  edge: number | null;
}

/** A deletion or insertion curve: the objective at each step, the pixel counts moved at each
 *  step, the substrate (deletion's fill / insertion's start) and trivial maps' curves. */
export interface CurvePart {
  y: ArrayPayload;
  counts: ArrayPayload;
  substrate: ArrayPayload;
  insert: boolean;
  value: number | null;
  ranks?: ArrayPayload;
  random?: ArrayPayload;
  edge?: ArrayPayload;
}

export interface Curves {
  id: string;
  /** int32 (H, W): each pixel's position in the metric's removal order (0 = moved first). */
  ranks: ArrayPayload;
  deletion?: CurvePart;
  insertion?: CurvePart;
}

/** The randomization cascade of one panel's method. */
export interface SanityData {
  id: string;
  state: "ready" | "computing" | "error" | "cancelled";
  error?: string;
  similarity?: string;
  blocks?: string[];
  curve?: ArrayPayload;
  signed?: ArrayPayload;
  absolute?: ArrayPayload | null;
  score?: number | null;
  final?: number | null;
  flag?: string;
  verdict?: string;
  threshold?: number;
}

export interface MetricChoice {
  name: string;
  label: string;
  family: string;
  doc: string;
  higher_is_better: boolean;
  /** a localization metric: needs masks (given, or painted in paint mode) */
  needs_masks?: boolean;
}

export interface PathInfo {
  method?: string;
  label?: string;
  state?: "ready" | "computing" | "error" | "cancelled" | "waiting";
  id?: string;
  error?: string;
  message?: string;
  steps?: number;
  position_name?: string;
  positions?: ArrayPayload;
  scores?: ArrayPayload | null;
  total?: number | null;
  gap?: number | null;
  relative_gap?: number | null;
  change?: number | null;
  params?: [string, string][];
}

export interface PathFrame {
  id?: string;
  index?: number;
  position?: number;
  score?: number | null;
  weight?: number;
  window?: [number, number, number, number] | null;
  input?: ArrayPayload;
  step?: ArrayPayload;
  running?: ArrayPayload;
  step_total?: number | null;
  running_total?: number | null;
}

/** The part of a child model we use (Backbone models in Jupyter, marimo's model in marimo). */
export interface ChildModel<T> {
  get<K extends keyof T>(key: K): T[K];
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
}

/** One parameter as the registry describes it (see registry.py Param.describe). */
export interface ParamInfo {
  default: unknown;
  type: string; // "int", "float", "bool", "str", "int_pair", "layer", "dict", "any"
  nullable: boolean; // None means automatic
  choices: unknown[] | null;
  also: string | null; // what else an open choice accepts (e.g. "a number")
  bounds: { min: number | null; max: number | null } | null;
  editable: boolean;
  note: string;
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
  parameters?: Record<string, ParamInfo>;
  wraps?: { param: string; params: string } | null;
  doc: string;
}

export interface Prediction {
  index: number;
  label: string;
  prob: number;
}

export interface Model {
  image: ArrayPayload;
  /** "IPY_MODEL_<id>" references to the panels' child models, in display order. */
  panels: string[];
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
  limits: Record<"opacity" | "clip_percentile" | "threshold" | "brush_size", [number, number]>;
  status: "idle" | "computing" | "error";
  error: string;
  /** (H, W) uint8 0/1 at the model's input size, or null (saliency_widgets/widget/paint.py). */
  expert_mask: ArrayPayload | null;
  brush_size: number;
  /** method → metric → value (null: undefined) of each ready map against expert_mask. */
  agreement: Record<string, Record<string, number | null>>;
  attack_settings: Record<string, unknown>;
  metrics_selected: string[];
  metric_choices: MetricChoice[];
  masks_given: boolean;
  rank_by: string;
  sanity_check: boolean;
  path_method: string;
  path_step: number;
  path_info: PathInfo;
  path_frame: PathFrame;
}

export type WidgetModel = AnyModel<Model>;

/** Resolve "IPY_MODEL_<id>" references to the child models they name. */
export function childModels<T>(model: WidgetModel, refs: string[]): Promise<ChildModel<T>[]> {
  const manager = model.widget_manager as unknown as { get_model(id: string): Promise<unknown> };
  return Promise.all(refs.map((ref) => manager.get_model(ref.replace(/^IPY_MODEL_/, "")))) as Promise<
    ChildModel<T>[]
  >;
}

/** A child model's state as a plain object. */
export function readPanel(child: ChildModel<Panel>): Panel {
  const out = {} as Record<string, unknown>;
  for (const key of PANEL_KEYS) out[key] = child.get(key);
  return out as unknown as Panel;
}

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
