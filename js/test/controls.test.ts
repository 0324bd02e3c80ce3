import { describe, expect, it } from "vitest";
import { parseParam } from "../src/controls/paramEditor";
import { filterClasses } from "../src/controls/targetSelect";

describe("target search", () => {
  const labels = ["tench", "goldfish", "great white shark", "tiger shark", "<img src=x onerror=alert(1)>"];
  it("filters by substring (case-insensitive) or exact index", () => {
    expect(filterClasses(labels, "SHARK")).toEqual([2, 3]);
    expect(filterClasses(labels, "1")).toEqual([1, 4]); // index 1, and a label containing "1"
    expect(filterClasses(labels, "")).toEqual([0, 1, 2, 3, 4]);
    expect(filterClasses(labels, "zebra")).toEqual([]);
  });
});

describe("parameter editor values", () => {
  it("types values like the parameter's default; empty or 'auto' means the default", () => {
    expect(parseParam("16", 32)).toBe(16);
    expect(parseParam("0.25", 0.15)).toBe(0.25);
    expect(parseParam("", 32)).toBeNull();
    expect(parseParam("auto", null)).toBeNull();
    expect(parseParam("8", null)).toBe(8);
    expect(parseParam("black", null)).toBe("black");
    expect(parseParam("midpoint", "gauss_legendre")).toBe("midpoint");
    expect(parseParam(false, true)).toBe(false);
  });
});

import { groupByFamily } from "../src/controls/methodToggles";
import type { MethodInfo } from "../src/model";

describe("method toggles", () => {
  const m = (name: string, family: string) => ({ name, family, label: name }) as MethodInfo;
  it("groups by family in a fixed order, keeping the registry's order inside a family", () => {
    const groups = groupByFamily([m("grad_cam", "cam"), m("gradient", "gradient"), m("lrp", "relevance"),
      m("score_cam", "cam"), m("new_one", "exotic"), m("guided_backprop", "gradient")]);
    expect(groups.map((g) => g.family)).toEqual(["gradient", "relevance", "cam", "exotic"]);
    expect(groups[0].methods.map((x) => x.name)).toEqual(["gradient", "guided_backprop"]);
    expect(groups[2].methods.map((x) => x.name)).toEqual(["grad_cam", "score_cam"]);
    expect(groups[3].label).toBe("exotic");
  });
});

import { shownParams } from "../src/controls/paramEditor";

describe("parameter editor: which parameters", () => {
  const p = (type: string, editable = true) => ({ default: null, type, nullable: true, choices: null, also: null, bounds: null, editable, note: "" });
  const gradCam = { name: "grad_cam", label: "Grad-CAM", family: "cam", uses_layer: true, params: { relu: true, layer: null },
    parameters: { relu: p("bool"), layer: p("layer") } } as unknown as MethodInfo;
  const gradient = { name: "gradient", uses_layer: false, params: {}, parameters: {} } as unknown as MethodInfo;
  const smooth = { name: "smoothgrad", label: "SmoothGrad", uses_layer: false, params: { base: "gradient", samples: 25, layer: null },
    parameters: { base: p("str"), samples: p("int"), layer: p("layer") }, wraps: { param: "base", params: "base_params" } } as unknown as MethodInfo;
  const methods = new Map([["grad_cam", gradCam], ["gradient", gradient], ["smoothgrad", smooth]]);
  it("shows a wrapper's layer only when its base reads one", () => {
    expect(shownParams(smooth, methods, {}).map(([n]) => n)).toEqual(["base", "samples"]);
    expect(shownParams(smooth, methods, { base: "grad_cam" }).map(([n]) => n)).toEqual(["base", "samples", "layer"]);
    expect(shownParams(gradCam, methods, {}).map(([n]) => n)).toEqual(["relu", "layer"]);
  });
});
