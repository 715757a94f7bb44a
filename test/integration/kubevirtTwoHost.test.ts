/**
 * The two-host-network example on the KubeVirt backend: the real API server, the stand-in's two
 * guests on one lab segment at their VMI addresses, the backend as the tool's ServiceAccount.
 * The student's work is done out of band (as typed on the consoles), by name — beta resolves in
 * the lab as the headless Service makes it resolve on a cluster — and the lab's own checks, filled
 * from the addresses the backend reports, all pass.
 */
import assert from 'node:assert/strict';
import { ImageCatalog } from '../../src/images/ImageCatalog.js';
import { STANDIN_IMAGE_CATALOG } from '../support/imageCatalog.js';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { toolBackend } from '../support/kubevirtTool.js';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { SessionTokens } from '../../src/auth/session.js';
import { LabCatalog } from '../../src/labs/definition/LabCatalog.js';
import { LabService } from '../../src/labs/LabService.js';
import { createLogger } from '../../src/logger.js';
import type { KubeVirtBackend } from '../../src/backends/kubevirt/KubeVirtBackend.js';

const SECRET_KEY = 'kubevirt-two-host-secret-key-0123456789ab';
const log = createLogger({ level: 'fatal', format: 'json' });

describe('two-host-network on KubeVirt (stand-in): addresses the backend reports, one lab segment', function () {
  this.timeout(400_000);
  let svc: LabService;
  let backend: KubeVirtBackend | undefined;
  let tool: TestTool;
  const catalog = new LabCatalog({ log, images: ImageCatalog.load(STANDIN_IMAGE_CATALOG) });
  let instanceId = '';

  before(async () => {
    const { cp, standIn } = await sharedKubeVirt();
    ({ backend } = await toolBackend(cp, { subresourceUrl: standIn.baseUrl, bootTimeoutMs: 240_000 }));
    svc = new LabService({ backend, labs: catalog, log, activityWriteMs: 0 });
    tool = await startTestTool({ SECRET_KEY }, { runtime: svc, labs: catalog });
  });
  after(async () => {
    // stop the guests this file started
    if (instanceId) await svc?.destroy(instanceId).catch(() => undefined);
    await tool?.shutdown();
    await svc?.close();
    await backend?.close();
  });

  it('fills {{machines.beta.ip}} from the VMI address, and every check passes after the student works by name', async () => {
    const inst = await svc.ensureInstance({ activityId: 'kv-2h', userId: 'kv-2h-student', contextId: 'kv-course', labId: 'two-host-network', labVersion: '1' });
    instanceId = inst._id;
    await svc.start(instanceId);
    await waitFor(async () => (await svc.get(instanceId))?.state === 'running', 300_000, 'lab running');
    const doc = (await svc.get(instanceId))!;
    const beta = doc.machines.beta!;
    assert.match(beta.ip ?? '', /^10\.244\.\d+\.\d+$/, 'the VMI address, not the QEMU backend convention');
    assert.equal(beta.host, 'beta.lab');

    const run = async (machine: string, cmd: string) => {
      const r = await svc.exec(instanceId, machine, cmd, { timeoutMs: 30_000, maxOutputBytes: 4096 });
      assert.equal(r.exitCode, 0, `${machine}: ${cmd}\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    // the template's guests are Debian (debian-12): ping, ss, curl and python3, no busybox applets
    await run('alpha', 'ping -c 3 beta >/tmp/ping.txt; cat /tmp/ping.txt');
    await run('alpha', "sed -n 's/^PING [^ ]* (\\([0-9.]*\\)).*/\\1/p' /tmp/ping.txt >/tmp/beta-address; cat /tmp/beta-address");
    // a check command runs in the agent's per-connection unit, whose leftovers systemd stops when it
    // ends: the server (typed with & on a console by a student) runs as a unit of its own
    await run('beta', 'mkdir -p /tmp/www && echo "hello from beta" >/tmp/www/index.html && systemd-run --quiet --unit=lab-www python3 -m http.server 8080 --directory /tmp/www && for i in $(seq 30); do ss -ltnH "sport = :8080" | grep -q LISTEN && exit 0; sleep 1; done; exit 1');
    await run('alpha', 'curl -sS --max-time 10 -o /tmp/page.txt http://beta.lab:8080/ && cat /tmp/page.txt');

    const token = await new SessionTokens(SECRET_KEY).issue({ userId: 'kv-2h-student', role: 'learner', contextId: 'kv-course', name: 'Ada' });
    for (const step of ['find-address', 'ping-beta', 'start-server', 'fetch-page']) {
      const res = await fetch(`${tool.url}/api/instances/${instanceId}/steps/${step}/check`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
      const body = (await res.json()) as { passed?: boolean };
      assert.equal(body.passed, true, `${step}: ${JSON.stringify(body)}`);
    }
  });
});
