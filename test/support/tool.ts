/**
 * Start the real tool in-process on port 0 against the shared FerretDB (or an embedded one).
 * One in-process tool at a time: it shares mongoose's default connection with ltijs. Tests that
 * need two tools at once run the second as a child process (bin/lab-orchestrator.js serve).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { loadConfig } from '../../src/config.js';
import { startTool, type RunningTool, type StartOptions } from '../../src/main.js';
import { sharedMongoUri, uniqueDbName } from './ferret.js';

export interface TestTool extends RunningTool {
  /** Every log line the tool wrote, parsed. */
  logs(): Array<Record<string, unknown>>;
  rawLogs(): string;
  dataDir: string;
}

export async function startTestTool(
  env: Record<string, string> = {},
  opts: StartOptions & { embedded?: boolean } = {},
): Promise<TestTool> {
  const dataDir = env.DATA_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'lab-data-'));
  const base: Record<string, string> = {
    LAB_MODE: 'demo',
    PORT: '0',
    LOG_LEVEL: 'debug',
    DATA_DIR: dataDir,
    SHUTDOWN_GRACE_MS: '5000',
    // tests register the tool with the dev platform themselves (saves a 4096-bit key per start)
    DEV_PLATFORM_REGISTER: 'false',
    // a saved running state costs a second guest boot in the background: only the tests of that feature ask for it
    QEMU_SAVED_STATES: 'false',
  };
  if (!opts.embedded) base.MONGODB_URI = sharedMongoUri();
  const config = loadConfig({ ...base, ...env });
  const sink = new PassThrough();
  let raw = '';
  sink.on('data', (c: Buffer) => { raw += c.toString(); });
  const tool = await startTool(config, { dbName: opts.dbName ?? uniqueDbName('tool'), logDestination: sink, ...opts });
  return Object.assign(tool, {
    dataDir,
    rawLogs: () => raw,
    logs: () => raw.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  });
}

/** Poll until fn returns true or the time runs out. */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
