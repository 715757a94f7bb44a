/**
 * The debian-12 guest image as built here (scripts/build-image.sh): cached by recipe hash, a disk
 * that boots by its own boot loader (as KubeVirt boots a containerDisk) with a NoCloud seed from the
 * shared generator, the promised tools, and the containerDisk archive holding the same bytes.
 * Builds the image only if this host does not have it yet (minutes, once); boots it once.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { noCloudSeed, READY_LINE } from '../../src/backends/guest/cloudInit.js';
import { writeSeedDisk } from '../../src/backends/qemu/seedDisk.js';
import { defaultToolsDir } from '../../src/config.js';
import { ImageCatalog } from '../../src/images/ImageCatalog.js';
import { resolveLocalImage } from '../../src/images/localImage.js';
import { ConsoleSession } from '../support/console.js';

const run = promisify(execFile);
const IMAGES = path.join(defaultToolsDir(), 'images');

/** scripts/build-image.sh: the image folder it prints and whether it said it was building. */
async function buildImage(...args: string[]): Promise<{ dir: string; built: boolean; stderr: string }> {
  const r = await run('bash', ['scripts/build-image.sh', ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 40 * 60_000 });
  return { dir: r.stdout.trim().split('\n').pop()!, built: /building guest image/.test(r.stderr), stderr: r.stderr };
}

