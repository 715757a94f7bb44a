/**
 * The one cloud-init NoCloud generator of both backends: meta-data, user-data and network-config
 * for a Debian guest (cloud-init 22.4). The QEMU backend writes them to a small 'cidata' disk; the
 * KubeVirt backend puts user-data and network-config in the VM's cloudInitNoCloud volume (KubeVirt
 * writes meta-data itself). Pure.
 *
 * What the guest gets:
 * - hostname, and /etc/hosts naming every machine of the lab at the address the others reach it at;
 * - the lab user (bash, password login on consoles and SSH) with its generated password, no sudo
 *   (the lab's own user data can add it);
 * - the check agent (lab-agent.sh) with its per-machine token, listening on the backend's transport:
 *   the virtio-serial port "lab.agent" (QEMU) or TCP port AGENT_TCP_PORT (KubeVirt, reached through
 *   the VMI portforward subresource), then "lab-guest: ready <hostname>" on the serial console;
 * - with `network`: the lab NIC (found by MAC) at its static address, and the internet NIC on DHCP
 *   with the host's address behind it blackholed (QEMU user networking maps it to the host's
 *   loopback, where the tool and its database listen);
 * - the lab's own user data, unchanged, as the first part of a MIME multipart message (cloud-init's
 *   way to combine parts); ours merges its lists (write_files, runcmd) into the lab's.
 */
import crypto from 'node:crypto';
import YAML from 'yaml';
import { BadRequest } from '../../errors.js';
import { AGENT_PORT_NAME, AGENT_PROGRAM, AGENT_TOKEN_FILE } from './agentProtocol.js';
import { AGENT_SCRIPT } from './agentScript.js';

/** A privileged port: the unprivileged lab user cannot put a fake agent there. */
export const AGENT_TCP_PORT = 1022;
/** What the guest prints on its serial console once cloud-init has set it up (the agent listens). */
export const READY_LINE = 'lab-guest: ready';

export interface SeedFile {
  path: string;
  content: string;
  permissions?: string;
  owner?: string;
}

export interface SeedInput {
  /** meta-data instance-id: a new id makes cloud-init apply everything again at the next boot. */
  instanceId: string;
  hostname: string;
  user?: { name: string; password: string };
  agent: { token: string; transport: 'virtio-serial' | 'tcp' };
  /** Every machine of the lab (this one included) for /etc/hosts, at the addresses the others reach them at. */
  hosts?: Array<{ name: string; ip: string }>;
  /** Static lab network (QEMU): NICs found by MAC and named eth0 (lab) and eth1 (internet). */
  network?: { lab: { mac: string; address: string }; egress?: { mac: string } };
  writeFiles?: SeedFile[];
  /** The lab's own user data (templated), kept byte for byte. */
  labUserData?: string;
}

export interface NoCloudSeed {
  metaData: string;
  userData: string;
  /** Absent: cloud-init's default (DHCP on the first NIC), as on KubeVirt's pod network. */
  networkConfig?: string;
}

const PORT_UNIT = `[Unit]
Description=Lab Orchestrator check agent (virtio-serial port ${AGENT_PORT_NAME})
[Service]
ExecStart=${AGENT_PROGRAM} port
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
`;
const SOCKET_UNIT = `[Unit]
Description=Lab Orchestrator check agent
[Socket]
ListenStream=${AGENT_TCP_PORT}
Accept=yes
[Install]
WantedBy=sockets.target
`;
const SOCKET_SERVICE = `[Unit]
Description=Lab Orchestrator check agent (one connection)
[Service]
ExecStart=${AGENT_PROGRAM}
StandardInput=socket
StandardOutput=socket
StandardError=journal
`;

function agentStart(transport: SeedInput['agent']['transport']): string {
  const unit = transport === 'tcp' ? 'lab-agent.socket' : 'lab-agent-port.service';
  const fallback = transport === 'tcp' ? `nc -ll -p ${AGENT_TCP_PORT} -e ${AGENT_PROGRAM}` : `${AGENT_PROGRAM} port`;
  return `if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now ${unit}; else (${fallback} </dev/null >/dev/null 2>&1 &); fi`;
}

function agentFiles(a: SeedInput['agent']): SeedFile[] {
  const units: SeedFile[] = a.transport === 'tcp'
    ? [
        { path: '/etc/systemd/system/lab-agent.socket', permissions: '0644', content: SOCKET_UNIT },
        { path: '/etc/systemd/system/lab-agent@.service', permissions: '0644', content: SOCKET_SERVICE },
      ]
    : [{ path: '/etc/systemd/system/lab-agent-port.service', permissions: '0644', content: PORT_UNIT }];
  return [
    { path: AGENT_TOKEN_FILE, permissions: '0600', owner: 'root:root', content: a.token },
    { path: AGENT_PROGRAM, permissions: '0700', owner: 'root:root', content: AGENT_SCRIPT },
    ...units,
  ];
}

