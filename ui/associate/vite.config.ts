import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The tablet loads the built files from the app (no dev server in the binary).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
  },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
});
