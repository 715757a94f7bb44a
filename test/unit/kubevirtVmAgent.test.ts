import assert from 'node:assert/strict';
import YAML from 'yaml';
import { AGENT_PROGRAM, AGENT_TOKEN_FILE } from '../../src/backends/guest/agentProtocol.js';
import { AGENT_TCP_PORT, AGENT_TOKEN_KEY, withAgent } from '../../src/backends/kubevirt/vmAgent.js';
import type { K8sObject } from '../../src/backends/kubevirt/manifests.js';
import type { MachineSpec } from '../../src/backends/types.js';
import { userDataLogin, userDataParts, userDataScript } from '../support/kubevirt-standin/cloudInit.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('KubeVirt check agent (the shared cloud-init generator in the machine Secret)', () => {
  const lab = '#cloud-config\nruncmd:\n  - echo lab\n';
  const box: MachineSpec = { name: 'box', kind: 'vm', image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console'], credentials: { username: 'student', password: 'p w' }, userData: lab };
  const secret: K8sObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'machine-box', namespace: 'ns', labels: { 'lab-orchestrator/machine': 'box' } }, data: { userdata: b64(lab), password: b64('p w') } };

  it('puts a fresh token and the generated user data in a machine Secret once, and leaves other objects alone', () => {
    const a = withAgent(secret, [box]) as K8sObject & { data: Record<string, string> };
    const b = withAgent(secret, [box]) as K8sObject & { data: Record<string, string> };
    assert.match(unb64(a.data[AGENT_TOKEN_KEY]!), /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(a.data[AGENT_TOKEN_KEY], b.data[AGENT_TOKEN_KEY], 'random per machine');
    assert.equal(a.data.password, b64('p w'));
    assert.equal(withAgent(a, [box]), a, 'already has a token');
    const svc: K8sObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'lab' } };
    assert.equal(withAgent(svc, [box]), svc);
  });

  it('keeps the lab user data byte for byte and adds the login and the agent on TCP, which the stand-in (like cloud-init) applies', () => {
    const a = withAgent(secret, [box]) as K8sObject & { data: Record<string, string> };
    const ud = unb64(a.data.userdata!);
    const parts = userDataParts(ud);
    assert.deepEqual(parts.map((p) => p.type), ['cloud-config', 'cloud-config']);
    assert.equal(parts[0]?.body, lab);
    const ours = YAML.parse(parts[1]!.body) as { hostname: string; write_files: Array<{ path: string; content: string }> };
    assert.equal(ours.hostname, 'box');
    const token = unb64(a.data[AGENT_TOKEN_KEY]!);
    assert.equal(ours.write_files.find((f) => f.path === AGENT_TOKEN_FILE)?.content, token);
    assert.ok(ours.write_files.some((f) => f.path === AGENT_PROGRAM));
    assert.match(ours.write_files.find((f) => f.path.endsWith('lab-agent.socket'))?.content ?? '', new RegExp(`ListenStream=${AGENT_TCP_PORT}`));
    assert.deepEqual(userDataLogin(ud), { hostname: 'box', user: 'student', password: 'p w' });
    const script = userDataScript(ud)!;
    assert.ok(script.indexOf('echo lab') > 0 && script.indexOf('echo lab') < script.indexOf(`nc -ll -p ${AGENT_TCP_PORT}`), 'the lab\'s runcmd first, then ours');
  });
});
