/**
 * The stand-in's controllers: what KubeVirt's virt-controller and virt-handler do for a
 * VirtualMachine, reduced to one node. Level-triggered: every event on a VM or VMI enqueues its
 * "<ns>/<name>" key and reconcile() compares the API objects with the running guests.
 *
 * - VM with runStrategy Always/RerunOnFailure/Once (or running: true) and no VMI: create its
 *   DataVolumes (vmDisks.ts), and once they have Succeeded the VMI (owned by the VM, with
 *   KubeVirt's foreground-delete finalizer and the VM's stable firmware UUID).
 * - VMI new: phase Scheduling → Scheduled (guest booting) → Running with the Ready condition and
 *   interfaces[0].ipAddress; guest exit → Succeeded/Failed.
 * - VMI being deleted (VM stopped, restarted, deleted, or the namespace deleted by the
 *   controller-manager): stop the guest, then remove the finalizer so the object goes away.
 * - VM status: created, ready, printableStatus and the Ready condition (Failure and
 *   DataVolumeError when a DataVolume cannot be created or cloned).
 * - A VMI's dataVolume volume boots from its PVC's backing file (cdi.ts), so what the guest writes
 *   survives a stop and start; a containerDisk gets a fresh overlay per VMI, as in KubeVirt.
 */
import * as k8s from '@kubernetes/client-node';
import net from 'node:net';
import type { Logger } from 'pino';
import { KubeClient, vmiPath, vmPath, type ObjectMeta } from './kube.js';
import { quantityToMiB, type Guest, type GuestRuntime, type LabNetwork } from './guests.js';
import { userDataLogin, userDataScript } from './cloudInit.js';
import { dataVolumeDisk, ensureVmDataVolumes, firmwareUuid, type DisksState } from './vmDisks.js';
import { deleteLauncherPods, ensureLauncherPod, markLauncherRunning, serialConsoleLogged } from './launcherPods.js';

export const VMI_FINALIZER = 'foregroundDeleteVirtualMachine';
export const NODE_NAME = 'kubevirt-standin';

interface Condition { type: string; status: 'True' | 'False'; reason?: string; message?: string; lastProbeTime: null; lastTransitionTime: string }
interface VmiSpec {
  domain?: {
    cpu?: { cores?: number; sockets?: number; threads?: number };
    memory?: { guest?: string };
    firmware?: { uuid?: string };
    resources?: { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } };
    devices?: { autoattachGraphicsDevice?: boolean; autoattachSerialConsole?: boolean; logSerialConsole?: boolean };
  };
  volumes?: Array<{ name: string; containerDisk?: { image?: string; path?: string; imagePullPolicy?: string }; dataVolume?: { name: string }; cloudInitNoCloud?: NoCloudSource }>;
  networks?: Array<{ name: string }>;
  hostname?: string;
  subdomain?: string;
  readinessProbe?: { tcpSocket?: { port: number }; periodSeconds?: number; initialDelaySeconds?: number };
}
/** KubeVirt's cloudInitNoCloud volume source (the fields of its real schema). */
interface NoCloudSource {
  userData?: string;
  userDataBase64?: string;
  secretRef?: { name?: string };
  networkData?: string;
  networkDataBase64?: string;
  networkDataSecretRef?: { name?: string };
}

export interface Vmi {
  metadata: ObjectMeta;
  spec: VmiSpec;
  status?: { phase?: string; conditions?: Condition[]; phaseTransitionTimestamps?: Array<{ phase: string; phaseTransitionTimestamp: string }> };
}
export interface Vm {
  metadata: ObjectMeta;
  spec: { running?: boolean; runStrategy?: string; template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: VmiSpec } };
  status?: Record<string, unknown>;
}

