import { describe, expect, it } from "vitest";
import type { Panel, WidgetModel } from "../src/model";
import { PanelSync, type PanelLike } from "../src/panels";

/** A child model like Backbone's: get, on/off per event, set fires "change:<key>". */
class FakeChild {
  private handlers = new Map<string, Set<() => void>>();
  constructor(private state: Partial<Panel>) {}
  get<K extends keyof Panel>(key: K): Panel[K] {
    return this.state[key] as Panel[K];
  }
  on(event: string, cb: () => void) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb);
  }
  off(event: string, cb: () => void) {
    this.handlers.get(event)?.delete(cb);
  }
  set(patch: Partial<Panel>) {
    Object.assign(this.state, patch);
    for (const key of Object.keys(patch)) for (const cb of this.handlers.get(`change:${key}`) ?? []) cb();
  }
  listeners() {
    return [...this.handlers.values()].reduce((n, s) => n + s.size, 0);
  }
}

function setup() {
  const children = new Map<string, FakeChild>();
  const gates = new Map<string, Promise<void>>();
  let refs: string[] = [];
  const manager = {
    async get_model(id: string) {
      await (gates.get(id) ?? Promise.resolve());
      return children.get(id)!;
    },
  };
  const model = { get: (k: string) => (k === "panels" ? refs : undefined), widget_manager: manager } as unknown as WidgetModel;
  const order: string[] = [];
  const container = { append: (node: unknown) => order.push((node as { method: string }).method) };
  const shown = new Map<string, Panel[]>();
  const make = (method: string): PanelLike => {
    const view = {
      root: { method } as unknown as HTMLElement,
      setPanel: (p: Panel) => shown.set(method, [...(shown.get(method) ?? []), p]),
      destroy: () => shown.delete(method),
    };
    return view;
  };
  const views = new Map<string, PanelLike>();
  let frames = 0;
  const sync = new PanelSync(model, container, views, make, () => frames++);
  return {
    children, gates, views, shown, order, sync,
    setRefs: (r: string[]) => (refs = r),
    frames: () => frames,
  };
}

describe("panel child models", () => {
  it("resolves the references in order and follows each child's own changes", async () => {
    const t = setup();
    t.children.set("a", new FakeChild({ method: "gradient", state: "computing", id: "g1" }));
    t.children.set("b", new FakeChild({ method: "grad_cam", state: "computing", id: "c1" }));
    t.setRefs(["IPY_MODEL_b", "IPY_MODEL_a"]);
    await t.sync.sync();
    expect(t.order).toEqual(["grad_cam", "gradient"]);
    const before = t.frames();
    const seenBefore = t.shown.get("gradient")!.length;
    t.children.get("a")!.set({ state: "ready", id: "g2" }); // a finished job: one child changes
    await Promise.resolve(); // change events of one message are read once, in a microtask
    const seen = t.shown.get("gradient")!;
    expect(seen.length).toBe(seenBefore + 1); // two keys changed, one update
    const last = seen[seen.length - 1];
    expect(last.state).toBe("ready");
    expect(last.id).toBe("g2");
    expect(t.frames()).toBeGreaterThan(before);
  });

  it("a stale resolution never overrides a newer one, and dropped panels stop listening", async () => {
    const t = setup();
    const a = new FakeChild({ method: "gradient", state: "ready", id: "g" });
    t.children.set("a", a);
    t.children.set("b", new FakeChild({ method: "occlusion", state: "computing", id: "o" }));
    let release!: () => void;
    t.gates.set("b", new Promise((r) => (release = r)));
    t.setRefs(["IPY_MODEL_a", "IPY_MODEL_b"]);
    const slow = t.sync.sync(); // waits for b
    t.setRefs(["IPY_MODEL_a"]);
    await t.sync.sync(); // newer: only a
    release();
    await slow;
    expect([...t.views.keys()]).toEqual(["gradient"]);
    expect(a.listeners()).toBeGreaterThan(0);
    t.setRefs([]);
    await t.sync.sync();
    expect(t.views.size).toBe(0);
    expect(a.listeners()).toBe(0);
  });
});
