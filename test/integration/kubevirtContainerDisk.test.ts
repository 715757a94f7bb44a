/**
 * containerDisks through a real registry: lab-tiny packaged by scripts/build-image.sh --containerdisk,
 * pushed with skopeo to Debian's docker-registry on loopback as the README tells an admin, and
 * pulled by the KubeVirt stand-in: a VMI's `containerDisk` (the disk taken out of the image,
 * readable by virt-launcher's qemu user 107, booted under an overlay) and a golden DataVolume's
 * `source.registry.url` (CDI's import, which the tool's VMs clone). A copy with a marker file in its
 * disk proves the guests run the bits from the registry, not the local image's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { installGoldenImages, newHandle, toolBackend } from '../support/kubevirtTool.js';
import { startRegistry, type Registry } from '../support/registry.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { BackendLabSpec, MachineSpec } from '../../src/backends/types.js';

const run = promisify(execFile);
const big = { maxBuffer: 64 << 20 };

/** An OCI archive like package-containerdisk.sh makes, but with the disk's owner and mode given. */
async function archiveWithOwner(disk: string, dir: string, uid: number, mode: string): Promise<string> {
  const layer = path.join(dir, 'layer');
  fs.mkdirSync(path.join(layer, 'disk'), { recursive: true });
  fs.copyFileSync(disk, path.join(layer, 'disk', 'disk.qcow2'));
  await run('tar', ['-C', layer, `--owner=${uid}`, `--group=${uid}`, `--mode=${mode}`, '--numeric-owner', '-cf', path.join(dir, 'layer.tar'), 'disk']);
  const oci = path.join(dir, 'oci');
  await run('umoci', ['init', '--layout', oci]);
  await run('umoci', ['new', '--image', `${oci}:v`]);
  await run('umoci', ['raw', 'add-layer', '--image', `${oci}:v`, path.join(dir, 'layer.tar')]);
  await run('umoci', ['config', '--image', `${oci}:v`, '--os', 'linux', '--architecture', 'amd64', '--config.label', 'org.opencontainers.image.title=lab-tiny']);
  const archive = path.join(dir, 'containerdisk.oci.tar');
  await run('skopeo', ['copy', '--quiet', `oci:${oci}:v`, `oci-archive:${archive}`]);
  return archive;
}

