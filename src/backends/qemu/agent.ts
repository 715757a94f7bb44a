/**
 * Host side of the lab-tiny exec agent (scripts/build-guest-image.sh, /etc/agent): a busybox-sh loop
 * on the virtio-serial port "lab.agent". The student's consoles (serial, VGA) never carry it.
 *   request: "<id> <timeoutSeconds> <maxBytes> <base64 script>\n"
 *   reply:   "R <id> <exit> <stdoutBytes> <stderrBytes>\n<base64 stdout>\n<base64 stderr>\n"
 * Replies to an earlier request that timed out on the host are skipped by id.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { BackendFailure } from '../../errors.js';
import type { ExecResult } from '../types.js';

export async function agentExec(socketPath: string, command: string, opts: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult> {
  const id = crypto.randomBytes(6).toString('hex');
  const seconds = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
  const max = Math.max(0, Math.floor(opts.maxOutputBytes));
  const started = Date.now();
  const sock = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (e) => reject(new BackendFailure(`exec agent socket: ${e.message}`, { cause: e })));
  });
  return new Promise<ExecResult>((resolve, reject) => {
    let buf = '';
    // the guest kills the command at its timeout; the host waits a little longer for the reply
    const timer = setTimeout(() => finish({ exitCode: -1, stdout: '', stderr: 'timed out', truncated: false, timedOut: true }), opts.timeoutMs + 5000);
    const finish = (r: ExecResult | Error) => {
      clearTimeout(timer);
      sock.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (;;) {
        const m = /^R (\S+) (-?\d+) (\d+) (\d+)\n([A-Za-z0-9+/=]*)\n([A-Za-z0-9+/=]*)\n/m.exec(buf);
        if (!m) return;
        buf = buf.slice(m.index + m[0].length);
        if (m[1] !== id) continue;
        const exitCode = Number(m[2]);
        const outLen = Number(m[3]);
        const errLen = Number(m[4]);
        const timedOut = exitCode === 143 && Date.now() - started >= seconds * 1000 - 250;
        finish({
          exitCode,
          stdout: Buffer.from(m[5] ?? '', 'base64').toString('utf8'),
          stderr: Buffer.from(m[6] ?? '', 'base64').toString('utf8') + (timedOut ? 'timed out' : ''),
          truncated: outLen > max || errLen > max,
          timedOut,
        });
        return;
      }
    });
    sock.on('close', () => finish(new BackendFailure('exec agent closed the connection')));
    sock.write(`${id} ${seconds} ${max} ${Buffer.from(command, 'utf8').toString('base64')}\n`);
  });
}
