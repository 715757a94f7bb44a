/**
 * A console on the KubeVirt backend starts with what the guest printed while nobody was connected:
 * KubeVirt's serial console log (the VM asks for `logSerialConsole`; virt-launcher's
 * guest-console-log container), read through the real API server's `pods/log`, which proxies to the
 * stand-in node's kubelet — as the tool's ServiceAccount with k8s/ RBAC. And a console still opens,
 * without history, when the cluster refuses `pods/log`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import { kubectl, newHandle, toolBackend, toolMay, twoVmSpec, UNMANAGED_NS } from '../support/kubevirtTool.js';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { processesMentioning, type ControlPlane } from '../support/k8s/controlPlane.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';
import type { LabHandle } from '../../src/backends/types.js';

const LAB_ROLE = '/apis/rbac.authorization.k8s.io/v1/clusterroles/lab-orchestrator-lab';

/** The serial log QEMU keeps for the guest of `<ns>/<machine>` (its chardev logfile), read from its command line. */
function serialLogOf(ns: string, machine: string): string {
  for (const pid of processesMentioning(`guest=${ns}_${machine},`)) {
    const m = /logfile=([^,\0]+)/.exec(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    if (m?.[1]) return m[1];
  }
  throw new Error(`no QEMU guest for ${ns}/${machine}`);
}

/** Everything a stream yields within `ms` (without writing to it). */
function collect(s: Duplex, ms: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const onData = (c: Buffer) => parts.push(c);
    s.on('data', onData);
    setTimeout(() => { s.off('data', onData); resolve(Buffer.concat(parts)); }, ms);
  });
}

/** Read until `pred` holds for what arrived. */
function readUntil(s: Duplex, pred: (b: Buffer) => boolean, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => { buf = Buffer.concat([buf, c]); if (pred(buf)) done(null); };
    const t = setTimeout(() => done(new Error(`timed out; got ${JSON.stringify(buf.toString('latin1').slice(-200))}`)), timeoutMs);
    function done(err: Error | null) {
      clearTimeout(t);
      s.off('data', onData);
      if (err) reject(err); else resolve(buf);
    }
    s.on('data', onData);
  });
}

