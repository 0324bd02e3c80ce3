// What an attack view says, DOM-free: the settings in words, the shift table, the scale of the
// amplified perturbation, and the maps as coloured pixels under the widget's display settings.
import type { AttackView } from "../model";
import type { Display } from "../panels";
import { composite, displayValues, robustRange, sortedFinite, thresholdCut } from "../render/colormap";

/** A budget in the units people use for 8-bit images: "8/255" (or the number itself). */
export function epsilonText(eps: number): string {
  const k = eps * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 ? `${Math.round(k)}/255` : eps.toPrecision(3);
}

export function settingsCaption(settings: Record<string, unknown>): string {
  const parts = [String(settings.kind ?? "untargeted")];
  if (typeof settings.epsilon === "number") parts.push(`ε = ${epsilonText(settings.epsilon)}`);
  if (typeof settings.steps === "number") parts.push(`${settings.steps} steps`);
  parts.push(`keep ${settings.keep ?? "label"}`);
  return parts.join(" · ");
}

const fixed = (digits: number) => (v: number | boolean | null | undefined) =>
  typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";

/** The shift measures (how far the map moved) beside the same measures for random sign noise of
 *  the same size: the attack should move the map further than noise does. */
export function shiftRows(view: AttackView): { key: string; label: string; title: string; attack: string; noise: string }[] {
  const s = view.summary ?? {};
  const k = typeof view.settings.top_k === "number" ? view.settings.top_k : 0.05;
  const pct = `${+(k * 100).toFixed(1)} %`;
  const px = (v: number | boolean | null | undefined) => (typeof v === "number" && Number.isFinite(v) ? `${(v * 255).toFixed(1)}/255` : "—");
  const rows = [
    { key: "top_k_intersection", label: `top ${pct} kept`, title: `share of the map's original top ${pct} pixels still in its top ${pct} (1 = unmoved)`, fmt: fixed(2) },
    { key: "spearman", label: "Spearman ρ", title: "rank correlation of the pixels' |attribution| with the original map's (1 = unmoved)", fmt: fixed(2) },
    { key: "com_distance", label: "centre moved", title: "distance between the maps' centres of mass, in model-input pixels (0 = unmoved)", fmt: (v: number | boolean | null | undefined) => (typeof v === "number" && Number.isFinite(v) ? `${v.toFixed(1)} px` : "—") },
    { key: "kept", label: "label kept", title: "whether the model's predicted label stayed the same", fmt: (v: number | boolean | null | undefined) => (v === true ? "yes" : v === false ? "no" : "—") },
    { key: "linf", label: "L∞ size", title: "largest change of any pixel value ([0, 1] pixels, shown in 1/255 units)", fmt: px },
    { key: "l2", label: "L2 size", title: "Euclidean size of the change ([0, 1] pixels)", fmt: fixed(2) },
  ];
  const out = rows.map((r) => ({ key: r.key, label: r.label, title: r.title, attack: r.fmt(s[r.key]), noise: r.fmt(s[`noise_${r.key}`]) }));
  if ("target_mass_attacked" in s) {
    // a targeted attack: how much of the map it pulled into the target box
    const share = fixed(2);
    out.unshift({
      key: "target_mass", label: "mass in target",
      title: `share of |map| inside the target box (the original map: ${share(s.target_mass_original)})`,
      attack: share(s.target_mass_attacked), noise: share(s.target_mass_noise),
    });
  }
  return out;
}

/** How the perturbation is drawn: ×gain around mid-grey, its largest change in black or white. */
export function perturbationCaption(gain: number, linf: number): string {
  if (!(linf > 0)) return "perturbation: none (no step was accepted)";
  return `perturbation ×${gain.toFixed(gain < 10 ? 1 : 0)} (grey = unchanged; black/white = ±${(linf * 255).toFixed(1)}/255)`;
}

/** A map over a picture as RGBA, as a panel draws it (colormap, opacity, sign, clip, threshold). */
export function mapPixels(image: Uint8Array, signed: Float32Array, absolute: Float32Array | null, display: Display): Uint8ClampedArray {
  const values = displayValues(signed, absolute, display.sign);
  const isSigned = display.sign === "signed";
  const sorted = sortedFinite(values, isSigned);
  const [lo, hi] = robustRange(sorted, display.clip, isSigned);
  const cut = thresholdCut(sorted, values.length, display.threshold);
  const out = new Uint8ClampedArray(values.length * 4);
  return composite({ image, values, lut: display.lut, lo, hi, opacity: display.opacity, cut, signed: isSigned }, out);
}

/** RGBA of an (H·W·3) picture. */
export function picturePixels(rgb: Uint8Array): Uint8ClampedArray {
  const n = rgb.length / 3;
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    out[4 * i] = rgb[3 * i];
    out[4 * i + 1] = rgb[3 * i + 1];
    out[4 * i + 2] = rgb[3 * i + 2];
    out[4 * i + 3] = 255;
  }
  return out;
}

const WORDS: Record<AttackView["state"], string> = {
  waiting: "waiting for the map…",
  queued: "queued…",
  running: "attacking…",
  ready: "",
  error: "failed",
  cancelled: "cancelled: press attack to run it again",
};

export function stateWords(view: AttackView): string {
  if (view.state === "running" && typeof view.progress === "number" && view.progress > 0) {
    return `attacking… ${Math.round(view.progress * 100)} %`;
  }
  if (view.state === "error") return view.error ?? "failed";
  return WORDS[view.state];
}
