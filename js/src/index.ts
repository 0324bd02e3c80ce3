// Wiring only: each room is `(model, parent, …) => cleanup`; render() returns one cleanup
// that removes every listener it added.
import type { RenderProps } from "@anywidget/types";
import { decode } from "./codecs";
import { clipControl } from "./controls/clip";
import { colormapSelect } from "./controls/colormapSelect";
import { contrastSelect } from "./controls/contrastSelect";
import { downloadButton } from "./controls/download";
import { methodToggles } from "./controls/methodToggles";
import { opacityControl } from "./controls/opacity";
import { paramEditor } from "./controls/paramEditor";
import { predictionList } from "./controls/predictions";
import { signSelect } from "./controls/signSelect";
import { statusBar } from "./controls/status";
import { targetSelect } from "./controls/targetSelect";
import { thresholdControl } from "./controls/threshold";
import { zoomButtons } from "./controls/zoom";
import { h } from "./dom";
import { listen, type Model, type WidgetModel } from "./model";
import { PanelSync, PanelView, viewSize, type Display, type Hover, type Scene } from "./panels";
import { createStore, frameScheduler } from "./store";
import { CurveAxes, trustAddon } from "./trust/addon";
import { metricControls } from "./trust/metricControls";
import { PathSection } from "./trust/pathView";
import { SanitySection } from "./trust/sanityView";
import { resetView, type ViewState } from "./viewport";
import { attackRoom } from "./attack";
import { agreementLines } from "./paint/agreement";
import { paintRoom } from "./paint";
import "./widget.css";

function sceneOf(model: WidgetModel): Scene {
  const payload = model.get("image");
  const [height, width] = payload.shape;
  const size = { width, height };
  return { image: decode(payload) as Uint8Array, size, view: viewSize(size) };
}

function displayOf(model: WidgetModel): Display {
  const maps = model.get("colormaps");
  const luts = decode(maps.lut) as Uint8Array;
  const i = Math.max(0, maps.names.indexOf(model.get("colormap")));
  return {
    lut: luts.subarray(i * 1024, (i + 1) * 1024),
    opacity: model.get("opacity"),
    sign: model.get("sign"),
    clip: model.get("clip_percentile"),
    threshold: model.get("threshold"),
  };
}

/** Render the widget into `el`; a new image (w.set_image) rebuilds the view around it. */
export function render({ model, el }: Pick<RenderProps<Model>, "model" | "el">): () => void {
  let unmount = mount(model, el);
  const remount = () => {
    unmount();
    unmount = mount(model, el);
  };
  model.on("change:image", remount);
  return () => {
    model.off("change:image", remount);
    unmount();
  };
}

function mount(model: WidgetModel, el: HTMLElement): () => void {
  const root = h("div", { class: "saliency-widget" });
  el.append(root);
  const scene = sceneOf(model);
  const view = createStore<ViewState>(resetView(scene.size));
  const hover = createStore<Hover>(null);
  const views = new Map<string, PanelView>();

  const bar1 = h("div", { class: "sw-row sw-methods" });
  const params = h("div", { class: "sw-row" });
  const bar2 = h("div", { class: "sw-row sw-classes" });
  const preds = h("div", { class: "sw-row" });
  const bar3 = h("div", { class: "sw-row sw-display" });
  const metrics = h("div", { class: "sw-row sw-metrics" });
  const status = h("div", { class: "sw-row" });
  const grid = h("div", { class: "sw-panels", "data-testid": "panels" });
  const bar4 = h("div", { class: "sw-row sw-redteam" }); // paint mode and attack settings
  const attacks = h("div", { class: "sw-attacks", "data-testid": "attacks" });
  root.append(bar1, params, bar2, preds, bar3, bar4, metrics, status, grid, attacks);

  let display = displayOf(model);
  const frame = frameScheduler(() => {
    for (const pv of views.values()) {
      if (pv.dirty) pv.recomposite(display);
      pv.draw(view.get(), hover.get());
    }
  });
  const paint = paintRoom(model, bar4, root, scene.size, () => frame.request());
  const attack = attackRoom(model, bar4, root, attacks, views, scene.size, scene.image, () => display);
  const agreement = agreementLines(model, views);
  // the trust views: badges and curves in each panel, sanity check and path below the panels
  const sanity = new SanitySection(model, scene, () => display);
  const path = new PathSection(model, scene, () => display);
  root.append(sanity.root, path.root);
  const axes = new CurveAxes();
  const restyle = () => {
    display = displayOf(model);
    for (const pv of views.values()) pv.dirty = true;
    frame.request();
    attack.restyle();
    sanity.restyle();
    path.restyle();
  };
  const onRetry = () => model.send({ type: "retry" });
  const make = (method: string) => {
    const pv = new PanelView(method, scene, view, hover, onRetry, paint.tool);
    pv.addons.push(trustAddon(pv, { scene, axes, sanity, redraw: () => frame.request() }));
    return pv;
  };
  const sync = new PanelSync(model, grid, views, make, () => {
    frame.request();
    agreement.update(); // the panels' own lines: after the panels change
    attack.decorate();
  });
  const panels = () => void sync.sync();
  panels();

  const cleanups = [
    methodToggles(model, bar1),
    paramEditor(model, params),
    targetSelect(model, bar2),
    contrastSelect(model, bar2),
    predictionList(model, preds),
    colormapSelect(model, bar3),
    opacityControl(model, bar3),
    signSelect(model, bar3),
    clipControl(model, bar3),
    thresholdControl(model, bar3),
    zoomButtons(bar3, view, scene.view, scene.size),
    metricControls(model, metrics),
    statusBar(model, status),
    downloadButton(status, views),
    listen(model, ["panels"], panels),
    listen(model, ["colormaps", "colormap", "opacity", "sign", "clip_percentile", "threshold"], restyle),
    view.subscribe(() => frame.request()),
    hover.subscribe(() => frame.request()),
    paint.cleanup,
    attack.cleanup,
    agreement.cleanup,
  ];
  return () => {
    frame.cancel();
    sync.destroy();
    for (const off of cleanups) off();
    for (const pv of views.values()) pv.destroy();
    views.clear();
    sanity.destroy();
    path.destroy();
    root.remove();
  };
}

export default { render };
