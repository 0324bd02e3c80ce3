import { h, on } from "../dom";
import { listen, update, type MethodInfo, type ParamInfo, type WidgetModel } from "../model";

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

/** The parameters the editor shows for `method` under the current `given` values: all declared
 *  ones, except a wrapper's `layer` when its chosen base reads no layer. */
export function shownParams(method: MethodInfo, methods: Map<string, MethodInfo>,
  given: Record<string, unknown>): [string, ParamInfo | null][] {
  const infos = method.parameters;
  const names = Object.keys(method.params);
  return names
    .filter((name) => {
      if (!method.wraps || name !== "layer") return true;
      const base = String(given[method.wraps.param] ?? method.params[method.wraps.param]);
      return !!methods.get(base)?.uses_layer;
    })
    .map((name) => [name, infos ? infos[name] ?? null : null]);
}

function input(method: MethodInfo, name: string, info: ParamInfo | null, value: unknown): HTMLElement {
  const fallback = method.params[name];
  const attrs = { "data-testid": "param", "data-method": method.name, "data-param": name, "aria-label": `${method.label} ${name}` };
  if (info && !info.editable) {
    return h("span", { class: "sw-param-note", "data-testid": "param-note", "data-method": method.name, "data-param": name, text: info.note });
  }
  const choices = info?.choices ?? method.choices[name];
  if (choices && choices.length && !(info && info.also)) {
    const select = h("select", attrs);
    if (fallback === null) select.append(new Option("auto", ""));
    select.append(...choices.map((c) => new Option(String(c), String(c))));
    select.value = value === null || value === undefined ? "" : String(value);
    return select;
  }
  if (typeof fallback === "boolean" || info?.type === "bool") {
    const box = h("input", { ...attrs, type: "checkbox" });
    box.checked = Boolean(value);
    return box;
  }
  if (typeof fallback === "number" || info?.type === "int" || info?.type === "float") {
    const integer = info ? info.type === "int" : Number.isInteger(fallback);
    const num = h("input", { ...attrs, type: "number", step: integer ? 1 : "any", placeholder: fallback === null ? "auto" : "" });
    if (info?.bounds?.min !== null && info?.bounds?.min !== undefined) num.min = String(info.bounds.min);
    if (info?.bounds?.max !== null && info?.bounds?.max !== undefined) num.max = String(info.bounds.max);
    num.value = value === null || value === undefined ? "" : String(value);
    return num;
  }
  const text = h("input", { ...attrs, type: "text", placeholder: fallback === null ? "auto" : "" });
  text.value = value === null || value === undefined ? "" : String(value);
  if (choices && choices.length) {
    // an open choice (e.g. a baseline: a name or a number): suggestions, free text allowed
    const id = `sw-${method.name}-${name}-${Math.random().toString(36).slice(2, 8)}`;
    const list = h("datalist", { id }, ...choices.map((c) => h("option", { value: String(c) })));
    text.setAttribute("list", id);
    if (info?.also) text.title = `or ${info.also}`;
    return h("span", { class: "sw-param-open" }, text, list);
  }
  return text;
}

/** Per-method parameters (steps, samples, noise, window, stride, layer…), built from the
 *  registry's declarations: no method is known to this file by name. Parameters only Python can
 *  set (tensors, reference sets) show a note saying how. */
export function paramEditor(model: WidgetModel, parent: HTMLElement): () => void {
  const box = h("div", { class: "sw-params", "data-testid": "params" });
  parent.append(box);
  const build = () => {
    const methods = new Map((model.get("methods") ?? []).map((m) => [m.name, m]));
    const given = model.get("params") ?? {};
    const groups: HTMLElement[] = [];
    for (const name of model.get("methods_selected") ?? []) {
      const m = methods.get(name);
      if (!m) continue;
      const mine = (given[name] ?? {}) as Record<string, unknown>;
      const fields = shownParams(m, methods, mine).map(([p, info]) => {
        const current = p in mine ? mine[p] : m.params[p];
        return h("label", { class: "sw-field" }, h("span", { class: "sw-field-label", text: p, title: info?.note ?? "" }),
          input(m, p, info, current));
      });
      if (!fields.length) continue;
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
