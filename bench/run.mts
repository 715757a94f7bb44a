/**
 * `npm run bench`: runs every benchmark beside its floor on this machine, prints one table and
 * writes bench/results/bench-<time>.json (+ latest.json). Never part of the test command.
 *   BENCH=ws,launch,provision,console,grid,debian,scale,kubevirt-boot,warm npm run bench   (default: all that can run here)
 */
import { startSharedFerret, stopSharedFerret } from '../test/support/ferret.js';
import { machine, printTable, writeResults, type BenchRow } from './lib.mjs';

type Bench = { name: string; load: () => Promise<{ run: () => Promise<BenchRow[]> }> };
const ALL: Bench[] = [
  { name: 'launch', load: () => import('./launch.bench.mjs') },
  { name: 'ws', load: () => import('./wsProxy.bench.mjs') },
  { name: 'provision', load: () => import('./provision.bench.mjs') },
  { name: 'console', load: () => import('./console.bench.mjs') },
  { name: 'grid', load: () => import('./grid.bench.mjs') },
  { name: 'debian', load: () => import('./debianStart.bench.mjs') },
  { name: 'scale', load: () => import('./scale.bench.mjs') },
  { name: 'kubevirt-boot', load: () => import('./kubevirtBoot.bench.mjs') },
  { name: 'warm', load: () => import('./warm.bench.mjs') },
];
const wanted = (process.env.BENCH ?? ALL.map((b) => b.name).join(',')).split(',').map((s) => s.trim());

const rows: BenchRow[] = [];
const notes: string[] = [];
await startSharedFerret();
try {
  for (const b of ALL.filter((x) => wanted.includes(x.name))) {
    const t0 = Date.now();
    process.stderr.write(`==> bench ${b.name}\n`);
    try {
      const mod = await b.load();
      rows.push(...(await mod.run()));
    } catch (err) {
      const msg = `${b.name}: did not run: ${(err as Error).message}`;
      notes.push(msg);
      process.stderr.write(`${msg}\n`);
    }
    process.stderr.write(`    ${b.name} took ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
} finally {
  await stopSharedFerret();
}
console.log(`\nMachine: ${JSON.stringify(machine())}\n`);
console.log(printTable(rows));
for (const n of notes) console.log(`note: ${n}`);
const file = writeResults(rows, notes);
console.log(`\nresults: ${file}`);
