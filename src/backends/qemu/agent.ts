/**
 * The check agent of a QEMU guest: the shared protocol (../guest/agentProtocol.ts) over the
 * guest's virtio-serial port "lab.agent", which QEMU serves on a unix socket in the machine's
 * run dir. The student's consoles (serial, VGA) never carry it. The port serves one client at a
 * time: callers serialise requests per machine.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BackendFailure } from '../../errors.js';
import type { ExecOptions, ExecResult } from '../types.js';
import { exchange, newAgentToken } from '../guest/agentProtocol.js';

export async function agentExec(socketPath: string, token: string, command: string, opts: ExecOptions, where?: string): Promise<ExecResult> {
  const sock = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (e) => reject(new BackendFailure(`check agent socket${where ? ` of ${where}` : ''}: ${e.message}`, { cause: e })));
  });
  return exchange(sock, { token, command, timeoutMs: opts.timeoutMs, maxOutputBytes: opts.maxOutputBytes, ...(opts.env ? { env: opts.env } : {}) }, where ? { where } : {});
}

/** The machine's agent token (agent.token in its run dir, 0600), created on first use. */
export function machineAgentToken(machineDir: string): string {
  const file = path.join(machineDir, 'agent.token');
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    if (t) return t;
  } catch { /* first use */ }
  const t = newAgentToken();
  fs.writeFileSync(file, t, { mode: 0o600 });
  return t;
}
