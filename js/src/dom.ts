// Building DOM from data. User text (class names, errors) only ever goes in as text, never HTML.

type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key === "class") el.className = String(value);
    else if (key === "text") el.textContent = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) el.append(typeof child === "string" ? document.createTextNode(child) : child);
  return el;
}

/** addEventListener that returns its own removal. */
export function on<K extends keyof HTMLElementEventMap>(
  target: HTMLElement | Window,
  type: K,
  listener: (event: HTMLElementEventMap[K]) => void,
  options?: AddEventListenerOptions,
): () => void {
  target.addEventListener(type, listener as EventListener, options);
  return () => target.removeEventListener(type, listener as EventListener, options);
}

/** Display name of a class: its label, with the index when the label is not just the index. */
export function className(labels: string[], index: number | null): string {
  if (index === null || index === undefined) return "";
  const label = labels[index] ?? String(index);
  return label === String(index) ? label : `${label} (${index})`;
}
