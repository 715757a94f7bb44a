/**
 * Container machines: terminals and out-of-band commands through the Kubernetes pods/exec
 * websocket (`v4.channel.k8s.io`: every message starts with a channel byte — 0 stdin, 1 stdout,
 * 2 stderr, 3 status, 4 resize).
 */
import { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import type { ExecResult } from '../types.js';
import type { KubeClient } from './client.js';

const SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi';

export function execUrl(server: string, ns: string, pod: string, command: string[], o: { tty: boolean; stdin: boolean }): string {
  const u = new URL(`${server.replace(/^http/, 'ws')}/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod)}/exec`);
  u.searchParams.set('container', 'main');
  u.searchParams.set('stdout', 'true');
  u.searchParams.set('stderr', String(!o.tty));
  u.searchParams.set('stdin', String(o.stdin));
  u.searchParams.set('tty', String(o.tty));
  for (const c of command) u.searchParams.append('command', c);
  return u.toString();
}

/** An interactive shell in the container as a raw byte Duplex (what xterm sends and shows). */
export async function openPodTerminal(client: KubeClient, ns: string, pod: string): Promise<Duplex> {
  const { ws } = await client.websocket(execUrl(client.server, ns, pod, ['sh', '-c', SHELL], { tty: true, stdin: true }), ['v4.channel.k8s.io']);
  return new ExecDuplex(ws);
}

class ExecDuplex extends Duplex {
  constructor(private readonly ws: WebSocket) {
    super();
    ws.on('message', (data: Buffer) => {
      const ch = data[0];
      if (ch === 1 || ch === 2) {
        if (!this.push(data.subarray(1))) ws.pause();
      } else if (ch === 3) this.push(null);
    });
    ws.on('close', () => this.push(null));
    ws.on('error', (e) => this.destroy(e));
  }
  override _read(): void {
    this.ws.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.ws.send(Buffer.concat([Buffer.from([0]), chunk]), cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.ws.close(1000);
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.ws.terminate();
    cb(err);
  }
}

/** Run `sh -c command` in the container; output capped, killed (socket closed) at the timeout. */
export async function execInPod(client: KubeClient, ns: string, pod: string, command: string, o: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult> {
  const { ws } = await client.websocket(execUrl(client.server, ns, pod, ['sh', '-c', command], { tty: false, stdin: false }), ['v4.channel.k8s.io']);
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let bytes = 0;
  let truncated = false;
  return new Promise<ExecResult>((resolve) => {
    let exitCode = -1;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ws.terminate();
    }, o.timeoutMs);
    ws.on('message', (data: Buffer) => {
      const ch = data[0];
      const body = data.subarray(1);
      if (ch === 1 || ch === 2) {
        const room = Math.max(0, o.maxOutputBytes - bytes);
        if (body.length > room) truncated = true;
        const part = body.subarray(0, room);
        bytes += part.length;
        (ch === 1 ? out.stdout : out.stderr).push(part);
      } else if (ch === 3) {
        const st = JSON.parse(body.toString('utf8') || '{}') as { status?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
        const code = st.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
        exitCode = st.status === 'Success' ? 0 : code !== undefined ? Number(code) : 1;
      }
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve({ exitCode, stdout: Buffer.concat(out.stdout).toString('utf8'), stderr: Buffer.concat(out.stderr).toString('utf8'), truncated, timedOut });
    });
    ws.on('error', () => undefined);
  });
}
