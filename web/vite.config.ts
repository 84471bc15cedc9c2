import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Paths from this file, so `npx vite build web` and `vite build` inside web/ build the same thing.
const here = (relative: string) => decodeURIComponent(new URL(relative, import.meta.url).pathname);

// Vite reads its configuration from the default export; this is the one default export in the tree.
export default defineConfig({
  root: here('.'),
  base: '/',
  plugins: [react()],
  build: {
    outDir: here('./dist'),
    emptyOutDir: true,
    // The terminal and the charts are loaded with import() only where they are shown.
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `vite web` during development: the API comes from a running `driftless demo`.
    proxy: { '/v1': { target: 'http://127.0.0.1:7480', ws: true } },
  },
});
