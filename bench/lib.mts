/**
 * Shared bits of the benchmarks: percentiles, a row type (each measurement beside its floor and
 * goal), the table printer and the JSON writer. Timing goals live here, never in tests.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  /** The same measurement on the floor (the bare minimum the machine can do); undefined = no floor. */
  floor?: number;
  unit: string;
  /** Human-readable goal, e.g. "≤ 2× floor" or "≥ 0.8". */
  goal: string;
  meets: boolean | undefined;
  note?: string;
}

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export const fmt = (n: number | undefined, digits = 2): string => (n === undefined || Number.isNaN(n) ? '—' : Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits));

export function printTable(rows: BenchRow[]): string {
  const head = ['bench', 'metric', 'value', 'floor', 'ratio', 'unit', 'goal', 'meets'];
  const body = rows.map((r) => [
    r.bench, r.metric, fmt(r.value), fmt(r.floor), r.floor ? fmt(r.value / r.floor) : '—', r.unit, r.goal,
    r.meets === undefined ? 'n/a' : r.meets ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

export function machine(): Record<string, unknown> {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };
}

export function writeResults(rows: BenchRow[], notes: string[]): string {
  const dir = path.join(import.meta.dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), machine: machine(), rows, notes }, null, 2));
  fs.copyFileSync(file, path.join(dir, 'latest.json'));
  return file;
}

export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** A benchmark's helper process, spoken to over IPC with `{ msg }` objects; its `{ msg: 'error' }` or its exit rejects next(). */
export interface ChildLink<From, To> {
  next(): Promise<From>;
  send(m: To): void;
  /** Sends `last` (the child exits on it) and waits for the exit. */
  stop(last: To): Promise<void>;
}

export function forkChild<From extends { msg: string }, To>(file: URL, name: string): ChildLink<From, To> {
  const child = fork(fileURLToPath(file), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Array<From | Error> = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: From) => {
    const e = m as { msg: string; error?: unknown };
    queue.push(e.msg === 'error' ? new Error(`${name}: ${String(e.error)}`) : m);
    wake?.();
  });
  child.on('exit', (code) => { queue.push(new Error(`${name} exited with ${code}`)); wake?.(); });
  return {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => { wake = r; });
      const m = queue.shift()!;
      if (m instanceof Error) throw m;
      return m;
    },
    send: (m) => void child.send(m as object),
    stop: (last) => new Promise<void>((r) => {
      if (child.exitCode !== null) return r();
      child.once('exit', () => r());
      child.send(last as object);
    }),
  };
}

/** The benchmarks' browser side of a websocket: open, or the refusal as an error. */
export async function openWebSocket(url: string, protocols: string[], headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
    ws.once('unexpected-response', (_q, r) => rej(new Error(`upgrade refused ${r.statusCode}`)));
  });
  return ws;
}
