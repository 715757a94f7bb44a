/**
 * Duties only one replica may run at a time (the lab supervisor, the grade outbox, the expiry
 * sweeper). On one machine the process simply leads; with several replicas on Kubernetes the
 * holder of the coordination.k8s.io Lease leads (LeaderLease), and a replica that loses the lease
 * stops its duties before another may take over.
 */
import type { Logger } from './logger.js';

export interface Duty {
  name: string;
  start(): void;
  stop(): Promise<void> | void;
}

export class Duties {
  private readonly list: Duty[] = [];
  private leading = false;
  private change: Promise<void> = Promise.resolve();

  constructor(private readonly log: Logger) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** Register a duty; it starts at once when this replica already leads. */
  add(d: Duty): void {
    this.list.push(d);
    if (this.leading) d.start();
  }

  /** Start or stop every duty; changes are applied in order, never overlapping. */
  setLeader(leader: boolean): Promise<void> {
    this.change = this.change.then(async () => {
      if (leader === this.leading) return;
      this.leading = leader;
      this.log.info({ leader, duties: this.list.map((d) => d.name) }, 'leadership.changed');
      if (leader) for (const d of this.list) d.start();
      else for (const d of [...this.list].reverse()) await Promise.resolve(d.stop()).catch((err: unknown) => this.log.warn({ err, duty: d.name }, 'leadership.stop_failed'));
    });
    return this.change;
  }
}
