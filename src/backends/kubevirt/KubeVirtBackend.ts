/**
 * LabBackend on Kubernetes + KubeVirt: one namespace per lab generation (handle.name).
 *
 * provision: the images' golden disks checked (nothing is created for a lab whose image is
 * missing) → namespace → RoleBinding (the tool's per-lab role) → in parallel policies, quota, limit
 * range, secrets and headless service → once the policies and quota exist, the VMs created with
 * runStrategy Always (KubeVirt clones each VM's root disk, then boots it) and the container pods
 * → wait for every VMI Running+Ready (shared VMI informer) and every pod Running; a clone
 * that cannot succeed (quota, failed clone) fails the lab with its reason. Each step is
 * idempotent, so a second call (a restart after a crash at any step) converges without duplicates.
 *
 * Requests per lab on the happy path: one per object (+ retries; a VM left halted by an earlier
 * attempt is patched to run). Progress and status come from two cluster-wide informers (managed
 * namespaces, managed VMIs), not polling; the clones are read only while a VM has no VMI yet.
 */
import { setMaxListeners } from 'node:events';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { BackendFailure, Conflict, NotFound } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { BackendCapacity, BackendLabSpec, ChannelKind, ExecOptions, ExecResult, LabBackend, LabHandle, MachineAddress, MachineStatus, Progress } from '../types.js';
import { KubeApiError, objectPath, type KubeClient } from './client.js';
import { Informer } from './Informer.js';
import { CapacityLedger, type KubeVirtLimits } from './capacity.js';
import { DriftWatch } from './DriftWatch.js';
import { canonical, cleanForCreate, handleOf, podStatus, vmiAddress, vmiStatus, type Pod, type Vm, type Vmi } from './objects.js';
import {
  INSTANCE_ANNOTATION,
  MACHINE_LABEL,
  MANAGED_BY_LABEL,
  MANAGER,
  SPEC_ANNOTATION,
  STOPPED_ANNOTATION,
  SUBDOMAIN,
  containerPod,
  guardObjects,
  networkPolicies,
  planLab,
  type BuildContext,
  type K8sObject,
} from './manifests.js';
import { execInPod, openPodTerminal } from './podExec.js';
import { execInVm, withAgent } from './vmAgent.js';
import { envFile } from '../guest/agentProtocol.js';
import { GoldenSeen, checkClones, checkGoldenImages, storedBytesByState } from './diskState.js';
import type { DiskOptions } from './disks.js';
import { thumbnailPng } from '../thumbnail.js';
import { consoleLogTail } from './consoleLog.js';

export interface KubeVirtBackendOptions {
  client: KubeClient;
  log: Logger;
  toolNamespace: string;
  toolServiceAccount: string;
  /** Excluded from internet egress; default: the API server host when it is an IP address. */
  apiServerCidrs?: string[];
  /** Base URL for /apis/subresources.kubevirt.io (default: the API server). */
  subresourceUrl?: string;
  bootTimeoutMs?: number;
  /** How long destroy() waits for the namespace to be gone. */
  destroyTimeoutMs?: number;
  /** 403s right after the RoleBinding (RBAC cache) or a new quota ("status unknown") are retried this long. */
  settleMs?: number;
  /** Golden disks and per-VM disks (default: image namespace `lab-images`, the default storage class, no per-lab ceiling). */
  disks?: Partial<DiskOptions>;
  /** Stored bytes by lab state are reported here on every scrape. */
  metrics?: Metrics;
  /** What the operator lets the tool run at once (default: no limit of its own). */
  limits?: KubeVirtLimits;
}

export const DEFAULT_IMAGE_NAMESPACE = 'lab-images';
/** Console history put in front of a new console connection (as the QEMU backend's). */
const CONSOLE_REPLAY_BYTES = 16 * 1024;
/** How long opening a console waits for that history before it opens without. */
const CONSOLE_LOG_TIMEOUT_MS = 3000;
/** A screenshot not answered by then fails (a thumbnail skips a refresh rather than holding its slot). */
const SCREENSHOT_TIMEOUT_MS = 10_000;

const SELECTOR = `${MANAGED_BY_LABEL}=${MANAGER}`;
const VMI_ALL = '/apis/kubevirt.io/v1/virtualmachineinstances';
const vmPath = (ns: string, name?: string) => `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines${name ? `/${name}` : ''}`;
const podPath = (ns: string, name?: string) => `/api/v1/namespaces/${ns}/pods${name ? `/${name}` : ''}`;