async function until(fn: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('KubeVirt console history (serial console log through pods/log)', function () {
  this.timeout(240_000);
  let cp: ControlPlane;
  let backend: KubeVirtBackend;
  let handle: LabHandle;

  before(async () => {
    const kv = await sharedKubeVirt();
    cp = kv.cp;
    ({ backend } = await toolBackend(cp, { subresourceUrl: kv.standIn.baseUrl, bootTimeoutMs: 120_000 }));
    const spec = twoVmSpec('console-history');
    handle = newHandle();
    await backend.provision({ ...spec, machines: spec.machines.filter((m) => m.name === 'alpha'), network: { internetEgress: false } }, handle, () => undefined);
  });
  after(async () => {
    if (handle) await backend?.destroy(handle);
    await backend?.close();
  });

  it('may read pods/log in lab namespaces only', async () => {
    assert.equal(await toolMay(cp, { verb: 'get', resource: 'pods', subresource: 'log', namespace: handle.name }), true);
    assert.equal(await toolMay(cp, { verb: 'get', resource: 'pods', subresource: 'log', namespace: UNMANAGED_NS }), false);
    assert.equal(await toolMay(cp, { verb: 'get', resource: 'pods', subresource: 'log', namespace: 'kube-system' }), false);
  });

  it('starts the first console with the lines the guest printed before its login prompt, nobody having been connected', async () => {
    const ns = handle.name;
    // the VMI's virt-launcher pod, as KubeVirt makes it: running on the node, with the console log container
    const pods = (await cp.request('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent('kubevirt.io=virt-launcher')}`)).json<{ items: Array<{ metadata: { name: string; labels: Record<string, string> }; spec: { nodeName: string; initContainers?: Array<{ name: string }> }; status: { phase: string } }> }>().items;
    assert.equal(pods.length, 1);
    assert.match(pods[0]!.metadata.name, /^virt-launcher-alpha-[a-z0-9]{5}$/);
    assert.equal(pods[0]!.status.phase, 'Running');
    assert.deepEqual(pods[0]!.spec.initContainers?.map((c) => c.name), ['guest-console-log']);

    const log = serialLogOf(ns, 'alpha');
    // getty prints /etc/issue, then its prompt (the guest's boot script may still print after it)
    await until(() => /Log in as student\.\r?\n[^]*login: /.test(fs.readFileSync(log, 'latin1')), 'the guest prints its login prompt', 90_000);

    const t0 = Date.now();
    const con = await backend.openChannel(handle, 'alpha', 'console');
    const openMs = Date.now() - t0;
    try {
      const first = await collect(con, 1000);
      const text = first.toString('latin1');
      process.stderr.write(`      [kubevirt] console opened in ${openMs} ms with ${first.length} bytes of history\n`);
      const raw = fs.readFileSync(log, 'latin1');
      assert.match(text, /Welcome to alpha \(lab-tiny\)\. Log in as student\./, `the first bytes hold the issue printed before the prompt; got ${JSON.stringify(text.slice(-200))}`);
      assert.ok(first.length <= 16 * 1024, 'bounded');
      assert.ok(text.endsWith('\n') && raw.includes(text), 'the history is what the guest printed, in whole lines');
      // the prompt line waits for its newline in KubeVirt's log (virt-tail prints complete lines); Enter redraws it
      con.write('\r');
      await readUntil(con, (b) => /login: $/m.test(b.toString('latin1')), 30_000);
    } finally {
      con.destroy();
    }
  });

  it('gives the teacher\'s glance the console\'s last lines with no console open, bounded; nothing for a machine without a VM', async () => {
    const tail = await backend.consoleHistory(handle, 'alpha', 2048);
    assert.ok(tail, 'the running VM has console history');
    const text = tail.toString('latin1');
    assert.ok(tail.length <= 2048, `bounded: ${tail.length} bytes`);
    assert.match(text, /Log in as student\./, `the last lines; got ${JSON.stringify(text)}`);
    assert.ok(fs.readFileSync(serialLogOf(handle.name, 'alpha'), 'latin1').includes(text), 'what the guest printed, in whole lines');
    assert.equal(await backend.consoleHistory(handle, 'beta', 300), null, 'beta was not provisioned in this lab');
  });

  it('opens the console without history when the cluster refuses pods/log', async () => {
    const role = (await cp.request('GET', LAB_ROLE)).json<{ metadata: Record<string, unknown>; rules: Array<{ resources: string[] }> }>();
    const without = { ...role, rules: role.rules.filter((r) => !r.resources.includes('pods/log')) };
    assert.equal(without.rules.length, role.rules.length - 1);
    const put = await cp.request('PUT', LAB_ROLE, without);
    assert.equal(put.status, 200, put.body);
    try {
      await until(async () => !(await toolMay(cp, { verb: 'get', resource: 'pods', subresource: 'log', namespace: handle.name })), 'pods/log is refused');
      const t0 = Date.now();
      const con = await backend.openChannel(handle, 'alpha', 'console');
      const openMs = Date.now() - t0;
      try {
        const first = await collect(con, 1000);
        process.stderr.write(`      [kubevirt] console opened in ${openMs} ms without history (pods/log refused)\n`);
        assert.equal(first.length, 0, 'no history');
        assert.ok(openMs < 3000, `opened without waiting for the history (${openMs} ms)`);
        con.write('\r');
        await readUntil(con, (b) => /login: $/m.test(b.toString('latin1')), 30_000);
      } finally {
        con.destroy();
      }
    } finally {
      await kubectl(cp, 'apply', '-f', 'k8s/rbac-lab.yaml');
      await until(() => toolMay(cp, { verb: 'get', resource: 'pods', subresource: 'log', namespace: handle.name }), 'pods/log is allowed again');
    }
  });
});
