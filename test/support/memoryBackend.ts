/**
 * A LabBackend that keeps its "machines" in memory, for LabService state-machine tests: failure
 * modes a real backend cannot produce on demand (a provision that fails half-way, capacity that
 * frees at a chosen moment, resources vanishing behind the tool's back). The QEMU backend tests
 * cover the same contract with real guests.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Duplex } from 'node:stream';
import type { BackendCapacity, BackendLabSpec, ChannelKind, ExecOptions, ExecResult, LabBackend, LabHandle, MachineAddress, MachineStatus, Progress } from '../../src/backends/types.js';
import { CapacityExhausted, NotFound } from '../../src/errors.js';

interface Lab {
  handle: LabHandle;
  spec: BackendLabSpec;
  phase: 'running' | 'paused' | 'stopped';
  resets: number;
}

export class MemoryBackend implements LabBackend {
  readonly kind = 'qemu' as const;
  readonly labs = new Map<string, Lab>();
  provisionCalls = 0;
  destroyCalls = 0;
  /** Milliseconds each progress phase takes. */
  phaseMs = 5;
  /** Max concurrent labs (one VM each as capacity counts it); undefined = unlimited. */
  maxLabs: number | undefined;
  /** Throw this from the next provision (once). */
  failNext: Error | undefined;

  capacity(): BackendCapacity {
    return { ...(this.maxLabs !== undefined ? { maxVms: this.maxLabs } : {}), usedVms: this.labs.size, usedMemoryMiB: 0 };
  }

  async provision(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    this.provisionCalls++;
    if (this.labs.has(handle.name)) return;
    if (this.maxLabs !== undefined && this.labs.size >= this.maxLabs) throw new CapacityExhausted('full', { publicMessage: 'All lab machines are in use.' });
    const steps: Array<[Progress['phase'], number]> = [['network', 10], ['disks', 30], ['machines-starting', 60], ['machines-booted', 100]];
    for (const [phase, percent] of steps) {
      if (signal?.aborted) throw new Error('aborted');
      onProgress({ phase, percent, message: phase });
      await new Promise((r) => setTimeout(r, this.phaseMs));
      if (phase === 'disks' && this.failNext) {
        const e = this.failNext;
        this.failNext = undefined;
        throw e;
      }
    }
    this.labs.set(handle.name, { handle, spec, phase: 'running', resets: 0 });
  }

  /** Addresses as a pod network would give them (not the QEMU convention): the lab layer must take these. */
  async addresses(handle: LabHandle): Promise<Record<string, MachineAddress>> {
    const lab = this.labs.get(handle.name);
    if (!lab) throw new NotFound(`no lab ${handle.name}`);
    return Object.fromEntries(lab.spec.machines.map((m, i) => [m.name, { ip: `10.244.7.${20 + i}`, host: `${m.name}.lab.svc` }]));
  }

  /** Every exec call, in order. */
  readonly execCalls: Array<{ lab: string; machine: string; command: string; opts: ExecOptions }> = [];
  /** Most exec calls running at the same time. */
  maxConcurrentExec = 0;
  private execRunning = 0;

  /** A machine's "disk": a directory the machine's exec runs in (cwd and HOME). */
  machineDir(handle: LabHandle, machine: string): string {
    const dir = path.join(os.tmpdir(), 'memory-backend', handle.name, machine);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Runs the command with the local sh in the machine's directory: real processes, real timeouts, real output. */
  async exec(handle: LabHandle, machine: string, command: string, opts: ExecOptions): Promise<ExecResult> {
    const lab = this.must(handle);
    if (!lab.spec.machines.some((m) => m.name === machine)) throw new NotFound(`no machine ${machine}`);
    this.execCalls.push({ lab: handle.name, machine, command, opts });
    this.execRunning++;
    this.maxConcurrentExec = Math.max(this.maxConcurrentExec, this.execRunning);
    try {
      const dir = this.machineDir(handle, machine);
      const child = spawn('sh', ['-c', command], { cwd: dir, env: { ...opts.env, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), truncated: false };
      const collect = (which: 'stdout' | 'stderr') => (c: Buffer) => {
        const room = opts.maxOutputBytes - out[which].length;
        if (c.length > room) out.truncated = true;
        if (room > 0) out[which] = Buffer.concat([out[which], c.subarray(0, room)]);
      };
      child.stdout.on('data', collect('stdout'));
      child.stderr.on('data', collect('stderr'));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
      }, opts.timeoutMs);
      const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 137)));
      clearTimeout(timer);
      return { exitCode: code, stdout: out.stdout.toString('utf8'), stderr: out.stderr.toString('utf8'), truncated: out.truncated, timedOut };
    } finally {
      this.execRunning--;
    }
  }

  async status(handle: LabHandle): Promise<Record<string, MachineStatus>> {
    const lab = this.labs.get(handle.name);
    const out: Record<string, MachineStatus> = {};
    for (const m of lab?.spec.machines ?? []) out[m.name] = { phase: lab ? lab.phase : 'gone' };
    return out;
  }

  async openChannel(handle: LabHandle, machine: string, _channel: ChannelKind): Promise<Duplex> {
    const lab = this.labs.get(handle.name);
    if (!lab?.spec.machines.some((m) => m.name === machine)) throw new NotFound(`no machine ${machine}`);
    return new PassThrough();
  }

  private must(handle: LabHandle): Lab {
    const lab = this.labs.get(handle.name);
    if (!lab) throw new NotFound(`no lab ${handle.name}`);
    return lab;
  }
  async pause(h: LabHandle) { this.must(h).phase = 'paused'; }
  async resume(h: LabHandle) { this.must(h).phase = 'running'; }
  async stop(h: LabHandle) { this.must(h).phase = 'stopped'; }
  async start(h: LabHandle) { this.must(h).phase = 'running'; }
  async reset(h: LabHandle) { this.must(h).resets++; }
  async destroy(h: LabHandle) {
    this.destroyCalls++;
    this.labs.delete(h.name);
    fs.rmSync(path.join(os.tmpdir(), 'memory-backend', h.name), { recursive: true, force: true });
  }
  async list(): Promise<LabHandle[]> { return [...this.labs.values()].map((l) => l.handle); }
  async ready() { return true; }
  async close() {}
}
