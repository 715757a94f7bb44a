/**
 * Two and three tool processes (BACKEND=kubevirt against the shared test control plane, for the Lease) on one
 * FerretDB behind a real HAProxy running the repository's deploy/haproxy.cfg: every request of a
 * lab reaches one replica; a student's and a teacher's pages on different replicas see each
 * other's live events, and the Lease holder's; killing the leader leaves the other replica serving
 * every lab through the proxy, and it takes the Lease. No machine boots: the labs' records are
 * written here, and the events come from step ticks and the leader's lifetime and reconcile pass.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import { sharedControlPlane, type ControlPlane } from '../support/k8s/controlPlane.js';
import { sharedMongoUri } from '../support/ferret.js';
import { waitFor } from '../support/tool.js';
import { eventStream, leads, startHaproxy, startReplica, type Proxy, type Replica } from '../support/replicas.js';
import { SessionTokens } from '../../src/auth/session.js';

const NAMES = ['replica-a', 'replica-b', 'replica-c'];
const LEASE_MS = 4000;
const SECRET = randomBytes(24).toString('hex');
const COURSE = `c-${randomBytes(4).toString('hex')}`;

for (const count of [2, 3]) describe(`${count} replicas behind HAProxy (deploy/haproxy.cfg, one FerretDB, the Lease on the API server)`, function () {
  this.timeout(120_000);
  // each run its own tool namespace, so one run's Lease is not the next one's
  const NS = `lo-replicas-${count}`;
  const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/lab-orchestrator-leader`;
  let cp: ControlPlane;
  let dataDir: string;
  let proxy: Proxy;
  let db: mongoose.Connection;
  const replicas: Replica[] = [];
  const sessions = new SessionTokens(SECRET);
  const tok: Record<'student' | 'teacher', string> = { student: '', teacher: '' };
  let labVersion = '';
  const streams: Array<{ close(): void }> = [];

  const call = async (base: string, who: 'student' | 'teacher', method: string, p: string, body?: unknown) => {
    const res = await fetch(`${base}${p}`, {
      method, headers: { authorization: `Bearer ${tok[who]}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, replica: res.headers.get('x-lab-replica'), body: (await res.json().catch(() => null)) as Record<string, unknown> | null };
  };
  /** The replica behind a proxy server name (tool1, tool2, … in the proxy's configuration) or a Lease holder's name. */
  const replicaNamed = (n: string | null) => (/^tool\d+$/.test(n ?? '') ? replicas[Number(n!.slice(4)) - 1] : replicas.find((r) => r.name === n));
  const newInstance = async (fields: Record<string, unknown>) => {
    const _id = randomBytes(10).toString('hex').slice(0, 16);
    await db.collection('labinstances').insertOne({
      _id, activityId: `act-${_id}`, userId: 'stu', contextId: COURSE, labId: 'linux-basics', labVersion, backend: null, handle: null, generation: 0,
      state: 'requested', failureReason: null, progress: null, machines: {}, steps: {}, startedAt: null, expiresAt: null, lastActivityAt: null,
      lifetime: null, warnedAt: null, timeLimitMinutes: null, createdAt: new Date(), updatedAt: new Date(), ...fields,
    } as never);
    return _id;
  };
  const sse = (base: string, who: 'student' | 'teacher', id: string) => {
    const s = eventStream(`${base}/api/instances/${id}/events`, tok[who]);
    streams.push(s);
    return s;
  };

  before(async () => {
    cp = await sharedControlPlane();
    const r = await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    assert.ok([201, 409].includes(r.status), r.body);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-replicas-'));
    for (const name of NAMES.slice(0, count)) {
      replicas.push(startReplica(name, {
        LAB_MODE: 'demo', SECRET_KEY: SECRET, DATA_DIR: path.join(dataDir, name), MONGODB_URI: sharedMongoUri(), DEV_PLATFORM: 'false', DEV_PLATFORM_REGISTER: 'false',
        BACKEND: 'kubevirt', KUBECONFIG: cp.kubeconfigPath, KUBEVIRT_TOOL_NAMESPACE: NS, LEASE_DURATION_MS: String(LEASE_MS),
        LAB_EVENT_POLL_MS: '200', RECONCILE_INTERVAL_MS: '1000',
      }));
    }
    await waitFor(() => replicas.every((x) => x.url()), 60_000, 'every replica to listen');
    await waitFor(() => replicas.some(leads), 30_000, 'a leader');
    proxy = await startHaproxy(...replicas.map((x) => x.url()!));
    db = await mongoose.createConnection(sharedMongoUri(), { dbName: 'lab_orchestrator' }).asPromise();
    const def = await db.collection('labdefinitions').find({ labId: 'linux-basics' }).sort({ seq: -1 }).limit(1).next();
    assert.ok(def, 'the replicas imported the templates');
    labVersion = String(def.version);
    tok.student = await sessions.issue({ userId: 'stu', role: 'learner', contextId: COURSE, name: 'Stu' });
    tok.teacher = await sessions.issue({ userId: 'tea', role: 'instructor', contextId: COURSE, name: 'Tea' });
  });
  after(async () => {
    for (const s of streams) s.close();
    proxy?.child.kill('SIGTERM');
    for (const r of replicas) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await Promise.all([...replicas.map((r) => r.exited), proxy?.exited]);
    await db?.collection('labinstances').deleteMany({ contextId: COURSE });
    await db?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    await cp.request('DELETE', `/api/v1/namespaces/${NS}`);
  });

  it('sends every request of a lab to one replica; a student and a teacher on different replicas see each other\'s step ticks, once', async () => {
    const id = await newInstance({});
    const seen = new Set<string | null>();
    for (let i = 0; i < 4; i++) {
      const r = await call(proxy.url, 'student', 'GET', `/api/instances/${id}`);
      assert.equal(r.status, 200);
      seen.add(r.replica);
    }
    assert.equal(seen.size, 1, `one replica answers the lab (${[...seen].join(', ')})`);
    const home = replicaNamed([...seen][0]!)!;
    const other = replicas.find((r) => r !== home)!;
    const view = (await call(proxy.url, 'student', 'GET', `/api/instances/${id}`)).body as { instructions?: { steps?: Array<{ id: string }> } } | null;
    const steps = view?.instructions?.steps ?? [];
    assert.ok(steps.length >= 2, 'the lab has steps');
    const [s1, s2] = [steps[0]!.id, steps[1]!.id];

    const student = sse(proxy.url, 'student', id); // through the proxy: on the lab's replica
    const teacher = sse(other.url()!, 'teacher', id); // a page that reached the other replica
    await waitFor(() => student.text().includes('"hello"') && teacher.text().includes('"hello"'), 10_000, 'both streams open');

    const t1 = await call(proxy.url, 'student', 'POST', `/api/instances/${id}/steps/${s1}`, { done: true });
    assert.equal(t1.status, 200);
    assert.equal(replicaNamed(t1.replica), home);
    await waitFor(() => teacher.text().includes(`"${s1}":`), 10_000, 'the teacher on the other replica to see the tick');
    const t2 = await call(other.url()!, 'student', 'POST', `/api/instances/${id}/steps/${s2}`, { done: true });
    assert.equal(t2.status, 200);
    await waitFor(() => student.text().includes(`"${s2}":`), 10_000, 'the student to see a tick made on the other replica');
    await new Promise((r) => setTimeout(r, 1000)); // five more reads of overlapping windows
    // the first tick's event names only s1; the second's names both
    const events = (text: string) => text.split('\n').filter((l) => l.startsWith('data:') && l.includes('"type":"steps"'));
    for (const [who, s] of [['teacher', teacher], ['student', student]] as const) {
      const ev = events(s.text());
      assert.equal(ev.filter((l) => !l.includes(`"${s2}":`)).length, 1, `the ${who} got the first tick once`);
      assert.equal(ev.filter((l) => l.includes(`"${s2}":`)).length, 1, `the ${who} got the second tick once`);
    }
  });

  it('the Lease holder\'s expiry warning and its finding that the machines are gone reach pages on both replicas', async () => {
    const id = await newInstance({});
    const home = replicaNamed((await call(proxy.url, 'student', 'GET', `/api/instances/${id}`)).replica)!;
    const other = replicas.find((r) => r !== home)!;
    const student = sse(proxy.url, 'student', id);
    const teacher = sse(other.url()!, 'teacher', id);
    await waitFor(() => student.text().includes('"hello"') && teacher.text().includes('"hello"'), 10_000, 'both streams open');
    const now = Date.now();
    await db.collection('labinstances').updateOne({ _id: id as never }, { $set: {
      state: 'running', startedAt: new Date(now), expiresAt: new Date(now + 10 * 60_000),
      lifetime: { maxMinutes: 90, warnBeforeMinutes: 15, idleMinutes: 0, pausable: false, extendable: false },
      handle: { instanceId: id, backend: 'kubevirt', name: `lab-${id}-g1`, generation: 1 }, generation: 1, backend: 'kubevirt',
    } });
    for (const s of [student, teacher]) {
      await waitFor(() => s.text().includes('"expiry-warning"') && s.text().includes('"state":"failed"'), 15_000, 'the leader\'s events on both pages');
    }
  });

  it('keeps serving every lab through the proxy when the leader is killed: only its labs move, and another replica takes the Lease', async () => {
    const holder = (await cp.request('GET', LEASE_PATH)).json<{ spec: { holderIdentity: string } }>().spec.holderIdentity;
    const leader = replicaNamed(holder)!;
    assert.ok(leader && leads(leader), `the Lease holder ${holder} leads`);
    const survivors = replicas.filter((r) => r !== leader);
    // labs until the leader and the others each answer at least two
    const home = new Map<string, Replica>();
    while ([...home.values()].filter((r) => r === leader).length < 2 || [...home.values()].filter((r) => r !== leader).length < 2) {
      assert.ok(home.size < 60, 'the proxy spreads labs over the replicas');
      const id = await newInstance({});
      home.set(id, replicaNamed((await call(proxy.url, 'student', 'GET', `/api/instances/${id}`)).replica)!);
    }
    const moving = [...home].find(([, r]) => r === leader)![0];
    const before = sse(proxy.url, 'student', moving);
    await waitFor(() => before.text().includes('"hello"'), 10_000, 'the stream on the leader to open');
    leader.child.kill('SIGKILL');
    await leader.exited;
    const killedAt = Date.now();
    await before.ended; // the page's stream ends with its replica
    // the proxy retries a request that reached the dead replica on another one
    for (const [id, was] of home) {
      const r = await call(proxy.url, 'student', 'GET', `/api/instances/${id}`);
      assert.equal(r.status, 200, `lab ${id} is served`);
      const now = replicaNamed(r.replica)!;
      assert.ok(survivors.includes(now), `lab ${id} is served by a living replica`);
      if (was !== leader) assert.equal(now, was, `lab ${id} stays on ${was.name}`);
    }
    const student = sse(proxy.url, 'student', moving); // the page reconnects
    await waitFor(() => student.text().includes('"hello"'), 10_000, 'the stream to reopen');
    await waitFor(() => survivors.some(leads), 3 * LEASE_MS, 'a survivor to take the Lease');
    assert.ok(Date.now() - killedAt <= 2 * LEASE_MS + 2000, 'taken over within two lease durations');
    const now = (await cp.request('GET', LEASE_PATH)).json<{ spec: { holderIdentity: string } }>().spec.holderIdentity;
    assert.ok(survivors.some((r) => r.name === now && leads(r)), `the Lease (${now}) is held by the survivor that leads`);
    assert.equal(survivors.filter(leads).length, 1, 'one replica leads');
  });
});
