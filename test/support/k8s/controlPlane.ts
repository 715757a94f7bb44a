/**
 * A real Kubernetes control plane for tests, the way envtest does it: etcd, kube-apiserver and
 * kube-controller-manager (so namespace deletion and garbage collection really happen) on loopback
 * random ports, no kubelet of its own (the KubeVirt stand-in registers a node and answers what the
 * API server proxies to its kubelet). Binaries come from scripts/setup-test.sh (need_k8s) in the tools cache.
 *
 * One control plane per test run: `sharedControlPlane()` starts it lazily on first use and the root
 * hook (test/support/hooks.ts) stops it at the end, leaving no process and no temp dir behind.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { defaultToolsDir } from '../../../src/config.js';
import { createCa, createServiceAccountKeys, issueClientCert, issueServingCert, type Pki } from './pki.js';
import { freePorts, pollUntil, startProc, stopProc, type Proc } from './proc.js';

export const K8S_VERSION = 'v1.34.4';
export const ETCD_VERSION = 'v3.6.6';
const here = path.dirname(new URL(import.meta.url).pathname);
export const CRD_DIR = path.join(here, 'crds');

function bin(name: string, version: string): string {
  return path.join(defaultToolsDir(), 'bin', `${name}-${version}`);
}
export const kubectlBin = (): string => bin('kubectl', K8S_VERSION);

export interface ApiResponse {
  status: number;
  body: string;
  json<T = unknown>(): T;
}

export class ControlPlane {
  /** https://127.0.0.1:<port> */
  server = '';
  adminToken = '';
  kubeconfigPath = '';
  caPem = '';
  /** Milliseconds from start() to ready (CRDs established, controller-manager working). */
  startupMs = 0;
  timings: Record<string, number> = {};
  readonly pki: Pki;
  private procs: Proc[] = [];

  private constructor(readonly dir: string) {
    this.pki = createCa(dir);
    this.caPem = fs.readFileSync(this.pki.caCert, 'utf8');
  }

  static async start(opts: { crdDir?: string } = {}): Promise<ControlPlane> {
    const t0 = Date.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-k8s-'));
    const cp = new ControlPlane(dir);
    try {
      // A port picked by freePorts can be taken by another process before ours binds it: retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await cp.boot();
          break;
        } catch (err) {
          await cp.stopProcs();
          if (attempt >= 3 || !/address already in use|bind/i.test(String(err))) throw err;
        }
      }
      const t1 = Date.now();
      await cp.installCrds(opts.crdDir ?? CRD_DIR);
      cp.timings.crds = Date.now() - t1;
    } catch (err) {
      await cp.stop();
      throw err;
    }
    cp.startupMs = Date.now() - t0;
    return cp;
  }

  private async boot(): Promise<void> {
    const dir = this.dir;
    const [etcdClient, etcdPeer, apiPort] = (await freePorts(3)) as [number, number, number];
    let t = Date.now();
    fs.rmSync(path.join(dir, 'etcd'), { recursive: true, force: true });
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = startProc('etcd', bin('etcd', ETCD_VERSION), [
      '--name=default', `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=default=${peerUrl}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ], path.join(dir, 'etcd.log'));
    this.procs.push(etcd);
    await pollUntil('etcd /health', async () => {
      const r = await fetch(`${etcdUrl}/health`);
      return r.ok && ((await r.json()) as { health?: string }).health === 'true';
    }, 30_000, [etcd]);
    this.timings.etcd = Date.now() - t;

    t = Date.now();
    const serving = issueServingCert(this.pki, 'apiserver', ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes.default.svc']);
    const sa = createServiceAccountKeys(dir);
    // pods/log (and exec, port-forward) are proxied to the kubelet of the pod's node: the stand-in's
    // node (127.0.0.1) serves a certificate from this CA and asks for this client certificate
    const kubeletClient = issueClientCert(this.pki, 'apiserver-kubelet-client', 'kube-apiserver-kubelet-client', 'lab-test');
    this.adminToken = randomBytes(24).toString('hex');
    const tokens = path.join(dir, 'tokens.csv');
    fs.writeFileSync(tokens, `${this.adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });
    this.server = `https://127.0.0.1:${apiPort}`;
    const apiserver = startProc('kube-apiserver', bin('kube-apiserver', K8S_VERSION), [
      `--etcd-servers=${etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--cert-dir=${dir}`, `--tls-cert-file=${serving.cert}`, `--tls-private-key-file=${serving.key}`, `--client-ca-file=${this.pki.caCert}`,
      `--service-account-key-file=${sa.publicKey}`, `--service-account-signing-key-file=${sa.privateKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local', '--service-cluster-ip-range=10.96.0.0/16',
      `--kubelet-client-certificate=${kubeletClient.cert}`, `--kubelet-client-key=${kubeletClient.key}`,
      `--kubelet-certificate-authority=${this.pki.caCert}`, '--kubelet-preferred-address-types=InternalIP',
      '--authorization-mode=RBAC', `--token-auth-file=${tokens}`, '--allow-privileged=false', '--profiling=false',
      '--v=1',
    ], path.join(dir, 'kube-apiserver.log'));
    this.procs.push(apiserver);
    await pollUntil('kube-apiserver /readyz == "ok"', async () => (await this.request('GET', '/readyz')).body === 'ok', 60_000, [etcd, apiserver], 200);
    this.timings.apiserver = Date.now() - t;

    this.kubeconfigPath = path.join(dir, 'admin.kubeconfig');
    fs.writeFileSync(this.kubeconfigPath, this.kubeconfigYaml(this.adminToken, 'admin'), { mode: 0o600 });

    t = Date.now();
    const kcm = startProc('kube-controller-manager', bin('kube-controller-manager', K8S_VERSION), [
      `--kubeconfig=${this.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0',
      `--service-account-private-key-file=${sa.privateKey}`, `--root-ca-file=${this.pki.caCert}`,
      '--use-service-account-credentials=false', '--controllers=*', '--v=1',
      // Resync quickly so namespace deletion and quota status are prompt in tests.
      '--namespace-sync-period=10s', '--concurrent-namespace-syncs=5',
    ], path.join(dir, 'kube-controller-manager.log'));
    this.procs.push(kcm);
    // The service-account controller creating "default" in "default" proves the controllers run.
    await pollUntil('kube-controller-manager (default service account)', async () =>
      (await this.request('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 60_000, [etcd, apiserver, kcm], 200);
    this.timings.controllerManager = Date.now() - t;
  }

  /** Install every CRD under dir and wait until the API serves them. */
  async installCrds(dir: string): Promise<void> {
    const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
    const names: Array<{ name: string; group: string; version: string; plural: string }> = [];
    for (const f of files) {
      // Plain YAML parsing: client-node's loadAllYaml renames x-kubernetes-* keys to its model's names.
      const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as k8s.V1CustomResourceDefinition | null);
      for (const doc of docs) {
        if (!doc) continue;
        const r = await this.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', doc);
        if (r.status !== 201 && r.status !== 409) throw new Error(`installing CRD ${doc.metadata?.name} from ${f}: ${r.status} ${r.body}`);
        const served = doc.spec.versions.find((v) => v.storage) ?? doc.spec.versions[0];
        names.push({ name: doc.metadata!.name!, group: doc.spec.group, version: served!.name, plural: doc.spec.names.plural });
      }
    }
    for (const n of names) {
      await pollUntil(`CRD ${n.name} served`, async () => (await this.request('GET', `/apis/${n.group}/${n.version}/${n.plural}`)).status === 200, 30_000, this.procs);
    }
  }

  /** A kubeconfig (YAML) for this server with the given bearer token. */
  kubeconfigYaml(token: string, user = 'user'): string {
    return [
      'apiVersion: v1', 'kind: Config', 'current-context: test',
      'clusters:', '- name: test', '  cluster:', `    server: ${this.server}`,
      `    certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}`,
      'users:', `- name: ${user}`, '  user:', `    token: ${token}`,
      'contexts:', '- name: test', '  context:', '    cluster: test', `    user: ${user}`, '',
    ].join('\n');
  }

  /** A client configuration for @kubernetes/client-node (admin unless a token is given). */
  kubeConfig(token = this.adminToken): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(this.kubeconfigYaml(token));
    return kc;
  }

  /** A plain HTTPS request to the API server (admin token unless another is given). */
  request(method: string, urlPath: string, body?: unknown, token = this.adminToken, contentType = 'application/json'): Promise<ApiResponse> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const req = https.request(`${this.server}${urlPath}`, {
        method,
        ca: this.caPem,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data ? { 'content-type': contentType } : {}) },
        timeout: 30_000,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, json: <T>() => JSON.parse(text) as T }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timeout`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** A token for a ServiceAccount through the TokenRequest API (the account must exist). */
  async serviceAccountToken(namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
    const r = await this.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds },
    });
    if (r.status !== 201) throw new Error(`TokenRequest for ${namespace}/${name}: ${r.status} ${r.body}`);
    return r.json<{ status: { token: string } }>().status.token;
  }

  /** Process ids of etcd, kube-apiserver and kube-controller-manager while they run. */
  pids(): number[] {
    return this.procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.child.pid!).filter(Boolean);
  }

  private async stopProcs(): Promise<void> {
    // Controller-manager first, etcd last, so nothing logs errors about a vanished dependency.
    for (const p of [...this.procs].reverse()) await stopProc(p);
    this.procs = [];
  }

  async stop(): Promise<void> {
    await this.stopProcs();
    // LAB_K8S_KEEP=1 keeps the logs (etcd, apiserver, controller-manager, stand-in) for debugging.
    if (process.env.LAB_K8S_KEEP === '1') process.stderr.write(`      [k8s] kept ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

let shared: Promise<ControlPlane> | undefined;

/** The run's one control plane, started on first use (~10 s), stopped by the root afterAll hook. */
export function sharedControlPlane(): Promise<ControlPlane> {
  if (!shared) {
    shared = ControlPlane.start().then((cp) => {
      const t = cp.timings;
      process.stderr.write(
        `      [k8s] control plane ${K8S_VERSION} ready in ${cp.startupMs} ms (etcd ${t.etcd} ms, apiserver ${t.apiserver} ms, controller-manager ${t.controllerManager} ms, CRDs ${t.crds} ms)\n`,
      );
      return cp;
    });
    shared.catch(() => { shared = undefined; });
  }
  return shared;
}

export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const p = shared;
  shared = undefined;
  const cp = await p.catch(() => undefined);
  if (!cp) return;
  await cp.stop();
  // Every process of the control plane (and the stand-in's guests) has the temp dir on its command line.
  const left = processesMentioning(cp.dir);
  for (const pid of left) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  if (left.length) throw new Error(`control plane processes outlived stop(): ${left.join(', ')}`);
}

/** pids (other than ours) whose command line mentions `text`. */
export function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text)) out.push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  return out;
}