describe('debian-12 guest image (built from Debian packages with mmdebstrap)', function () {
  this.timeout(45 * 60_000);
  let dir = '';
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'debian-image-'));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  before(async () => {
    dir = (await buildImage('debian-12')).dir;
  });

  it('is cached by its recipe hash: asking again builds nothing and changes nothing', async () => {
    const mtime = fs.statSync(path.join(dir, 'disk.qcow2')).mtimeMs;
    const again = await buildImage('debian-12');
    assert.equal(again.dir, dir);
    assert.equal(again.built, false, again.stderr);
    assert.equal(fs.statSync(path.join(dir, 'disk.qcow2')).mtimeMs, mtime);
    assert.equal(fs.realpathSync(path.join(IMAGES, 'debian-12')), fs.realpathSync(dir), 'images/debian-12 points at this version');
    assert.match(path.basename(dir), /^debian-12-[0-9a-f]{12}$/);
  });

  it('records what it is in image.json and resolves through the catalog to those files', async () => {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'image.json'), 'utf8')) as { name: string; version: string; cmdline: string; packages: string[] };
    assert.equal(m.name, 'debian-12');
    assert.equal(m.version, path.basename(dir).slice('debian-12-'.length));
    assert.match(m.cmdline, /root=LABEL=lab-root .*console=ttyS0/);
    const names = new Set(m.packages.map((p) => p.split('=')[0]));
    for (const p of ['systemd-sysv', 'cloud-init', 'openssh-server', 'iproute2', 'iputils-ping', 'netcat-openbsd', 'curl', 'python3', 'nano', 'linux-image-amd64']) assert.ok(names.has(p), `has ${p}`);
    const img = resolveLocalImage(ImageCatalog.builtIn(), IMAGES, 'debian-12');
    assert.equal(img.dir, fs.realpathSync(dir));
    assert.equal(img.diskRole, 'root');
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', img.disk])).stdout) as { format: string; 'virtual-size': number };
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], 4 * 1024 ** 3);
  });

  describe('booted by its own boot loader with a NoCloud seed from the shared generator', () => {
    let qemu: ChildProcess | undefined;
    let con: ConsoleSession;
    const password = crypto.randomBytes(9).toString('base64url');
    before(async function () {
      this.timeout(10 * 60_000);
      const img = resolveLocalImage(ImageCatalog.builtIn(), IMAGES, 'debian-12');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', img.disk, path.join(work, 'disk.qcow2')]);
      const seed = noCloudSeed({
        instanceId: 'img-test-1', hostname: 'alpha', user: { name: 'student', password },
        agent: { token: crypto.randomBytes(16).toString('hex'), transport: 'virtio-serial' },
        hosts: [{ name: 'alpha', ip: '10.10.0.11' }, { name: 'beta', ip: '10.10.0.12' }],
        network: { lab: { mac: '52:54:00:12:34:11', address: '10.10.0.11/24' } },
      });
      await writeSeedDisk(seed, path.join(work, 'seed.iso'));
      const sock = path.join(work, 'serial.sock');
      // no -kernel: SeaBIOS → MBR → syslinux → kernel, the way KubeVirt boots the containerDisk
      qemu = spawn('qemu-system-x86_64', [
        '-accel', 'tcg', '-m', '1024', '-smp', '1', '-display', 'none', '-monitor', 'none', '-nodefaults', '-vga', 'std',
        '-drive', `file=${path.join(work, 'disk.qcow2')},if=virtio,format=qcow2`,
        '-drive', `file=${path.join(work, 'seed.iso')},if=virtio,format=raw,readonly=on`,
        '-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:11',
        '-serial', `unix:${sock},server=on,wait=off`,
        // the check agent's port, as the QEMU backend gives it (nothing connects to it here)
        '-device', 'virtio-serial-pci', '-chardev', `socket,id=agent,path=${path.join(work, 'agent.sock')},server=on,wait=off`,
        '-device', 'virtserialport,chardev=agent,name=lab.agent',
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      qemu.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
      const started = Date.now();
      for (;;) {
        if (fs.existsSync(sock)) break;
        if (qemu.exitCode !== null || Date.now() - started > 30_000) throw new Error(`QEMU did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      con = new ConsoleSession(net.connect(sock));
      await con.expect(new RegExp(`${READY_LINE} alpha`), 8 * 60_000);
      process.stderr.write(`      [debian-12] seed applied and agent started ${Math.round((Date.now() - started) / 1000)} s after power-on (TCG, BIOS boot)\n`);
      await con.login('student', password, 120_000);
    });
    after(() => {
      qemu?.kill('SIGKILL');
    });

    it('logs the lab user in on the serial console, with the seed\'s hostname and address', async () => {
      // every stage of cloud-init applied the seed without an error (network config, users, modules)
      assert.match(await con.run('cloud-init status --wait --long', 120_000), /^status: done$/m);
      assert.equal((await con.run('hostname')).trim(), 'alpha');
      assert.match(await con.run('ip -4 -o addr show eth0'), /inet 10\.10\.0\.11\/24/);
      assert.match(await con.run('getent hosts beta'), /^10\.10\.0\.12\s+beta/m);
      assert.match(await con.run('cat /run/cloud-init/result.json'), /"DataSourceNoCloud/);
    });

    it('has the tools a Linux course uses: systemd, ip, ss, ping, nc, curl, python3, an editor, sshd', async () => {
      const state = await con.run('systemctl is-system-running --wait; systemctl --failed --no-legend --plain', 120_000);
      assert.match(state, /^running$/m, `no unit failed: ${state}`);
      assert.match(await con.run('systemctl is-active ssh'), /^active/m);
      assert.match(await con.run('ss -ltn'), /:22\b/);
      assert.match(await con.run('ping -c 1 -W 2 127.0.0.1 | tail -2'), / 0% packet loss/);
      assert.equal((await con.run('python3 -c "print(6*7)"')).trim(), '42');
      const which = await con.run('for c in curl nc nano vi python3 ip ss ping traceroute dig sudo; do command -v $c >/dev/null && echo ok-$c; done');
      for (const c of ['curl', 'nc', 'nano', 'vi', 'python3', 'ip', 'ss', 'ping', 'traceroute', 'dig', 'sudo']) assert.match(which, new RegExp(`ok-${c}\\b`));
      assert.match(await con.run('systemctl is-active lab-agent-port.service'), /^active/m, 'the check agent from the seed runs');
    });
  });

  it('is packaged as a KubeVirt containerDisk holding exactly the same disk, owned by uid 107', async () => {
    const r = await buildImage('debian-12', '--containerdisk');
    const archive = path.join(r.dir, 'containerdisk.oci.tar');
    const x = path.join(work, 'oci');
    fs.mkdirSync(x);
    await run('tar', ['-xf', archive, '-C', x]);
    const blob = (d: string) => path.join(x, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
    const index = JSON.parse(fs.readFileSync(path.join(x, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    assert.equal(index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'], `debian-12:${path.basename(r.dir).slice(10)}`);
    const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ digest: string }> };
    assert.equal(manifest.layers.length, 1);
    const listing = (await run('tar', ['-tvzf', blob(manifest.layers[0]!.digest)])).stdout.trim().split('\n');
    assert.equal(listing.length, 2, listing.join('\n'));
    assert.match(listing[0]!, /^dr-xr-xr-x 107\/107 .* disk\/$/);
    assert.match(listing[1]!, /^-r--r--r-- 107\/107 .* disk\/disk\.qcow2$/);
    const sha = async (cmd: string) => (await run('bash', ['-c', `${cmd} | sha256sum`], { maxBuffer: 1024 * 1024 })).stdout.split(' ')[0];
    assert.equal(await sha(`tar -xzOf '${blob(manifest.layers[0]!.digest)}' disk/disk.qcow2`), await sha(`cat '${path.join(r.dir, 'disk.qcow2')}'`));
  });
});
