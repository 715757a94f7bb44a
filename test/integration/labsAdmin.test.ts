import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestTool, type TestTool } from '../support/tool.js';
import { uniqueDbName } from '../support/ferret.js';

function copyTemplates(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-templates-'));
  fs.cpSync(path.resolve('templates'), dir, { recursive: true });
  return dir;
}

describe('lab catalog: start-up import and GET /api/labs', function () {
  this.timeout(60_000);
  let tool: TestTool | undefined;
  let dir: string;
  const dbName = uniqueDbName('labs');

  before(() => {
    dir = copyTemplates();
    // an invalid lab next to the valid ones: reported and skipped
    fs.mkdirSync(path.join(dir, 'broken', 'instructions'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'broken', 'lab.yaml'), 'schemaVersion: 1\ntitle: Broken\nmachines:\n  - name: a\n    image: { qemu: lab-tiny }\n    cpus: many\n');
    fs.writeFileSync(path.join(dir, 'broken', 'instructions', 'a.md'), '# A\n');
  });
  afterEach(async () => {
    await tool?.shutdown();
    tool = undefined;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('imports every valid example, logs the invalid lab with all its messages, and serves the catalog', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const res = await fetch(`${tool.url}/api/labs`);
    assert.equal(res.status, 200);
    const { labs } = (await res.json()) as { labs: Array<{ id: string; version: string; machines: unknown[]; resources: { cpus: number } }> };
    assert.deepEqual(labs.map((l) => `${l.id}@${l.version}`).sort(), ['linux-basics@1', 'two-host-network@1', 'vm-and-container@1']);
    const two = labs.find((l) => l.id === 'two-host-network')!;
    assert.equal(two.machines.length, 2);
    assert.equal(two.resources.cpus, 2);
    assert.doesNotMatch(JSON.stringify(labs), /password|generate|userData|hint|command/, 'no credentials or checks in the catalog');
    const warn = tool.logs().find((l) => l.msg === 'labs.invalid_skipped');
    assert.ok(warn, 'invalid lab logged');
    assert.deepEqual(warn.invalid, ['broken']);
    assert.deepEqual(warn.problems, [`${dir}/broken/lab.yaml:6:11 machines[0].cpus: expected an integer from 1 to 16, got "many"`]);

    const one = await fetch(`${tool.url}/api/labs/linux-basics`);
    assert.equal(one.status, 200);
    const summary = (await one.json()) as { title: string; grading: { mode: string } };
    assert.equal(summary.title, 'Linux shell basics');
    assert.equal(summary.grading.mode, 'checks');
    assert.equal((await fetch(`${tool.url}/api/labs/broken`)).status, 404);
    assert.equal((await fetch(`${tool.url}/api/labs/nope`)).status, 404);
  });

  it('a restart with unchanged templates makes no new version; a changed lab gets the next one', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    await tool.shutdown();
    fs.appendFileSync(path.join(dir, 'linux-basics', 'instructions', '02-processes.md'), '\nOne more line.\n');
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const { labs } = (await (await fetch(`${tool.url}/api/labs`)).json()) as { labs: Array<{ id: string; version: string }> };
    assert.deepEqual(labs.map((l) => `${l.id}@${l.version}`).sort(), ['linux-basics@2', 'two-host-network@1', 'vm-and-container@1']);
  });

  it('serves media of a version, with a sandboxing CSP, and refuses paths outside media/', async () => {
    tool = await startTestTool({ TEMPLATES_DIR: dir }, { dbName });
    const ok = await fetch(`${tool.url}/labs/two-host-network/1/media/network.svg`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'image/svg+xml');
    assert.match(ok.headers.get('content-security-policy') ?? '', /sandbox/);
    assert.match(await ok.text(), /<svg/);
    for (const bad of ['..%2Flab.yaml', '../lab.yaml', '%2E%2E/lab.yaml', 'x/..%2F..%2Flab.yaml', 'nope.svg']) {
      const r = await fetch(`${tool.url}/labs/two-host-network/1/media/${bad}`);
      assert.equal(r.status, 404, bad);
      assert.doesNotMatch(await r.text(), /schemaVersion/);
    }
    assert.equal((await fetch(`${tool.url}/labs/two-host-network/9/media/network.svg`)).status, 404);
  });
});
