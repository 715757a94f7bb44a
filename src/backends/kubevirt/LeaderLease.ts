/**
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
 * the holder renews every `renewMs`; another replica takes the lease once it has seen the same
 * holder/renewTime unchanged for `durationMs` by its own clock (no trust in other clocks); every
 * write carries the resourceVersion it read, so two candidates never both win. A holder that
 * cannot renew for `durationMs` steps down before anyone may take over. release() hands the lease
 * back at shutdown so a successor does not wait out the duration.
 *
 * Only the holder runs the LabSupervisor, the expiry sweeper and the grade outbox (wired by the
 * composition root through onChange).
 */
import type { Logger } from '../../logger.js';
import { KubeApiError, type KubeClient } from './client.js';
import type { K8sObject } from './manifests.js';

export interface LeaderLeaseOptions {
  client: KubeClient;
  log: Logger;
  namespace: string;
  name: string;
  /** This replica (pod name, or hostname-pid). */
  identity: string;
  durationMs: number;
  /** Renew / retry period; default durationMs / 3. */
  renewMs?: number;
  onChange: (leader: boolean) => void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}
type Lease = K8sObject & { spec: LeaseSpec };

/** MicroTime: RFC 3339 with microseconds. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderLease {
  private leader = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private observed = '';
  private observedAt = 0;
  private lastRenew = 0;
  private tick: Promise<unknown> | undefined;

  constructor(private readonly o: LeaderLeaseOptions) {}

  get isLeader(): boolean {
    return this.leader;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases/${this.o.name}`;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tick = this.tryAcquireOrRenew()
        .catch((err: unknown) => this.o.log.warn({ err }, 'lease.error'))
        .finally(() => this.schedule(this.o.renewMs ?? Math.floor(this.o.durationMs / 3)));
    }, ms);
    this.timer.unref();
  }

  private setLeader(v: boolean): void {
    if (this.leader === v) return;
    this.leader = v;
    this.o.log.info({ identity: this.o.identity, lease: this.o.name, leader: v }, v ? 'lease.acquired' : 'lease.lost');
    this.o.onChange(v);
  }

  /** One round: acquire when free or expired, renew when ours. Returns whether we hold it. */
  async tryAcquireOrRenew(): Promise<boolean> {
    try {
      const won = await this.round();
      if (won) this.lastRenew = Date.now();
      else this.setLeader(false);
      if (won) this.setLeader(true);
    } catch (err) {
      // cannot reach the API: keep leading only while the lease we hold is certainly still ours
      if (this.leader && Date.now() - this.lastRenew >= this.o.durationMs * 0.8) this.setLeader(false);
      throw err;
    }
    return this.leader;
  }

  private async round(): Promise<boolean> {
    const { client, identity } = this.o;
    const now = new Date();
    const durationS = Math.max(1, Math.ceil(this.o.durationMs / 1000));
    const cur = await client.get<Lease>(this.path);
    if (!cur) {
      const lease: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      };
      try {
        await client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases`, { body: lease });
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409) return false;
        throw err;
      }
    }
    const s = cur.spec;
    const record = `${s.holderIdentity ?? ''}|${s.renewTime ?? ''}|${s.leaseDurationSeconds ?? ''}`;
    if (record !== this.observed) {
      this.observed = record;
      this.observedAt = Date.now();
    }
    const mine = s.holderIdentity === identity;
    const free = !s.holderIdentity;
    const expired = Date.now() - this.observedAt >= (s.leaseDurationSeconds ?? durationS) * 1000;
    if (!mine && !free && !expired) return false;
    const next: Lease = {
      ...cur,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: durationS,
        acquireTime: mine ? (s.acquireTime ?? microTime(now)) : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (s.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      const saved = await client.request<Lease>('PUT', this.path, { body: next });
      this.observed = `${identity}|${saved.spec.renewTime ?? ''}|${saved.spec.leaseDurationSeconds ?? ''}`;
      this.observedAt = Date.now();
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return false; // someone else wrote first
      throw err;
    }
  }

  /** Stop campaigning without touching the lease, as a crashed process would (tests). */
  abandon(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Stop campaigning; when leading, hand the lease back (holder cleared) so a successor takes it at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.tick?.catch(() => undefined);
    if (!this.leader) return;
    this.setLeader(false);
    try {
      const cur = await this.o.client.get<Lease>(this.path);
      if (cur?.spec.holderIdentity !== this.o.identity) return;
      await this.o.client.request('PUT', this.path, {
        body: { ...cur, spec: { ...cur.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() } },
      });
    } catch (err) {
      this.o.log.warn({ err }, 'lease.release_failed');
    }
  }
}
