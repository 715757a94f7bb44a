import assert from 'node:assert/strict';
import YAML from 'yaml';
import { AGENT_PROGRAM, AGENT_TOKEN_FILE } from '../../src/backends/guest/agentProtocol.js';
import { AGENT_SCRIPT } from '../../src/backends/guest/agentScript.js';
import { AGENT_TCP_PORT, etcHosts, noCloudSeed, type SeedInput } from '../../src/backends/guest/cloudInit.js';

interface CloudConfig {
  hostname: string;
  users: Array<{ name: string; shell: string; lock_passwd: boolean }>;
  chpasswd: { expire: boolean; users: Array<{ name: string; password: string; type: string }> };
  ssh_pwauth: boolean;
  write_files: Array<{ path: string; content: string; permissions?: string }>;
  runcmd: string[][];
}

const base: SeedInput = {
  instanceId: 'lab-abc-alpha-1',
  hostname: 'alpha',
  user: { name: 'student', password: `p"w'd: #x` },
  agent: { token: 'tok-1', transport: 'virtio-serial' },
  hosts: [{ name: 'alpha', ip: '10.10.0.11/24' }, { name: 'beta', ip: '10.10.0.12/24' }],
  network: { lab: { mac: '52:54:00:0a:00:0b', address: '10.10.0.11/24' }, egress: { mac: '52:54:01:0a:00:0b' } },
};

describe('cloud-init NoCloud seed (one generator for both backends)', () => {
  it('gives the user with its password, the hostname, /etc/hosts of the lab, and the agent on the virtio-serial port', () => {
    const seed = noCloudSeed(base);
    assert.deepEqual(YAML.parse(seed.metaData), { 'instance-id': 'lab-abc-alpha-1', 'local-hostname': 'alpha' });
    assert.match(seed.userData, /^#cloud-config\n/);
    const cc = YAML.parse(seed.userData) as CloudConfig;
    assert.equal(cc.hostname, 'alpha');
    assert.deepEqual(cc.users, [{ name: 'student', shell: '/bin/bash', lock_passwd: false }]);
    assert.deepEqual(cc.chpasswd, { expire: false, users: [{ name: 'student', password: `p"w'd: #x`, type: 'text' }] }, 'a password with YAML specials survives');
    assert.equal(cc.ssh_pwauth, true);
    const files = Object.fromEntries(cc.write_files.map((f) => [f.path, f]));
    assert.equal(files[AGENT_TOKEN_FILE]?.content, 'tok-1');
    assert.equal(files[AGENT_TOKEN_FILE]?.permissions, '0600');
    assert.equal(files[AGENT_PROGRAM]?.content, AGENT_SCRIPT, 'the one agent script');
    assert.match(files['/etc/systemd/system/lab-agent-port.service']?.content ?? '', /ExecStart=\/usr\/local\/sbin\/lab-agent port/);
    assert.equal(files['/etc/hosts']?.content, etcHosts('alpha', base.hosts!));
    assert.match(files['/etc/hosts']!.content, /^10\.10\.0\.12 beta$/m);
    const cmds = cc.runcmd.map((c) => c.join(' '));
    assert.ok(cmds.some((c) => c.includes('blackhole 10.0.2.2/32')), 'the host behind the internet NIC is unreachable');
    assert.match(cmds.at(-1) ?? '', /lab-guest: ready/);
    assert.equal(cmds.at(-2), 'sync', 'the agent\'s unit is enabled on disk before the ready line');
    assert.deepEqual(YAML.parse(seed.networkConfig ?? ''), {
      version: 1,
      config: [
        { type: 'physical', name: 'eth0', mac_address: '52:54:00:0a:00:0b', subnets: [{ type: 'static', address: '10.10.0.11/24' }] },
        { type: 'physical', name: 'eth1', mac_address: '52:54:01:0a:00:0b', subnets: [{ type: 'dhcp' }] },
      ],
    });
  });

  it('reads the same in YAML 1.1, as cloud-init parses it: a MAC of digits only, a hostname or password like no/on/12:30 stay strings', () => {
    const seed = noCloudSeed({ ...base, hostname: 'no', user: { name: 'student', password: '12:30' }, hosts: [{ name: 'on', ip: '10.10.0.11/24' }], network: { lab: { mac: '52:54:00:12:34:11', address: '10.10.0.11/24' } } });
    const v11 = { version: '1.1' } as const;
    assert.deepEqual(YAML.parse(seed.metaData, v11), { 'instance-id': 'lab-abc-alpha-1', 'local-hostname': 'no' });
    const cc = YAML.parse(seed.userData, v11) as CloudConfig;
    assert.equal(cc.hostname, 'no');
    assert.equal(cc.chpasswd.users[0]?.password, '12:30');
    assert.deepEqual(YAML.parse(seed.networkConfig ?? '', v11), {
      version: 1,
      config: [{ type: 'physical', name: 'eth0', mac_address: '52:54:00:12:34:11', subnets: [{ type: 'static', address: '10.10.0.11/24' }] }],
    });
    assert.equal(YAML.parse('mac: 52:54:00:12:34:11', v11).mac, 41135085251, 'unquoted, YAML 1.1 reads a base-60 number');
  });

  it('listens on TCP for KubeVirt, leaves the network to DHCP, and keeps the lab\'s own user data byte for byte in a multipart', () => {
    const lab = '#cloud-config\npackages: [htop]\nruncmd:\n  - echo lab\n';
    const seed = noCloudSeed({ ...base, agent: { token: 't', transport: 'tcp' }, network: undefined, labUserData: lab });
    assert.equal(seed.networkConfig, undefined);
    assert.match(seed.userData, /^Content-Type: multipart\/mixed; boundary="(==lab-orchestrator-[0-9a-f]{16}==)"/);
    const parts = seed.userData.split(/--==lab-orchestrator-[0-9a-f]{16}==/).slice(1, -1)
      .map((p) => Buffer.from(p.split('\n\n')[1]!.replace(/\s+/g, ''), 'base64').toString('utf8'));
    assert.equal(parts[0], lab);
    const ours = YAML.parse(parts[1]!) as CloudConfig;
    assert.ok(ours.write_files.some((f) => f.path === '/etc/systemd/system/lab-agent.socket' && f.content.includes(`ListenStream=${AGENT_TCP_PORT}\nAccept=yes`)));
    assert.ok(!ours.runcmd.some((c) => c.join(' ').includes('blackhole')));
  });

  it('refuses a hostname that is not a DNS label', () => {
    assert.throws(() => noCloudSeed({ ...base, hostname: 'a;b' }), /not a DNS label/);
  });
});
