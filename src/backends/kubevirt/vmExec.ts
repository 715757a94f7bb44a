/**
 * `exec` on a KubeVirt VM: the VMI `portforward` subresource (a websocket carrying raw TCP bytes,
 * subprotocol plain.kubevirt.io, authorised as `get virtualmachineinstances/portforward`) to the
 * exec agent cloud-init started in the guest (execAgent.ts), authenticated with the machine's
 * token read from its Secret. Never touches the serial console or the display.
 *
 * Bounded on the tool side too: the reply is cut off past what maxOutputBytes allows, and the
 * call gives up timeoutMs + AGENT_GRACE_MS after it started. While the guest is still booting
 * (the agent does not listen yet, so the forwarded connection closes without a byte) it retries
 * until the check's own timeout.
 */
import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { BackendFailure, NotFound } from '../../errors.js';
import type { ExecResult, MachineSpec } from '../types.js';
import type { KubeClient } from './client.js';
import { AGENT_PORT, AGENT_TOKEN_KEY } from './execAgent.js';
import { secretName } from './manifests.js';

/** How much longer than the guest's timeout the tool waits for the agent's reply. */
export const AGENT_GRACE_MS = 5000;

export interface VmExecTarget {
  client: KubeClient;
  /** Base URL of /apis/subresources.kubevirt.io (the API server on a real cluster). */
  subresourceUrl: string;
  namespace: string;
  machine: string;
}

/** Thrown when the connection closed before the agent sent anything (agent not up yet). */
class NoAgent extends BackendFailure {}

async function agentToken(t: VmExecTarget): Promise<string> {
  const secret = await t.client.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${t.namespace}/secrets/${secretName({ name: t.machine } as MachineSpec)}`);
  const b64 = secret?.data?.[AGENT_TOKEN_KEY];
  if (!b64) throw new NotFound(`no exec agent token for ${t.namespace}/${t.machine}`, { publicMessage: 'Automatic checks are not available on this machine (it was created without the check agent).' });
  return Buffer.from(b64, 'base64').toString('utf8');
}

export async function execInVm(t: VmExecTarget, command: string, opts: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs + AGENT_GRACE_MS;
  const token = await agentToken(t);
  const url = `${t.subresourceUrl.replace(/^http/, 'ws')}/apis/subresources.kubevirt.io/v1/namespaces/${t.namespace}/virtualmachineinstances/${encodeURIComponent(t.machine)}/portforward/${AGENT_PORT}/tcp`;
  for (let wait = 250; ; wait = Math.min(2000, wait * 2)) {
    try {
      return await once(t, url, token, command, opts, deadline);
    } catch (err) {
      if (!(err instanceof NoAgent) || Date.now() + wait >= started + opts.timeoutMs) throw err;
      await delay(wait);
    }
  }
}

async function once(t: VmExecTarget, url: string, token: string, command: string, opts: { timeoutMs: number; maxOutputBytes: number }, deadline: number): Promise<ExecResult> {
  const id = crypto.randomBytes(6).toString('hex');
  const seconds = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
  const max = Math.max(0, Math.floor(opts.maxOutputBytes));
  // two base64 streams of at most `max` bytes each, plus the header line
  const replyLimit = 2 * Math.ceil(max / 3) * 4 + 200;
  const sent = Date.now();
  const { stream } = await t.client.websocket(url, ['plain.kubevirt.io'], 'get');
  return new Promise<ExecResult>((resolve, reject) => {
    let buf = '';
    let got = 0;
    const timer = setTimeout(() => finish({ exitCode: -1, stdout: '', stderr: 'timed out', truncated: false, timedOut: true }), Math.max(0, deadline - Date.now()));
    let done = false;
    const finish = (r: ExecResult | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const where = `${t.namespace}/${t.machine}`;
    stream.on('data', (c: Buffer) => {
      got += c.length;
      if (got > replyLimit) return finish(new BackendFailure(`exec agent on ${where} sent more than ${replyLimit} bytes`, { publicMessage: 'The check agent in the machine misbehaved.' }));
      buf += c.toString('latin1');
      const e = /^E (.*)\n/.exec(buf);
      if (e) return finish(new BackendFailure(`exec agent on ${where} refused: ${e[1]}`, { publicMessage: 'The check agent in the machine refused the check.' }));
      const m = /^R (\S+) (-?\d+) (\d+) (\d+)\n([A-Za-z0-9+/=]*)\n([A-Za-z0-9+/=]*)\n/.exec(buf);
      if (!m) return;
      if (m[1] !== id) return finish(new BackendFailure(`exec agent on ${where} answered another request`));
      const exitCode = Number(m[2]);
      // coreutils timeout exits 124, busybox's 143 (SIGTERM)
      const timedOut = (exitCode === 124 || exitCode === 143) && Date.now() - sent >= seconds * 1000 - 250;
      finish({
        exitCode,
        stdout: Buffer.from(m[5] ?? '', 'base64').toString('utf8'),
        stderr: Buffer.from(m[6] ?? '', 'base64').toString('utf8') + (timedOut ? 'timed out' : ''),
        truncated: Number(m[3]) > max || Number(m[4]) > max,
        timedOut,
      });
    });
    const closed = () =>
      finish(got === 0 ? new NoAgent(`exec agent on ${where} is not listening (yet)`, { publicMessage: 'The machine is still starting; try the check again in a moment.' }) : new BackendFailure(`exec agent on ${where} closed the connection mid-reply`));
    stream.on('end', closed);
    stream.on('close', closed);
    stream.on('error', (e: Error) => finish(new BackendFailure(`portforward to ${where}: ${e.message}`, { cause: e })));
    (stream as Duplex).write(`${token} ${id} ${seconds} ${max} ${Buffer.from(command, 'utf8').toString('base64')}\n`);
  });
}
