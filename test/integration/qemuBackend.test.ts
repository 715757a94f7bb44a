import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import { PROGRESS_PHASES, type BackendLabSpec, type LabHandle, type Progress } from '../../src/backends/types.js';
import { BadRequest, CapacityExhausted, Conflict, NotFound } from '../../src/errors.js';
import { ensureGuestImage, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';
import { rfbHandshake } from '../support/rfb.js';
import { ConsoleSession } from '../support/console.js';

const log = pino({ level: 'silent' });

function spec(labId: string, machines: string[], internetEgress = false, pass = 'Secr3t-pw'): BackendLabSpec {
  return {
    labId,
    labVersion: '1',
    network: { internetEgress },
    machines: machines.map((name) => ({
      name, kind: 'vm' as const, image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['vnc' as const, 'console' as const],
      credentials: { username: 'student', password: pass },
    })),
  };
}
const handle = (name: string): LabHandle => ({ instanceId: `inst-${name}`, backend: 'qemu', name, generation: 1 });

function assertPhasesInOrder(events: Progress[]): void {
  const idx = events.map((e) => PROGRESS_PHASES.indexOf(e.phase));
  for (let i = 1; i < idx.length; i++) {
    assert.ok((idx[i] ?? 0) >= (idx[i - 1] ?? 0), `phase order: ${events.map((e) => e.phase).join(' → ')}`);
    assert.ok((events[i]?.percent ?? 0) >= (events[i - 1]?.percent ?? 0), 'percent never goes back');
  }
  assert.deepEqual([...new Set(events.map((e) => e.phase))], [...PROGRESS_PHASES]);
  assert.equal(events.at(-1)?.percent, 100);
}

describe('QemuBackend: labs of real lab-tiny VMs', function () {
  this.timeout(180_000);
  let dataDir: string;
  let images: string;
  let backend: QemuBackend;
  const labA = handle('lab-a');
  const labB = handle('lab-b');
  const consoles: ConsoleSession[] = [];

  before(() => {
    images = ensureGuestImage();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qb-'));
    backend = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 4, maxMemoryMiB: 1024, log });
  });
  after(async () => {
    for (const c of consoles) c.stream.destroy();
    await backend.close();
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('provisions a two-machine and a one-machine lab at once, reporting the progress phases in order, and both reach running', async () => {
    const evA: Progress[] = [];
    const evB: Progress[] = [];
    const t0 = Date.now();
    const two = spec('two-machines', ['alpha', 'beta']);
    two.machines[0]!.diskGiB = 3;
    two.machines[1]!.userData = '#!/bin/sh\nmkdir -p /srv && echo served-by-beta > /srv/index.html && httpd -p 8080 -h /srv\n';
    // the lab page polls status (and may open channels) while the machines start
    let polling = true;
    const seen = new Set<string>();
    const poll = (async () => {
      while (polling) {
        for (const st of [await backend.status(labA), await backend.status(labB)]) for (const v of Object.values(st)) seen.add(v.phase);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await Promise.all([
      backend.provision(two, labA, (p) => evA.push(p)),
      backend.provision(spec('one-machine', ['gamma'], true), labB, (p) => evB.push(p)),
    ]).finally(() => { polling = false; });
    await poll;
    assert.ok(seen.has('booting'), [...seen].join());
    console.log(`      3 VMs booted in ${Date.now() - t0} ms`);
    assertPhasesInOrder(evA);
    assertPhasesInOrder(evB);
    assert.deepEqual(await backend.status(labA), { alpha: { phase: 'running' }, beta: { phase: 'running' } });
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'running' } });
    assert.deepEqual((await backend.list()).map((h) => h.name).sort(), ['lab-a', 'lab-b']);
    assert.deepEqual(backend.capacity(), { maxVms: 4, maxMemoryMiB: 1024, usedVms: 3, usedMemoryMiB: 384 });
  });

  it('provisioning again with the same handle creates nothing new', async () => {
    const before = qemuProcessesUnder(dataDir).sort();
    const ev: Progress[] = [];
    await backend.provision(spec('two-machines', ['alpha', 'beta']), labA, (p) => ev.push(p));
    assert.deepEqual(qemuProcessesUnder(dataDir).sort(), before);
    assert.equal(ev.at(-1)?.phase, 'machines-booted');
  });

  it('the vnc channel is a raw RFB stream: version, security types and a framebuffer update with real pixels', async () => {
    const vnc = await backend.openChannel(labA, 'alpha', 'vnc');
    const rfb = await rfbHandshake(vnc);
    vnc.destroy();
    assert.match(rfb.serverVersion, /^RFB 003\.00\d$/);
    assert.ok(rfb.securityTypes.length > 0);
    assert.ok(rfb.nonZeroPixels > 100, `non-black pixels: ${rfb.nonZeroPixels} of ${rfb.totalPixels}`);
    // the guest's own framebuffer console (tty1's login), not the BIOS's 720x400 text screen
    assert.ok(rfb.width >= 800 && rfb.height >= 600, `screen ${rfb.width}x${rfb.height}`);
  });

  it('the console channel is the serial console: log in with the lab credentials and a typed command echoes', async () => {
    const con = new ConsoleSession(await backend.openChannel(labA, 'alpha', 'console'));
    consoles.push(con);
    await con.login('student', 'Secr3t-pw');
    assert.equal((await con.run('echo typed-$((40+2))')).trim(), 'typed-42');
    const kib = Number((await con.run("df -k /home | tail -1 | awk '{print $2}'")).trim());
    assert.ok(kib > 2.5 * 1024 * 1024, `/home grew to the 3 GiB disk the lab asked for (${kib} KiB)`);
    assert.equal((await con.run('id -u; id -g; whoami')).trim(), '1000\n1000\nstudent', 'the lab user is not root (busybox is setuid only for ping)');
  });

  it("a new console connection starts with the guest's recent output: its last prompt, before anything is typed", async () => {
    const marker = `replay-${Date.now()}`;
    await consoles[0]!.run(`echo ${marker}`);
    await new Promise((r) => setTimeout(r, 300)); // the prompt after the command reaches the log
    const stream = await backend.openChannel(labA, 'alpha', 'console');
    const first = await new Promise<Buffer>((r) => stream.once('data', r));
    stream.pause();
    // the new connection is the console now (QEMU serves one client): the same shell goes on
    const con = new ConsoleSession(stream);
    stream.resume();
    consoles[0] = con;
    const text = first.toString('utf8');
    assert.ok(text.includes(marker), `the first bytes hold the last output: ${JSON.stringify(text.slice(-200))}`);
    // busybox's line editor asks for the cursor position (ESC[6n) right after its prompt
    assert.match(text, /student@alpha:~\$ (\x1b\[6n)?$/, 'and end with the shell prompt');
    assert.ok(first.length <= 16 * 1024, `bounded: ${first.length} bytes`);
    assert.equal((await con.run('echo still-$((6*7))')).trim(), 'still-42');
  });

  it('the machines of a lab reach each other by name; a machine of another lab cannot reach them', async () => {
    const con = consoles[0]!;
    assert.match(await con.run('ping -c 1 -W 3 beta'), /1 packets received/);
    assert.equal((await con.run('timeout 5 wget -q -O - http://beta:8080/')).trim(), 'served-by-beta', "beta's user-data script started a web server");
    const other = new ConsoleSession(await backend.openChannel(labB, 'gamma', 'console'));
    consoles.push(other);
    await other.login('student', 'Secr3t-pw');
    // lab-b's gamma has 10.10.0.11 too; lab-a's beta is 10.10.0.12 on lab-a's segment only
    assert.match(await other.run('ping -c 2 -W 1 10.10.0.12'), /0 packets received/);
    assert.match(await other.run('ping -c 1 -W 1 beta 2>&1; echo rc=$?'), /rc=1/);
  });

  it('internet egress only when the lab allows it, and never to the host loopback behind QEMU user networking', async () => {
    const hostIp = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    const server = http.createServer((_req, res) => res.end('outside-world')).listen(0, '0.0.0.0');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const [alpha, gamma] = [consoles[0]!, consoles[1]!];
      assert.doesNotMatch(await alpha.run('ip route'), /default/);
      assert.match(await gamma.run('ip route'), /default via 10\.0\.2\.2/);
      if (hostIp) {
        assert.match(await gamma.run(`timeout 5 wget -q -O - http://${hostIp}:${port}/`), /outside-world/);
        assert.match(await alpha.run(`timeout 3 wget -q -O - http://${hostIp}:${port}/ 2>&1; echo rc=$?`), /rc=1/);
      }
      assert.match(await gamma.run(`timeout 3 wget -q -O - http://10.0.2.2:${port}/ 2>&1; echo rc=$?`), /rc=1/);
    } finally {
      server.close();
    }
  });

  it('exec runs a command out of band: exit code, stdout, stderr, never on the student console', async () => {
    const con = consoles[0]!;
    const mark = con.output.length;
    const r = await backend.exec(labA, 'alpha', 'echo from-exec; echo oops >&2; hostname; exit 3', { timeoutMs: 5000, maxOutputBytes: 4096 });
    assert.deepEqual(r, { exitCode: 3, stdout: 'from-exec\nalpha\n', stderr: 'oops\n', truncated: false, timedOut: false });
    // the cut is under test here, not the machine's speed: a generous time limit
    const big = await backend.exec(labA, 'alpha', "head -c 100000 /dev/zero | tr '\\0' x", { timeoutMs: 60_000, maxOutputBytes: 1000 });
    assert.deepEqual([big.timedOut, big.exitCode, big.stdout.length, big.truncated], [false, 0, 1000, true]);
    const slow = await backend.exec(labA, 'alpha', 'sleep 30', { timeoutMs: 1000, maxOutputBytes: 100 });
    assert.equal(slow.timedOut, true);
    // the timed-out command's whole process group is gone, so nothing holds the agent up
    const next = await backend.exec(labA, 'alpha', 'echo still-there; ps | grep -c "[s]leep 30"', { timeoutMs: 30_000, maxOutputBytes: 100 });
    assert.deepEqual([next.timedOut, next.stdout], [false, 'still-there\n0\n']);
    assert.ok(!con.output.slice(mark).includes('from-exec'));
    const hostile = 'x" ; touch /tmp/inj ; echo "$(touch /tmp/inj)';
    const v = await backend.exec(labA, 'alpha', 'printf "%s" "$LAB_USER_NAME"; test ! -e /tmp/inj', { timeoutMs: 5000, maxOutputBytes: 1000, env: { LAB_USER_NAME: hostile } });
    assert.deepEqual([v.exitCode, v.stdout], [0, hostile], 'a value passed as environment is data, never code');
  });

  it('exec serves twenty requests in a row, each on a fresh connection to the agent: none is lost', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await backend.exec(labA, 'alpha', `echo ${i}`, { timeoutMs: 30_000, maxOutputBytes: 100 });
      assert.deepEqual([r.timedOut, r.stdout], [false, `${i}\n`], `request ${i}`);
    }
  });

  it('pause freezes the machines (the console stops advancing) and resume continues them', async () => {
    const con = consoles[0]!;
    con.send('(i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo tick$i; sleep 0.2; done) &\n');
    await con.expect(/tick3\b/);
    await backend.pause(labA);
    assert.deepEqual(await backend.status(labA), { alpha: { phase: 'paused' }, beta: { phase: 'paused' } });
    await assert.rejects(backend.exec(labA, 'alpha', 'true', { timeoutMs: 1000, maxOutputBytes: 10 }), Conflict);
    await new Promise((r) => setTimeout(r, 300));
    const frozen = con.output.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(con.output.length, frozen, 'no console output while paused');
    await backend.resume(labA);
    await con.expect(/tick\d+\r?\n.*tick\d+/s, 10_000);
    assert.ok(con.output.length > frozen);
    assert.deepEqual(await backend.status(labA), { alpha: { phase: 'running' }, beta: { phase: 'running' } });
    con.send('kill %1\n');
  });

  it('reset puts a machine back to its image: a file written before is gone', async () => {
    const w = await backend.exec(labA, 'beta', 'echo keep > /home/student/notes.txt && sync && cat /home/student/notes.txt', { timeoutMs: 5000, maxOutputBytes: 100 });
    assert.equal(w.stdout, 'keep\n');
    await backend.reset(labA, 'beta');
    assert.deepEqual(await backend.status(labA), { alpha: { phase: 'running' }, beta: { phase: 'running' } });
    const r = await backend.exec(labA, 'beta', 'ls /home/student; test -e /home/student/notes.txt', { timeoutMs: 5000, maxOutputBytes: 100 });
    assert.equal(r.exitCode, 1);
  });

  it('a restarted tool finds its labs again and re-attaches to the running QEMU processes', async () => {
    const again = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 4, maxMemoryMiB: 1024, log });
    const pids = qemuProcessesUnder(dataDir).sort();
    // while the old tool still holds QMP, the new one neither attaches nor restarts the machines
    await assert.rejects(again.status(labB), /QMP socket does not answer/);
    await assert.rejects(again.provision(spec('one-machine', ['gamma'], true), labB, () => undefined), /QMP socket does not answer/);
    assert.deepEqual(qemuProcessesUnder(dataDir).sort(), pids);
    await backend.close(); // as if the old tool had exited: it let go of QMP and the consoles; the VMs keep running
    consoles.length = 0;
    try {
      assert.deepEqual((await again.list()).map((h) => h.name).sort(), ['lab-a', 'lab-b']);
      assert.deepEqual(await again.status(labB), { gamma: { phase: 'running' } });
      const r = await again.exec(labB, 'gamma', 'hostname', { timeoutMs: 5000, maxOutputBytes: 100 });
      assert.equal(r.stdout, 'gamma\n');
      const con = new ConsoleSession(await again.openChannel(labA, 'alpha', 'console'));
      con.send('\n');
      await con.expect(/\$ /); // still logged in from before the restart
      con.stream.destroy();
    } finally {
      await again.close();
    }
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'running' } }); // and the first one attaches again
  });

  it('stop keeps the disks and frees the capacity; start boots the machines again with their files, also after a tool restart', async () => {
    await backend.exec(labB, 'gamma', 'echo kept > /home/student/kept.txt && sync', { timeoutMs: 5000, maxOutputBytes: 100 });
    await backend.stop(labB);
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'stopped' } });
    assert.equal(qemuProcessesUnder(path.join(dataDir, 'qemu', 'lab-b') + '/').length, 0);
    assert.equal(backend.capacity().usedVms, 2);
    await backend.pause(labB); // nothing runs: a no-op
    await assert.rejects(backend.resume(labB), Conflict);
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'stopped' } });
    // the tool restarts while the lab is stopped: a new backend (no memory of it) starts it
    await backend.close();
    consoles.length = 0;
    backend = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 4, maxMemoryMiB: 1024, log });
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'stopped' } });
    await backend.start(labB);
    assert.deepEqual(await backend.status(labB), { gamma: { phase: 'running' } });
    const r = await backend.exec(labB, 'gamma', 'cat /home/student/kept.txt', { timeoutMs: 5000, maxOutputBytes: 100 });
    assert.equal(r.stdout, 'kept\n');
  });

  it('refuses a lab over the capacity limit with "capacity reached" before anything starts, and container machines by name', async () => {
    const before = qemuProcessesUnder(dataDir).length;
    await assert.rejects(backend.provision(spec('too-big', ['a', 'b']), handle('lab-c'), () => undefined), (e: Error) => {
      assert.ok(e instanceof CapacityExhausted);
      assert.match(e.message, /capacity reached/);
      assert.match(e.publicMessage, /Capacity reached/);
      return true;
    });
    assert.equal(qemuProcessesUnder(dataDir).length, before);
    assert.ok(!fs.existsSync(path.join(dataDir, 'qemu', 'lab-c')));
    const withContainer = spec('mixed', ['vm1']);
    withContainer.machines.push({ name: 'db', kind: 'container', image: 'postgres:16', cpus: 1, memoryMiB: 256, channels: ['console'] });
    await assert.rejects(backend.provision(withContainer, handle('lab-d'), () => undefined), (e: Error) => {
      assert.ok(e instanceof BadRequest);
      assert.match(e.message, /lab mixed: machine db is a container/);
      return true;
    });
  });

  it('destroy leaves no QEMU process, socket or overlay; a destroyed lab is gone and destroying again succeeds', async () => {
    await Promise.all([backend.destroy(labA), backend.destroy(labB)]);
    assert.deepEqual(qemuProcessesUnder(dataDir), []);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'qemu')), []);
    assert.deepEqual(await backend.status(labA), {});
    assert.deepEqual(await backend.list(), []);
    await backend.destroy(labA);
    await assert.rejects(backend.openChannel(labA, 'alpha', 'console'), NotFound);
  });
});

