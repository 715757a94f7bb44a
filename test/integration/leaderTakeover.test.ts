/**
 * Two tool processes against one real API server and one database (BACKEND=kubevirt): exactly one
 * holds the Lease and runs the duties (supervisor, grade outbox, sweeper); when it is killed, the
 * other takes over within the lease duration.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sharedControlPlane, type ControlPlane } from '../support/k8s/controlPlane.js';
import { sharedMongoUri } from '../support/ferret.js';
import { waitFor } from '../support/tool.js';

const BIN = path.resolve('bin/lab-orchestrator.js');
const NS = 'lo-leader-test';
const LEASE_MS = 4000;

interface Replica { name: string; child: ChildProcess; lines: Array<Record<string, unknown>>; exited: Promise<number | null> }

function startReplica(cp: ControlPlane, name: string, dataDir: string): Replica {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '', HOME: os.homedir(), LAB_MODE: 'demo', PORT: '0', LOG_LEVEL: 'info', LOG_FORMAT: 'json',
      DATA_DIR: path.join(dataDir, name), MONGODB_URI: sharedMongoUri(), DEV_PLATFORM: 'false', DEV_PLATFORM_REGISTER: 'false',
      BACKEND: 'kubevirt', KUBECONFIG: cp.kubeconfigPath, KUBEVIRT_TOOL_NAMESPACE: NS, LEASE_DURATION_MS: String(LEASE_MS), POD_NAME: name,
    },
  });
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const l of parts) { try { lines.push(JSON.parse(l) as Record<string, unknown>); } catch { /* the start-up banner */ } }
  });
  child.stderr!.resume();
  return { name, child, lines, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

const leads = (r: Replica): boolean => {
  const changes = r.lines.filter((l) => l.msg === 'leadership.changed');
  return changes.at(-1)?.leader === true;
};

describe('leader election between two tool processes (KubeVirt backend, real API server)', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let dataDir: string;
  const replicas: Replica[] = [];

  before(async () => {
    cp = await sharedControlPlane();
    const r = await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    assert.ok([201, 409].includes(r.status), r.body);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-leader-'));
  });
  after(async () => {
    for (const r of replicas) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    fs.rmSync(dataDir, { recursive: true, force: true });
    await cp.request('DELETE', `/api/v1/namespaces/${NS}`);
  });

  it('runs the duties on exactly one replica and moves them when that replica is killed', async () => {
    replicas.push(startReplica(cp, 'replica-a', dataDir), startReplica(cp, 'replica-b', dataDir));
    await waitFor(() => replicas.some(leads), 30_000, 'a leader');
    await new Promise((r) => setTimeout(r, LEASE_MS)); // a second leader would have appeared by now
    const leaders = replicas.filter(leads);
    assert.equal(leaders.length, 1, 'exactly one leader');
    const [leader] = leaders;
    const follower = replicas.find((r) => r !== leader)!;
    const duties = leader!.lines.find((l) => l.msg === 'leadership.changed' && l.leader === true)?.duties;
    assert.deepEqual(duties, ['sweeper', 'grades', 'supervisor', 'warm']);
    const lease = (await cp.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/lab-orchestrator-leader`)).json<{ spec: { holderIdentity: string } }>();
    assert.equal(lease.spec.holderIdentity, leader!.name);

    const killedAt = Date.now();
    leader!.child.kill('SIGKILL');
    await waitFor(() => leads(follower), 3 * LEASE_MS, 'the follower to take over');
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= 2 * LEASE_MS + 2000, `took over in ${tookMs} ms`);

    follower.child.kill('SIGTERM');
    const code = await Promise.race([follower.exited, new Promise<string>((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000).unref())]);
    assert.equal(code, 0, 'the new leader shuts down cleanly (its duties stop after the lab in hand)');
    const released = (await cp.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/lab-orchestrator-leader`)).json<{ spec: { holderIdentity?: string | null } }>();
    assert.ok(!released.spec.holderIdentity, 'a clean shutdown releases the lease');
  });
});
