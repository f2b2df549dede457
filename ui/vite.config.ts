import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Built into dist/, which the Tauri shell embeds (src-tauri/tauri.conf.json frontendDist).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: { target: "safari15", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  test: { include: ["tests/**/*.test.ts"] },
});
