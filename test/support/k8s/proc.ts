/**
 * Child processes of the test control plane: spawned with their output in a log file, stopped with
 * SIGTERM then SIGKILL, and killed synchronously if the test runner exits without stopping them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<string>;
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
}

export function startProc(name: string, bin: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Proc {
  installExitHook();
  if (!fs.existsSync(bin)) throw new Error(`${name}: binary not found at ${bin}; run "bash scripts/setup-test.sh" (it builds it)`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
  fs.closeSync(fd);
  live.add(child);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(signal ?? String(code));
    });
    child.once('error', (err) => {
      live.delete(child);
      resolve(`spawn error: ${err.message}`);
    });
  });
  return {
    name,
    child,
    logFile,
    exited,
    tail(lines = 15) {
      try {
        return fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
export async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** Free loopback TCP ports (bound and released; a caller that loses a race retries the start). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Poll fn every intervalMs until it returns true; fail early if `proc` exits. */
export async function pollUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number, procs: Proc[], intervalMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) while waiting for ${what}:\n${p.tail()}`);
      }
    }
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${procs.map((p) => `--- ${p.name}\n${p.tail()}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
