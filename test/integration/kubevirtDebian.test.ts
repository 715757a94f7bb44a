/**
 * The real debian-12 image on the KubeVirt backend through the stand-in: the image's own kernel and
 * cloud-init with the seed virt-launcher builds (the machine Secret's user data from the shared
 * generator, KubeVirt's meta-data), its own disk cloned from the golden image, the VMI address by
 * DHCP on the lab segment with KubeVirt's DNS search path, the check agent on TCP through
 * portforward — and the student's file still there after a stop and a start. Builds the image
 * only if this host does not have it yet.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { installGoldenImages, newHandle, toolBackend } from '../support/kubevirtTool.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { BackendLabSpec } from '../../src/backends/types.js';

const run = promisify(execFile);
/** Its own tag: a golden disk imported after this file made sure the image exists here. */
const IMAGE = 'standin.local/lab-images/debian-12:kv-debian-test';

describe('debian-12 on KubeVirt (stand-in): cloud-init seed as KubeVirt builds it, persistent disk', function () {
  this.timeout(30 * 60_000);
  let backend: KubeVirtBackend;
  const h = newHandle();

  before(async () => {
    await run('bash', ['scripts/build-image.sh', 'debian-12'], { maxBuffer: 64 << 20, timeout: 40 * 60_000 });
    const { cp, standIn } = await sharedKubeVirt();
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 900_000 }));
    await installGoldenImages(cp, [IMAGE]);
  });
  after(async () => {
    await backend?.destroy(h).catch(() => undefined); // stops its guest
    await backend?.close();
  });

  const exec = async (cmd: string) => {
    const r = await backend.exec(h, 'box', cmd, { timeoutMs: 60_000, maxOutputBytes: 16_384 });
    assert.equal(r.exitCode, 0, `${cmd}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  it('boots Debian with its hostname, the lab user, the VMI address by DHCP and the cluster DNS search path', async () => {
    const spec: BackendLabSpec = {
      labId: 'kv-debian', labVersion: '1', network: { internetEgress: false },
      machines: [{ name: 'box', kind: 'vm', image: IMAGE, cpus: 1, memoryMiB: 1024, diskGiB: 5, channels: ['console'], credentials: { username: 'student', password: 'pw-box' } }],
    };
    const t0 = Date.now();
    await backend.provision(spec, h, () => undefined);
    process.stderr.write(`      [kubevirt] debian-12 lab ready (clone, boot, cloud-init, agent) in ${Date.now() - t0} ms\n`);
    const out = (await exec('. /etc/os-release; echo "$ID $VERSION_ID"; hostname; id -un student; ip -4 -o addr show eth0; cat /etc/resolv.conf')).split('\n');
    assert.equal(out[0], 'debian 12');
    assert.equal(out[1], 'box');
    assert.equal(out[2], 'student');
    const ip = (await backend.addresses(h)).box?.ip ?? '';
    assert.match(out[3] ?? '', new RegExp(`inet ${ip.replace(/\./g, '\\.')}/16`), 'the VMI address, by DHCP');
    // dhclient writes the search domains fully qualified (a final dot)
    assert.match(out.join('\n'), new RegExp(`search lab\\.${h.name}\\.svc\\.cluster\\.local\\.? ${h.name}\\.svc\\.cluster\\.local\\.?`));
  });

  it('keeps the student\'s file across a stop and a start (its own disk; cloud-init does not run again)', async () => {
    await exec('echo "monday notes" >/home/student/notes.txt && chown student: /home/student/notes.txt && sync');
    const instanceBefore = await exec('cat /var/lib/cloud/data/instance-id');
    await backend.stop(h);
    const t0 = Date.now();
    await backend.start(h);
    process.stderr.write(`      [kubevirt] debian-12 started again (boot, agent) in ${Date.now() - t0} ms\n`);
    assert.equal(await exec('cat /home/student/notes.txt'), 'monday notes\n');
    assert.equal(await exec('cat /var/lib/cloud/data/instance-id'), instanceBefore, 'the same instance (the VM\'s stable firmware UUID)');
  });
});