describe('containerDisks pulled from a real registry (docker-registry on loopback) by the KubeVirt stand-in', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let backend: KubeVirtBackend;
  let registry: Registry;
  let image = '';
  let archive = '';
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdisk-'));
  const marker = randomBytes(8).toString('hex');
  const h = newHandle();
  /** A namespace for bare VMIs, as virt-handler gets them. */
  const ns = `cdisk-${randomBytes(3).toString('hex')}`;
  const createVmi = async (name: string, ref: string): Promise<void> => {
    const vmi = {
      apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name, namespace: ns },
      spec: { domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }] }, memory: { guest: '128Mi' } }, volumes: [{ name: 'root', containerDisk: { image: ref } }] },
    };
    const r = await cp.request('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`, vmi);
    assert.equal(r.status, 201, r.body);
  };
  const vmiStatus = async (name: string) => {
    const g = await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}`);
    return { body: g.body, ...(g.json<{ status?: { phase?: string; reason?: string } }>().status ?? {}) };
  };
  const push = (from: string, ref: string) => run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci-archive:${from}`, `docker://${ref}`], big);

  before(async () => {
    const built = (await run('bash', ['scripts/build-image.sh', 'lab-tiny', '--containerdisk'], big)).stdout.trim().split('\n').pop()!;
    archive = path.join(built, 'containerdisk.oci.tar');
    registry = await startRegistry();
    // README "Images": skopeo copy oci-archive:<dir>/containerdisk.oci.tar docker://<registry>/<repo>:<version>
    image = `${registry.host}/lab-images/lab-tiny:${path.basename(built).split('-').pop()!}`;
    const t0 = Date.now();
    await push(archive, image);
    process.stderr.write(`      [registry] lab-tiny containerDisk pushed in ${Date.now() - t0} ms\n`);

    // the same disk with one file more, packaged by the project's own script
    const marked = path.join(work, 'lab-tiny-marked');
    fs.mkdirSync(marked);
    const raw = path.join(work, 'disk.raw');
    await run('qemu-img', ['convert', '-O', 'raw', path.join(built, 'disk.qcow2'), raw]);
    fs.writeFileSync(path.join(work, 'marker'), `${marker}\n`);
    await run('debugfs', ['-w', '-R', `write ${path.join(work, 'marker')} containerdisk-marker`, raw]);
    await run('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(marked, 'disk.qcow2')]);
    await run('bash', ['scripts/images/package-containerdisk.sh', marked, 'lab-tiny'], big);
    await push(path.join(marked, 'containerdisk.oci.tar'), `${registry.host}/lab-images/lab-tiny:marked`);

    ({ cp, standIn } = await sharedKubeVirt());
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 240_000 }));
    const r = await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    assert.equal(r.status, 201, r.body);
  });
  after(async () => {
    if (cp) {
      const vmis = `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`;
      await cp.request('DELETE', vmis);
      for (let i = 0; i < 200 && (await cp.request('GET', vmis)).json<{ items: unknown[] }>().items.length; i++) await new Promise((res) => setTimeout(res, 100));
      await cp.request('DELETE', `/api/v1/namespaces/${ns}`);
    }
    await backend?.destroy(h).catch(() => undefined);
    await backend?.close();
    await registry?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('holds the archive pushed as the README says: same manifest, the packager\'s labels', async () => {
    const inspect = async (ref: string, ...flags: string[]) => JSON.parse((await run('skopeo', ['inspect', ...flags, ref], big)).stdout) as { Digest: string; Labels: Record<string, string>; Layers: string[] };
    const local = await inspect(`oci-archive:${archive}`);
    const remote = await inspect(`docker://${image}`, '--tls-verify=false');
    assert.equal(remote.Digest, local.Digest);
    assert.deepEqual(remote.Layers, local.Layers);
    assert.equal(remote.Labels['org.opencontainers.image.title'], 'lab-tiny');
  });

  it('boots a VMI from its containerDisk pulled from the registry: an overlay on exactly the packaged disk', async () => {
    await createVmi('direct', `${registry.host}/lab-images/lab-tiny:marked`);
    const end = Date.now() + 60_000;
    for (let st = await vmiStatus('direct'); st.phase !== 'Running'; st = await vmiStatus('direct')) {
      assert.notEqual(st.phase, 'Failed', st.body);
      if (Date.now() > end) throw new Error(`VMI did not run: ${st.body}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    const pid = standIn.guestPids().find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`guest=${ns}_direct,`));
    assert.ok(pid, 'the VMI has a QEMU guest');
    const drive = /file=([^,\0]+),if=virtio,format=qcow2/.exec(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1] ?? '';
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', drive])).stdout) as { 'full-backing-filename': string; 'backing-filename-format': string };
    assert.ok(info['full-backing-filename'].startsWith(path.join(standIn.workDir, 'containerdisks') + path.sep), `backed by a pulled disk: ${info['full-backing-filename']}`);
    assert.equal(info['backing-filename-format'], 'qcow2');
    const sha = async (f: string) => (await run('sha256sum', [f])).stdout.split(' ')[0];
    assert.equal(await sha(info['full-backing-filename']), await sha(path.join(work, 'lab-tiny-marked', 'disk.qcow2')), 'the same bytes as the disk that was packaged');
    await cp.request('DELETE', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/direct`);
  });

  it('imports golden disks from the registry (CDI) and the tool\'s VMs boot clones of them: the marked copy shows its file, the original does not', async () => {
    // what an administrator does per image version (README "Golden images"): a DataVolume importing the registry URL
    await installGoldenImages(cp, [image, `${registry.host}/lab-images/lab-tiny:marked`]);
    const vm = (name: string, ref: string): MachineSpec => ({ name, kind: 'vm', image: ref, cpus: 1, memoryMiB: 128, channels: ['console'], credentials: { username: 'student', password: `pw-${name}` } });
    const spec: BackendLabSpec = { labId: 'cdisk', labVersion: '1', network: { internetEgress: false }, machines: [vm('plain', image), vm('marked', `${registry.host}/lab-images/lab-tiny:marked`)] };
    const t0 = Date.now();
    await backend.provision(spec, h, () => undefined);
    process.stderr.write(`      [kubevirt] two lab-tiny VMs from the registry ready in ${Date.now() - t0} ms\n`);
    const exec = (m: string, cmd: string) => backend.exec(h, m, cmd, { timeoutMs: 20_000, maxOutputBytes: 4096 });
    assert.equal((await exec('marked', 'cat /home/containerdisk-marker')).stdout, `${marker}\n`);
    const plain = await exec('plain', 'cat /home/containerdisk-marker');
    assert.notEqual(plain.exitCode, 0, 'the original image has no marker');
    const pulls = fs.readFileSync(standIn.logFile, 'utf8').split('\n').filter((l) => l.includes('containerdisk.pulled') && l.includes(registry.host));
    assert.ok(pulls.some((l) => l.includes('lab-tiny:marked')) && pulls.some((l) => l.includes(image)), pulls.join('\n'));
  });

  describe('a containerDisk virt-launcher could not use fails its VMI with the reason', () => {
    const failure = async (name: string, ref: string): Promise<string> => {
      await createVmi(name, ref);
      const end = Date.now() + 60_000;
      for (;;) {
        const st = await vmiStatus(name);
        if (st.phase === 'Failed') return st.reason ?? '';
        assert.notEqual(st.phase, 'Running', 'the guest must not boot');
        if (Date.now() > end) throw new Error(`VMI ${name} did not fail: ${st.body}`);
        await new Promise((res) => setTimeout(res, 250));
      }
    };

    it('a disk only root can read (owner 0, mode 0600)', async () => {
      const dir = path.join(work, 'root-only');
      fs.mkdirSync(dir);
      const bad = await archiveWithOwner(path.join(path.dirname(archive), 'disk.qcow2'), dir, 0, '0600');
      await push(bad, `${registry.host}/lab-images/lab-tiny:root-only`);
      assert.match(await failure('root-only', `${registry.host}/lab-images/lab-tiny:root-only`), /\/disk\/disk\.qcow2 \(owner 0:0, mode 0600\) is not readable by virt-launcher's qemu user 107:107/);
    });

    it('a tag the registry does not have', async () => {
      assert.match(await failure('no-such-tag', `${registry.host}/lab-images/lab-tiny:no-such-tag`), /pulling containerDisk .*lab-tiny:no-such-tag: manifest unknown$/);
    });
  });
});
