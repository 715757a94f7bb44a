import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { LocalImage } from '../../src/backends/qemu/image.js';
import { SavedStates, type TemplateSpec } from '../../src/backends/qemu/savedStates.js';

describe('QEMU saved running states: which one a machine starts from, and when they go', () => {
  let root: string;
  let states: SavedStates;
  const image = (dir: string): LocalImage => ({ name: 'debian-12', dir, kind: 'cloud', disk: `${dir}/disk.qcow2`, kernel: `${dir}/vmlinuz`, initrd: `${dir}/initrd.img`, cmdline: '' });
  const spec = (dir = '/img/debian-12-aaa', memoryMiB = 1024): TemplateSpec => ({ image: image(dir), memoryMiB, cpus: 1, egress: false, accel: 'tcg', qemuVersion: 'QEMU 7.2' });
  /** A finished build as SavedStates.build leaves it. */
  function built(t: TemplateSpec, at: number, bytes = 1000): string {
    const id = `${states.key(t)}.${at}`;
    const dir = path.join(root, id);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'frozen.qcow2'), 'disk');
    fs.writeFileSync(path.join(dir, 'state.bin'), Buffer.alloc(bytes));
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ key: states.key(t), image: t.image.dir, token: `tok-${at}`, stateBytes: bytes }));
    return id;
  }

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'qst-'));
    states = new SavedStates({ root, qemuBin: 'qemu-system-x86_64', log: pino({ level: 'silent' }), bootTimeoutMs: 1000 });
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('keys states by image version and machine size, and starts from the newest complete build', () => {
    assert.notEqual(states.key(spec()), states.key(spec('/img/debian-12-bbb')), 'a rebuilt image gets a new state');
    assert.notEqual(states.key(spec()), states.key(spec(undefined, 2048)));
    assert.equal(states.find(spec()), undefined);
    built(spec(), 100);
    const newest = built(spec(), 200);
    assert.equal(states.find(spec())?.key, newest);
    assert.equal(states.find(spec())?.token, 'tok-200');
  });

  it('sets aside a build whose memory state is not the size it was saved with, keeping its frozen disk', () => {
    const id = built(spec(), 100);
    fs.truncateSync(path.join(root, id, 'state.bin'), 10);
    assert.equal(states.find(spec()), undefined);
    assert.equal(fs.existsSync(path.join(root, id, 'state.bin')), false);
    assert.equal(fs.existsSync(path.join(root, id, 'frozen.qcow2')), true, 'labs built on it keep their base');
  });

  it('removes superseded, set-aside, idle and other-image builds that no lab is built on, and keeps the rest', () => {
    const old = built(spec(), 100);
    const inUseOld = built(spec(), 150);
    const current = built(spec(), 200);
    const otherImage = built(spec('/img/debian-12-old'), 100);
    const aside = built(spec(undefined, 2048), 100);
    states.discard(aside, 'test');
    states.gc(new Set([inUseOld]), 7 * 24 * 3600_000, new Set(['/img/debian-12-aaa']));
    assert.deepEqual(fs.readdirSync(root).sort(), [inUseOld, current].sort());
    assert.ok(!fs.existsSync(path.join(root, old)) && !fs.existsSync(path.join(root, otherImage)));
    const past = new Date(Date.now() - 8 * 24 * 3600_000);
    fs.utimesSync(path.join(root, current, 'meta.json'), past, past);
    states.gc(new Set(), 7 * 24 * 3600_000, new Set(['/img/debian-12-aaa']));
    assert.deepEqual(fs.readdirSync(root), [], 'unused for a week, and nothing built on it any more');
  });
});
