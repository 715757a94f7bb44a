// Bundles the browser code (public/src → public/dist) with esbuild: noVNC, xterm and its fit
// add-on come from node_modules; nothing is loaded from a CDN. `npm run build:web`.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
await build({
  absWorkingDir: root,
  entryPoints: { lab: 'public/src/lab.ts', course: 'public/src/course.ts' },
  outdir: 'public/dist',
  bundle: true,
  format: 'esm',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.svg': 'file', '.png': 'file' },
  logLevel: 'warning',
});
console.log(`web bundle built in ${Date.now() - started} ms → public/dist`);
