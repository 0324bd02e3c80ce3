// Paint mode, wired: the toolbar (toggle, tool, brush size, clear), the state machine that the
// panels hand their drags to, the overlay drawn over every panel, and the agreement lines.
import { slider } from "../controls/slider";
import { h, on } from "../dom";
import { listen, update, type WidgetModel } from "../model";
import type { PanelTool } from "../panels";
import type { Size } from "../viewport";
import { TOOLS, type Tool } from "./geometry";
import { PaintOverlay } from "./overlay";
import { encodeMask, PaintState } from "./state";

const TOOL_NAMES: Record<Tool, string> = { brush: "brush", eraser: "eraser", box: "box" };

export function paintRoom(
  model: WidgetModel,
  parent: HTMLElement,
  root: HTMLElement,
  image: Size,
  redraw: () => void,
): { tool: PanelTool; cleanup: () => void } {
  const state = new PaintState(image, {
    send: (mask) => update(model, { expert_mask: mask === null ? null : encodeMask(mask, image) }),
    redraw,
  });
  const overlay = new PaintOverlay(state);
  const toggle = h("button", {
    type: "button", class: "sw-toggle", "data-testid": "paint-toggle", "aria-pressed": "false",
    title: "paint the object: while pressed, dragging on a panel paints instead of panning", text: "paint mask",
  });
  const select = h("select", { "data-testid": "paint-tool", "aria-label": "paint tool" });
  select.append(...TOOLS.map((t) => new Option(TOOL_NAMES[t], t)));
  const clear = h("button", { type: "button", class: "sw-button", "data-testid": "paint-clear", text: "clear mask" });
  const group = h("div", { class: "sw-field sw-paint" }, toggle, select);
  parent.append(group);
  const offSize = slider(model, parent, "brush_size", { label: "brush", step: 1, testid: "brush-size", format: (v) => `${v} px` });
  parent.append(clear);

  const pressed = (on: boolean) => {
    state.setPressed(on);
    toggle.setAttribute("aria-pressed", String(on));
    root.classList.toggle("sw-painting", on);
  };
  state.size = model.get("brush_size");
  state.fromModel(model.get("expert_mask"));
  const offs = [
    on(toggle, "click", () => pressed(!state.pressed)),
    on(select, "change", () => (state.tool = select.value as Tool)),
    on(clear, "click", () => state.clear()),
    listen(model, ["expert_mask"], () => state.fromModel(model.get("expert_mask"))),
    listen(model, ["brush_size"], () => (state.size = model.get("brush_size"))),
    offSize,
  ];
  const tool: PanelTool = {
    active: () => state.pressed,
    begin: (at) => state.begin(at),
    move: (at) => state.move(at),
    end: () => state.end(),
    drawOver: (canvas, view, vsize, size, dpr, hover) => overlay.drawOver(canvas, view, vsize, size, dpr, hover),
  };
  return {
    tool,
    cleanup: () => {
      state.dispose();
      offs.forEach((off) => off());
    },
  };
}
