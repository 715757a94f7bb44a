/**
 * One teacher watching the course overview's card grid of 40 running labs on the loopback runtime
 * (its screenshots are 1024×768 PPM screens the tool decodes, scales to 320 px and encodes as PNG,
 * as it does with a QEMU screendump). The teacher's page runs in a worker thread and does what the
 * page does with every card on screen: the overview every 5 s, each card's thumbnail every 5 s,
 * four at a time (every card on screen: the worst case). Measured: the whole process's CPU (tool,
 * loopback runtime and client), the tool's event-loop busy share (the client is in the worker), and
 * the bytes per second the teacher receives. Floor: the same grid without thumbnails (overview only).
 */
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { startTestTool } from '../test/support/tool.js';
import { LoopbackRuntime } from '../test/support/loopbackRuntime.js';
import { PageLabs } from '../test/support/pageLabs.js';
import { SessionTokens } from '../src/auth/session.js';
import type { BenchRow } from './lib.mjs';

const SECRET_KEY = 'bench-grid-secret-key-0123456789abcdef';
const LABS = Number(process.env.GRID_BENCH_LABS ?? 40);
const SECONDS = Number(process.env.GRID_BENCH_SECONDS ?? 30);

/** The teacher's page: plain JS in a worker (fetch loop), reporting bytes received and requests. */
const CLIENT = `
const { workerData, parentPort } = require('node:worker_threads');
const { url, token, ids, thumbs, seconds } = workerData;
const h = { authorization: 'Bearer ' + token };
let bytes = 0, requests = 0, failed = 0;
const get = async (p) => { const r = await fetch(url + p, { headers: h }); const b = await r.arrayBuffer(); bytes += b.byteLength; requests++; if (!r.ok) failed++; };
(async () => {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const t0 = Date.now();
    await get('/api/courses/room-b/instances');
    if (thumbs) {
      const queue = [...ids];
      await Promise.all([0, 1, 2, 3].map(async () => { for (let id; (id = queue.shift());) await get('/api/courses/room-b/instances/' + id + '/screen'); }));
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - t0))));
  }
  parentPort.postMessage({ bytes, requests, failed });
})();
`;

async function watch(url: string, token: string, ids: string[], thumbs: boolean): Promise<{ busy: number; cpu: number; bytesPerS: number; requests: number; failed: number }> {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const w = new Worker(CLIENT, { eval: true, workerData: { url, token, ids, thumbs, seconds: SECONDS } });
  const r = await new Promise<{ bytes: number; requests: number; failed: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await w.terminate();
  const wall = (performance.now() - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  return { busy: 100 * elu.utilization, cpu: (100 * (cpu.user + cpu.system)) / 1e6 / wall, bytesPerS: r.bytes / wall, requests: r.requests, failed: r.failed };
}

export async function run(): Promise<BenchRow[]> {
  const rt = await new LoopbackRuntime().listen();
  const tool = await startTestTool({ SECRET_KEY, LOG_LEVEL: 'warn' }, { runtime: rt, labs: new PageLabs() });
  const B = `grid (${LABS} labs, 1 teacher)`;
  try {
    const token = await new SessionTokens(SECRET_KEY).issue({ userId: 't', role: 'instructor', contextId: 'room-b', name: 'Teacher' });
    const ids: string[] = [];
    for (let i = 0; i < LABS; i++) {
      const id = `g${i}`;
      ids.push(id);
      await rt.add({ id, userId: `s${i}`, contextId: 'room-b' });
      rt.consoleLogs.set(`${id}/web`, Buffer.from(`student@web:~$ ls\r\nnotes.txt\r\nstudent@web:~$ ping -c1 10.10.0.${i}\r\n`.repeat(40)));
    }
    const floor = await watch(tool.url, token, ids, false);
    const shots0 = rt.screenshots.length;
    const grid = await watch(tool.url, token, ids, true);
    const taken = rt.screenshots.length - shots0;
    const note = `${grid.requests} requests (${grid.failed} failed), ${taken} screenshots in ${SECONDS} s; floor: overview only`;
    return [
      { bench: B, metric: 'process CPU (tool + client)', value: grid.cpu, floor: floor.cpu, unit: '% of a core', goal: '≤ 25 %', meets: grid.cpu <= 25, note },
      { bench: B, metric: 'tool event loop busy (wall share)', value: grid.busy, floor: floor.busy, unit: '%', goal: 'n/a', meets: undefined, note: 'counts time descheduled on a loaded machine, so it can exceed CPU' },
      { bench: B, metric: 'bytes to the teacher', value: grid.bytesPerS / 1024, floor: floor.bytesPerS / 1024, unit: 'KiB/s', goal: '≤ 256 KiB/s', meets: grid.bytesPerS / 1024 <= 256 },
      { bench: B, metric: 'thumbnail size', value: (grid.bytesPerS - floor.bytesPerS) * 5 / LABS / 1024, unit: 'KiB', goal: 'n/a', meets: undefined, note: '320×240 PNG of a drawn 1024×768 screen' },
    ];
  } finally {
    await tool.shutdown();
    await rt.close();
  }
}
