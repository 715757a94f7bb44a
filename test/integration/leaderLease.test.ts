/**
 * Leader election on a real coordination.k8s.io Lease, as the tool's ServiceAccount (k8s/ RBAC):
 * one holder at a time; a killed holder is replaced within the lease duration; a released lease
 * is taken over at once.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { sharedControlPlane, type ControlPlane } from '../support/k8s/controlPlane.js';
import { installTool, silentLog } from '../support/kubevirtTool.js';
import { KubeClient } from '../../src/backends/kubevirt/client.js';
import { LeaderLease } from '../../src/backends/kubevirt/LeaderLease.js';

const DURATION = 3000;

function candidate(kubeconfigPath: string, identity: string, name: string, changes: boolean[]): { lease: LeaderLease; client: KubeClient } {
  const client = new KubeClient({ kubeconfigPath, log: silentLog });
  const lease = new LeaderLease({ client, log: silentLog, namespace: 'lab-orchestrator', name, identity, durationMs: DURATION, onChange: (l) => changes.push(l) });
  return { lease, client };
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

describe('Leader lease (coordination.k8s.io) for the reconciler, sweeper and grade outbox', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let kubeconfig: string;
  before(async () => {
    cp = await sharedControlPlane();
    kubeconfig = await installTool(cp);
  });

  it('has exactly one holder among candidates, and a successor within the lease duration when the holder stops renewing', async () => {
    const ca: boolean[] = [];
    const cb: boolean[] = [];
    const a = candidate(kubeconfig, 'replica-a', 'lease-test-1', ca);
    const b = candidate(kubeconfig, 'replica-b', 'lease-test-1', cb);
    try {
      a.lease.start();
      await until('a leads', () => a.lease.isLeader, 10_000);
      b.lease.start();
      await new Promise((r) => setTimeout(r, DURATION * 1.5));
      assert.equal(a.lease.isLeader, true);
      assert.equal(b.lease.isLeader, false, 'a renewing holder keeps the lease');
      a.lease.abandon(); // as if the process hung or died
      const ms = await until('b takes over', () => b.lease.isLeader, DURATION * 3);
      assert.ok(ms <= DURATION + DURATION / 3 + 1000, `took over in ${ms} ms`);
      const r = await cp.request('GET', '/apis/coordination.k8s.io/v1/namespaces/lab-orchestrator/leases/lease-test-1');
      const spec = r.json<{ spec: { holderIdentity: string; leaseTransitions: number } }>().spec;
      assert.equal(spec.holderIdentity, 'replica-b');
      assert.equal(spec.leaseTransitions, 1);
      assert.deepEqual(cb, [true]);
    } finally {
      a.lease.abandon();
      await b.lease.release();
      a.client.close();
      b.client.close();
    }
  });

  it('hands the lease over at once on release, and takes it from a killed holder process', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/leaseHolder.ts'), kubeconfig, 'replica-child', String(DURATION)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    const changes: boolean[] = [];
    const me = candidate(kubeconfig, 'replica-me', 'lab-orchestrator', changes);
    try {
      await until('the child process leads', () => lines.includes('LEADER true'), 20_000);
      me.lease.start();
      await new Promise((r) => setTimeout(r, DURATION));
      assert.equal(me.lease.isLeader, false);
      child.kill('SIGKILL');
      const ms = await until('this replica takes over from the killed one', () => me.lease.isLeader, DURATION * 3);
      assert.ok(ms <= DURATION + DURATION / 3 + 1000, `took over in ${ms} ms`);

      const other: boolean[] = [];
      const next = candidate(kubeconfig, 'replica-next', 'lab-orchestrator', other);
      next.lease.start();
      const t0 = Date.now();
      await me.lease.release();
      await until('the next replica takes the released lease', () => next.lease.isLeader, DURATION * 2);
      assert.ok(Date.now() - t0 < DURATION, 'a released lease is taken without waiting out the duration');
      assert.deepEqual(changes, [true, false]);
      await next.lease.release();
      next.client.close();
    } finally {
      child.kill('SIGKILL');
      me.lease.abandon();
      me.client.close();
    }
  });
});
