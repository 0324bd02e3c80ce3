// How the trust views print numbers and explain a badge (pure: unit tested in node).
import type { Badge } from "../model";

/** A metric value to 3 significant digits (the precision the badge prints). */
export function formatMetric(v: number | null | undefined): string {
  if (v === null || v === undefined) return "…";
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e3 || a < 1e-3) return v.toExponential(2);
  return v.toPrecision(3); // trailing zeros kept: "0.500" says how precise it is
}

/** Half a unit in the last printed digit: |value − printed| is at most this. */
export function printedTolerance(text: string): number {
  const m = /^-?(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(text.trim());
  if (!m) return NaN;
  const decimals = m[2] ? m[2].length : 0;
  const exponent = m[3] ? Number(m[3]) : 0;
  return 0.5 * 10 ** (exponent - decimals);
}

export function arrow(higherIsBetter: boolean): string {
  return higherIsBetter ? "↑" : "↓";
}

/** "#1/3": the rank among the shown methods (tied values share the better rank). */
export function rankText(b: Pick<Badge, "rank" | "of">): string {
  return b.rank === null || b.of < 2 ? "" : `#${b.rank}/${b.of}`;
}

/** The hover text: what the metric measures, its parameters, the trivial maps' scores. */
export function badgeTitle(b: Badge): string {
  const lines = [
    `${b.label} (${b.higher_is_better ? "higher" : "lower"} is better): ${b.doc}`,
    `Parameters: ${b.params.map(([k, v]) => `${k}=${v}`).join(", ") || "none"}`,
    `Trivial maps on the same metric: random ${formatMetric(b.random)}, edge (Sobel) ${formatMetric(b.edge)}`,
  ];
  const wins = [beats(b.value, b.random, b.higher_is_better), beats(b.value, b.edge, b.higher_is_better)];
  if (!wins.includes(null)) {
    lines.push(wins.every(Boolean) ? "Better than both trivial maps." : "Not better than both trivial maps (dashed border): on this metric the map has not shown it explains the model.");
  }
  if (b.rank !== null) lines.push(`Rank ${b.rank} of ${b.of} shown methods`);
  if (b.state === "ready" && b.undefined) lines.push("Undefined for this map (e.g. an all-zero map).");
  if (b.state === "error") lines.push(`Failed: ${b.error}`);
  if (b.state === "computing") lines.push("Computing…");
  if (b.state === "cancelled") lines.push("Cancelled (retry from the status bar).");
  return lines.join("\n");
}

/** Whether a value beats a trivial map's on this metric (null when either is missing). */
export function beats(value: number | null, trivial: number | null, higherIsBetter: boolean): boolean | null {
  if (value === null || trivial === null) return null;
  return higherIsBetter ? value > trivial : value < trivial;
}
