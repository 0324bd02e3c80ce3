import { describe, expect, it } from "vitest";
import { epsilonText, mapPixels, perturbationCaption, settingsCaption, shiftRows, stateWords } from "../src/attack/format";
import type { AttackView } from "../src/model";

describe("attack view words", () => {
  it("states the budget in 1/255 units and the settings", () => {
    expect(epsilonText(8 / 255)).toBe("8/255");
    expect(epsilonText(0.01)).toBe("0.0100");
    expect(settingsCaption({ kind: "untargeted", epsilon: 4 / 255, steps: 10 })).toBe("untargeted · ε = 4/255 · 10 steps · keep label");
  });
  it("puts the attack beside noise for every shift measure, — when undefined", () => {
    const view = {
      id: "x", state: "ready", settings: { top_k: 0.05 },
      summary: { top_k_intersection: 0.25, noise_top_k_intersection: 0.75, spearman: 0.5, noise_spearman: null,
        com_distance: 3.25, noise_com_distance: 0.5, kept: true, noise_kept: false, linf: 8 / 255, noise_linf: 8 / 255, l2: 1.5, noise_l2: 3 },
    } as unknown as AttackView;
    const rows = Object.fromEntries(shiftRows(view).map((r) => [r.key, [r.attack, r.noise]]));
    expect(rows.top_k_intersection).toEqual(["0.25", "0.75"]);
    expect(rows.spearman).toEqual(["0.50", "—"]);
    expect(rows.com_distance).toEqual(["3.3 px", "0.5 px"]);
    expect(rows.kept).toEqual(["yes", "no"]);
    expect(rows.linf).toEqual(["8.0/255", "8.0/255"]);
    expect(shiftRows(view)[0].label).toBe("top 5 % kept");
    const targeted = { ...view, summary: { ...view.summary, target_mass_original: 0.1, target_mass_attacked: 0.4, target_mass_noise: 0.12 } } as AttackView;
    const first = shiftRows(targeted)[0];
    expect([first.key, first.attack, first.noise]).toEqual(["target_mass", "0.40", "0.12"]);
    expect(first.title).toContain("0.10");
  });
  it("states the perturbation's amplification", () => {
    expect(perturbationCaption(0.5 / (4 / 255), 4 / 255)).toBe("perturbation ×32 (grey = unchanged; black/white = ±4.0/255)");
    expect(perturbationCaption(0, 0)).toMatch(/none/);
    expect(stateWords({ id: "", state: "running", settings: {}, progress: 0.42 })).toBe("attacking… 42 %");
    expect(stateWords({ id: "", state: "error", settings: {}, error: "boom" })).toBe("boom");
  });
});

describe("attack maps", () => {
  it("colour a map over its own picture with the panel's display rules", () => {
    const lut = new Uint8Array(256 * 4);
    for (let i = 0; i < 256; i++) lut.set([i, 0, 255 - i, 255], 4 * i);
    const image = new Uint8Array([10, 10, 10, 20, 20, 20]);
    const display = { lut, opacity: 1, sign: "signed" as const, clip: 100, threshold: 100 };
    const px = mapPixels(image, new Float32Array([-1, 1]), null, display);
    expect([...px]).toEqual([0, 0, 255, 255, 255, 0, 0, 255]);
    const none = mapPixels(image, new Float32Array([-1, 1]), null, { ...display, opacity: 0 });
    expect([...none]).toEqual([10, 10, 10, 255, 20, 20, 20, 255]);
  });
});
