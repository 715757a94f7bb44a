/**
 * The stand-in's node and the part of its kubelet the tool reaches: one Node (`NODE_NAME`, InternalIP
 * 127.0.0.1, the kubelet port in `status.daemonEndpoints`) kept Ready the way a kubelet keeps it —
 * the Ready condition at registration, then a Lease in `kube-node-lease` renewed every 10 s, which
 * the controller-manager's node lifecycle controller counts as the heartbeat — so it never taints
 * the node or evicts its pods. The virt-launcher pods bound to it are finalized like a kubelet
 * finalizes them: a pod marked for deletion (by the garbage collector after its VMI, or by the
 * namespace controller) is deleted for good at once, so a namespace with launcher pods goes away.
 *
 * Its HTTPS server answers what the API server proxies for `pods/log` (mutual TLS: the API server's
 * kubelet client certificate, from the control plane's CA):
 *
 *   GET /containerLogs/{ns}/{pod}/{container}?tailLines=&limitBytes=
 *
 * The `guest-console-log` container's log is what KubeVirt's virt-tail prints of the serial console
 * log (libvirt's, here QEMU's chardev logfile): complete lines only (virt-tail tails the file with
 * `CompleteLines`, so a prompt without its newline is not in the log yet). `compute` has no log here.
 */
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient, ObjectMeta } from './kube.js';

export const LAUNCHER_LABEL = 'kubevirt.io';
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';
export const CONSOLE_LOG_CONTAINER = 'guest-console-log';
const LEASE_RENEW_MS = 10_000;
const route = /^\/containerLogs\/([a-z0-9-]+)\/([a-z0-9.-]+)\/([a-z0-9-]+)$/;

export interface KubeletOptions {
  kc: k8s.KubeConfig;
  kube: KubeClient;
  nodeName: string;
  tlsCert: string;
  tlsKey: string;
  /** The CA the API server's kubelet client certificate is signed by. */
  clientCa: string;
  /** The serial console log file of the guest of the VMI with this uid, while it runs. */
  consoleLogOf: (vmiUid: string) => string | undefined;
  log: Logger;
}

interface PodLike { metadata: ObjectMeta; spec?: { nodeName?: string } }

const microTime = (): string => new Date().toISOString().replace(/Z$/, '000Z');

export class StandInKubelet {
  private readonly server: https.Server;
  private informer: k8s.Informer<k8s.V1Pod> | undefined;
  private lease: NodeJS.Timeout | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private stopped = false;
  port = 0;

