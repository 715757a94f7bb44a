import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import type { BackendLabSpec, LabHandle } from '../../src/backends/types.js';
import { BackendFailure } from '../../src/errors.js';
import { ensureCloudImage, ensureGuestImage, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';

/**
 * The QEMU backend on the real debian-12 image: one template boot (saved running state), a
 * two-machine lab restored from it, then a cold boot (the saved state made corrupt first). Boots
 * are minutes under TCG on a busy machine: everything shares these guests.
 */
const lines: string[] = [];
const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(s); } });
const events = (msg: string) => lines.map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown }).filter((e) => e.msg === msg);

const MEM = 1024;
function spec(labId: string, machines: string[], pass: string): BackendLabSpec {
  return {
    labId, labVersion: '1', network: { internetEgress: false },
    machines: machines.map((name) => ({
      name, kind: 'vm' as const, image: 'debian-12', cpus: 1, memoryMiB: MEM, channels: ['vnc' as const, 'console' as const],
      credentials: { username: 'student', password: pass },
    })),
  };
}
const handle = (name: string): LabHandle => ({ instanceId: `inst-${name}`, backend: 'qemu', name, generation: 1 });
const X = { timeoutMs: 20_000, maxOutputBytes: 10_000 };
/** The password check: the hash in /etc/shadow matches the lab's password. */
const pwCheck = (user: string) => `python3 -c 'import crypt,spwd,os; h=spwd.getspnam("${user}").sp_pwdp; print(crypt.crypt(os.environ["PW"], h) == h)' 2>/dev/null`;

describe('QemuBackend on debian-12: saved running state, identity, cold boot', function () {
  this.timeout(1_800_000);
  let dataDir: string;
  let backend: QemuBackend;
  const warm = handle('deb-warm');
  const cold = handle('deb-cold');

  before(() => {
    const images = ensureCloudImage('debian-12');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qd-'));
    backend = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 4, maxMemoryMiB: 4 * MEM, log, bootTimeoutMs: 900_000, autoBuildSavedStates: false });
  });
  after(async () => {
    await backend?.close();
    killQemuUnder(dataDir);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a lab restored from the saved running state gets its own identity: names, addresses, password, token, clock, SSH keys', async () => {
    assert.equal(await backend.prepareSavedState({ image: 'debian-12', memoryMiB: MEM, cpus: 1 }, false), true);
    assert.equal(events('qemu.saved_state_built').length, 1);
    await backend.provision(spec('two', ['alpha', 'beta'], 'Warm-pw-1'), warm, () => undefined);
    assert.equal(events('qemu.machine_restored').length, 2, 'both machines came from the saved state');
    assert.deepEqual(await backend.addresses(warm), { alpha: { ip: '10.10.0.11', host: 'alpha' }, beta: { ip: '10.10.0.12', host: 'beta' } });
    const b = await backend.exec(warm, 'beta', 'hostname; cat /etc/hostname; ip -br addr show eth0; ping -c1 -W5 alpha >/dev/null && echo ping-ok; date +%s', X);
    const [h1, h2, addr, ping, clock] = b.stdout.trim().split('\n');
    assert.deepEqual([h1, h2, ping], ['beta', 'beta', 'ping-ok'], b.stdout + b.stderr);
    assert.match(addr ?? '', /10\.10\.0\.12\/24/);
    assert.ok(Math.abs(Number(clock) - Date.now() / 1000) < 30, `guest clock ${clock} is the host's`);
    const pw = await backend.exec(warm, 'alpha', pwCheck('student'), { ...X, env: { PW: 'Warm-pw-1' } });
    assert.equal(pw.stdout.trim(), 'True', 'the lab password, not the template\'s');
    const keys = await Promise.all(['alpha', 'beta'].map((m) => backend.exec(warm, m, 'for i in $(seq 60); do [ -s /etc/ssh/ssh_host_ed25519_key.pub ] && break; sleep 1; done; cut -d" " -f2 /etc/ssh/ssh_host_ed25519_key.pub; for i in $(seq 60); do systemctl is-active --quiet ssh && break; sleep 1; done; systemctl is-active ssh', { ...X, timeoutMs: 90_000 })));
    assert.notEqual(keys[0]!.stdout.split('\n')[0], keys[1]!.stdout.split('\n')[0], 'SSH host keys are made per machine');
    assert.match(keys[0]!.stdout, /\nactive\n$/);
    const hostile = 'x" ; touch /tmp/inj ; echo "$(touch /tmp/inj)';
    const v = await backend.exec(warm, 'alpha', 'printf "%s" "$LAB_USER_NAME"; test ! -e /tmp/inj', { ...X, env: { LAB_USER_NAME: hostile } });
    assert.deepEqual([v.exitCode, v.stdout], [0, hostile], 'a value passed as environment is data, never code');
    assert.deepEqual(Object.values(await backend.status(warm)).map((s) => s.phase), ['running', 'running']);
  });

  it('a saved state QEMU refuses is set aside (logged) and the lab boots cold with its NoCloud seed', async () => {
    const dir = path.join(dataDir, 'qemu-states');
    const [key] = fs.readdirSync(dir).filter((n) => fs.existsSync(path.join(dir, n, 'meta.json')));
    assert.ok(key);
    const state = path.join(dir, key, 'state.bin');
    const fd = fs.openSync(state, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 0); // same size, garbage header
    fs.closeSync(fd);
    await backend.provision(spec('one', ['gamma'], 'Cold-pw-2'), cold, () => undefined);
    assert.equal(events('qemu.saved_state_discarded').length, 1);
    assert.equal(events('qemu.restore_failed_cold_boot').length, 1);
    const r = await backend.exec(cold, 'gamma', 'hostname; id -un student; ip -br addr show eth0; grep -c gamma /etc/hosts; cat /etc/lab-agent/token | wc -c', X);
    const [host, user, addr] = r.stdout.split('\n');
    assert.deepEqual([host, user], ['gamma', 'student'], r.stdout + r.stderr);
    assert.match(addr ?? '', /10\.10\.0\.11\/24/);
    const pw = await backend.exec(cold, 'gamma', pwCheck('student'), { ...X, env: { PW: 'Cold-pw-2' } });
    assert.equal(pw.stdout.trim(), 'True');
    await backend.destroy(cold);
    await backend.destroy(warm);
    assert.deepEqual(qemuProcessesUnder(dataDir), []);
    // nothing is built on the discarded state any more: destroy removed it
    assert.deepEqual(fs.readdirSync(dir).filter((n) => !fs.existsSync(path.join(dir, n, 'meta.json'))), []);
  });
});

