import { h, on } from "../dom";
import { listen, update, type MethodInfo, type WidgetModel } from "../model";

/** The value an editor input holds, typed like the parameter's default. */
export function parseParam(raw: string | boolean, fallback: unknown): unknown {
  if (typeof raw === "boolean") return raw;
  const text = raw.trim();
  if (text === "" || text === "auto") return null;
  if (typeof fallback === "number" || fallback === null) {
    const n = Number(text);
    if (text !== "" && Number.isFinite(n)) return n;
  }
  return text;
}

function input(method: MethodInfo, name: string, value: unknown): HTMLInputElement | HTMLSelectElement {
  const fallback = method.params[name];
  const attrs = { "data-testid": "param", "data-method": method.name, "data-param": name, "aria-label": `${method.label} ${name}` };
  const choices = method.choices[name];
  if (choices && choices.length) {
    const select = h("select", attrs);
    if (fallback === null) select.append(new Option("auto", ""));
    select.append(...choices.map((c) => new Option(String(c), String(c))));
    select.value = value === null || value === undefined ? "" : String(value);
    return select;
  }
  if (typeof fallback === "boolean") {
    const box = h("input", { ...attrs, type: "checkbox" });
    box.checked = Boolean(value);
    return box;
  }
  if (typeof fallback === "number") {
    const num = h("input", { ...attrs, type: "number", step: Number.isInteger(fallback) ? 1 : "any" });
    num.value = String(value ?? fallback);
    return num;
  }
  const text = h("input", { ...attrs, type: "text", placeholder: fallback === null ? "auto" : "" });
  text.value = value === null || value === undefined ? "" : String(value);
  return text;
}

/** Per-method parameters (steps, samples, noise, window, stride, layer…), built from each
 *  method's defaults and choices: no method is known to this file by name. */
export function paramEditor(model: WidgetModel, parent: HTMLElement): () => void {
  const box = h("div", { class: "sw-params", "data-testid": "params" });
  parent.append(box);
  const build = () => {
    const methods = new Map((model.get("methods") ?? []).map((m) => [m.name, m]));
    const given = model.get("params") ?? {};
    const groups: HTMLElement[] = [];
    for (const name of model.get("methods_selected") ?? []) {
      const m = methods.get(name);
      if (!m || !Object.keys(m.params).length) continue;
      const fields = Object.keys(m.params).map((p) => {
        const current = given[name] && p in given[name] ? given[name][p] : m.params[p];
        return h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: p }), input(m, p, current));
      });
      groups.push(h("fieldset", { class: "sw-param-group" }, h("legend", { text: m.label }), ...fields));
    }
    box.replaceChildren(...groups);
    box.hidden = groups.length === 0;
  };
  build();
  const offs = [
    listen(model, ["methods", "methods_selected", "params"], build),
    on(box, "change", (e) => {
      const el = e.target as HTMLInputElement | HTMLSelectElement;
      const method = el.dataset.method;
      const param = el.dataset.param;
      if (!method || !param) return;
      const info = (model.get("methods") ?? []).find((m) => m.name === method);
      if (!info) return;
      const raw = el instanceof HTMLInputElement && el.type === "checkbox" ? el.checked : el.value;
      const value = parseParam(raw, info.params[param]);
      const all = { ...(model.get("params") ?? {}) };
      const mine = { ...(all[method] ?? {}) };
      if (value === null || value === info.params[param]) delete mine[param];
      else mine[param] = value;
      all[method] = mine;
      update(model, { params: all });
    }),
  ];
  return () => offs.forEach((off) => off());
}