export class KubeVirtBackend implements LabBackend {
  readonly kind = 'kubevirt' as const;
  readonly namespaces: Informer;
  readonly vmis: Informer<Vmi>;
  readonly drift: DriftWatch;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly subresourceUrl: string;
  private readonly disks: DiskOptions;
  /** Golden disks found ready, until when (diskState.ts). */
  private readonly goldenSeen = new GoldenSeen();
  private readonly ledger: CapacityLedger;

  constructor(private readonly o: KubeVirtBackendOptions) {
    this.disks = { imageNamespace: DEFAULT_IMAGE_NAMESPACE, ...o.disks };
    this.client = o.client;
    this.log = o.log.child({ backend: 'kubevirt' });
    this.subresourceUrl = (o.subresourceUrl ?? o.client.server).replace(/\/+$/, '');
    this.namespaces = new Informer(o.client, '/api/v1/namespaces', SELECTOR, this.log).start();
    this.vmis = new Informer<Vmi>(o.client, VMI_ALL, SELECTOR, this.log).start();
    this.ledger = new CapacityLedger(o.limits ?? {}, () => this.namespaces.items().map((ns) => ({
      name: ns.metadata.name, spec: this.storedSpec(ns), stopped: ns.metadata.annotations?.[STOPPED_ANNOTATION] === 'true',
    })));
    this.drift = new DriftWatch({
      client: o.client,
      log: this.log,
      selector: SELECTOR,
      namespaces: this.namespaces,
      handleOf,
      expectedPolicy: (ns, name) => {
        const h = handleOf(ns);
        const spec = this.storedSpec(ns);
        return h && spec ? networkPolicies(this.ctx(spec, h)).find((p) => p.metadata.name === name) : undefined;
      },
      repair: (h) => this.repair(h),
      canonical,
    });
    o.metrics?.onCollect(async () => {
      const bytes = await storedBytesByState(this.client, SELECTOR, this.namespaces.items());
      for (const [state, n] of Object.entries(bytes)) o.metrics?.labStorageBytes.set({ backend: 'kubevirt', state }, n);
    });
  }

  private ctx(spec: BackendLabSpec, handle: LabHandle): BuildContext {
    const host = new URL(this.client.server).hostname.replace(/^\[|\]$/g, '');
    const ipHost = /^[\d.]+$/.test(host) ? [`${host}/32`] : host.includes(':') ? [`${host}/128`] : [];
    return { handle, spec, toolNamespace: this.o.toolNamespace, toolServiceAccount: this.o.toolServiceAccount, apiServerCidrs: this.o.apiServerCidrs ?? ipHost, disks: this.disks };
  }

  /** Create in a lab namespace, riding out the short 403 windows after the RoleBinding and a new quota. */
  private async createSettled(obj: K8sObject, signal?: AbortSignal): Promise<void> {
    await this.createSettledResult(obj, signal);
  }

