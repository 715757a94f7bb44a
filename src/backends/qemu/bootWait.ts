/** When a starting machine counts as booted: its console said so and its check agent answers, before the deadline. */
import { setTimeout as delay } from 'node:timers/promises';
import { BackendFailure } from '../../errors.js';
import { AGENT_GRACE_MS } from '../guest/agentProtocol.js';
import { READY_LINE } from '../guest/cloudInit.js';
import type { ExecResult } from '../types.js';
import type { RunningGuest } from './QemuRunner.js';
import { lastLine } from './util.js';

/** Every guest prints this on ttyS0 once booted and its check agent listens (lab-tiny's rc, cloud-init's runcmd, the identity step). */
export const BOOTED = new RegExp(READY_LINE);

/**
 * Throws BackendFailure with the reason (for the student and the log) when the deadline passes
 * first or QEMU exits; the signal's reason when it is aborted (nothing keeps polling after either).
 */
export async function waitBooted(machine: string, g: RunningGuest, ping: (timeoutMs: number) => Promise<ExecResult>, deadline: number, bootTimeoutMs: number, signal?: AbortSignal): Promise<void> {
  const secs = Math.round(bootTimeoutMs / 1000);
  const publicMessage = `Machine ${machine} did not start in time.`;
  try {
    await g.waitForConsole(BOOTED, Math.max(0, deadline - Date.now()));
  } catch (err) {
    throw new BackendFailure(`machine ${machine} did not finish booting within ${secs} s: ${(err as Error).message}${lastLine(g.qemuLog)}`, { cause: err, publicMessage });
  }
  let why = 'no answer';
  let exited = false;
  void g.exited.then(() => { exited = true; });
  for (;;) {
    signal?.throwIfAborted();
    if (exited) throw new BackendFailure(`machine ${machine} stopped while its check agent was awaited (${why})${lastLine(g.qemuLog)}`, { publicMessage });
    const left = deadline - Date.now();
    if (left <= 0) throw new BackendFailure(`machine ${machine} booted but its check agent never answered within ${secs} s (${why})`, { publicMessage });
    try {
      // long enough for a guest that is only slow (a busy host under TCG); a new connection after that, in case one was lost
      const r = await ping(Math.max(1000, Math.min(30_000, left - AGENT_GRACE_MS)));
      if (!r.timedOut && r.exitCode === 0) return;
      why = r.timedOut ? 'no answer' : `exit ${r.exitCode}`;
    } catch (err) {
      why = (err as Error).message;
    }
    await delay(250, undefined, signal ? { signal } : {});
  }
}
