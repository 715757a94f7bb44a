/**
 * A minimal Kubernetes REST client for the KubeVirt stand-in: plain JSON over HTTPS with the
 * kubeconfig's credentials (@kubernetes/client-node applies them). Watches use client-node.
 */
import https from 'node:https';
import type * as k8s from '@kubernetes/client-node';

export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export class KubeError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>;
}

export class KubeClient {
  readonly server: string;
  constructor(private readonly kc: k8s.KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse<T>> {
    const opts: https.RequestOptions = { method, headers: { accept: 'application/json' }, timeout: 30_000 };
    await this.kc.applyToHTTPSOptions(opts);
    const data = body === undefined ? undefined : JSON.stringify(body);
    if (data) (opts.headers as Record<string, string>)['content-type'] = contentType;
    return new Promise((resolve, reject) => {
      const req = https.request(`${this.server}${path}`, opts, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => {
          let parsed: unknown = text;
          try { parsed = JSON.parse(text); } catch { /* not JSON (e.g. /readyz) */ }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Like request, but any status outside `ok` throws a KubeError. */
  async must<T = unknown>(method: string, path: string, body?: unknown, ok: number[] = [200, 201], contentType?: string): Promise<T> {
    const r = await this.request<T>(method, path, body, contentType);
    if (!ok.includes(r.status)) throw new KubeError(r.status, `${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.body;
  }

  get<T>(path: string): Promise<T | undefined> {
    return this.request<T>('GET', path).then((r) => {
      if (r.status === 404) return undefined;
      if (r.status !== 200) throw new KubeError(r.status, `GET ${path}: ${r.status} ${r.text.slice(0, 300)}`);
      return r.body;
    });
  }

  mergePatch<T>(path: string, patch: unknown, ok = [200]): Promise<T> {
    return this.must<T>('PATCH', path, patch, ok, 'application/merge-patch+json');
  }
}

export const vmPath = (ns: string, name?: string): string => `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines${name ? `/${name}` : ''}`;
export const vmiPath = (ns: string, name?: string): string => `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances${name ? `/${name}` : ''}`;