describe('QemuBackend: a guest whose check agent never answers', function () {
  this.timeout(300_000);
  it('fails at the boot timeout with the reason, and leaves nothing running', async () => {
    ensureGuestImage(); // the tools the build needs, and the image it varies
    // lab-tiny built with an agent that never answers: it boots and says it is ready, nothing
    // ever serves the agent's port (a guest cannot race a test to stop its own agent in time)
    const images = fs.mkdtempSync(path.join(os.tmpdir(), 'qn-img-'));
    const mute = path.join(images, 'mute-agent.sh');
    fs.writeFileSync(mute, '#!/bin/sh\n# a check agent that never answers\nwhile :; do sleep 3600; done\n');
    execFileSync('bash', [path.resolve(import.meta.dirname, '../../scripts/build-guest-image.sh'), path.join(images, 'lab-tiny')], {
      env: { ...process.env, LAB_AGENT_SCRIPT: mute }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qn-'));
    const b = new QemuBackend({ dataDir, imageDir: images, qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 2, maxMemoryMiB: 512, log: pino({ level: 'silent' }), bootTimeoutMs: 60_000 });
    const h = handle('mute');
    try {
      const t0 = Date.now();
      await assert.rejects(
        b.provision({ labId: 'mute', labVersion: '1', network: { internetEgress: false }, machines: [{ name: 'box', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'] }] }, h, () => undefined),
        (e: unknown) => e instanceof BackendFailure && /box booted but its check agent never answered within 60 s/.test(e.message),
      );
      assert.ok(Date.now() - t0 >= 59_000, 'not before the boot timeout');
      assert.deepEqual(qemuProcessesUnder(dataDir), [], 'nothing left running');
      assert.deepEqual(Object.values(await b.status(h)).map((s) => s.phase), ['failed']);
      await b.destroy(h);
    } finally {
      await b.close();
      killQemuUnder(dataDir);
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(images, { recursive: true, force: true });
    }
  });
});
