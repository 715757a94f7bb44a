/**
 * The embedded MongoDB-wire server: FerretDB v1.24.2 (SQLite backend) as a supervised child.
 * Used when MONGODB_URI is not set. Restarted on the same port if it dies unexpectedly, so
 * the driver reconnects by itself; stopped (SIGTERM, then SIGKILL) on shutdown. The child
 * also exits when our end of its stdin closes, so a SIGKILLed tool leaves no FerretDB behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { ConfigError } from '../errors.js';

export const FERRETDB_VERSION = 'v1.24.2';

export function defaultFerretBin(toolsDir: string): string {
  return path.join(toolsDir, 'bin', `ferretdb-${FERRETDB_VERSION}`);
}

export interface EmbeddedMongoOptions {
  bin: string;
  dataDir: string;
  log: Logger;
  /** 0 = pick a free port on first start; restarts reuse it. */
  port?: number;
  startTimeoutMs?: number;
  /**
   * SQLite's `synchronous` (default normal): normal syncs the write-ahead log at checkpoints, so a
   * commit survives the process being killed and a power loss may take the last commits back; full
   * syncs at every commit.
   */
  synchronous?: 'normal' | 'full';
}

export class EmbeddedMongo {
  private child: ChildProcess | undefined;
  private port: number;
  private stopping = false;
  private restarts = 0;
  uri = '';

  constructor(private readonly o: EmbeddedMongoOptions) {
    this.port = o.port ?? 0;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<string> {
    if (!fs.existsSync(this.o.bin)) {
      throw new ConfigError(
        `FERRETDB_BIN: FerretDB binary not found at ${this.o.bin}; run "bash scripts/setup.sh" (it builds it) or set MONGODB_URI`,
      );
    }
    fs.mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
    this.stopping = false;
    this.uri = await this.spawnOnce();
    return this.uri;
  }

  private spawnOnce(): Promise<string> {
    const child = spawn(
      this.o.bin,
      ['-listen', `127.0.0.1:${this.port}`, '-data-dir', path.resolve(this.o.dataDir), '-synchronous', this.o.synchronous ?? 'normal', '-exit-on-stdin-eof'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child = child;
    const log = this.o.log.child({ component: 'ferretdb', pid: child.pid });
    const stderr = createInterface({ input: child.stderr! });
    const tail: string[] = [];
    stderr.on('line', (l) => {
      tail.push(l);
      if (tail.length > 20) tail.shift();
      if (/ERROR|panic/i.test(l)) log.warn({ line: l }, 'ferretdb.stderr');
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`FerretDB did not start within ${this.o.startTimeoutMs ?? 30000} ms:\n${tail.join('\n')}`));
      }, this.o.startTimeoutMs ?? 30000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^READY (mongodb:\/\/\S+)/.exec(line);
        if (!m?.[1]) return;
        clearTimeout(timer);
        this.port = Number(new URL(m[1]).port);
        log.info({ port: this.port, dataDir: this.o.dataDir }, 'ferretdb.ready');
        resolve(m[1].replace(/\/$/, ''));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child !== child) return;
        this.child = undefined;
        if (this.stopping) return;
        log.error({ code, signal, tail }, 'ferretdb.exited');
        reject(new Error(`FerretDB exited (code ${code}, signal ${signal}):\n${tail.join('\n')}`));
        this.scheduleRestart();
      });
    });
  }

  private scheduleRestart(): void {
    const delay = Math.min(5000, 200 * 2 ** Math.min(this.restarts++, 5));
    setTimeout(() => {
      if (this.stopping || this.child) return;
      this.spawnOnce().then(
        () => { this.restarts = 0; },
        (err: unknown) => this.o.log.error({ err }, 'ferretdb.restart_failed'),
      );
    }, delay).unref();
  }

  /** Stop the child and wait for it to exit. Safe to call twice. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
    this.child = undefined;
  }
}
