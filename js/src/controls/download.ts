import { h, on } from "../dom";

/** Save the panels as one PNG (titles included), straight from the browser. */
export function downloadButton(parent: HTMLElement, root: HTMLElement): () => void {
  const button = h("button", { type: "button", class: "sw-button", "data-testid": "download", text: "download PNG" });
  parent.append(button);
  return on(button, "click", () => {
    const panels = Array.from(root.querySelectorAll<HTMLElement>("[data-testid=panel]"));
    if (!panels.length) return;
    const canvases = panels.map((p) => p.querySelector("canvas.sw-canvas") as HTMLCanvasElement);
    const titles = panels.map((p) => p.title); // "label · target rather than contrast"
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
