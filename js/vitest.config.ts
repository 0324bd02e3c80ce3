import { defineConfig } from "vitest/config";

// The pure modules (codecs, viewport, colormap) need no DOM: the node environment is enough.
export default defineConfig({
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
