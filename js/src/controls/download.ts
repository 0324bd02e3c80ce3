import { h, on } from "../dom";
import type { PanelView } from "../panels";

/** Save the panels as one PNG (titles included), straight from the browser. */
export function downloadButton(parent: HTMLElement, views: Map<string, PanelView>): () => void {
  const button = h("button", { type: "button", class: "sw-button", "data-testid": "download", text: "download PNG" });
  parent.append(button);
  return on(button, "click", () => {
    // in display order: the order of the views' elements in the panel grid
    const shown = [...views.values()].sort((a, b) =>
      a.root.compareDocumentPosition(b.root) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1,
    );
    if (!shown.length) return;
    const canvases = shown.map((p) => p.canvas);
    const titles = shown.map((p) => p.root.title); // "label · target rather than contrast"
    const gap = 12;
    const head = 28;
    const w = canvases.reduce((s, c) => s + c.width + gap, gap);
    const hgt = Math.max(...canvases.map((c) => c.height)) + head + gap;
    const out = document.createElement("canvas");
    out.width = w;
    out.height = hgt;
    const ctx = out.getContext("2d")!;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, hgt);
    ctx.fillStyle = "#111";
    ctx.font = "14px sans-serif";
    let x = gap;
    canvases.forEach((c, i) => {
      ctx.fillText(titles[i], x, 18, c.width);
      ctx.drawImage(c, x, head);
      x += c.width + gap;
    });
    const a = h("a", { download: "saliency.png", href: out.toDataURL("image/png") });
    a.click();
  });
}
