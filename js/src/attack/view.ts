// One attack's view: the original and attacked picture and map side by side, the amplified
// perturbation, how far the map moved beside noise of the same size, progress and cancel.
import { decode } from "../codecs";
import { h, on } from "../dom";
import type { AttackView as Data, MapPayloads } from "../model";
import type { Display } from "../panels";
import { putPixels } from "../render/canvas";
import type { Size } from "../viewport";
import { mapPixels, perturbationCaption, picturePixels, settingsCaption, shiftRows, stateWords } from "./format";

interface Decoded {
  id: string;
  image: Uint8Array;
  perturbation: Uint8Array;
  original: { signed: Float32Array; absolute: Float32Array | null };
  attacked: { signed: Float32Array; absolute: Float32Array | null };
}

function maps(p: MapPayloads) {
  return { signed: decode(p.signed) as Float32Array, absolute: p.absolute ? (decode(p.absolute) as Float32Array) : null };
}

function figure(caption: string, testid: string, size: Size) {
  const canvas = h("canvas", { class: "sw-attack-canvas", "data-testid": testid, width: size.width, height: size.height });
  const text = h("figcaption", { text: caption });
  return { el: h("figure", { class: "sw-attack-figure" }, canvas, text), canvas, text };
}

export class AttackPanel {
  readonly root: HTMLDivElement;
  private readonly caption: HTMLSpanElement;
  private readonly words: HTMLSpanElement;
  private readonly bar: HTMLProgressElement;
  private readonly cancel: HTMLButtonElement;
  private readonly body: HTMLDivElement;
  private readonly figures;
  private readonly table: HTMLTableElement;
  private readonly offs: (() => void)[] = [];
  private decoded: Decoded | null = null;
  data: Data | null = null;

  constructor(
    readonly method: string,
    label: string,
    private readonly size: Size,
    private readonly original: Uint8Array,
    onCancel: () => void,
  ) {
    this.caption = h("span", { class: "sw-attack-settings" });
    this.words = h("span", { class: "sw-attack-state", "data-testid": "attack-state", role: "status" });
    this.bar = h("progress", { class: "sw-progress", max: 1, "data-testid": "attack-progress" });
    this.cancel = h("button", { type: "button", class: "sw-button", "data-testid": "attack-cancel", text: "cancel" });
    this.figures = {
      image: figure("original", "attack-original-image", size),
      attackedImage: figure("attacked", "attack-attacked-image", size),
      perturbation: figure("perturbation", "attack-perturbation", size),
      map: figure("map", "attack-original-map", size),
      attackedMap: figure("map under attack", "attack-attacked-map", size),
    };
    this.table = h("table", { class: "sw-attack-shift", "data-testid": "attack-shift" });
    const f = this.figures;
    this.body = h(
      "div",
      { class: "sw-attack-grid" },
      f.image.el, f.attackedImage.el, f.perturbation.el, f.map.el, f.attackedMap.el,
      h("div", { class: "sw-attack-numbers" }, this.table),
    );
    this.root = h(
      "div",
      { class: "sw-attack-view", "data-testid": "attack-view", "data-method": method },
      h("div", { class: "sw-attack-head" }, h("strong", { text: `${label} under attack` }), this.caption, this.words, this.bar, this.cancel),
      this.body,
    );
    this.offs.push(on(this.cancel, "click", onCancel));
  }

  /** Take the panel's attack state; decode the arrays only when a new result arrives. */
  set(data: Data, display: Display): void {
    this.data = data;
    this.root.dataset.state = data.state;
    this.caption.textContent = settingsCaption(data.settings) + (data.surrogate ? " · direction from a softplus copy" : "");
    this.words.textContent = stateWords(data);
    this.words.dataset.kind = data.state;
    const busy = data.state === "waiting" || data.state === "queued" || data.state === "running";
    this.bar.hidden = data.state !== "running";
    if (typeof data.progress === "number" && data.progress > 0) this.bar.value = data.progress;
    else this.bar.removeAttribute("value");
    this.cancel.hidden = !busy;
    const ready = data.state === "ready" && !!data.image && !!data.original && !!data.attacked && !!data.perturbation;
    this.body.hidden = !ready;
    if (!ready) {
      this.decoded = null;
      return;
    }
    if (!this.decoded || this.decoded.id !== data.id) {
      this.decoded = {
        id: data.id,
        image: decode(data.image!) as Uint8Array,
        perturbation: decode(data.perturbation!) as Uint8Array,
        original: maps(data.original!),
        attacked: maps(data.attacked!),
      };
      this.fill(data);
    }
    this.restyle(display);
  }

  private fill(data: Data): void {
    const f = this.figures;
    const d = this.decoded!;
    putPixels(f.image.canvas, this.size, picturePixels(this.original));
    putPixels(f.attackedImage.canvas, this.size, picturePixels(d.image));
    putPixels(f.perturbation.canvas, this.size, picturePixels(d.perturbation));
    f.perturbation.text.textContent = perturbationCaption(data.gain ?? 0, data.linf ?? 0);
    const kept = data.summary?.kept;
    f.attackedImage.text.textContent = kept === true ? "attacked (same label)" : kept === false ? "attacked (label changed)" : "attacked";
    const head = h("tr", {}, h("th", { text: "" }), h("th", { text: "attack" }), h("th", { text: "noise", title: "random ±ε sign noise of the same budget" }));
    this.table.replaceChildren(
      head,
      ...shiftRows(data).map((r) =>
        h("tr", { "data-key": r.key, title: r.title }, h("th", { text: r.label }), h("td", { text: r.attack, "data-role": "attack" }), h("td", { text: r.noise, "data-role": "noise" })),
      ),
    );
  }

  /** Redraw the maps under new display settings (colormap, opacity, sign, clip, threshold). */
  restyle(display: Display): void {
    const d = this.decoded;
    if (!d) return;
    const f = this.figures;
    putPixels(f.map.canvas, this.size, mapPixels(this.original, d.original.signed, d.original.absolute, display));
    putPixels(f.attackedMap.canvas, this.size, mapPixels(d.image, d.attacked.signed, d.attacked.absolute, display));
    f.attackedMap.canvas.dataset.drawn = d.id;
  }

  destroy(): void {
    this.offs.forEach((off) => off());
    this.root.remove();
  }
}
