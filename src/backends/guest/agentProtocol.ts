/**
 * The tool side of the check agent protocol, for both backends (the guest side is lab-agent.sh,
 * also shared). The transport is the backend's: a virtio-serial port on QEMU (one long-lived
 * connection, requests one after another), a TCP connection through the VMI portforward
 * subresource on KubeVirt (one request per connection). This file only speaks over a Duplex.
 *
 *   request: "<token> <id> <timeoutSeconds> <maxBytes> <base64 env file or -> <base64 script>\n"
 *   reply:   "R <id> <exit> <stdoutBytes> <stderrBytes>\n<base64 stdout>\n<base64 stderr>\n"
 *            or "E <reason>\n"
 *
 * Rules both backends share (they used to drift):
 * - the guest kills the command after ceil(timeoutMs / 1000) s; the tool waits AGENT_GRACE_MS
 *   longer for the reply, then reports a timeout;
 * - each stream is cut to maxOutputBytes in the guest (at most MAX_OUTPUT_BYTES); the tool buffers
 *   at most replyLimit(maxOutputBytes) bytes of one reply and gives up on an agent that sends more;
 * - a reply to another request (one that timed out earlier on the same port) is skipped by id;
 * - values reach the command as environment variables (an env file of `export NAME='value'` lines
 *   the agent sources), never spliced into the command's text.
 */
import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import { BackendFailure } from '../../errors.js';
import type { ExecResult } from '../types.js';

/** How much longer than the guest's own timeout the tool waits for the agent's reply. */
export const AGENT_GRACE_MS = 5000;
/** The most output per stream any caller can ask for. */
export const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Where the guest keeps the agent's token (root only). */
export const AGENT_TOKEN_FILE = '/etc/lab-agent/token';
export const AGENT_PROGRAM = '/usr/local/sbin/lab-agent';
/** Name of the QEMU virtio-serial port the agent serves. */
export const AGENT_PORT_NAME = 'lab.agent';

export interface AgentRequest {
  token: string;
  command: string;
  /** Environment variables for the command (names: [A-Za-z_][A-Za-z0-9_]*). */
  env?: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
}

/** The agent answered "E …" (bad token, bad request). */
export class AgentRefused extends BackendFailure {}
/** The connection closed before the agent sent a byte (not listening yet, or gone). */
export class AgentSilent extends BackendFailure {}
/** The agent broke the protocol (a reply past the size limit, garbage, closed mid-reply). */
export class AgentMisbehaved extends BackendFailure {}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** POSIX shell single quoting: the result is one word whose value is exactly `v`. */
export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** The env file the agent sources before it runs the command. Throws on a name that is not a shell variable name or a value with a NUL. */
export function envFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!ENV_NAME.test(k)) throw new BackendFailure(`environment variable name ${JSON.stringify(k)} is not a shell name`);
      if (v.includes('\0')) throw new BackendFailure(`environment variable ${k} contains a NUL byte`);
      return `export ${k}=${shellQuote(v)}\n`;
    })
    .join('');
}

export function guestTimeoutSeconds(timeoutMs: number): number {
  return Math.max(1, Math.ceil(timeoutMs / 1000));
}

export function clampOutput(maxOutputBytes: number): number {
  return Math.min(MAX_OUTPUT_BYTES, Math.max(0, Math.floor(maxOutputBytes)));
}

/** The most bytes one well-formed reply can have: two base64 streams of at most `max` bytes each and the header line. */
export function replyLimit(maxOutputBytes: number): number {
  return 2 * Math.ceil(clampOutput(maxOutputBytes) / 3) * 4 + 256;
}

export function encodeRequest(id: string, r: AgentRequest): string {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const env = r.env && Object.keys(r.env).length ? b64(envFile(r.env)) : '-';
  return `${r.token} ${id} ${guestTimeoutSeconds(r.timeoutMs)} ${clampOutput(r.maxOutputBytes)} ${env} ${b64(r.command)}\n`;
}

const REPLY = /^R (\S+) (-?\d+) (\d+) (\d+)\n([A-Za-z0-9+/=]*)\n([A-Za-z0-9+/=]*)\n/;
const REFUSAL = /^E ([^\n]*)\n/;

/**
 * Reads replies from a byte stream for one request id, holding at most replyLimit bytes of the
 * reply being read. push() returns the outcome once there is one.
 */
