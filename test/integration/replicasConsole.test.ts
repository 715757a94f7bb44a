/**
 * Consoles, the per-user socket cap and the per-user check limit across three tool processes
 * (BACKEND=kubevirt) on one FerretDB behind HAProxy with the repository's deploy/haproxy.cfg.
 * The labs are provisioned by the replicas for real on the test API server; the KubeVirt stand-in
 * runs them as paper guests whose serial line is a loopback console (greets each connection with
 * its number, echoes what is typed): the console bytes travel browser → HAProxy → replica →
 * the VMI's console subresource → guest, the real way, without booting anything. Like KubeVirt,
 * the stand-in serves one console connection per VMI (a newer one cuts the older), so the
 * student's and the teacher's sockets work together only if they share one upstream.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import WebSocket from 'ws';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { installTool } from '../support/kubevirtTool.js';
import { STANDIN_IMAGE_CATALOG } from '../support/imageCatalog.js';
import { sharedMongoUri } from '../support/ferret.js';
import { waitFor } from '../support/tool.js';
import { freePort, leads, startHaproxyAt, startReplica, type Proxy, type Replica } from '../support/replicas.js';
import { SessionTokens } from '../../src/auth/session.js';
import { CLOSE } from '../../src/closeCodes.js';

const NAMES = ['replica-a', 'replica-b', 'replica-c'];
const NS = 'lo-replicas-console';
const LAB = 'replica-console';
const SECRET = randomBytes(24).toString('hex');
const COURSE = `c-${randomBytes(4).toString('hex')}`;
const CAP = 2;
const SEAT_TTL_MS = 9000;
const CHECKS_PER_MINUTE = 3;

const LAB_YAML = `schemaVersion: 1
title: One console, several replicas
machines:
  - name: box
    image: lab-tiny
    consoles: [serial]
    memory: 128Mi
lifetime: { maxMinutes: 60, idleMinutes: 60 }
grading:
  mode: checks
  steps:
    ping:
      checks:
        - command: "true"
          timeoutSeconds: 2
          hint: Nothing to do.
`;

type Who = 'ann' | 'tea' | 'tea2';

/** A console socket as the lab page holds it: what it received, how it closed, which replica the proxy sent it to. */
interface Con {
  ws: WebSocket;
  replica: string | undefined;
  text(): string;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the first output, or with the close if it closes before any. */
  first: Promise<'output' | { code: number; reason: string }>;
}

