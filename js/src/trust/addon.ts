// The trust views inside each panel (badges, the curve and its scrub) and the wiring of the
// sections below the panels (sanity check, attribution path) to the panels' data.
import type { Panel } from "../model";
import type { PanelAddon, PanelView, Scene } from "../panels";
import { renderBadges } from "./badges";
import { CurveAxes, CurveView } from "./curveView";
import type { SanitySection } from "./sanityView";
import "./trust.css";

export interface TrustContext {
  scene: Scene;
  axes: CurveAxes;
  sanity: SanitySection;
  redraw: () => void;
}

export function trustAddon(pv: PanelView, ctx: TrustContext): PanelAddon {
  const curve = new CurveView(pv.method, ctx.scene, ctx.axes, (image) => {
    pv.setOverride(image);
    ctx.redraw();
  });
  pv.extras.append(curve.root);
  let badges: Panel["badges"] | null = null;
  return {
    update(panel: Panel) {
      if (panel.badges !== badges) {
        badges = panel.badges;
        renderBadges(pv.badges, pv.method, panel.badges ?? []);
      }
      curve.setCurves(panel.state === "ready" ? panel.curves ?? null : null);
      ctx.sanity.set(pv.method, panel);
    },
    destroy() {
      curve.destroy();
      ctx.sanity.remove(pv.method);
    },
  };
}

export { CurveAxes };