  private async createSettledResult(obj: K8sObject, signal?: AbortSignal): Promise<'created' | 'exists'> {
    const until = Date.now() + (this.o.settleMs ?? 15_000);
    for (let wait = 50; ; wait = Math.min(1000, wait * 2)) {
      try {
        return await this.client.create(obj, signal);
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.status !== 403 || Date.now() > until || /being terminated/.test(err.message)) throw err;
        await delay(wait, undefined, { signal });
      }
    }
  }

  capacity(): BackendCapacity {
    return this.ledger.current();
  }

  async provision(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    this.ledger.admit(handle.name, spec);
    try {
      await this.provisionAdmitted(spec, handle, onProgress, signal);
    } finally {
      this.ledger.release(handle.name);
    }
  }

  private async provisionAdmitted(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    const plan = planLab(this.ctx(spec, handle));
    const ns = handle.name;
    const log = this.log.child({ instance: handle.instanceId, ns });
    if (signal) setMaxListeners(0, signal); // one listener per in-flight request
    await checkGoldenImages(this.client, spec.machines.filter((m) => m.kind === 'vm'), this.disks.imageNamespace, signal, this.goldenSeen);
    onProgress({ phase: 'network', percent: 5, message: 'Creating the lab network' });
    const existing = (await this.client.create(plan.namespace, signal)) === 'exists' ? await this.client.get(objectPath(plan.namespace, ns), signal) : undefined;
    if (existing?.metadata.deletionTimestamp) throw new BackendFailure(`namespace ${ns} is terminating`, { publicMessage: 'The previous lab is still being removed; try again in a minute.' });
    await this.client.create(plan.roleBinding, signal);
    onProgress({ phase: 'network', percent: 15, message: 'Isolating the lab network' });
    // the API server authorizes us in the namespace only once it sees the RoleBinding: one create
    // waits that out alone, so the others are not all refused and repeated in the meantime
    const [firstGuard, ...otherGuards] = plan.guards;
    if (firstGuard) await this.createSettled(firstGuard, signal);
    const guards = Promise.all(otherGuards.map((o) => this.createSettled(o, signal)));
    const setup = Promise.all(plan.setup.map((o) => this.createSettled(withAgent(o, spec.machines), signal)));
    setup.catch(() => undefined); // awaited below; never an unhandled rejection when the guards fail first
    await guards;
    onProgress({ phase: 'disks', percent: 35, message: 'Preparing the machines' });
    await setup;
    // the VMs are created running, once the guards and the secrets they reference exist
    await Promise.all([
      ...plan.vms.map(async (vm) => {
        // a VM an earlier attempt left halted is set to run
        if ((await this.createSettledResult(vm, signal)) === 'exists') await this.client.patch(vmPath(ns, vm.metadata.name), { spec: { runStrategy: 'Always' } }, signal);
      }),
      ...plan.pods.map((p) => this.createSettled(p, signal)),
    ]);
    onProgress({ phase: 'disks', percent: 40, message: 'Cloning the machines’ disks' });
    log.debug({ vms: plan.vms.length, pods: plan.pods.length }, 'kubevirt.machines_started');
    await this.waitBooted(handle, spec, onProgress, signal);
    onProgress({ phase: 'machines-booted', percent: 100, message: 'All machines are up' });
  }

  private async waitBooted(handle: LabHandle, spec: BackendLabSpec, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void> {
    const ns = handle.name;
    const vmSpecs = spec.machines.filter((m) => m.kind === 'vm');
    const vms = vmSpecs.map((m) => m.name);
    const pods = spec.machines.filter((m) => m.kind === 'container').map((m) => m.name);
    const total = vms.length + pods.length;
    const deadline = Date.now() + (this.o.bootTimeoutMs ?? 600_000);
    await this.vmis.synced();
    let lastBooted = -1;
    let lastDisks = -1;
    for (;;) {
      signal?.throwIfAborted();
      const withoutVmi = vmSpecs.filter((m) => !this.vmis.get(ns, m.name));
      // a VMI exists only once its disks are cloned: until then, the clones say how far along (or
      // why not) — asked from the second pass on (a clone just requested has nothing to say yet)
      if (withoutVmi.length > 0 && lastBooted !== -1) {
        const disks = await checkClones(this.client, ns, withoutVmi, signal);
        if (disks.ready !== lastDisks && disks.ready < disks.total) {
          lastDisks = disks.ready;
          onProgress({ phase: 'disks', percent: 40 + Math.floor((10 * disks.ready) / disks.total), message: `${disks.ready} of ${disks.total} disks cloned` });
        }
      }
      let booted = 0;
      for (const name of vms) {
        const st = vmiStatus(this.vmis.get(ns, name));
        if (st.phase === 'failed') throw new BackendFailure(`VM ${name} failed: ${st.reason}`, { publicMessage: `Machine ${name} failed to start: ${st.reason}` });
        if (st.phase === 'running') booted++;
      }
      if (pods.length > 0) {
        const list = await this.client.request<{ items: Pod[] }>('GET', podPath(ns), { signal });
        for (const p of list.items) if (pods.includes(p.metadata.name) && podStatus(p).phase === 'running') booted++;
      }
      if (booted !== lastBooted) {
        lastBooted = booted;
        onProgress({ phase: 'machines-starting', percent: 50 + Math.floor((45 * booted) / Math.max(1, total)), message: `${booted} of ${total} machines booted`, booted: { done: booted, total } });
      }
      if (booted === total) return;
      if (Date.now() > deadline) throw new BackendFailure(`lab ${ns} did not boot in time`, { publicMessage: 'The machines did not start in time.' });
      // wake on any VMI change in this namespace, or poll pods every 2 s
      await new Promise<void>((resolve) => {
        const off = this.vmis.on((_t, o) => {
          if (o.metadata.namespace === ns) done();
        });
        const t = setTimeout(done, pods.length > 0 || withoutVmi.length > 0 ? 2000 : 5000);
        const onAbort = () => done();
        signal?.addEventListener('abort', onAbort, { once: true });
        function done() {
          off();
          clearTimeout(t);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      });
    }
  }

  /** The namespace if it exists and is not terminating (informer cache, or the API before the first sync). */
  private async liveNamespace(handle: LabHandle): Promise<K8sObject | undefined> {
    const cached = this.namespaces.get(undefined, handle.name);
    const ns = cached ?? (await this.client.get(`/api/v1/namespaces/${handle.name}`));
    if (!ns || ns.metadata.deletionTimestamp || ns.metadata.annotations?.[INSTANCE_ANNOTATION] !== handle.instanceId) return undefined;
    return ns;
  }

  private storedSpec(ns: K8sObject): BackendLabSpec | undefined {
    const raw = ns.metadata.annotations?.[SPEC_ANNOTATION];
    try {
      return raw ? (JSON.parse(raw) as BackendLabSpec) : undefined;
    } catch {
      this.log.warn({ ns: ns.metadata.name }, 'kubevirt.spec_annotation_unreadable');
      return undefined;
    }
  }

  async status(handle: LabHandle): Promise<Record<string, MachineStatus>> {
    const ns = await this.liveNamespace(handle);
    const spec = ns && this.storedSpec(ns);
    if (!ns || !spec) {
      const out: Record<string, MachineStatus> = {};
      for (const v of this.vmis.items()) if (v.metadata.namespace === handle.name) out[v.metadata.name] = { phase: 'gone' };
      return out;
    }
    const out: Record<string, MachineStatus> = {};
    const vms = spec.machines.filter((m) => m.kind === 'vm');
    const withoutVmi = vms.filter((m) => !this.vmis.get(handle.name, m.name));
    const vmObjs = withoutVmi.length > 0 ? (await this.client.request<{ items: Vm[] }>('GET', vmPath(handle.name))).items : [];
    for (const m of vms) {
      const vmi = this.vmis.get(handle.name, m.name);
      if (vmi) out[m.name] = vmiStatus(vmi);
      else {
        const vm = vmObjs.find((v) => v.metadata.name === m.name);
        out[m.name] = !vm ? { phase: 'gone' } : vm.spec.runStrategy === 'Halted' ? { phase: 'stopped' } : { phase: 'pending' };
      }
    }
    const containers = spec.machines.filter((m) => m.kind === 'container');
    if (containers.length > 0) {
      const pods = (await this.client.request<{ items: Pod[] }>('GET', podPath(handle.name))).items;
      for (const m of containers) {
        const p = pods.find((x) => x.metadata.name === m.name);
        out[m.name] = p ? podStatus(p) : ns.metadata.annotations?.[STOPPED_ANNOTATION] === 'true' ? { phase: 'stopped' } : { phase: 'gone' };
      }
    }
    return out;
  }

  async openChannel(handle: LabHandle, machine: string, channel: ChannelKind): Promise<Duplex> {
    const ns = handle.name;
    const vmi = this.vmis.get(ns, machine);
    if (vmi) {
      const base = this.subresourceUrl.replace(/^http/, 'ws');
      const url = `${base}/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${encodeURIComponent(machine)}/${channel}`;
      const stream = (await this.client.websocket(url, ['plain.kubevirt.io'])).stream;
      if (channel === 'console') {
        // the console only carries output from now on: what the guest printed before (banner,
        // issue) comes from KubeVirt's serial console log, read after connecting (an overlap, never a gap)
        const recent = await this.consoleTail(ns, machine, vmi, CONSOLE_REPLAY_BYTES);
        if (recent.length && !stream.destroyed) stream.unshift(recent);
      }
      return stream;
    }
    if (channel === 'console') {
      const pod = await this.client.get(podPath(ns, machine));
      if (pod && pod.metadata.labels?.[MACHINE_LABEL] === machine) return openPodTerminal(this.client, ns, machine);
    }
    throw new NotFound(`no ${channel} for ${ns}/${machine}`, { publicMessage: `Machine ${machine} has no ${channel === 'vnc' ? 'desktop' : 'console'} right now.` });
  }

  /**
   * The recent console lines of a running VM (the teacher's glance at a lab nobody has a console
   * open to), from KubeVirt's serial console log; null without a VMI or when the log is unreadable.
   */
  async consoleHistory(handle: LabHandle, machine: string, maxBytes: number): Promise<Buffer | null> {
    const vmi = this.vmis.get(handle.name, machine);
    if (!vmi) return null;
    const tail = await this.consoleTail(handle.name, machine, vmi, maxBytes);
    return tail.length ? tail : null;
  }

  /** The console log's tail, or nothing (logged) when it cannot be read within CONSOLE_LOG_TIMEOUT_MS. */
  private async consoleTail(ns: string, machine: string, vmi: Vmi, maxBytes: number): Promise<Buffer> {
    const t0 = Date.now();
    try {
      const uid = vmi.metadata.uid;
      if (!uid) return Buffer.alloc(0);
      const tail = await consoleLogTail(this.client, ns, { uid, ...(vmi.status?.nodeName ? { nodeName: vmi.status.nodeName } : {}) }, maxBytes, AbortSignal.timeout(CONSOLE_LOG_TIMEOUT_MS));
      this.log.debug({ ns, machine, bytes: tail.length, ms: Date.now() - t0 }, 'kubevirt.console.history');
      return tail;
    } catch (err) {
      this.log.warn({ ns, machine, ms: Date.now() - t0, err: (err as Error).message }, 'kubevirt.console.history.unavailable');
      return Buffer.alloc(0);
    }
  }

  /**
   * The VMI's vnc/screenshot subresource, scaled to a thumbnail. From KubeVirt v1.7.0 it is libvirt's
   * screenshot of the display (virDomainScreenshot: a PNG, or a PPM from an older libvirt) and takes
   * no VNC connection; before v1.7.0 it went through the VM's VNC server, which serves one client, and
   * so would cut off a student's open desktop. `moveCursor=false`: the guest's screen is left as it is.
   */
  async screenshot(handle: LabHandle, machine: string): Promise<Buffer> {
    const vmi = this.vmis.get(handle.name, machine);
    if (!vmi) throw new Conflict(`no running VMI ${handle.name}/${machine}`, { publicMessage: `Machine ${machine} is not running` });
    const path = `/apis/subresources.kubevirt.io/v1/namespaces/${handle.name}/virtualmachineinstances/${encodeURIComponent(machine)}/vnc/screenshot`;
    let image: Buffer;
    try {
      image = await this.client.request<Buffer>('GET', path, { baseUrl: this.subresourceUrl, query: { moveCursor: 'false' }, binary: true, signal: AbortSignal.timeout(SCREENSHOT_TIMEOUT_MS) }, 'get');
    } catch (err) {
      // "No graphics devices are present." (a machine without a desktop) or not running (any more)
      if (err instanceof KubeApiError && err.status === 400) throw new NotFound(`${handle.name}/${machine}: ${err.message}`, { publicMessage: `Machine ${machine} has no screen to show.` });
      throw err;
    }
    return thumbnailPng(image);
  }

  async exec(handle: LabHandle, machine: string, command: string, opts: ExecOptions): Promise<ExecResult> {
    // VMs: the check agent in the guest through the VMI portforward subresource (vmAgent.ts)
    if (this.vmis.get(handle.name, machine)) return execInVm({ client: this.client, subresourceUrl: this.subresourceUrl, namespace: handle.name, machine }, command, opts);
    const pod = await this.client.get(podPath(handle.name, machine));
    if (!pod) throw new Conflict(`exec: machine ${machine} has no running VMI or pod in ${handle.name}`, { publicMessage: `Machine ${machine} is not running, so it cannot be checked.` });
    // containers: values as an env file of quoted exports before the command, never spliced into it
    return execInPod(this.client, handle.name, machine, opts.env ? `${envFile(opts.env)}${command}` : command, opts);
  }

  /**
   * Machines with a known address (running). VMs: the VMI's first interface address (the pod address, which the lab's other machines reach
   * under masquerade); containers: the pod IP. The name is the machine's record in the lab's
   * headless Service, `<machine>.lab`: the namespace is in every pod's DNS search path (and KubeVirt
   * adds `lab.<namespace>.svc…` to a VM's, so `<machine>` alone resolves from VMs too).
   */
  async addresses(handle: LabHandle): Promise<Record<string, MachineAddress>> {
    const ns = await this.liveNamespace(handle);
    const spec = ns && this.storedSpec(ns);
    if (!spec) throw new NotFound(`no lab ${handle.name}`, { publicMessage: 'This lab does not exist (any more).' });
    const host = (m: string) => `${m}.${SUBDOMAIN}`;
    const out: Record<string, MachineAddress> = {};
    const containers = spec.machines.filter((m) => m.kind === 'container');
    const pods = containers.length > 0 ? (await this.client.request<{ items: Pod[] }>('GET', podPath(handle.name))).items : [];
    for (const m of spec.machines) {
      const ip = m.kind === 'vm' ? vmiAddress(this.vmis.get(handle.name, m.name)) : (pods.find((p) => p.metadata.name === m.name)?.status as { podIP?: string } | undefined)?.podIP;
      if (ip) out[m.name] = { ip, host: host(m.name) };
    }
    return out;
  }

  private async runningVmis(handle: LabHandle): Promise<string[]> {
    await this.vmis.synced();
    return this.vmis.items().filter((v) => v.metadata.namespace === handle.name).map((v) => v.metadata.name);
  }

  private async subresource(handle: LabHandle, vmi: string, action: 'pause' | 'unpause'): Promise<void> {
    const path = `/apis/subresources.kubevirt.io/v1/namespaces/${handle.name}/virtualmachineinstances/${vmi}/${action}`;
    try {
      await this.subresourceRequest('PUT', path, {});
    } catch (err) {
      // already paused / not paused: the desired state holds
      if (err instanceof KubeApiError && err.status === 409) return;
      throw err;
    }
  }

  /** A request to the subresource API, which may live at its own base URL. */
  private subresourceRequest(method: string, path: string, body: unknown): Promise<unknown> {
    return this.client.request(method, path, { body, baseUrl: this.subresourceUrl }, 'update');
  }

  async pause(handle: LabHandle): Promise<void> {
    await Promise.all((await this.runningVmis(handle)).map((n) => this.subresource(handle, n, 'pause')));
  }

  async resume(handle: LabHandle): Promise<void> {
    await Promise.all((await this.runningVmis(handle)).map((n) => this.subresource(handle, n, 'unpause')));
  }

  private async setRunStrategy(handle: LabHandle, runStrategy: 'Always' | 'Halted'): Promise<void> {
    const vms = (await this.client.request<{ items: Vm[] }>('GET', vmPath(handle.name))).items;
    await Promise.all(vms.map((vm) => this.client.patch(vmPath(handle.name, vm.metadata.name), { spec: { runStrategy } })));
  }

  /**
   * VMs halted (disks kept), container pods deleted (a container keeps nothing; start() creates
   * them again from the stored spec). The namespace is annotated as stopped, so a missing pod
   * reads as 'stopped', not 'gone'.
   */
  async stop(handle: LabHandle): Promise<void> {
    const ns = await this.liveNamespace(handle);
    const spec = ns && this.storedSpec(ns);
    await this.client.patch(`/api/v1/namespaces/${handle.name}`, { metadata: { annotations: { [STOPPED_ANNOTATION]: 'true' } } });
    await Promise.all([
      this.setRunStrategy(handle, 'Halted'),
      ...(spec?.machines ?? []).filter((m) => m.kind === 'container').map((m) => this.client.remove(podPath(handle.name, m.name))),
    ]);
    // stopped means the guests are down: a start right after must not mistake a VMI still shutting down for a booted one
    await this.vmisGone(handle.name);
  }

  private async vmisGone(ns: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.vmis.synced();
    while (this.vmis.items().some((v) => v.metadata.namespace === ns)) {
      if (Date.now() > deadline) throw new BackendFailure(`VMIs of ${ns} still exist ${timeoutMs} ms after stop`, { publicMessage: 'Stopping the lab took too long.' });
      await delay(250);
    }
  }

  async start(handle: LabHandle): Promise<void> {
    const ns = await this.liveNamespace(handle);
    const spec = ns && this.storedSpec(ns);
    if (spec) this.ledger.admit(handle.name, spec); // a stopped lab held nothing: it must fit again
    try {
      await this.client.patch(`/api/v1/namespaces/${handle.name}`, { metadata: { annotations: { [STOPPED_ANNOTATION]: null } } });
    } finally {
      this.ledger.release(handle.name); // the namespace, no longer stopped, counts it from here
    }
    await Promise.all([
      this.setRunStrategy(handle, 'Always'),
      ...(spec?.machines ?? []).filter((m) => m.kind === 'container').map((m) => this.createSettled(containerPod(this.ctx(spec as BackendLabSpec, handle), m))),
    ]);
    if (spec) await this.waitBooted(handle, spec, () => undefined);
  }

  /**
   * Put machines back to their image. A containerDisk VM gets a new VMI (KubeVirt's restart: the
   * VM controller boots a fresh one from the image); a VM with DataVolumes and a container pod are
   * deleted and created again from their current definitions.
   */
  async reset(handle: LabHandle, machine?: string): Promise<void> {
    const ns = handle.name;
    const [vms, pods] = await Promise.all([
      this.client.request<{ items: Vm[] }>('GET', vmPath(ns)),
      this.client.request<{ items: Pod[] }>('GET', podPath(ns), { query: { labelSelector: SELECTOR } }),
    ]);
    const pick = <T extends K8sObject>(l: T[], apiVersion: string, kind: string) =>
      l.filter((o) => machine === undefined || o.metadata.name === machine).map((o) => ({ ...o, apiVersion, kind }));
    // KubeVirt's virt-launcher pods carry their VMI's labels (ours too): they go with their VM, never recreated as a container
    const containers = pods.items.filter((p) => p.metadata.labels?.['kubevirt.io'] !== 'virt-launcher');
    const targets: K8sObject[] = [...pick(vms.items, 'kubevirt.io/v1', 'VirtualMachine'), ...pick(containers, 'v1', 'Pod')];
    if (machine !== undefined && targets.length === 0) throw new NotFound(`no machine ${machine} in ${ns}`, { publicMessage: `There is no machine ${machine}.` });
    await Promise.all(
      targets.map(async (obj) => {
        const name = obj.metadata.name;
        const vm = obj.kind === 'VirtualMachine' ? (obj as Vm) : undefined;
        if (vm && !vm.spec.dataVolumeTemplates?.length) {
          const old = this.vmis.get(ns, name)?.metadata.uid;
          await this.client.remove(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}`);
          if (vm.spec.runStrategy !== 'Halted') await this.waitNewVmi(ns, name, old);
          return;
        }
        const path = objectPath(obj, name);
        await this.client.remove(path, { propagation: 'Foreground' });
        await this.waitGone(path, vm ? ns : undefined, name);
        const fresh = cleanForCreate(obj);
        if (vm) (fresh as Vm).spec.runStrategy = 'Always';
        await this.client.create(fresh);
      }),
    );
    const nsObj = await this.liveNamespace(handle);
    const spec = nsObj && this.storedSpec(nsObj);
    if (spec) await this.waitBooted(handle, { ...spec, machines: spec.machines.filter((m) => machine === undefined || m.name === machine) }, () => undefined);
  }

  /** Wait until the informer shows a VMI for the machine other than `oldUid`. */
  private async waitNewVmi(ns: string, name: string, oldUid: string | undefined, timeoutMs = 120_000): Promise<void> {
    const fresh = () => {
      const v = this.vmis.get(ns, name);
      return v !== undefined && v.metadata.uid !== oldUid;
    };
    if (fresh()) return;
    await new Promise<void>((resolve, reject) => {
      const off = this.vmis.on(() => {
        if (fresh()) finish();
      });
      const t = setTimeout(() => finish(new BackendFailure(`no new VMI for ${ns}/${name}`, { publicMessage: 'Resetting the machine took too long.' })), timeoutMs);
      function finish(err?: Error) {
        off();
        clearTimeout(t);
        if (err) reject(err);
        else resolve();
      }
    });
  }

  /** Wait until an object (and, for a VM, its VMI) is gone. */
  private async waitGone(path: string, vmiNs: string | undefined, name: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let wait = 100; Date.now() < deadline; wait = Math.min(1000, wait * 2)) {
      const obj = await this.client.get(path);
      if (!obj && (vmiNs === undefined || !this.vmis.get(vmiNs, name))) return;
      await delay(wait);
    }
    throw new BackendFailure(`${path} still exists after ${timeoutMs} ms`, { publicMessage: 'Resetting the machine took too long.' });
  }

  /** Delete the namespace (404 = already gone) and wait until the API server no longer has it. */
  async destroy(handle: LabHandle): Promise<void> {
    const path = `/api/v1/namespaces/${handle.name}`;
    const ns = await this.client.get(path);
    if (!ns) return;
    if (ns.metadata.annotations?.[INSTANCE_ANNOTATION] !== handle.instanceId) {
      throw new Conflict(`namespace ${handle.name} is not ours`, { publicMessage: 'The lab cluster has a namespace with this lab’s name that the tool did not create.' });
    }
    if (!ns.metadata.deletionTimestamp) await this.client.remove(path);
    const timeoutMs = this.o.destroyTimeoutMs ?? 120_000;
    const gone = new Promise<boolean>((resolve) => {
      const off = this.namespaces.on((type, o) => {
        if (type === 'DELETED' && o.metadata.name === handle.name) finish(true);
      });
      const t = setTimeout(() => finish(false), timeoutMs);
      function finish(ok: boolean) {
        off();
        clearTimeout(t);
        resolve(ok);
      }
      // it may have gone between the delete and subscribing
      void this.client.get(path).then((o) => !o && finish(true), () => undefined);
    });
    if (!(await gone)) throw new BackendFailure(`namespace ${handle.name} still exists after ${timeoutMs} ms`, { publicMessage: 'Removing the lab took too long.' });
  }

  /** Managed, not terminating namespaces, by their labels. */
  async list(): Promise<LabHandle[]> {
    await this.namespaces.synced();
    return this.namespaces.items().flatMap((ns) => handleOf(ns) ?? []);
  }

  /**
   * Put back what drifted: a missing RoleBinding, NetworkPolicy, ResourceQuota or LimitRange is
   * recreated and a modified NetworkPolicy spec restored. Returns what was repaired.
   */
  async repair(handle: LabHandle): Promise<string[]> {
    const ns = await this.liveNamespace(handle);
    const spec = ns && this.storedSpec(ns);
    if (!spec) return [];
    const c = this.ctx(spec, handle);
    const repaired: string[] = [];
    // the binding first: without it the tool can do nothing else in the namespace
    const rb = planLab(c).roleBinding;
    if (!(await this.client.get(objectPath(rb, rb.metadata.name)))) {
      await this.client.create(rb);
      repaired.push(`RoleBinding/${rb.metadata.name}`);
    }
    const want = guardObjects(c);
    const kinds = [...new Set(want.map((o) => o.kind))];
    const have = new Map<string, K8sObject>();
    await Promise.all(
      kinds.map(async (kind) => {
        const sample = want.find((o) => o.kind === kind) as K8sObject;
        const list = await this.client.request<{ items: K8sObject[] }>('GET', objectPath(sample), { query: { labelSelector: SELECTOR } });
        for (const o of list.items) have.set(`${kind}/${o.metadata.name}`, o);
      }),
    );
    await Promise.all(
      want.map(async (o) => {
        const key = `${o.kind}/${o.metadata.name}`;
        const cur = have.get(key);
        if (!cur) {
          await this.client.create(o);
          repaired.push(key);
        } else if (o.kind === 'NetworkPolicy' && canonical(cur.spec) !== canonical(o.spec)) {
          await this.client.request('PUT', objectPath(o, o.metadata.name), { body: { ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata.resourceVersion } } });
          repaired.push(key);
        }
      }),
    );
    if (repaired.length > 0) this.log.warn({ instance: handle.instanceId, ns: handle.name, repaired }, 'kubevirt.drift_repaired');
    return repaired.sort();
  }

  async ready(): Promise<boolean> {
    const failing = [this.namespaces, this.vmis, this.drift.policies].some((i) => i.failingSince !== 0 && Date.now() - i.failingSince > 30_000);
    const synced = await Promise.race([Promise.all([this.namespaces.synced(), this.vmis.synced()]).then(() => true), delay(1000, false)]);
    return synced && !failing;
  }

  async close(): Promise<void> {
    await Promise.all([this.drift.stop(), this.namespaces.stop(), this.vmis.stop()]);
    this.client.close();
  }
}

