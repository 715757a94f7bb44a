/**
 * Tool replicas as separate processes (bin/lab-orchestrator.js serve, JSON logs read back) and the
 * repository's HAProxy configuration in front of them, for the tests of several replicas.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
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

/**
 * deploy/haproxy.cfg for n replicas, the way README "Running several replicas" tells admins to
 * extend it: each backend's `server tool1` line repeated once per replica (tool1…toolN,
 * LAB_TOOL1…LAB_TOOLN), the file's other server lines dropped.
 */
export function haproxyConfig(n: number): string {
  const out: string[] = [];
  for (const line of fs.readFileSync(path.resolve('deploy/haproxy.cfg'), 'utf8').split('\n')) {
    const m = /^(\s*server )tool(\d+)( "\$\{LAB_TOOL)\d+(\}".*)$/.exec(line);
    if (!m) out.push(line);
    else if (m[2] === '1') for (let i = 1; i <= n; i++) out.push(`${m[1]}tool${i}${m[3]}${i}${m[4]}`);
  }
  return out.join('\n');
}

/** HAProxy in the foreground with deploy/haproxy.cfg, the replicas as tool1, tool2, … in this order. */
export async function startHaproxy(...tools: string[]): Promise<Proxy> {
  return startHaproxyAt(await freePort(), tools);
}

/** The same on a port chosen beforehand (the replicas' PUBLIC_URL names the proxy, for the websockets' Origin). */
export async function startHaproxyAt(port: number, tools: string[]): Promise<Proxy> {
  const hostPort = (u: string) => new URL(u).host;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig(tools.length));
  const servers = Object.fromEntries(tools.map((t, i) => [`LAB_TOOL${i + 1}`, hostPort(t)]));
  const child = spawn('haproxy', ['-db', '-f', cfg], {
    env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin`, LAB_PROXY_BIND: `127.0.0.1:${port}`, ...servers },
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => { fs.rmSync(dir, { recursive: true, force: true }); r(code); }));
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
