/**
 * Starts the KubeVirt stand-in (main.ts) as a child process against a test control plane, with a
 * serving certificate from the control plane's CA (so a client that trusts the kubeconfig's CA
 * trusts it too). `sharedKubeVirt()` gives the run's one stand-in, stopped by the root hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { issueServingCert } from '../k8s/pki.js';
import { withoutGuestsDir } from './paperGuests.js';
import { MANAGED_BY_LABEL, MANAGER } from '../../../src/backends/kubevirt/manifests.js';
import { processesMentioning, sharedControlPlane, type ControlPlane } from '../k8s/controlPlane.js';

const here = path.dirname(new URL(import.meta.url).pathname);

export interface StandIn {
  /** Base URL of the subresource API (https://127.0.0.1:port); in a real cluster, the API server URL. */
  baseUrl: string;
  pid: number;
  workDir: string;
  logFile: string;
  startupMs: number;
  /** pids of the QEMU processes the stand-in runs right now (from /proc). */
  guestPids(): number[];
  /**
   * VMIs in these namespaces get no QEMU guest, only a paper one (paperGuests.ts): for tests about
   * the tool's requests and concurrency, not about guests. Mark a namespace before it is created.
   */
  withoutGuests(namespaces: string[]): void;
  stop(): Promise<void>;
}

export async function startStandIn(cp: ControlPlane): Promise<StandIn> {
  const t0 = Date.now();
  const workDir = fs.mkdtempSync(path.join(cp.dir, 'standin-'));
  const tls = issueServingCert(cp.pki, 'standin', ['IP:127.0.0.1', 'DNS:localhost']);
  const kubeletTls = issueServingCert(cp.pki, 'standin-kubelet', ['IP:127.0.0.1']);
  const logFile = path.join(cp.dir, 'kubevirt-standin.log');
  const fd = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'main.ts')], {
    stdio: ['pipe', 'pipe', fd],
    env: { ...process.env, STANDIN_KUBECONFIG: cp.kubeconfigPath, STANDIN_TLS_CERT: tls.cert, STANDIN_TLS_KEY: tls.key, STANDIN_WORK_DIR: workDir,
      STANDIN_KUBELET_CERT: kubeletTls.cert, STANDIN_KUBELET_KEY: kubeletTls.key, STANDIN_CLIENT_CA: cp.pki.caCert },
  });
  fs.closeSync(fd);
  // If the test run exits without stop() (a hook timed out), take the stand-in and its guests
  // (detached QEMU processes, found by the work dir on their command line) down with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
    for (const pid of processesMentioning(workDir)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  };
  process.on('exit', killOnExit);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const tail = (): string => fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`KubeVirt stand-in did not start in 60 s:\n${tail()}`)); }, 60_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /^READY (\S+)/.exec(l);
      if (m?.[1]) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`KubeVirt stand-in exited (${code}):\n${tail()}`)); });
  });
  return {
    baseUrl,
    pid: child.pid!,
    workDir,
    logFile,
    startupMs: Date.now() - t0,
    guestPids: () => processesMentioning(workDir),
    withoutGuests(namespaces) {
      const dir = withoutGuestsDir(workDir);
      fs.mkdirSync(dir, { recursive: true });
      for (const ns of namespaces) fs.writeFileSync(path.join(dir, path.basename(ns)), '');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
      // Belt and braces: a guest that outlived the stand-in is killed, and the test reports it.
      const leftovers = processesMentioning(workDir);
      for (const pid of leftovers) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      if (leftovers.length) throw new Error(`KubeVirt stand-in left processes behind: ${leftovers.join(', ')}`);
    },
  };
}

let shared: Promise<{ cp: ControlPlane; standIn: StandIn }> | undefined;

/** The run's control plane with the stand-in running against it (both started on first use). */
export function sharedKubeVirt(): Promise<{ cp: ControlPlane; standIn: StandIn }> {
  if (!shared) {
    shared = (async () => {
      const cp = await sharedControlPlane();
      const standIn = await startStandIn(cp);
      process.stderr.write(`      [k8s] KubeVirt stand-in ready in ${standIn.startupMs} ms at ${standIn.baseUrl}\n`);
      return { cp, standIn };
    })();
    shared.catch(() => { shared = undefined; });
  }
  return shared;
}

/**
 * Deletes every VirtualMachine and VirtualMachineInstance a finished test file left in the shared
 * control plane, and the lab namespaces it left (not waiting for them to go: a terminating
 * namespace is no lab to any backend), and waits for the stand-in to power their guests off, so one file's leftovers (a
 * test that timed out before its clean-up) never boot again under the files after it. Returns the
 * "<namespace>/<name>" of the VMIs (running guests) it found: stopped VMs are deleted but are no
 * leak. Does nothing when no file has used KubeVirt yet.
 */
export async function clearSharedKubeVirt(timeoutMs = 60_000): Promise<string[]> {
  if (!shared) return [];
  const s = await shared.catch(() => undefined);
  if (!s) return [];
  const { cp, standIn } = s;
  const found: string[] = [];
  const namespaces = new Set<string>();
  for (const plural of ['virtualmachines', 'virtualmachineinstances']) {
    const r = await cp.request('GET', `/apis/kubevirt.io/v1/${plural}`);
    if (r.status !== 200) throw new Error(`listing ${plural}: ${r.status} ${r.body}`);
    for (const o of r.json<{ items: Array<{ metadata: { namespace: string; name: string } }> }>().items) {
      namespaces.add(o.metadata.namespace);
      if (plural === 'virtualmachineinstances') found.push(`${o.metadata.namespace}/${o.metadata.name}`);
    }
  }
  for (const ns of namespaces) {
    for (const plural of ['virtualmachines', 'virtualmachineinstances']) {
      const r = await cp.request('DELETE', `/apis/kubevirt.io/v1/namespaces/${ns}/${plural}`);
      if (r.status !== 200 && r.status !== 404) throw new Error(`deleting ${plural} in ${ns}: ${r.status} ${r.body}`);
    }
  }
  // a failed file's lab namespaces too: every later tool in this control plane would see them as
  // its own orphans (a leader's supervisor sets out to destroy them, one by one)
  const sel = encodeURIComponent(`${MANAGED_BY_LABEL}=${MANAGER}`);
  const labs = await cp.request('GET', `/api/v1/namespaces?labelSelector=${sel}`);
  if (labs.status !== 200) throw new Error(`listing lab namespaces: ${labs.status} ${labs.body}`);
  for (const ns of labs.json<{ items: Array<{ metadata: { name: string; deletionTimestamp?: string } }> }>().items) {
    if (ns.metadata.deletionTimestamp) continue;
    const r = await cp.request('DELETE', `/api/v1/namespaces/${ns.metadata.name}`);
    if (r.status !== 200 && r.status !== 202 && r.status !== 404) throw new Error(`deleting namespace ${ns.metadata.name}: ${r.status} ${r.body}`);
  }
  const until = Date.now() + timeoutMs;
  while (standIn.guestPids().length && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
  return found;
}

export async function stopSharedKubeVirt(): Promise<void> {
  if (!shared) return;
  const p = shared;
  shared = undefined;
  const s = await p.catch(() => undefined);
  await s?.standIn.stop();
}
