import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { AGENT_PORT, AGENT_PROGRAM, AGENT_SCRIPT, AGENT_TOKEN_FILE, AGENT_TOKEN_KEY, agentCloudConfig, withAgentUserData, withExecAgent } from '../../src/backends/kubevirt/execAgent.js';
import type { K8sObject } from '../../src/backends/kubevirt/manifests.js';
import { userDataLogin, userDataParts, userDataScript } from '../support/kubevirt-standin/cloudInit.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

function commandLines(): string[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try { return [fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()]; } catch { return []; }
  });
}

/** Run the agent script once with `request` on stdin, as the listener would; PATH set to `pathDir` first. */
function runAgent(dir: string, pathDir: string | undefined, request: string): Promise<string> {
  const script = AGENT_SCRIPT.replace(AGENT_TOKEN_FILE, path.join(dir, 'token')).replace(/^PATH=([^;]*);/m, (_m, p: string) => `PATH=${pathDir ? `${pathDir}:` : ''}${p};`);
  fs.writeFileSync(path.join(dir, 'agent'), script, { mode: 0o700 });
  return new Promise((resolve, reject) => {
    const c = spawn('/bin/sh', [path.join(dir, 'agent')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    c.on('error', reject);
    c.on('close', () => resolve(out));
    c.stdin.end(request);
  });
}

describe('KubeVirt exec agent (cloud-init user data and the guest-side script)', () => {
  const lab = '#cloud-config\nhostname: box\nuser: "student"\npassword: "pw"\nruncmd:\n  - echo lab\n';

  it('wraps the lab user data unchanged with the agent cloud-config in a MIME multipart the stand-in (like cloud-init) splits again', () => {
    const mp = withAgentUserData(lab, 'tok-123');
    assert.match(mp, /^Content-Type: multipart\/mixed; boundary="==lab-orchestrator-[0-9a-f]{16}=="\nMIME-Version: 1\.0\n\n--/);
    const parts = userDataParts(mp);
    assert.deepEqual(parts.map((p) => p.type), ['cloud-config', 'cloud-config']);
    assert.equal(parts[0]?.body, lab, 'byte for byte');
    assert.equal(parts[1]?.body, agentCloudConfig('tok-123'));
    assert.deepEqual(userDataLogin(mp), { hostname: 'box', user: 'student', password: 'pw' });
    const doc = YAML.parse(parts[1]!.body) as { write_files: Array<{ path: string; permissions: string; content: string }>; runcmd: unknown[]; merge_how: unknown };
    assert.deepEqual(doc.write_files.map((f) => [f.path, f.permissions]), [[AGENT_TOKEN_FILE, '0600'], [AGENT_PROGRAM, '0700'], ['/etc/systemd/system/lab-agent.socket', '0644'], ['/etc/systemd/system/lab-agent@.service', '0644']]);
    assert.match(doc.write_files[2]!.content, new RegExp(`ListenStream=${AGENT_PORT}\\nAccept=yes`));
    assert.ok(doc.merge_how, 'lists are appended to the lab part, not replaced');
    // a #! script part is typed as a shell script; empty user data gives the agent part only
    assert.deepEqual(userDataParts(withAgentUserData('#!/bin/sh\necho hi\n', 't')).map((p) => p.type), ['script', 'cloud-config']);
    assert.equal(userDataParts(withAgentUserData('', 't')).length, 1);
  });

  it('adds a fresh token to a machine Secret once, and leaves other objects alone', () => {
    const secret: K8sObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'machine-box', namespace: 'ns' }, data: { userdata: b64(lab), password: b64('pw') } };
    const a = withExecAgent(secret) as K8sObject & { data: Record<string, string> };
    const b = withExecAgent(secret) as K8sObject & { data: Record<string, string> };
    assert.match(unb64(a.data[AGENT_TOKEN_KEY]!), /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(a.data[AGENT_TOKEN_KEY], b.data[AGENT_TOKEN_KEY], 'random per machine');
    assert.ok(unb64(a.data.userdata!).includes(b64(agentCloudConfig(unb64(a.data[AGENT_TOKEN_KEY]!))).slice(0, 60)));
    assert.equal(a.data.password, b64('pw'));
    assert.equal(withExecAgent(a), a, 'already has a token');
    const svc: K8sObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'lab' } };
    assert.equal(withExecAgent(svc), svc);
  });

  it('turns write_files and runcmd into lab-tiny\'s boot script (the stand-in\'s cloud-init)', () => {
    const s = userDataScript(withAgentUserData(lab, 'tok'))!;
    assert.match(s, /^#!\/bin\/sh\n/);
    assert.ok(s.indexOf(`>'${AGENT_TOKEN_FILE}' && chmod '0600'`) > 0);
    assert.ok(s.indexOf('echo lab') < s.indexOf(`nc -ll -p ${AGENT_PORT}`), 'the lab\'s runcmd first, then ours');
    assert.equal(userDataScript('#cloud-config\nhostname: x\n'), undefined);
  });

  const userlands: Array<[string, () => string | undefined]> = [
    ['coreutils', () => undefined],
    ['busybox', () => {
      const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-'));
      for (const a of ['timeout', 'setsid', 'base64', 'head', 'wc', 'tr', 'mktemp', 'cat', 'rm', 'sleep', 'yes']) fs.symlinkSync('/bin/busybox', path.join(bin, a));
      return bin;
    }],
  ];
  for (const [name, pathDir] of userlands) {
    it(`answers requests with ${name} tools: exit code and output, cut to maxBytes, killed at its timeout, a wrong token denied`, async function () {
      this.timeout(20_000);
      if (name === 'busybox' && !fs.existsSync('/bin/busybox')) this.skip();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-'));
      const bin = pathDir();
      fs.writeFileSync(path.join(dir, 'token'), 'sekrit\n', { mode: 0o600 });
      const req = (tok: string, t: number, max: number, cmd: string) => runAgent(dir, bin, `${tok} id1 ${t} ${max} ${b64(cmd)}\n`);
      assert.equal(await req('sekrit', 5, 100, 'echo out; echo err >&2; exit 7'), `R id1 7 4 4\n${b64('out\n')}\n${b64('err\n')}\n`);
      assert.equal(await req('sekrit', 5, 10, 'yes | head -c 5000'), `R id1 0 5000 0\n${b64('y\ny\ny\ny\ny\n')}\n\n`);
      const t0 = Date.now();
      const hung = await req('sekrit', 1, 10, 'sleep 37 & sleep 38');
      assert.match(hung, /^R id1 (124|143) 0 \d+\n/);
      assert.ok(Date.now() - t0 < 5000);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(commandLines().filter((c) => /^sleep 3[78]$/.test(c)), [], 'the whole process group is gone');
      assert.equal(await req('wrong', 5, 10, 'echo x'), 'E denied\n');
      assert.equal(await req('', 5, 10, 'echo x'), 'E denied\n');
      assert.equal(await req('sekrit', 'x' as unknown as number, 10, 'echo x'), 'E bad request\n');
      fs.rmSync(dir, { recursive: true, force: true });
      if (bin) fs.rmSync(bin, { recursive: true, force: true });
    });
  }
});