describe('QemuBackend: aborts, races and a SIGKILLed tool while provisioning', function () {
  this.timeout(180_000);
  let dataDir: string;
  let images: string;
  const lab = handle('lab-crash');

  before(() => {
    images = ensureGuestImage();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qc-'));
  });
  after(() => {
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('an aborted provision stops waiting at once; destroy then removes what it started', async () => {
    const b = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 8, maxMemoryMiB: 2048, log });
    const abort = new AbortController();
    const h = handle('lab-aborted');
    const started = Date.now();
    await assert.rejects(
      b.provision(spec('aborted', ['solo']), h, (p) => { if (p.phase === 'machines-starting') abort.abort(new Error('user left')); }, abort.signal),
      /user left/,
    );
    assert.ok(Date.now() - started < 8000, 'did not wait for the boot');
    await b.destroy(h);
    assert.deepEqual(qemuProcessesUnder(dataDir), []);
    await b.close();
  });

  it('two labs provisioned at once that only fit one at a time: one runs, the other is refused before it starts anything', async () => {
    const b = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 1, maxMemoryMiB: 2048, log });
    const [h1, h2] = [handle('lab-first'), handle('lab-second')];
    const results = await Promise.allSettled([
      b.provision(spec('first', ['one'], false, '-dash-first-pw'), h1, () => undefined),
      b.provision(spec('second', ['one']), h2, () => undefined),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
    assert.ok(refused.reason instanceof CapacityExhausted);
    assert.equal(qemuProcessesUnder(dataDir).length, 1);
    assert.equal((await b.list()).length, 1);
    const winner = (await b.list())[0]!;
    if (winner.name === 'lab-first') {
      // a password starting with "-" is applied (not taken for an option of mkpasswd)
      const con = new ConsoleSession(await b.openChannel(winner, 'one', 'console'));
      await con.login('student', '-dash-first-pw');
      con.stream.destroy();
    }
    await b.destroy(winner);
    assert.deepEqual(qemuProcessesUnder(dataDir), []);
    await b.close();
  });

  it('a new tool finds the half-provisioned lab, provisioning again converges without duplicate machines, and destroy leaves nothing', async () => {
    // the child stops dead after its first "machines-starting" line (the first QEMU spawned), so the kill
    // lands before the second machine's QEMU however loaded the machine is
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/qemuProvisionChild.ts', dataDir, images, lab.name, 'one,two'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FREEZE_AFTER: 'machines-starting' } });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        // killed right after the first machine's QEMU was spawned: the second was never started
        if (/"phase":"machines-starting"/.test(buf)) { child.kill('SIGKILL'); resolve(); }
      });
      child.once('exit', () => reject(new Error(`child exited before machines-starting: ${buf}`)));
    });
    await exited;
    assert.equal(qemuProcessesUnder(dataDir).length, 1, 'the QEMU started before the crash keeps running (to be adopted)');

    const again = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 8, maxMemoryMiB: 2048, log });
    try {
      assert.deepEqual((await again.list()).map((h) => h.name), [lab.name]);
      const st = await again.status(lab);
      assert.ok(['booting', 'running'].includes(st.one?.phase ?? ''), JSON.stringify(st));
      assert.equal(st.two?.phase, 'pending');
      const ev: Progress[] = [];
      await again.provision(spec('crash', ['one', 'two']), lab, (p) => ev.push(p));
      assert.equal(ev.at(-1)?.phase, 'machines-booted');
      assert.deepEqual(await again.status(lab), { one: { phase: 'running' }, two: { phase: 'running' } });
      const runDir = path.join(dataDir, 'qemu', lab.name);
      assert.equal(qemuProcessesUnder(path.join(runDir, 'm0') + '/').length, 1, 'machine one: one QEMU');
      assert.equal(qemuProcessesUnder(path.join(runDir, 'm1') + '/').length, 1, 'machine two: one QEMU');
      await again.destroy(lab);
      assert.deepEqual(qemuProcessesUnder(dataDir), []);
      assert.deepEqual(await again.list(), []);
    } finally {
      await again.close();
    }
  });
});