export class ReplyReader {
  private buf = '';
  private readonly limit: number;
  constructor(private readonly id: string, private readonly r: Pick<AgentRequest, 'timeoutMs' | 'maxOutputBytes'>, private readonly where = '', private readonly sentAt = Date.now()) {
    this.limit = replyLimit(r.maxOutputBytes);
  }

  get received(): boolean {
    return this.seen;
  }
  private seen = false;

  push(chunk: Buffer): ExecResult | Error | undefined {
    if (chunk.length) this.seen = true;
    this.buf += chunk.toString('latin1');
    for (;;) {
      const e = REFUSAL.exec(this.buf);
      if (e) return new AgentRefused(`check agent${this.where} refused the request: ${e[1] ?? ''}`, { publicMessage: 'The check agent in the machine refused the check.' });
      const m = REPLY.exec(this.buf);
      if (!m) {
        if (this.buf.length > this.limit) return new AgentMisbehaved(`check agent${this.where} sent more than ${this.limit} bytes for one reply`, { publicMessage: 'The check agent in the machine misbehaved.' });
        if (this.buf.length && !/^(R|E|$)/.test(this.buf)) return new AgentMisbehaved(`check agent${this.where} sent garbage: ${JSON.stringify(this.buf.slice(0, 40))}`);
        return undefined;
      }
      this.buf = this.buf.slice(m[0].length);
      if (m[1] !== this.id) continue; // the late reply of an earlier request on the same port
      return this.result(m);
    }
  }

  private result(m: RegExpExecArray): ExecResult {
    const max = clampOutput(this.r.maxOutputBytes);
    const exitCode = Number(m[2]);
    // coreutils timeout exits 124, busybox's 143 (SIGTERM)
    const timedOut = (exitCode === 124 || exitCode === 143) && Date.now() - this.sentAt >= guestTimeoutSeconds(this.r.timeoutMs) * 1000 - 250;
    return {
      exitCode,
      stdout: Buffer.from(m[5] ?? '', 'base64').toString('utf8'),
      stderr: Buffer.from(m[6] ?? '', 'base64').toString('utf8') + (timedOut ? 'timed out' : ''),
      truncated: Number(m[3]) > max || Number(m[4]) > max,
      timedOut,
    };
  }
}

export const TIMED_OUT_RESULT: ExecResult = Object.freeze({ exitCode: -1, stdout: '', stderr: 'timed out', truncated: false, timedOut: true });

/**
 * Send one request over a connected stream and wait for its reply. Resolves a timed-out result
 * AGENT_GRACE_MS after the guest's timeout (or at `deadline`, epoch ms, when given); rejects with
 * AgentSilent / AgentRefused / AgentMisbehaved. Destroys the stream when done unless keepOpen.
 */
export function exchange(stream: Duplex, r: AgentRequest, o: { deadline?: number; keepOpen?: boolean; where?: string } = {}): Promise<ExecResult> {
  const id = crypto.randomBytes(6).toString('hex');
  const line = encodeRequest(id, r);
  const where = o.where ? ` on ${o.where}` : '';
  const reader = new ReplyReader(id, r, where);
  const deadline = o.deadline ?? Date.now() + guestTimeoutSeconds(r.timeoutMs) * 1000 + AGENT_GRACE_MS;
  return new Promise<ExecResult>((resolve, reject) => {
    let done = false;
    const finish = (x: ExecResult | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onClose);
      stream.off('close', onClose);
      stream.off('error', onError);
      stream.on('error', ignore); // destroying some streams reports an AbortError: nobody waits for it any more
      if (!o.keepOpen || x instanceof Error) stream.destroy();
      if (x instanceof Error) reject(x);
      else resolve(x);
    };
    const timer = setTimeout(() => finish({ ...TIMED_OUT_RESULT }), Math.max(0, deadline - Date.now()));
    const onData = (c: Buffer) => {
      const x = reader.push(c);
      if (x) finish(x);
    };
    const onClose = () =>
      finish(reader.received
        ? new AgentMisbehaved(`check agent${where} closed the connection mid-reply`)
        : new AgentSilent(`check agent${where} is not listening (yet)`, { publicMessage: 'The machine is still starting; try the check again in a moment.' }));
    const onError = (e: Error) => finish(new AgentSilent(`check agent connection${where}: ${e.message}`, { cause: e }));
    stream.on('data', onData);
    stream.on('end', onClose);
    stream.on('close', onClose);
    stream.on('error', onError);
    stream.write(line);
  });
}

function ignore(): void { /* see exchange() */ }

/** A fresh per-machine agent token. */
export function newAgentToken(): string {
  return crypto.randomBytes(24).toString('base64url');
}
