#!/usr/bin/env node
// Runs the compiled CLI in production images (NODE_ENV=production, dist/ built by `npm run build`);
// anywhere else it runs the TypeScript sources through tsx, so a checkout never runs stale code.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli.js', import.meta.url);
if (process.env.NODE_ENV === 'production' && existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}
