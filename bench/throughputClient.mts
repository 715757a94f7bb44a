/**
 * The ws benchmark's browser for the throughput rows, in its own process (a browser's masking,
 * framing and parsing happen on the student's machine, not in the tool's): forked by
 * wsProxy.bench.mts and sent one job, it opens the path (plain TCP or websocket), says `ready`, then
 * either sends `bytes` when told `go` (browser → machine; the parent's sink counts) or counts what
 * arrives and says `done` at `bytes` (machine → browser; the parent's sink writes).
 */
import net from 'node:net';
import { openWebSocket } from './lib.mjs';

export type Target =
  | { kind: 'tcp'; port: number }
  | { kind: 'ws'; url: string; protocols: string[]; headers: Record<string, string> };
export interface Job { dir: 'up' | 'down'; target: Target; bytes: number }
export type FromClient = { msg: 'ready' } | { msg: 'done' } | { msg: 'error'; error: string };
export type ToClient = { msg: 'job'; job: Job } | { msg: 'go' } | { msg: 'close' };

interface Conn { send(b: Buffer): void; onData(fn: (n: number) => void): void; buffered(): number; close(): void }

async function open(t: Target): Promise<Conn> {
  if (t.kind === 'tcp') {
    const s = net.connect(t.port, '127.0.0.1');
    s.setNoDelay(true);
    await new Promise<void>((r, j) => { s.once('connect', r); s.once('error', j); });
    return { send: (b) => void s.write(b), onData: (fn) => s.on('data', (d: Buffer) => fn(d.length)), buffered: () => s.writableLength, close: () => s.destroy() };
  }
  const ws = await openWebSocket(t.url, t.protocols, t.headers);
  return {
    send: (b) => ws.send(b, { binary: true }),
    onData: (fn) => ws.on('message', (d: Buffer) => fn(d.length)),
    buffered: () => ws.bufferedAmount,
    close: () => ws.terminate(),
  };
}

const say = (m: FromClient): void => void process.send?.(m);

process.once('message', (first: ToClient) => {
  if (first.msg !== 'job') return void say({ msg: 'error', error: `expected a job first, got ${first.msg}` });
  const job = first.job;
  void (async () => {
    const c = await open(job.target);
    process.on('message', (m: ToClient) => {
      if (m.msg === 'close') { c.close(); process.exit(0); }
      if (m.msg !== 'go') return;
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = (): void => {
        while (sent < job.bytes && c.buffered() < 4 * 2 ** 20) { c.send(chunk); sent += chunk.length; }
        if (sent < job.bytes) setImmediate(pump);
      };
      pump();
    });
    if (job.dir === 'down') {
      let got = 0;
      let done = false;
      c.onData((n) => { got += n; if (!done && got >= job.bytes) { done = true; say({ msg: 'done' }); } });
    }
    say({ msg: 'ready' });
  })().catch((err: unknown) => { say({ msg: 'error', error: (err as Error).message }); process.exit(1); });
});
