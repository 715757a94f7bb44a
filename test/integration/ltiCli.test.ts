import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sharedMongoUri } from '../support/ferret.js';
import { startTestTool } from '../support/tool.js';
import { fakeLabs } from '../support/fakeLabs.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { atToolPage } from '../support/ltiTool.js';

const BIN = path.resolve('bin/lab-orchestrator.js');

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('CLI: lab-orchestrator platform add', function () {
  this.timeout(120_000);

  it('registers a platform by hand (again = update) and a launch through it works on the running tool', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-cli-lti-'));
    const fake = fakeLabs();
    // the CLI uses the database "lab_orchestrator", as serve does; the tool shares DATA_DIR (the secret key)
    const tool = await startTestTool({ DATA_DIR: dataDir }, { dbName: 'lab_orchestrator', labs: fake.labs, runtime: fake.runtime });
    try {
      const dp = tool.devPlatform!;
      const u = tool.lti.urls;
      const reg = await dp.registerTool({ name: 'Lab Orchestrator (manual)', loginUrl: u.login, targetLinkUri: u.launch, jwksUrl: u.jwks, deepLinkUrl: u.deepLink });
      const env = { LAB_MODE: 'demo', DATA_DIR: dataDir, MONGODB_URI: sharedMongoUri(), PUBLIC_URL: tool.url };
      const args = ['platform', 'add', '--issuer', dp.urls.issuer, '--client-id', reg._id, '--auth-url', dp.urls.auth, '--token-url', dp.urls.token, '--jwks-url', dp.urls.jwks, '--deployment-id', reg.deploymentId];
      const first = await run(args, env);
      assert.equal(first.code, 0, first.err);
      const out = JSON.parse(first.out) as { platform: { clientId: string; deploymentIds: string[]; registeredBy: string }; tool: { login: string } };
      assert.equal(out.platform.clientId, reg._id);
      assert.deepEqual(out.platform.deploymentIds, [reg.deploymentId]);
      assert.equal(out.tool.login, `${tool.url}/lti/login`);
      const again = await run([...args, '--deployment-id', 'second', '--name', 'Demo platform'], env);
      assert.equal(again.code, 0, again.err);
      const list = await run(['platform', 'list'], env);
      const platforms = (JSON.parse(list.out) as { platforms: Array<{ name: string; deploymentIds: string[] }> }).platforms;
      assert.equal(platforms.length, 1);
      assert.equal(platforms[0]!.name, 'Demo platform');
      assert.deepEqual(platforms[0]!.deploymentIds, [reg.deploymentId, 'second']);

      const a = await dp.createActivity({ clientId: reg._id, title: 'Net', custom: { lab_id: 'net-101' } });
      const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
      assert.equal(r.status, 302, r.body);
      assert.match(r.location!, /\/lab\//);
    } finally {
      await tool.shutdown();
    }
  });

  it('refuses missing or bad options with a message naming them and exit code 2', async () => {
    const r = await run(['platform', 'add', '--issuer', 'nope', '--client-id', 'x'], { LAB_MODE: 'demo', DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'lab-cli-lti-')), MONGODB_URI: sharedMongoUri() });
    assert.equal(r.code, 2);
    for (const k of ['issuer', 'authUrl', 'tokenUrl', 'jwksUrl', 'deploymentIds']) assert.match(r.err, new RegExp(k));
    const bad = await run(['platform', 'add', '--bogus', '1'], { LAB_MODE: 'demo' });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown option --bogus/);
  });
});
