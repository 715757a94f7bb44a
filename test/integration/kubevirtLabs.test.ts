/**
 * Labs on the KubeVirt backend end to end: the real API server, the KubeVirt stand-in booting real
 * QEMU guests, the backend running as the tool's ServiceAccount (k8s/ RBAC). Consoles and desktops
 * go through the subresource websockets the way they do on a cluster.
 */
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { sharedKubeVirt, type StandIn } from '../support/kubevirt-standin/launcher.js';
import type { ControlPlane } from '../support/k8s/controlPlane.js';
import { labRequests, newHandle, toolBackend, twoVmSpec } from '../support/kubevirtTool.js';
import type { KubeClient, RequestRecord } from '../../src/backends/kubevirt/client.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { LabHandle, Progress } from '../../src/backends/types.js';
import { decodePng, THUMBNAIL_WIDTH } from '../../src/backends/thumbnail.js';

/** Read from a stream until `pred` holds for what arrived (or time out). */
export function readUntil(s: Duplex, pred: (buf: Buffer) => boolean, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (pred(buf)) done(null);
    };
    const t = setTimeout(() => done(new Error(`timed out; got ${JSON.stringify(buf.toString('latin1').slice(-200))}`)), timeoutMs);
    function done(err: Error | null) {
      clearTimeout(t);
      s.off('data', onData);
      if (err) reject(err);
      else resolve(buf);
    }
    s.on('data', onData);
  });
}

describe('KubeVirt labs with real guests (stand-in)', function () {
  this.timeout(240_000);
  let cp: ControlPlane;
  let standIn: StandIn;
  let backend: KubeVirtBackend;
  let client: KubeClient;
  /** The lab the running test made: destroyed after it whether it passed or not. */
  let made: LabHandle | undefined;

  before(async () => {
    ({ cp, standIn } = await sharedKubeVirt());
    ({ backend, client } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 120_000 }));
  });
  afterEach(async () => {
    if (made) await backend.destroy(made);
    made = undefined;
  });
  after(async () => {
    await backend?.close();
  });

  it('runs a two-VM lab: both boot, consoles and desktops work through openChannel, pause/resume/reset/destroy act on the guests', async () => {
    const spec = twoVmSpec('two-vm-live');
    const handle = newHandle();
    made = handle;
    const progress: Progress[] = [];
    const records: RequestRecord[] = [];
    const off = client.onRequest((r) => records.push(r));
    let vmiChanges = 0;
    const offVmis = backend.vmis.on((_t, o) => {
      if (o.metadata.namespace === handle.name) vmiChanges++;
    });
    const t0 = Date.now();
    await backend.provision(spec, handle, (p) => progress.push(p));
    const provisionMs = Date.now() - t0;
    off();
    offVmis();
    assert.deepEqual(await backend.status(handle), { alpha: { phase: 'running' }, beta: { phase: 'running' } });
    assert.deepEqual([...new Set(progress.map((p) => p.phase))], ['network', 'disks', 'machines-starting', 'machines-booted']);
    assert.equal(progress.at(-1)?.percent, 100);
    const req = labRequests(records, handle.name);
    process.stderr.write(
      `      [kubevirt] two-VM lab running in ${provisionMs} ms: ${req.creates} creates (+${req.settling} refused while the RoleBinding settles) + ${req.patches} patches + ${req.cloneReads} clone-progress reads in its namespace (+1 namespace create)\n`,
    );
    // in the namespace: rolebinding, 5 policies, quota, limit range, 2 secrets, service, 2 VMs = 13 objects;
    // the VMs are created running (runStrategy Always), so none is patched to start
    assert.equal(req.creates, 13, 'one create per object in the namespace');
    assert.equal(req.patches, 0, 'VMs created running: no start patch');
    assert.deepEqual(req.failed, [], 'no request refused besides creates while the RoleBinding settles');
    assert.deepEqual(req.other, [], 'no reads besides the clone progress');
    // while a VM has no VMI, one look at the clones (a DataVolume list and a VM list) per VMI change or per 2 s
    assert.equal(req.cloneReads % 2, 0, 'clone progress: a DataVolume list with a VM list');
    assert.ok(req.cloneReads / 2 <= 1 + vmiChanges + Math.ceil(provisionMs / 2000), `${req.cloneReads / 2} clone looks in ${provisionMs} ms with ${vmiChanges} VMI changes`);

    for (const m of ['alpha', 'beta']) {
      const vnc = await backend.openChannel(handle, m, 'vnc');
      const hello = await readUntil(vnc, (b) => b.length >= 12);
      assert.match(hello.toString('latin1'), /^RFB 003\.00\d\n/);
      // a thumbnail of the display through vnc/screenshot (a PNG the stand-in takes by QMP screendump):
      // no VNC connection, so the open one (KubeVirt keeps one per VMI) is not cut off
      let cut = false;
      vnc.once('close', () => { cut = true; });
      const thumb = decodePng(await backend.screenshot(handle, m));
      assert.equal(thumb.width, THUMBNAIL_WIDTH);
      assert.ok(new Set(Array.from({ length: thumb.pixels.length / 3 }, (_, i) => thumb.pixels.readUIntBE(i * 3, 3))).size > 2, 'the text console is drawn');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(cut, false, 'the VNC viewer stays connected');
      vnc.destroy();
      const con = await backend.openChannel(handle, m, 'console');
      const poke = setInterval(() => con.write('\r'), 1000);
      con.write('\r');
      await readUntil(con, (b) => /login: $/m.test(b.toString('latin1')), 60_000).finally(() => clearInterval(poke));
      con.write('echo-check');
      await readUntil(con, (b) => b.toString('latin1').includes('echo-check'), 10_000);
      con.write('\x15');
      con.destroy();
    }

    const lap = stopwatch();
    await backend.pause(handle);
    await until(async () => (await backend.status(handle)).alpha?.phase === 'paused', 'paused');
    await backend.resume(handle);
    await until(async () => (await backend.status(handle)).alpha?.phase === 'running', 'resumed');

    lap('pause/resume');
    const before = (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${handle.name}/virtualmachineinstances/beta`)).json<{ metadata: { uid: string } }>().metadata.uid;
    await backend.reset(handle, 'beta');
    const after = (await cp.request('GET', `/apis/kubevirt.io/v1/namespaces/${handle.name}/virtualmachineinstances/beta`)).json<{ metadata: { uid: string } }>().metadata.uid;
    assert.notEqual(after, before, 'reset recreates the machine');
    assert.deepEqual(await backend.status(handle), { alpha: { phase: 'running' }, beta: { phase: 'running' } });

    lap('reset');
    await backend.stop(handle);
    await until(async () => (await backend.status(handle)).alpha?.phase === 'stopped', 'stopped');
    await backend.start(handle);
    assert.deepEqual(await backend.status(handle), { alpha: { phase: 'running' }, beta: { phase: 'running' } });

    lap('stop/start');
    const guestsBefore = standIn.guestPids().length;
    await backend.destroy(handle);
    lap('destroy');
    process.stderr.write(`      [kubevirt] ${laps.join(', ')}\n`);
    assert.equal((await cp.request('GET', `/api/v1/namespaces/${handle.name}`)).status, 404);
    assert.deepEqual(await backend.status(handle), {});
    assert.ok(standIn.guestPids().length <= guestsBefore - 2, 'the guests are gone with the namespace');
    await backend.destroy(handle); // already gone = success
  });
});

const laps: string[] = [];
function stopwatch(): (what: string) => void {
  let t = Date.now();
  return (what) => {
    laps.push(`${what} ${Date.now() - t} ms`);
    t = Date.now();
  };
}

async function until(fn: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
