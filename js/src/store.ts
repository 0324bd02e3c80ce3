// A tiny store for UI-only state (zoom, pan, hover): never synced to Python.

export interface Store<T> {
  get(): T;
  set(next: T): void;
  subscribe(fn: (value: T) => void): () => void;
}

export function createStore<T>(initial: T): Store<T> {
  let value = initial;
  const subscribers = new Set<(value: T) => void>();
  return {
    get: () => value,
    set(next: T) {
      value = next;
      for (const fn of subscribers) fn(value);
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}

/** Run `fn` at most once per animation frame however often it is asked for. */
export function frameScheduler(fn: () => void): { request: () => void; cancel: () => void } {
  let handle: number | null = null;
  return {
    request() {
      if (handle !== null) return;
      handle = requestAnimationFrame(() => {
        handle = null;
        fn();
      });
    },
    cancel() {
      if (handle !== null) cancelAnimationFrame(handle);
      handle = null;
    },
  };
}