describe('3 replicas behind HAProxy: a lab\'s console, the socket cap and the check limit (paper guests on the stand-in)', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let dataDir: string;
  let proxy: Proxy;
  let publicUrl = '';
  let db: mongoose.Connection;
  const replicas: Replica[] = [];
  const sessions = new SessionTokens(SECRET);
  const tok: Record<Who, string> = { ann: '', tea: '', tea2: '' };
  const cons: Con[] = [];
  /** Ann's labs, one on each replica (by the proxy's hash), and where each is served. */
  const labs: Array<{ id: string; home: Replica }> = [];

  const replicaNamed = (n: string | null | undefined): Replica | undefined => (/^tool\d+$/.test(n ?? '') ? replicas[Number(n!.slice(4)) - 1] : undefined);
  const call = async (who: Who, method: string, p: string, body?: unknown) => {
    const res = await fetch(`${proxy.url}${p}`, {
      method, headers: { authorization: `Bearer ${tok[who]}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, headers: res.headers, replica: res.headers.get('x-lab-replica'), body: (await res.json().catch(() => null)) as Record<string, unknown> | null };
  };
  const homeOf = async (id: string): Promise<Replica> => {
    const r = await call('ann', 'GET', `/api/instances/${id}`);
    assert.equal(r.status, 200);
    return replicaNamed(r.replica)!;
  };

  /** A new ticket through the proxy, then the socket through the proxy, as the lab page does it. */
  const openConsole = async (who: Who, id: string): Promise<Con> => {
    const t = await call(who, 'POST', `/api/instances/${id}/tickets`, { machine: 'box', channel: 'console' });
    assert.equal(t.status, 200, `a ticket for ${who}: ${JSON.stringify(t.body)}`);
    const { ticket, path: wsPath } = t.body as { ticket: string; path: string };
    const ws = new WebSocket(`${proxy.url.replace(/^http/, 'ws')}${wsPath}`, ['lab.v1', `ticket.${ticket}`], { headers: { origin: publicUrl } });
    let text = '';
    const con: Con = {
      ws, replica: undefined, text: () => text,
      closed: new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() }))),
      first: new Promise((r) => {
        ws.once('message', () => r('output'));
        ws.once('close', (code, reason) => r({ code, reason: reason.toString() }));
      }),
    };
    ws.on('message', (d: Buffer) => { text += d.toString('utf8'); });
    ws.on('upgrade', (res) => { con.replica = String(res.headers['x-lab-replica'] ?? ''); });
    ws.on('error', () => undefined); // a refused or cut socket closes; the close is what is asserted
    cons.push(con);
    return con;
  };
  const opened = async (c: Con, what: string) => {
    const f = await c.first;
    assert.equal(f, 'output', `${what} opens (got ${JSON.stringify(f)})`);
  };
  const close = async (c: Con) => {
    c.ws.close(1000);
    await c.closed;
  };
  const seats = async (user: string) => db.collection('socket_seats').countDocuments({ user, expiresAt: { $gt: new Date() } });
  const until = (c: Con, s: string, what: string) => waitFor(() => c.text().includes(s), 15_000, what);

  /** The replicas' warnings and errors (the JSON logs they wrote), for a failure's report. */
  const dumpLogs = () => {
    for (const r of replicas) {
      for (const l of r.lines.filter((x) => Number(x.level) >= 40).slice(-15)) process.stderr.write(`      [${r.name}] ${JSON.stringify(l).slice(0, 600)}\n`);
    }
  };
  afterEach(function () { if (this.currentTest?.state === 'failed') dumpLogs(); });

  before(async function () {
    this.timeout(300_000);
    try {
      await setUp();
    } catch (err) {
      dumpLogs();
      throw err;
    }
  });
  const setUp = async () => {
    ({ cp, standIn } = await sharedKubeVirt());
    await installTool(cp); // the golden images the labs' disks are cloned from
    const r = await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    assert.ok([201, 409].includes(r.status), r.body);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-replicas-console-'));
    const labDir = path.join(dataDir, 'templates', LAB);
    fs.mkdirSync(path.join(labDir, 'instructions'), { recursive: true });
    fs.writeFileSync(path.join(labDir, 'lab.yaml'), LAB_YAML);
    fs.writeFileSync(path.join(labDir, 'instructions', '01.md'), '# One console\n\n## Ping {#ping}\n\nNothing to do.\n');
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    for (const name of NAMES) {
      replicas.push(startReplica(name, {
        LAB_MODE: 'demo', SECRET_KEY: SECRET, PUBLIC_URL: publicUrl, DATA_DIR: path.join(dataDir, name), MONGODB_URI: sharedMongoUri(),
        DEV_PLATFORM: 'false', DEV_PLATFORM_REGISTER: 'false', TEMPLATES_DIR: path.join(dataDir, 'templates'),
        BACKEND: 'kubevirt', KUBECONFIG: cp.kubeconfigPath, KUBEVIRT_SUBRESOURCE_URL: standIn.baseUrl, KUBEVIRT_TOOL_NAMESPACE: NS,
        KUBEVIRT_BOOT_TIMEOUT_MS: '120000', IMAGE_CATALOG: STANDIN_IMAGE_CATALOG, LEASE_DURATION_MS: '4000',
        WS_MAX_PER_USER: String(CAP), WS_SEAT_TTL_MS: String(SEAT_TTL_MS), CHECK_RATE_PER_MINUTE: String(CHECKS_PER_MINUTE),
      }));
    }
    await waitFor(() => replicas.every((x) => x.url()), 60_000, 'every replica to listen');
    await waitFor(() => replicas.some(leads), 30_000, 'a leader');
    proxy = await startHaproxyAt(port, replicas.map((x) => x.url()!));
    db = await mongoose.createConnection(sharedMongoUri(), { dbName: 'lab_orchestrator' }).asPromise();
    const def = await db.collection('labdefinitions').find({ labId: LAB }).sort({ seq: -1 }).limit(1).next();
    assert.ok(def, 'the replicas imported the lab');
    tok.ann = await sessions.issue({ userId: 'ann', role: 'learner', contextId: COURSE, name: 'Ann' });
    tok.tea = await sessions.issue({ userId: 'tea', role: 'instructor', contextId: COURSE, name: 'Tea' });
    tok.tea2 = await sessions.issue({ userId: 'tea2', role: 'instructor', contextId: COURSE, name: 'Tea Two' });

    // Ann's labs until each replica serves one
    for (let i = 0; labs.length < replicas.length; i++) {
      assert.ok(i < 60, 'the proxy spreads labs over the replicas');
      const id = randomBytes(8).toString('hex');
      await db.collection('labinstances').insertOne({
        _id: id, activityId: `act-${id}`, userId: 'ann', contextId: COURSE, labId: LAB, labVersion: String(def.version), backend: null, handle: null,
        generation: 0, state: 'requested', failureReason: null, progress: null, machines: {}, steps: {}, startedAt: null, expiresAt: null,
        lastActivityAt: null, lifetime: null, warnedAt: null, timeLimitMinutes: null, createdAt: new Date(), updatedAt: new Date(),
      } as never);
      const home = await homeOf(id);
      if (labs.some((l) => l.home === home)) await db.collection('labinstances').deleteOne({ _id: id as never });
      else labs.push({ id, home });
    }
    standIn.withoutGuests(labs.map((l) => `lab-${l.id}-g1`));
    for (const l of labs) {
      const s = await call('ann', 'POST', `/api/instances/${l.id}/start`);
      assert.ok(s.status < 300, `start ${l.id}: ${s.status} ${JSON.stringify(s.body)}`);
      assert.equal(replicaNamed(s.replica), l.home, 'the lab\'s replica starts it');
    }
    for (const l of labs) {
      await waitFor(async () => (await call('ann', 'GET', `/api/instances/${l.id}`)).body?.state === 'running', 120_000, `lab ${l.id} running`);
    }
  };

  after(async function () {
    this.timeout(120_000);
    for (const c of cons) c.ws.terminate();
    proxy?.child.kill('SIGTERM');
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await Promise.all([...replicas.map((r) => r.exited), proxy?.exited]);
    for (const l of labs) {
      const ns = `lab-${l.id}-g1`;
      for (const plural of ['virtualmachines', 'virtualmachineinstances']) await cp.request('DELETE', `/apis/kubevirt.io/v1/namespaces/${ns}/${plural}`);
      await cp.request('DELETE', `/api/v1/namespaces/${ns}`);
    }
    for (const l of labs) {
      await waitFor(async () => (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/lab-${l.id}-g1/virtualmachineinstances`)).json<{ items?: unknown[] }>().items?.length === 0, 60_000, 'the labs\' VMIs gone');
    }
    await db?.collection('labinstances').deleteMany({ contextId: COURSE });
    await db?.collection('socket_seats').deleteMany({ user: { $in: ['ann', 'tea', 'tea2'] } });
    await db?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    await cp?.request('DELETE', `/api/v1/namespaces/${NS}`);
  });

  it('a student and a watching teacher reach the lab\'s replica through the proxy and share its one console connection', async () => {
    const { id, home } = labs[0]!;
    const ann = await openConsole('ann', id);
    await opened(ann, 'the student\'s console');
    assert.equal(replicaNamed(ann.replica), home, 'the student\'s socket reached the lab\'s replica');
    await until(ann, 'connection 1\r\n$ ', 'the greeting');
    const tea = await openConsole('tea', id);
    await opened(tea, 'the teacher\'s console');
    assert.equal(replicaNamed(tea.replica), home, 'the teacher\'s socket reached the same replica');
    const word = `hello-${randomBytes(3).toString('hex')}`;
    ann.ws.send(Buffer.from(`${word}\r`));
    await until(ann, `${word}\r\n$ `, 'the student to see what she typed');
    await until(tea, `${word}\r\n$ `, 'the teacher to see what the student typed');
    // the teacher watches: what he types reaches nothing
    tea.ws.send(Buffer.from('teacher-typed\r'));
    ann.ws.send(Buffer.from('after\r'));
    await until(tea, 'after\r\n$ ', 'the teacher to see the next line');
    assert.equal(tea.text(), ann.text(), 'both received the same bytes (the teacher the history first)');
    assert.ok(!ann.text().includes('teacher-typed'), 'nothing the teacher typed reached the machine');
    assert.ok(!ann.text().includes('connection 2'), 'one connection to the machine\'s console');
    assert.ok(home.lines.some((l) => l.msg === 'ws.opened' && l.shared === true), 'the lab\'s replica logged the shared console');
  });

  it('holds the per-user socket cap across replicas and gives a seat back when a socket closes', async () => {
    // Ann has her console on lab 0 open (the first test); labs 1 and 2 are on the two other replicas
    const [, l1, l2] = labs as [unknown, { id: string; home: Replica }, { id: string; home: Replica }];
    assert.equal(await seats('ann'), 1);
    const b = await openConsole('ann', l1.id);
    await opened(b, 'her second console');
    assert.equal(replicaNamed(b.replica), l1.home);
    const c = await openConsole('ann', l2.id);
    assert.deepEqual(await c.first, { code: CLOSE.tooMany.code, reason: CLOSE.tooMany.reason }, 'a third socket, on a third replica, is refused');
    assert.equal(replicaNamed(c.replica), l2.home);
    assert.equal(await seats('ann'), CAP, 'a refused socket holds no seat');
    await close(b);
    await waitFor(async () => (await seats('ann')) === CAP - 1, 5000, 'the closed socket\'s seat to be given back');
    const c2 = await openConsole('ann', l2.id);
    await opened(c2, 'the console on the third replica, once a seat is free');
    await until(c2, 'connection 1\r\n$ ', 'its greeting');
  });

  it('holds the per-user check limit across replicas: 429 with Retry-After past it', async () => {
    const statuses: number[] = [];
    for (const l of labs) {
      const r = await call('ann', 'POST', `/api/instances/${l.id}/steps/ping/check`);
      assert.equal(replicaNamed(r.replica), l.home);
      statuses.push(r.status);
    }
    assert.deepEqual(statuses, [200, 200, 200], 'one check on each replica passes');
    for (const l of labs) {
      const r = await call('ann', 'POST', `/api/instances/${l.id}/steps/ping/check`);
      assert.equal(r.status, 429, `a fourth check, on ${l.home.name}, is refused`);
      const wait = Number(r.headers.get('retry-after'));
      assert.ok(wait >= 1 && wait <= 60, `Retry-After ${r.headers.get('retry-after')}`);
      assert.match(String(r.body?.error ?? JSON.stringify(r.body)), /at most 3 per 60 s/);
    }
  });

  it('when the lab\'s replica is killed, its sockets reconnect with new tickets to the new owner and the console works again; the dead replica\'s seats expire', async () => {
    const { id, home } = labs[0]!;
    const [, l1, l2] = labs as [unknown, { id: string; home: Replica }, { id: string; home: Replica }];
    const old = cons.filter((c) => c.replica && replicaNamed(c.replica) === home && c.ws.readyState === WebSocket.OPEN);
    assert.equal(old.length, 2, 'the student\'s and the teacher\'s consoles are open on the lab\'s replica');
    assert.equal(await seats('ann'), CAP, 'the student is at the cap (labs 0 and 2)');
    // a second teacher watches lab 0 and lab 1: at the cap too
    const w0 = await openConsole('tea2', id);
    const w1 = await openConsole('tea2', l1.id);
    await opened(w0, 'the second teacher\'s console on lab 0');
    await opened(w1, 'the second teacher\'s console on lab 1');

    home.child.kill('SIGKILL');
    await home.exited;
    const killedAt = Date.now();
    for (const c of [...old, w0]) await c.closed;

    // the student and the first teacher reconnect with new tickets: to one survivor, with one new console connection
    const ann = await openConsole('ann', id);
    const tea = await openConsole('tea', id);
    await opened(ann, 'the student\'s console again (her seat on the dead replica is taken over)');
    await opened(tea, 'the teacher\'s console again');
    const now = replicaNamed(ann.replica);
    assert.ok(now && now !== home, `the lab moved to a living replica (${ann.replica})`);
    assert.equal(replicaNamed(tea.replica), now, 'both sockets reached the same one');
    await until(ann, 'connection 2\r\n$ ', 'the new connection\'s greeting');
    const word = `again-${randomBytes(3).toString('hex')}`;
    ann.ws.send(Buffer.from(`${word}\r`));
    await until(tea, `${word}\r\n$ `, 'the teacher to see the student type again');
    assert.equal(tea.text(), ann.text(), 'the same bytes again');
    assert.equal(await seats('ann'), CAP, 'the student holds her two seats, not three');

    // the second teacher's socket on lab 0 died with its replica and was not reopened: its seat counts until it expires
    const early = await openConsole('tea2', l2.id);
    const refused = await early.first;
    const refusedAfter = Date.now() - killedAt;
    assert.deepEqual(refused, { code: CLOSE.tooMany.code, reason: CLOSE.tooMany.reason }, `refused ${refusedAfter} ms after the kill: the dead replica's seat still counts`);
    // the page's "Reconnect", pressed once a second (each press takes a ticket: at most 60 a minute)
    let freed: Con | undefined;
    while (!freed && Date.now() - killedAt < SEAT_TTL_MS + 5000) {
      await new Promise((r) => setTimeout(r, 1000));
      const c = await openConsole('tea2', l2.id);
      if ((await c.first) === 'output') freed = c;
    }
    assert.ok(freed, 'the dead replica\'s seat expired');
    const expiredAfter = Date.now() - killedAt;
    assert.ok(expiredAfter <= SEAT_TTL_MS + 3000, `the seat expired ${expiredAfter} ms after the kill (WS_SEAT_TTL_MS ${SEAT_TTL_MS})`);
    await until(freed!, '$ ', 'the second teacher\'s console on lab 2');

    // the proxy has marked the dead replica down by now: the lab stays where its sockets went
    await waitFor(() => /tool\d+ is DOWN/.test(proxy.log()), 15_000, 'the proxy to mark the replica down');
    assert.equal(await homeOf(id), now, 'the lab is served where its sockets reconnected');
    assert.equal(ann.ws.readyState, WebSocket.OPEN, 'the reconnected console stays open');
    process.stderr.write(`      [replicas] reconnected on ${now!.name}; a dead replica's seat refused at ${refusedAfter} ms, expired by ${expiredAfter} ms (WS_SEAT_TTL_MS ${SEAT_TTL_MS})\n`);
  });
});
