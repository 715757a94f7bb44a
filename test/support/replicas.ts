/**
 * Tool replicas as separate processes (bin/lab-orchestrator.js serve, JSON logs read back) and the
 * repository's HAProxy configuration in front of them, for the tests of several replicas.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './tool.js';

const BIN = path.resolve('bin/lab-orchestrator.js');

export interface Replica {
  name: string;
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  /** The URL it listens on (known once `tool.listening` was logged). */
  url(): string | undefined;
}

function jsonLines(stream: NodeJS.ReadableStream, into: Array<Record<string, unknown>>): void {
  let buf = '';
  stream.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const l of parts) { try { into.push(JSON.parse(l) as Record<string, unknown>); } catch { /* the start-up banner */ } }
  });
}

export function startReplica(name: string, env: Record<string, string>): Replica {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), PORT: '0', LOG_LEVEL: 'info', LOG_FORMAT: 'json', POD_NAME: name, ...env },
  });
  const lines: Array<Record<string, unknown>> = [];
  jsonLines(child.stdout!, lines);
  child.stderr!.resume();
  return {
    name, child, lines,
    exited: new Promise((r) => child.once('exit', (code) => r(code))),
    url: () => lines.find((l) => l.msg === 'tool.listening')?.url as string | undefined,
  };
}

export const leads = (r: Replica): boolean => r.lines.filter((l) => l.msg === 'leadership.changed').at(-1)?.leader === true;

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Proxy { url: string; child: ChildProcess; exited: Promise<number | null>; log: () => string }

/** HAProxy in the foreground with deploy/haproxy.cfg, the two replicas as tool1 and tool2. */
export async function startHaproxy(tool1: string, tool2: string): Promise<Proxy> {
  const port = await freePort();
  const hostPort = (u: string) => new URL(u).host;
  const child = spawn('haproxy', ['-db', '-f', path.resolve('deploy/haproxy.cfg')], {
    env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin`, LAB_PROXY_BIND: `127.0.0.1:${port}`, LAB_TOOL1: hostPort(tool1), LAB_TOOL2: hostPort(tool2) },
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${out}`);
    return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok === true;
  }, 20_000, 'haproxy to answer');
  return { url, child, exited, log: () => out };
}

/** An event stream read into text (the lab page's /events). */
export function eventStream(url: string, token: string): { text: () => string; ended: Promise<void>; close: () => void } {
  const ctrl = new AbortController();
  let text = '';
  const ended = (async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ctrl.signal });
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += value;
    }
  })().catch(() => undefined);
  return { text: () => text, ended, close: () => ctrl.abort() };
}