interface GuestState {
  guest?: Guest;
  uid: string;
  ip: string;
  paused: boolean;
  /** The readiness probe passed (or the VMI has none). */
  ready: boolean;
  exit?: { code: number | null; signal: string | null };
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class StandInController {
  readonly guests = new Map<string, GuestState>();
  private queue = new Map<string, { running: boolean; again: boolean }>();
  private running = new Set<Promise<void>>();
  private informers: Array<k8s.Informer<k8s.KubernetesObject>> = [];
  /** Lab namespaces in the order first seen: namespace i gets the pod addresses 10.244.i.0/24. */
  private nsIndex = new Map<string, number>();
  /** Per VM uid: failed starts in a row and when the next may happen (KubeVirt's crash-loop backoff). */
  private crashes = new Map<string, { count: number; until: number }>();
  private stopped = false;

  /**
   * `clusterDisablesLog`: the KubeVirt CR's `virtualMachineOptions.disableSerialConsoleLog` — only
   * VMIs asking for `logSerialConsole` get a guest-console-log container then.
   */
  constructor(private readonly kc: k8s.KubeConfig, private readonly kube: KubeClient, private readonly runtime: GuestRuntime, private readonly log: Logger, private readonly clusterDisablesLog = true) {}

  /** The serial console log file of the running guest of the VMI with this uid (the kubelet serves it). */
  consoleLogOf(uid: string): string | undefined {
    for (const g of this.guests.values()) if (g.uid === uid && !g.exit) return g.guest?.consoleLog;
    return undefined;
  }

  async start(): Promise<void> {
    const custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    for (const plural of ['virtualmachines', 'virtualmachineinstances']) {
      const inf = k8s.makeInformer(this.kc, `/apis/kubevirt.io/v1/${plural}`, () =>
        custom.listClusterCustomObject({ group: 'kubevirt.io', version: 'v1', plural }) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>);
      const enqueue = (o: k8s.KubernetesObject): void => this.enqueue(`${o.metadata?.namespace}/${o.metadata?.name}`);
      inf.on('add', enqueue);
      inf.on('update', enqueue);
      inf.on('delete', enqueue);
      inf.on('error', (err: unknown) => {
        if (this.stopped) return;
        this.log.warn({ err: String(err), plural }, 'watch.error; restarting');
        setTimeout(() => { if (!this.stopped) void inf.start().catch(() => undefined); }, 1000);
      });
      await inf.start();
      this.informers.push(inf);
    }
  }

  /** Stop watching and power off every guest. */
  async stop(): Promise<void> {
    this.stopped = true;
    const within = (p: Promise<unknown>, ms: number): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, ms))]);
    await within(Promise.all(this.informers.map((i) => i.stop())), 5_000);
    // Let boots in flight finish (a reconcile that sees `stopped` powers its new guest off).
    await within(Promise.all([...this.running]), 20_000);
    const guests = [...this.guests.values()].flatMap((g) => (g.guest ? [g.guest] : []));
    await within(Promise.all(guests.map((g) => g.stop().catch(() => undefined))), 10_000);
    await Promise.all(guests.map((g) => g.kill().catch(() => undefined)));
    this.guests.clear();
  }

  enqueue(key: string): void {
    if (this.stopped) return;
    const q = this.queue.get(key);
    if (q) { q.again = true; return; }
    const entry = { running: true, again: false };
    this.queue.set(key, entry);
    const work = (async () => {
      do {
        entry.again = false;
        const [ns, name] = key.split('/') as [string, string];
        try {
          await this.reconcile(ns, name);
        } catch (err) {
          this.log.warn({ key, err: String(err) }, 'reconcile.failed; retrying');
          await new Promise((r) => setTimeout(r, 500));
          entry.again = !this.stopped;
        }
      } while (entry.again && !this.stopped);
      this.queue.delete(key);
    })();
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  async reconcile(ns: string, name: string): Promise<void> {
    const key = `${ns}/${name}`;
    const [vm, vmi] = await Promise.all([this.kube.get<Vm>(vmPath(ns, name)), this.kube.get<Vmi>(vmiPath(ns, name))]);
    let current = vmi;
    if (current) current = await this.reconcileVmi(key, current);
    else await this.forgetGuest(key);
    if (vm) await this.reconcileVm(vm, current);
  }

  // ---- VirtualMachineInstance (virt-handler's part) ----

  private async reconcileVmi(key: string, vmi: Vmi): Promise<Vmi | undefined> {
    const { namespace: ns, name, uid } = vmi.metadata;
    let state = this.guests.get(key);
    if (state && state.uid !== uid) { await this.forgetGuest(key); state = undefined; }

    if (vmi.metadata.deletionTimestamp) {
      await this.forgetGuest(key);
      await deleteLauncherPods(this.kube, ns, uid);
      if (vmi.metadata.finalizers?.includes(VMI_FINALIZER)) {
        await this.kube.mergePatch(vmiPath(ns, name), { metadata: { finalizers: vmi.metadata.finalizers.filter((f) => f !== VMI_FINALIZER), resourceVersion: vmi.metadata.resourceVersion } }, [200, 404, 409]);
      }
      return vmi;
    }
    const phase = vmi.status?.phase ?? '';
    if (phase === 'Succeeded' || phase === 'Failed') return vmi;
    if (state?.exit) {
      const failed = state.exit.code !== 0;
      this.guests.delete(key);
      return this.setVmiStatus(vmi, failed ? 'Failed' : 'Succeeded', { reason: failed ? `guest exited (${state.exit.signal ?? state.exit.code})` : undefined });
    }
    if (state) return this.syncRunning(vmi, state);

    // A new VMI: its virt-launcher pod (admitted by the namespace's quota, or the VMI waits and
    // this is retried), scheduled on our one node, then its guest.
    let cur = await this.setVmiStatus(vmi, 'Scheduling');
    const pod = await ensureLauncherPod(this.kube, vmi, NODE_NAME, this.clusterDisablesLog);
    cur = await this.setVmiStatus(cur, 'Scheduled', { nodeName: NODE_NAME, activePods: { [pod.uid]: NODE_NAME } });
    const lab = await this.labNetwork(ns, name);
    const probePort = vmi.spec.readinessProbe?.tcpSocket?.port;
    state = { uid, ip: lab.ip, paused: false, ready: probePort === undefined };
    this.guests.set(key, state);
    const disk = vmi.spec.volumes?.find((v) => v.containerDisk?.image);
    const dvName = vmi.spec.volumes?.find((v) => v.dataVolume)?.dataVolume?.name;
    const cpu = vmi.spec.domain?.cpu;
    try {
      const dvDisk = dvName ? await dataVolumeDisk(this.kube, ns, dvName) : undefined;
      if (dvName && !dvDisk) throw new Error(`PVC ${dvName} is not bound`);
      const { userData, networkData } = await this.cloudInitData(vmi);
      const login = userDataLogin(userData);
      const userScript = userDataScript(userData);
      state.guest = await this.runtime.boot({
        key,
        hostname: vmi.spec.hostname ?? login.hostname ?? name,
        ...(login.user ? { user: login.user } : {}),
        ...(login.password ? { password: login.password } : {}),
        ...(userScript ? { userScript } : {}),
        image: disk?.containerDisk?.image ?? 'lab-tiny',
        ...(disk?.containerDisk?.path ? { containerDiskPath: disk.containerDisk.path } : {}),
        ...(disk?.containerDisk?.imagePullPolicy ? { imagePullPolicy: disk.containerDisk.imagePullPolicy } : {}),
        ...(dvDisk ? { disk: dvDisk } : {}),
        lab,
        cloudInit: {
          // KubeVirt's meta-data: instance-id = the firmware UUID (stable per VM), local-hostname
          instanceId: vmi.spec.domain?.firmware?.uuid ?? uid,
          hostname: vmi.spec.hostname ?? name,
          ...(userData !== undefined ? { userData } : {}),
          ...(networkData !== undefined ? { networkData } : {}),
        },
        cpus: Math.max(1, (cpu?.cores ?? 1) * (cpu?.sockets ?? 1) * (cpu?.threads ?? 1)),
        memoryMiB: quantityToMiB(vmi.spec.domain?.memory?.guest ?? vmi.spec.domain?.resources?.requests?.memory, 128),
        graphics: vmi.spec.domain?.devices?.autoattachGraphicsDevice !== false,
      });
    } catch (err) {
      this.guests.delete(key);
      this.log.warn({ key, err: String(err) }, 'guest.boot.failed');
      return this.setVmiStatus(cur, 'Failed', { reason: `guest failed to boot: ${String(err).slice(0, 200)}` });
    }
    const booted = state;
    void booted.guest!.exited.then((exit) => {
      if (this.guests.get(key) !== booted) return;
      booted.exit = exit;
      this.enqueue(key);
    });
    if (this.stopped) { await booted.guest!.stop(); return cur; }
    this.log.info({ key, pid: booted.guest!.pid }, 'guest.running');
    await markLauncherRunning(this.kube, pod, booted.ip, serialConsoleLogged(vmi, this.clusterDisablesLog));
    if (probePort !== undefined) void this.probeUntilReady(key, booted, probePort, (vmi.spec.readinessProbe?.periodSeconds ?? 10) * 1000);
    return this.syncRunning(cur, booted);
  }

  /**
   * The VMI's address and the lab's names, as the cluster network would give them: a stable
   * address per VM (10.244.<namespace>.<10 + its place among the namespace's VMs>) and, per VM of
   * the namespace, `<vm>` and `<vm>.<subdomain>` (KubeVirt puts the subdomain in the guest's DNS
   * search path; the headless Service resolves it).
   */
  private async labNetwork(ns: string, name: string): Promise<LabNetwork> {
    if (!this.nsIndex.has(ns)) this.nsIndex.set(ns, this.nsIndex.size + 1);
    const i = this.nsIndex.get(ns)! % 250;
    const list = (await this.kube.get<{ items: Vm[] }>(vmPath(ns)))?.items ?? [];
    const vms = list.map((v) => v.metadata.name);
    if (!vms.includes(name)) vms.push(name); // a VMI without a VM
    vms.sort();
    const ipOf = (vm: string) => `10.244.${i}.${10 + vms.indexOf(vm)}`;
    const hosts = vms.map((vm) => {
      const t = list.find((v) => v.metadata.name === vm)?.spec.template.spec;
      return { ip: ipOf(vm), hostname: t?.hostname ?? vm, ...(t?.subdomain ? { subdomain: t.subdomain } : {}) };
    });
    const sub = hosts.find((h) => h.ip === ipOf(name))?.subdomain;
    const search = [...(sub ? [`${sub}.${ns}.svc.cluster.local`] : []), `${ns}.svc.cluster.local`, 'svc.cluster.local', 'cluster.local'];
    return { segment: ns, ip: ipOf(name), prefixLength: 16, gateway: `10.244.${i}.1`, search, hosts };
  }

  /**
   * The VMI's cloud-init NoCloud user data and network data, as virt-launcher reads them: inline,
   * base64 or from a Secret (keys userdata/userData, networkdata/networkData).
   */
  private async cloudInitData(vmi: Vmi): Promise<{ userData?: string; networkData?: string }> {
    const ci = vmi.spec.volumes?.find((v) => v.cloudInitNoCloud)?.cloudInitNoCloud;
    if (!ci) return {};
    const secret = async (ref: { name?: string } | undefined, keys: string[]) => {
      if (!ref?.name) return undefined;
      const s = await this.kube.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${vmi.metadata.namespace}/secrets/${ref.name}`);
      const b64 = keys.map((k) => s?.data?.[k]).find((v) => v !== undefined);
      return b64 !== undefined ? Buffer.from(b64, 'base64').toString('utf8') : undefined;
    };
    const unb64 = (v: string | undefined) => (v !== undefined ? Buffer.from(v, 'base64').toString('utf8') : undefined);
    const userData = ci.userData ?? unb64(ci.userDataBase64) ?? (await secret(ci.secretRef, ['userdata', 'userData']));
    const networkData = ci.networkData ?? unb64(ci.networkDataBase64) ?? (await secret(ci.networkDataSecretRef, ['networkdata', 'networkData']));
    return { ...(userData !== undefined ? { userData } : {}), ...(networkData !== undefined ? { networkData } : {}) };
  }

  /**
   * A tcpSocket readiness probe, as the kubelet runs it against the pod address (which masquerade
   * forwards to the guest): here through the guest's portforward path. The user-mode forward
   * accepts on the host side at once, whether or not the guest does, so the stand-in sends an empty
   * line and counts the connection as accepted by the guest once anything comes back (the check
   * agent, the port the tool probes, answers it with an error line).
   */
  private async probeUntilReady(key: string, state: GuestState, port: number, periodMs: number): Promise<void> {
    while (!this.stopped && this.guests.get(key) === state && !state.exit) {
      const ok = await state.guest!.forwardPort(port).then((hostPort) => new Promise<boolean>((resolve) => {
        const sock = net.connect(hostPort, '127.0.0.1', () => sock.write('\n'));
        const done = (v: boolean) => { clearTimeout(t); sock.destroy(); resolve(v); };
        const t = setTimeout(() => done(false), 3000);
        sock.once('data', () => done(true));
        sock.once('close', () => done(false));
        sock.once('error', () => done(false));
      }), () => false);
      if (ok) {
        state.ready = true;
        this.log.info({ key, port }, 'guest.ready');
        this.enqueue(key);
        return;
      }
      await new Promise((r) => setTimeout(r, periodMs));
    }
  }

  /** Pause/unpause from the subresource API: the guest first, then the Paused condition. */
  async setPaused(ns: string, name: string, paused: boolean): Promise<'ok' | 'not-running' | 'already'> {
    const key = `${ns}/${name}`;
    const state = this.guests.get(key);
    if (!state?.guest || state.exit) return 'not-running';
    if (state.paused === paused) return 'already';
    if (paused) await state.guest.pause(); else await state.guest.resume();
    state.paused = paused;
    this.enqueue(key);
    return 'ok';
  }

  private async syncRunning(vmi: Vmi, state: GuestState): Promise<Vmi> {
    const paused = vmi.status?.conditions?.some((c) => c.type === 'Paused' && c.status === 'True') ?? false;
    const ready = vmi.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    if (vmi.status?.phase === 'Running' && paused === state.paused && ready === (state.ready && !state.paused)) return vmi;
    const net = vmi.spec.networks?.[0]?.name ?? 'default';
    return this.setVmiStatus(vmi, 'Running', {
      ready: state.ready && !state.paused,
      paused: state.paused,
      interfaces: [{ name: net, ipAddress: state.ip, ipAddresses: [state.ip], mac: macFor(state.ip), infoSource: 'domain', podInterfaceName: 'eth0', queueCount: 1 }],
    });
  }

  private async setVmiStatus(vmi: Vmi, phase: string, o: { nodeName?: string; activePods?: Record<string, string>; reason?: string; ready?: boolean; paused?: boolean; interfaces?: unknown[] } = {}): Promise<Vmi> {
    const t = now();
    const old = vmi.status?.conditions ?? [];
    const cond = (type: string, status: 'True' | 'False', reason?: string, message?: string): Condition => {
      const prev = old.find((c) => c.type === type);
      return { type, status, ...(reason ? { reason } : {}), ...(message ? { message } : {}), lastProbeTime: null, lastTransitionTime: prev?.status === status ? prev.lastTransitionTime : t };
    };
    const conditions: Condition[] = [cond('Ready', o.ready ? 'True' : 'False', o.ready ? undefined : phase === 'Running' ? 'Paused' : 'GuestNotRunning')];
    if (o.paused) conditions.push(cond('Paused', 'True', 'PausedByUser', 'VMI was paused by user'));
    const transitions = [...(vmi.status?.phaseTransitionTimestamps ?? [])];
    if (vmi.status?.phase !== phase) transitions.push({ phase, phaseTransitionTimestamp: t });
    const status: Record<string, unknown> = { phase, conditions, phaseTransitionTimestamps: transitions, qosClass: 'Burstable', guestOSInfo: {} };
    if (o.nodeName) status.nodeName = o.nodeName;
    if (o.activePods) status.activePods = o.activePods;
    if (o.reason) status.reason = o.reason;
    if (o.interfaces) status.interfaces = o.interfaces;
    const { namespace: ns, name } = vmi.metadata;
    const updated = await this.kube.mergePatch<Vmi>(`${vmiPath(ns, name)}/status`, { status });
    // virt-handler labels the VMI with its node once it is scheduled.
    if (o.nodeName) return this.kube.mergePatch<Vmi>(vmiPath(ns, name), { metadata: { labels: { 'kubevirt.io/nodeName': o.nodeName } } });
    return updated;
  }

  private async forgetGuest(key: string): Promise<void> {
    const state = this.guests.get(key);
    if (!state) return;
    this.guests.delete(key);
    await state.guest?.stop().catch((err: unknown) => this.log.warn({ key, err: String(err) }, 'guest.stop.failed'));
    this.log.info({ key }, 'guest.stopped');
  }

  // ---- VirtualMachine (virt-controller's part) ----

  private async reconcileVm(vm: Vm, vmi: Vmi | undefined): Promise<void> {
    const { namespace: ns, name, uid } = vm.metadata;
    const strategy = vm.spec.runStrategy ?? (vm.spec.running ? 'Always' : 'Halted');
    const vmiPhase = vmi?.status?.phase ?? '';
    const finished = vmiPhase === 'Succeeded' || vmiPhase === 'Failed';
    const deleting = !!vm.metadata.deletionTimestamp;
    let wantRunning = !deleting && (strategy === 'Always' || strategy === 'RerunOnFailure' || strategy === 'Once');
    if (strategy === 'RerunOnFailure' && vmiPhase === 'Succeeded') wantRunning = false;
    if (strategy === 'Once' && finished) wantRunning = false;
    if (strategy === 'Manual') wantRunning = !!vmi && !finished;

    if (vmi && !vmi.metadata.deletionTimestamp) {
      const stop = !wantRunning && strategy !== 'Manual' && strategy !== 'Once' && !(strategy === 'RerunOnFailure' && vmiPhase === 'Succeeded');
      const rerun = finished && (strategy === 'Always' || (strategy === 'RerunOnFailure' && vmiPhase === 'Failed'));
      if (rerun && !stop && !deleting && vmiPhase === 'Failed') {
        const c = this.crashes.get(uid) ?? { count: 0, until: 0 };
        if (c.until === 0) {
          c.count++;
          c.until = Date.now() + Math.min(1000 * 2 ** (c.count - 1), 60_000);
          this.crashes.set(uid, c);
        }
        if (Date.now() < c.until) {
          setTimeout(() => this.enqueue(`${ns}/${name}`), c.until - Date.now() + 10);
          await this.setVmStatus(vm, vmi, strategy);
          return;
        }
        c.until = 0;
      }
      if (vmiPhase === 'Running') this.crashes.delete(uid);
      if (stop || rerun || deleting) {
        await this.kube.must('DELETE', vmiPath(ns, name), { propagationPolicy: 'Foreground' }, [200, 202, 404]);
        vmi = { ...vmi, metadata: { ...vmi.metadata, deletionTimestamp: now() } };
      }
    } else if (!vmi && wantRunning) {
      const disks = await ensureVmDataVolumes(this.kube, vm);
      if (disks.state !== 'ready') {
        if (disks.state === 'error') setTimeout(() => this.enqueue(`${ns}/${name}`), 5000).unref();
        await this.setVmStatus(vm, undefined, strategy, disks);
        return;
      }
      const t = vm.spec.template;
      const r = await this.kube.request('POST', vmiPath(ns), {
        apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance',
        metadata: {
          name, namespace: ns, labels: { ...(t.metadata?.labels ?? {}), 'kubevirt.io/created-by': uid }, annotations: t.metadata?.annotations ?? {},
          finalizers: [VMI_FINALIZER],
          ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name, uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: { ...t.spec, domain: { ...t.spec.domain, firmware: { ...t.spec.domain?.firmware, uuid: t.spec.domain?.firmware?.uuid ?? firmwareUuid(name) } } },
      });
      // 403: the namespace is terminating; 409: created meanwhile (the VMI event re-enqueues us).
      if (r.status !== 201 && r.status !== 409 && r.status !== 403) throw new Error(`creating VMI ${ns}/${name}: ${r.status} ${r.text.slice(0, 300)}`);
      if (r.status === 201) vmi = r.body as Vmi;
    }
    if (deleting) return;
    await this.setVmStatus(vm, vmi, strategy);
  }

  private async setVmStatus(vm: Vm, vmi: Vmi | undefined, strategy: string, disks?: DisksState): Promise<void> {
    const phase = vmi?.status?.phase ?? '';
    const paused = vmi?.status?.conditions?.some((c) => c.type === 'Paused' && c.status === 'True') ?? false;
    const ready = phase === 'Running' && !vmi?.metadata.deletionTimestamp && (vmi?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
    let printable = 'Stopped';
    if (vmi?.metadata.deletionTimestamp) printable = 'Stopping';
    else if (phase === 'Running') printable = paused ? 'Paused' : 'Running';
    else if (phase === 'Failed') printable = 'CrashLoopBackOff';
    else if (phase === 'Succeeded') printable = 'Stopped';
    else if (vmi) printable = 'Starting';
    else if (disks?.state === 'error') printable = 'DataVolumeError';
    else if (disks?.state === 'waiting') printable = 'Provisioning';
    const old = vm.status as { printableStatus?: string; ready?: boolean; created?: boolean; conditions?: Condition[] } | undefined;
    const created = !!vmi && !vmi.metadata.deletionTimestamp;
    const failure = disks?.state === 'error' ? disks : undefined;
    const oldFailure = old?.conditions?.find((c) => c.type === 'Failure');
    if (old?.printableStatus === printable && old.ready === ready && old.created === created && old.conditions?.length && oldFailure?.message === failure?.message) return;
    const prev = old?.conditions?.find((c) => c.type === 'Ready');
    const status = ready ? 'True' : 'False';
    const conditions: Condition[] = [{ type: 'Ready', status, ...(ready ? {} : { reason: vmi ? 'NotReady' : 'VMINotExists' }), lastProbeTime: null, lastTransitionTime: prev?.status === status ? prev.lastTransitionTime : now() }];
    if (failure) conditions.push({ type: 'Failure', status: 'True', reason: failure.reason, message: failure.message, lastProbeTime: null, lastTransitionTime: oldFailure?.lastTransitionTime ?? now() });
    await this.kube.mergePatch(`${vmPath(vm.metadata.namespace, vm.metadata.name)}/status`, {
      status: { printableStatus: printable, ready, created, runStrategy: strategy, conditions, observedGeneration: vm.metadata.generation, desiredGeneration: vm.metadata.generation },
    }, [200, 404]);
  }
}

function macFor(ip: string): string {
  const [, , c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return `52:54:00:f4:${c.toString(16).padStart(2, '0')}:${d.toString(16).padStart(2, '0')}`;
}
