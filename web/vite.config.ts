// The dashboard's build: Preact + TypeScript, bundled by Vite into dist/dashboard/ (served by
// `antidote serve` at /; see src/server/dashboard.ts). JSX is compiled for Preact directly —
// no React compatibility layer. No inline scripts or styles are emitted, so the server's
// Content-Security-Policy can forbid them.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root: here,
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../dist/dashboard", import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    // The graph library is the largest piece; it loads only on pages that draw a graph.
    chunkSizeWarningLimit: 600,
    modulePreload: { polyfill: false },
  },
  server: { proxy: { "/v1": "http://127.0.0.1:8600" } },
});
