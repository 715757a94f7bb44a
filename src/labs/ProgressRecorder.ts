/**
 * Turns a backend's progress callbacks into events (every one, at once), database writes (on a phase
 * change, otherwise at most every 500 ms — 40 students at 9:00 must not flood the database) and
 * phase-duration metrics.
 */
import type { BackendKind, Progress, ProgressPhase } from '../backends/types.js';
import type { Metrics } from '../metrics.js';
import { updateInstance, type LabInstanceDoc } from '../store/LabInstance.js';

export class ProgressRecorder {
  private readonly startedAt = Date.now();
  private phase: ProgressPhase | undefined;
  private phaseStartedAt = Date.now();
  private lastWrite = 0;
  private pending: Progress | undefined;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly inst: Pick<LabInstanceDoc, '_id' | 'generation'>,
    private readonly backend: BackendKind,
    private readonly metrics: Metrics | undefined,
    private readonly emit: (p: Progress) => void,
    private readonly serialize: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {}

  report(p: Progress): void {
    const now = Date.now();
    const changed = p.phase !== this.phase;
    if (changed) {
      if (this.phase) this.metrics?.provisionDuration.observe({ phase: this.phase, backend: this.backend }, (now - this.phaseStartedAt) / 1000);
      this.phase = p.phase;
      this.phaseStartedAt = now;
    }
    this.emit(p);
    this.pending = p;
    if (changed || now - this.lastWrite >= 500) this.write();
  }

  private write(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.lastWrite = Date.now();
    const { _id, generation } = this.inst;
    this.writing = this.writing.then(() =>
      this.serialize(() => updateInstance(_id, { generation, state: 'provisioning' }, { $set: { progress: p } })).catch(() => undefined),
    );
  }

  /** Write the last report and close the current phase's metric. */
  async flush(): Promise<void> {
    if (this.phase) this.metrics?.provisionDuration.observe({ phase: this.phase, backend: this.backend }, (Date.now() - this.phaseStartedAt) / 1000);
    this.phase = undefined;
    this.write();
    await this.writing;
  }

  elapsedMs(): number {
    return Date.now() - this.startedAt;
  }
}
