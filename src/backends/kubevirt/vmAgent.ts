/**
 * The check agent on KubeVirt VMs, through the shared guest pieces (../guest/): the machine's
 * cloud-init user data comes from the one NoCloud generator both backends use (user, password,
 * hostname, the agent listening on TCP AGENT_TCP_PORT, the lab's own user data kept as a part),
 * and `exec` speaks the one agent protocol through the VMI `portforward` subresource (a websocket
 * of raw TCP bytes, subprotocol plain.kubevirt.io, authorised as `get
 * virtualmachineinstances/portforward`) — never the serial console or the display.
 *
 * The token: generated when the machine's Secret is first created, kept in it (AGENT_TOKEN_KEY)
 * and in the guest as a root-only file. KubeVirt writes meta-data itself (instance-id from the VM's
 * stable firmware UUID, local-hostname) and the network is the pod network's DHCP, so only
 * user-data goes into the Secret.
 */
import type { ExecOptions, ExecResult, MachineSpec } from '../types.js';
import { setTimeout as delay } from 'node:timers/promises';
import { NotFound } from '../../errors.js';
import { AGENT_GRACE_MS, AgentSilent, exchange, guestTimeoutSeconds, newAgentToken } from '../guest/agentProtocol.js';
import { AGENT_TCP_PORT, noCloudSeed } from '../guest/cloudInit.js';
import type { KubeClient } from './client.js';
import { MACHINE_LABEL, secretName, type K8sObject } from './manifests.js';

/** Secret key holding the agent token (the Secret also carries the user data that installs it). */
export const AGENT_TOKEN_KEY = 'agenttoken';
export { AGENT_TCP_PORT };

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/**
 * A machine Secret as planned (manifests.ts machineSecret) with a fresh agent token and the
 * generated user data; any other object unchanged. Provisioning again keeps the first Secret
 * (create answers "exists"), so a machine's token never changes while its lab lives.
 */
export function withAgent(obj: K8sObject, machines: MachineSpec[]): K8sObject {
  const data = obj.kind === 'Secret' ? (obj as K8sObject & { data?: Record<string, string> }).data : undefined;
  const m = machines.find((x) => x.name === obj.metadata.labels?.[MACHINE_LABEL] && secretName(x) === obj.metadata.name);
  if (!data || !m || data[AGENT_TOKEN_KEY] !== undefined) return obj;
  const token = newAgentToken();
  const seed = noCloudSeed({
    instanceId: m.name, // unused: KubeVirt writes meta-data itself
    hostname: m.name,
    ...(m.credentials ? { user: { name: m.credentials.username, password: m.credentials.password } } : {}),
    agent: { token, transport: 'tcp' },
    ...(m.userData ? { labUserData: m.userData } : {}),
  });
  return { ...obj, data: { ...data, userdata: b64(seed.userData), [AGENT_TOKEN_KEY]: b64(token) } } as K8sObject;
}

export interface VmExecTarget {
  client: KubeClient;
  /** Base URL of /apis/subresources.kubevirt.io (the API server on a real cluster). */
  subresourceUrl: string;
  namespace: string;
  machine: string;
}

async function agentToken(t: VmExecTarget): Promise<string> {
  const secret = await t.client.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${t.namespace}/secrets/${secretName({ name: t.machine } as MachineSpec)}`);
  const token = secret?.data?.[AGENT_TOKEN_KEY];
  if (!token) throw new NotFound(`no check agent token for ${t.namespace}/${t.machine}`, { publicMessage: 'Automatic checks are not available on this machine (it was created without the check agent).' });
  return Buffer.from(token, 'base64').toString('utf8');
}

/**
 * Run a command through the agent, one connection per request. While the guest still boots (the
 * forwarded connection closes without a byte) it tries again until the check's own timeout.
 */
export async function execInVm(t: VmExecTarget, command: string, opts: ExecOptions): Promise<ExecResult> {
  const started = Date.now();
  const deadline = started + guestTimeoutSeconds(opts.timeoutMs) * 1000 + AGENT_GRACE_MS;
  const token = await agentToken(t);
  const url = `${t.subresourceUrl.replace(/^http/, 'ws')}/apis/subresources.kubevirt.io/v1/namespaces/${t.namespace}/virtualmachineinstances/${encodeURIComponent(t.machine)}/portforward/${AGENT_TCP_PORT}/tcp`;
  for (let wait = 250; ; wait = Math.min(2000, wait * 2)) {
    const { stream } = await t.client.websocket(url, ['plain.kubevirt.io'], 'get');
    try {
      return await exchange(stream, { token, command, timeoutMs: opts.timeoutMs, maxOutputBytes: opts.maxOutputBytes, ...(opts.env ? { env: opts.env } : {}) }, { deadline, where: `${t.namespace}/${t.machine}` });
    } catch (err) {
      if (!(err instanceof AgentSilent) || Date.now() + wait >= started + opts.timeoutMs) throw err;
      await delay(wait);
    }
  }
}