  constructor(private readonly o: KubeletOptions) {
    this.server = https.createServer({
      cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey),
      ca: fs.readFileSync(o.clientCa), requestCert: true, rejectUnauthorized: true,
    }, (req, res) => {
      void this.onRequest(req, res).catch((err: unknown) => reply(res, 500, String(err)));
    });
  }

  /** Serve, register the node, start the lease and the pod watch. */
  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
    await this.registerNode();
    await this.renewLease();
    this.lease = setInterval(() => {
      void this.renewLease().catch((err: unknown) => this.o.log.warn({ err: String(err) }, 'kubelet.lease.failed'));
    }, LEASE_RENEW_MS);
    const core = this.o.kc.makeApiClient(k8s.CoreV1Api);
    const selector = `${LAUNCHER_LABEL}=virt-launcher`;
    const inf = k8s.makeInformer(this.o.kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: selector }), selector);
    const onPod = (p: k8s.V1Pod): void => {
      this.o.log.debug({ pod: `${p.metadata?.namespace}/${p.metadata?.name}`, deleting: !!p.metadata?.deletionTimestamp, node: p.spec?.nodeName }, 'kubelet.pod');
      void this.finalize(p as PodLike);
    };
    inf.on('add', onPod);
    inf.on('update', onPod);
    inf.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.o.log.warn({ err: String(err) }, 'kubelet.watch.error; restarting');
      setTimeout(() => { if (!this.stopped) void inf.start().catch(() => undefined); }, 1000);
    });
    await inf.start();
    this.informer = inf;
    // and a periodic look, as a kubelet's sync loop does: a pod marked for deletion is never left behind
    this.sweep = setInterval(() => { void this.sweepDeleted(); }, 2000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.lease) clearInterval(this.lease);
    if (this.sweep) clearInterval(this.sweep);
    await this.informer?.stop();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private async registerNode(): Promise<void> {
    const t = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: this.o.nodeName }],
      daemonEndpoints: { kubeletEndpoint: { Port: this.port } },
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: t, lastTransitionTime: t }],
      capacity: { cpu: '64', memory: '256Gi', pods: '1000' },
      allocatable: { cpu: '64', memory: '256Gi', pods: '1000' },
    };
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: this.o.nodeName, labels: { 'kubernetes.io/hostname': this.o.nodeName, 'kubevirt.io/schedulable': 'true' } }, status };
    const r = await this.o.kube.request('POST', '/api/v1/nodes', node);
    if (r.status === 409) await this.o.kube.mergePatch(`/api/v1/nodes/${this.o.nodeName}/status`, { status });
    else if (r.status !== 201) throw new Error(`registering node ${this.o.nodeName}: ${r.status} ${r.text.slice(0, 300)}`);
  }

  private async renewLease(): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.o.nodeName}`;
    const spec = { holderIdentity: this.o.nodeName, leaseDurationSeconds: 40, renewTime: microTime() };
    const r = await this.o.kube.request('PATCH', path, { spec }, 'application/merge-patch+json');
    if (r.status === 200) return;
    if (r.status !== 404) throw new Error(`renewing the node lease: ${r.status} ${r.text.slice(0, 300)}`);
    await this.o.kube.must('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.nodeName, namespace: 'kube-node-lease' }, spec,
    }, [201, 409]);
  }

  private async sweepDeleted(): Promise<void> {
    const r = await this.o.kube.request<{ items: PodLike[] }>('GET', `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.o.nodeName}`)}`).catch(() => undefined);
    for (const p of r?.status === 200 ? r.body.items : []) if (p.metadata.deletionTimestamp) await this.finalize(p);
  }

  /** A kubelet deletes a pod of its node for good once its containers are gone (here: at once). */
  private async finalize(p: PodLike): Promise<void> {
    if (this.stopped || !p.metadata.deletionTimestamp || p.spec?.nodeName !== this.o.nodeName) return;
    const { namespace: ns, name, uid } = p.metadata;
    // options as query parameters: KubeClient sends a DELETE body without Content-Length, which node's
    // http client does not frame for DELETE, so the API server never sees it
    const r = await this.o.kube.request('DELETE', `/api/v1/namespaces/${ns}/pods/${name}?gracePeriodSeconds=0`)
      .catch((err: unknown) => ({ status: 0, text: String(err) }));
    this.o.log.info({ pod: `${ns}/${name}`, uid, status: r.status }, 'kubelet.finalize');
    if (r.status !== 200 && r.status !== 404 && r.status !== 409) this.o.log.warn({ pod: `${ns}/${name}`, status: r.status, text: r.text.slice(0, 200) }, 'kubelet.finalize.failed');
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const m = route.exec(url.pathname);
    if (req.method !== 'GET' || !m) return reply(res, 404, '404 page not found\n');
    const [, ns, podName, container] = m as unknown as [string, string, string, string];
    const pod = await this.o.kube.get<PodLike>(`/api/v1/namespaces/${ns}/pods/${podName}`);
    if (!pod || pod.spec?.nodeName !== this.o.nodeName) return reply(res, 404, `pod ${ns}/${podName} not found on this node\n`);
    let text: Buffer = Buffer.alloc(0);
    if (container === CONSOLE_LOG_CONTAINER) {
      const file = this.o.consoleLogOf(pod.metadata.labels?.[CREATED_BY_LABEL] ?? '');
      text = completeLines(file ? readOrEmpty(file) : Buffer.alloc(0));
    }
    const tail = url.searchParams.get('tailLines');
    if (tail !== null) text = lastLines(text, Number(tail));
    const limit = url.searchParams.get('limitBytes');
    // the kubelet cuts at limitBytes from the start of what it would send
    if (limit !== null) text = text.subarray(0, Math.max(0, Number(limit)));
    this.o.log.info({ pod: `${ns}/${podName}`, container, bytes: text.length, tailLines: tail, limitBytes: limit }, 'kubelet.containerLogs');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(text);
  }
}

function reply(res: ServerResponse, code: number, text: string): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(code, { 'content-type': 'text/plain' });
  res.end(text);
}

function readOrEmpty(file: string): Buffer {
  try { return fs.readFileSync(file); } catch { return Buffer.alloc(0); }
}

/** What virt-tail prints: every complete line (a partial last line waits for its newline). */
export function completeLines(b: Buffer): Buffer {
  const nl = b.lastIndexOf(0x0a);
  return nl < 0 ? Buffer.alloc(0) : b.subarray(0, nl + 1);
}

/** The last `n` lines of complete-line text. */
export function lastLines(b: Buffer, n: number): Buffer {
  if (!(n >= 0)) return b;
  let end = b.length;
  if (end > 0 && b[end - 1] === 0x0a) end--;
  let at = end;
  for (let i = 0; i < n; i++) {
    if (at <= 0) return b;
    const nl = b.lastIndexOf(0x0a, at - 1);
    if (nl < 0) return b;
    at = nl;
    if (i === n - 1) return b.subarray(nl + 1);
  }
  return Buffer.alloc(0);
}
