import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// Everything the console loads is bundled into dist/ and served by the ingest-api at "/".
export default defineConfig({
  plugins: [preact()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
});
