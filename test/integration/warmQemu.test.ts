/** Warm before class on real QEMU guests (lab-tiny): a student's launch takes the prepared, booted lab — no new boot. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../support/tool.js';
import { ensureGuestImage, killQemuUnder, qemuProcessesUnder } from '../support/guestImage.js';
import { startWarmTool, type WarmTool } from '../support/warmTool.js';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';
import type { BackendLabSpec, LabHandle, Progress } from '../../src/backends/types.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { createLogger } from '../../src/logger.js';

class CountingQemu extends QemuBackend {
  provisions = 0;
  override provision(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    this.provisions++;
    return super.provision(spec, handle, onProgress, signal);
  }
}

describe('warm sessions on QEMU (lab-tiny)', function () {
  this.timeout(240_000);
  let w: WarmTool;
  let backend: CountingQemu;
  let dataDir: string;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-qemu-'));
    backend = new CountingQemu({
      dataDir, imageDir: ensureGuestImage(), qemuBin: 'qemu-system-x86_64', accel: 'auto', maxVms: 2, maxMemoryMiB: 1024,
      log: createLogger({ level: 'warn', format: 'json' }),
    });
    w = await startWarmTool(backend);
  });
  after(async () => {
    await w?.tool.shutdown();
    await backend?.close();
    if (dataDir) {
      killQemuUnder(dataDir);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('hands a student the prepared lab: running at launch, the same QEMU process, no new provisioning', async () => {
    const { a, id } = await w.schedule({ expected: 1 });
    await waitFor(async () => (await LabInstance.countDocuments({ warmSession: id, state: 'running' })) === 1, 180_000, 'the prepared lab booted');
    const pool = (await LabInstance.findOne({ warmSession: id }).lean())!;
    const qemuBefore = qemuProcessesUnder(dataDir).sort();
    assert.equal(qemuBefore.length, 1, 'one guest booted for the pool');
    const provisions = backend.provisions;

    const student = await w.launch(a, 'student');
    const instanceId = decodeURIComponent(student.path.split('/').pop()!);
    const view = (await (await w.api(student.session, 'GET', `/api/instances/${instanceId}`)).json()) as { state: string };
    assert.equal(view.state, 'running', 'running at once');
    const inst = (await LabInstance.findById(instanceId).lean())!;
    assert.equal(inst.handle?.name, pool.handle?.name, 'the prepared lab');
    assert.equal(inst.machines.box?.password, pool.machines.box?.password, 'with the credentials its guest was given');
    assert.equal(backend.provisions, provisions, 'nothing provisioned for the launch');
    assert.deepEqual(qemuProcessesUnder(dataDir).sort(), qemuBefore, 'the same QEMU process: no new boot');
    const status = await w.svc.status(instanceId);
    assert.ok(Object.values(status).every((s) => s.phase === 'running'), JSON.stringify(status));
    await w.svc.destroy(instanceId);
  });
});
