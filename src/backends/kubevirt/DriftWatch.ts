/**
 * Repairs NetworkPolicy drift as it happens: one shared watch on the managed policies of all lab
 * namespaces. A deleted policy, or one whose spec no longer matches what the lab's stored spec
 * builds, triggers the backend's repair() for that namespace (debounced per namespace). Policies
 * vanishing because their namespace is being deleted are ignored. Running it on every replica is
 * harmless: repairs are idempotent creates (409 with our annotation = done).
 */
import type { Logger } from '../../logger.js';
import type { LabHandle } from '../types.js';
import type { KubeClient } from './client.js';
import { Informer, type InformerEvent } from './Informer.js';
import type { K8sObject } from './manifests.js';

export interface DriftWatchDeps {
  client: KubeClient;
  log: Logger;
  selector: string;
  namespaces: Informer;
  /** The lab handle a managed namespace belongs to (undefined: not ours or terminating). */
  handleOf: (ns: K8sObject) => LabHandle | undefined;
  /** The policy as the lab's stored spec builds it (undefined: not a policy we make). */
  expectedPolicy: (ns: K8sObject, name: string) => K8sObject | undefined;
  repair: (h: LabHandle) => Promise<string[]>;
  canonical: (v: unknown) => string;
}

export class DriftWatch {
  readonly policies: Informer;
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<unknown>>();
  /** Repairs done (namespace → repaired objects), for logs and tests. */
  repairs = 0;

  constructor(private readonly d: DriftWatchDeps) {
    this.policies = new Informer(d.client, '/apis/networking.k8s.io/v1/networkpolicies', d.selector, d.log).start();
    this.policies.on((type, np) => this.onPolicy(type, np));
  }

  private onPolicy(type: InformerEvent, np: K8sObject): void {
    const nsName = np.metadata.namespace ?? '';
    const ns = this.d.namespaces.get(undefined, nsName);
    if (!ns || !this.d.handleOf(ns)) return; // unknown yet, not ours, or terminating
    if (type === 'ADDED') return;
    if (type === 'MODIFIED') {
      const want = this.d.expectedPolicy(ns, np.metadata.name);
      if (!want || this.d.canonical(want.spec) === this.d.canonical(np.spec)) return;
    }
    this.schedule(nsName);
  }

  private schedule(nsName: string): void {
    if (this.pending.has(nsName)) return;
    const t = setTimeout(() => {
      this.pending.delete(nsName);
      const p = this.repairNamespace(nsName).finally(() => this.running.delete(p));
      this.running.add(p);
    }, 100);
    t.unref();
    this.pending.set(nsName, t);
  }

  private async repairNamespace(nsName: string): Promise<void> {
    try {
      // authoritative: a namespace just marked for deletion must not be repaired
      const ns = await this.d.client.get(`/api/v1/namespaces/${nsName}`);
      const handle = ns && this.d.handleOf(ns);
      if (!handle) return;
      const fixed = await this.d.repair(handle);
      if (fixed.length > 0) this.repairs++;
    } catch (err) {
      this.d.log.warn({ err, ns: nsName }, 'kubevirt.drift_repair_failed');
    }
  }

  async stop(): Promise<void> {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    await Promise.allSettled([...this.running]);
    await this.policies.stop();
  }
}