/** /etc/hosts: localhost, this machine, then every machine of the lab. */
export function etcHosts(hostname: string, hosts: Array<{ name: string; ip: string }>): string {
  const lines = ['127.0.0.1 localhost', ...(hosts.some((h) => h.name === hostname) ? [] : [`127.0.1.1 ${hostname}`])];
  for (const h of hosts) lines.push(`${h.ip.split('/')[0] ?? h.ip} ${h.name}`);
  lines.push('::1 localhost ip6-localhost ip6-loopback');
  return `${lines.join('\n')}\n`;
}

/**
 * cloud-init reads YAML 1.1 (PyYAML), where a plain 52:54:00:12:34:11 is a base-60 integer and
 * no, on, y are booleans: everything we write is quoted wherever YAML 1.1 would read it otherwise.
 */
const yaml11 = (doc: unknown, o: { lineWidth?: number } = {}): string => YAML.stringify(doc, { version: '1.1', ...o });

/** Our #cloud-config part. */
export function labCloudConfig(i: SeedInput): string {
  const files: SeedFile[] = [...agentFiles(i.agent)];
  if (i.hosts?.length) files.push({ path: '/etc/hosts', permissions: '0644', content: etcHosts(i.hostname, i.hosts) });
  files.push(...(i.writeFiles ?? []));
  const runcmd: unknown[] = [];
  if (i.network?.egress) runcmd.push(['sh', '-c', 'ip route replace blackhole 10.0.2.2/32']);
  runcmd.push(['sh', '-c', agentStart(i.agent.transport)]);
  // what the first boot wrote (the agent's unit enabled just above) reaches the disk before the lab
  // is ready: a lab stopped at once may be powered off hard, and would then boot without its agent
  runcmd.push(['sync']);
  runcmd.push(['sh', '-c', `echo "${READY_LINE} $(hostname)" >/dev/ttyS0 2>/dev/null || true`]);
  const doc: Record<string, unknown> = {
    merge_how: [
      { name: 'list', settings: ['append'] },
      { name: 'dict', settings: ['no_replace', 'recurse_list'] },
    ],
    hostname: i.hostname,
    preserve_hostname: false,
    manage_etc_hosts: false,
    ssh_deletekeys: true,
  };
  if (i.user) {
    doc.users = [{ name: i.user.name, shell: '/bin/bash', lock_passwd: false }];
    doc.chpasswd = { expire: false, users: [{ name: i.user.name, password: i.user.password, type: 'text' }] };
    doc.ssh_pwauth = true;
  }
  doc.write_files = files.map((f) => ({ path: f.path, content: f.content, ...(f.permissions ? { permissions: f.permissions } : {}), ...(f.owner ? { owner: f.owner } : {}) }));
  doc.runcmd = runcmd;
  return `#cloud-config\n${yaml11(doc, { lineWidth: 0 })}`;
}

function partType(data: string): string {
  if (data.startsWith('#cloud-config')) return 'text/cloud-config';
  if (data.startsWith('#!')) return 'text/x-shellscript';
  return 'text/plain'; // cloud-init guesses from the first line (#include, #cloud-boothook, …)
}

/** The lab's user data and ours as one multipart message (ours alone when the lab has none). */
export function combineUserData(labUserData: string | undefined, ours: string): string {
  if (!labUserData?.trim()) return ours;
  const boundary = `==lab-orchestrator-${crypto.randomBytes(8).toString('hex')}==`;
  const part = (data: string) =>
    [`--${boundary}`, `Content-Type: ${partType(data)}; charset="utf-8"`, 'MIME-Version: 1.0', 'Content-Transfer-Encoding: base64', '', Buffer.from(data, 'utf8').toString('base64').replace(/.{76}/g, '$&\n'), ''].join('\n');
  return [`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0', '', part(labUserData), part(ours), `--${boundary}--`, ''].join('\n');
}

/** network-config version 1: NICs by MAC, renamed eth0 (lab) and eth1 (internet). */
export function networkConfig(n: NonNullable<SeedInput['network']>): string {
  const config: unknown[] = [{ type: 'physical', name: 'eth0', mac_address: n.lab.mac, subnets: [{ type: 'static', address: n.lab.address }] }];
  if (n.egress) config.push({ type: 'physical', name: 'eth1', mac_address: n.egress.mac, subnets: [{ type: 'dhcp' }] });
  return yaml11({ version: 1, config });
}

export function noCloudSeed(i: SeedInput): NoCloudSeed {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(i.hostname)) throw new BadRequest(`hostname ${JSON.stringify(i.hostname)} is not a DNS label`);
  return {
    metaData: yaml11({ 'instance-id': i.instanceId, 'local-hostname': i.hostname }),
    userData: combineUserData(i.labUserData, labCloudConfig(i)),
    ...(i.network ? { networkConfig: networkConfig(i.network) } : {}),
  };
}
