/**
 * The tool's Kubernetes client: the only module that imports @kubernetes/client-node (for
 * KubeConfig: in-cluster service account or a kubeconfig file, token refresh, TLS). Requests go
 * out on one keep-alive agent, JSON over the wire (the objects from manifests.ts), and are
 * - counted in lab_k8s_api_requests_total{verb,status} (and reported to onRequest listeners),
 * - rate-limited client-side by a token bucket at `qps` (never below 50/s) that lets `burst` requests
 *   (never fewer than qps) go at once: a class starting together, not a runaway loop,
 * - retried with exponential backoff and jitter on 429 and 5xx (Retry-After honoured) and on
 *   connection errors.
 * Idempotency lives here: create() treats a 409 on an object carrying our instance annotation as
 * success and anything else as a Conflict (never adopted); remove() treats 404 as success.
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { URL } from 'node:url';
import type { Duplex } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import WebSocket, { createWebSocketStream, type ClientOptions } from 'ws';
import { BackendFailure, Conflict, Forbidden, NotFound } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { INSTANCE_ANNOTATION, type K8sObject } from './manifests.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'connect';

export interface RequestRecord {
  verb: Verb;
  path: string;
  status: number;
}

export interface KubeClientOptions {
  /** A kubeconfig path; undefined = the in-cluster service account. */
  kubeconfigPath?: string;
  log: Logger;
  metrics?: Metrics;
  /** Client-side rate limit (requests/s); at least 50. */
  qps?: number;
  /** Requests that may go at once before `qps` applies (default DEFAULT_KUBE_BURST); at least qps. */
  burst?: number;
  /** Attempts for a retryable failure (429, 5xx, connection error). */
  maxAttempts?: number;
}

/** A failed API request: status, Kubernetes reason and message (never a token). */
export class KubeApiError extends BackendFailure {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(`Kubernetes API ${status} ${reason}: ${message}`, { publicMessage: 'The lab cluster refused a request.' });
  }
}

const RETRYABLE = new Set([429, 500, 502, 503, 504]);
/** A misspelled field in one of our objects is an error, never silently dropped. */
const STRICT = { fieldValidation: 'Strict' };

/** Path of an object (or, with name undefined, its collection) from apiVersion and kind. */
export function objectPath(o: { apiVersion: string; kind: string; metadata: { namespace?: string } }, name?: string): string {
  const plural = PLURALS[o.kind];
  if (!plural) throw new Error(`no API path known for kind ${o.kind}`);
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const ns = o.kind === 'Namespace' ? '' : `/namespaces/${o.metadata.namespace ?? ''}`;
  return `${base}${ns}/${plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}
const PLURALS: Record<string, string> = {
  Namespace: 'namespaces',
  Secret: 'secrets',
  Service: 'services',
  Pod: 'pods',
  ResourceQuota: 'resourcequotas',
  LimitRange: 'limitranges',
  NetworkPolicy: 'networkpolicies',
  RoleBinding: 'rolebindings',
  VirtualMachine: 'virtualmachines',
  VirtualMachineInstance: 'virtualmachineinstances',
  Lease: 'leases',
};

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The client's default burst: a class of 40 two-VM labs starting at once sends ~520 requests (13 per
 * lab), and none of them waits for the rate limit; what goes on past that runs at `qps`.
 */
export const DEFAULT_KUBE_BURST = 600;

/** Token bucket: `rate` per second, `burst` at most; take() waits for a token. */
class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  async take(signal: AbortSignal): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.ceil(((1 - this.tokens) / this.rate) * 1000), signal);
    }
  }
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string>;
  contentType?: string;
  signal?: AbortSignal;
  /** Another base URL with the same credentials (KubeVirt's subresource API); default the API server. */
  baseUrl?: string;
  /** The response body as bytes (a Buffer), not JSON: an image, say. Errors are still read as JSON. */
  binary?: boolean;
}

export class KubeClient {
  readonly kc = new KubeConfig();
  /** The API server URL, without a trailing slash. */
  readonly server: string;
  private readonly agent: http.Agent;
  private readonly bucket: TokenBucket;
  private readonly listeners = new Set<(r: RequestRecord) => void>();
  /** Aborted by close(): every wait for a retry or a token ends, so nothing runs on after the client. */
  private readonly closing = new AbortController();

  constructor(private readonly o: KubeClientOptions) {
    if (o.kubeconfigPath) this.kc.loadFromFile(o.kubeconfigPath);
    else this.kc.loadFromCluster();
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new BackendFailure('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
    const qps = Math.max(50, o.qps ?? 100);
    this.bucket = new TokenBucket(qps, Math.max(qps, o.burst ?? DEFAULT_KUBE_BURST));
    const agentOpts = { keepAlive: true, maxSockets: 64 };
    this.agent = this.server.startsWith('https:') ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
    // every request waiting for a token or a retry listens here until it goes on: hundreds at scale
    setMaxListeners(0, this.closing.signal);
  }

  /** Called for every completed request (tests count requests per lab namespace with it). */
  onRequest(fn: (r: RequestRecord) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private record(verb: Verb, path: string, status: number): void {
    this.o.metrics?.k8sRequests.inc({ verb, status: String(status) });
    for (const l of this.listeners) l({ verb, path, status });
  }

  /** TLS material and the Authorization header for one request (the token file is re-read, so rotation works). */
  async authOptions(base: https.RequestOptions | ClientOptions = {}): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { ...(base as https.RequestOptions), headers: { ...(base.headers ?? {}) } };
    await this.kc.applyToHTTPSOptions(opts);
    return opts;
  }

  private async once<T>(method: string, verb: Verb, path: string, ro: RequestOptions): Promise<{ status: number; body: T }> {
    await this.bucket.take(this.closing.signal);
    const url = new URL((ro.baseUrl ?? this.server) + path);
    for (const [k, v] of Object.entries(ro.query ?? {})) url.searchParams.set(k, v);
    const opts = await this.authOptions({ method, headers: { accept: 'application/json' } });
    if (!ro.baseUrl || ro.baseUrl === this.server) opts.agent = this.agent;
    const payload = ro.body === undefined ? undefined : Buffer.from(JSON.stringify(ro.body));
    if (payload) {
      const h = opts.headers as Record<string, string | number>;
      h['content-type'] = ro.contentType ?? 'application/json';
      h['content-length'] = payload.length;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const res = await new Promise<{ status: number; raw: Buffer; text: string; retryAfter?: string }>((resolve, reject) => {
      const req = mod.request(url, { ...opts, signal: ro.signal }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: r.statusCode ?? 0, raw, text: ro.binary && (r.statusCode ?? 0) < 400 ? '' : raw.toString('utf8'), retryAfter: r.headers['retry-after'] });
        });
        r.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
    this.record(verb, path, res.status);
    if (ro.binary && res.status < 400) return { status: res.status, body: res.raw as T };
    let body: T;
    try {
      body = (res.text && res.text.startsWith('{') ? JSON.parse(res.text) : res.text) as T;
    } catch {
      body = res.text as T; // a proxy's HTML error page, a cut-off response
    }
    if (res.status >= 400) {
      const st = body as { reason?: string; message?: string };
      const ra = res.retryAfter ? Number(res.retryAfter) * 1000 : undefined;
      throw new KubeApiError(res.status, st.reason ?? 'Unknown', st.message ?? String(res.text).slice(0, 200), ra);
    }
    return { status: res.status, body };
  }

  /** One API call with retries on 429/5xx/connection errors. Throws KubeApiError for other statuses. */
  async request<T = K8sObject>(method: string, path: string, ro: RequestOptions = {}, verb: Verb = verbOf(method, path)): Promise<T> {
    const max = this.o.maxAttempts ?? 6;
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.once<T>(method, verb, path, ro)).body;
      } catch (err) {
        const retryable = err instanceof KubeApiError ? RETRYABLE.has(err.status) : isConnError(err);
        if (!retryable || attempt >= max || ro.signal?.aborted || this.closing.signal.aborted) throw err;
        const backoff = Math.min(5000, 100 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
        const wait = err instanceof KubeApiError && err.retryAfterMs !== undefined ? Math.max(err.retryAfterMs, backoff) : backoff;
        this.o.log.debug({ method, path, attempt, wait, status: err instanceof KubeApiError ? err.status : 'conn' }, 'k8s.retry');
        await sleep(wait, ro.signal ? AbortSignal.any([ro.signal, this.closing.signal]) : this.closing.signal);
      }
    }
  }

  /** GET an object; undefined when it does not exist. */
  async get<T = K8sObject>(path: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path, { signal });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * Create an object we own. A 409 is success only when the existing object carries our
   * instance annotation; otherwise Conflict (the object is left alone, never adopted).
   */
  async create(obj: K8sObject, signal?: AbortSignal): Promise<'created' | 'exists'> {
    try {
      await this.request('POST', objectPath(obj), { body: obj, signal, query: STRICT });
      return 'created';
    } catch (err) {
      // quota admission runs before the storage's conflict check: a full quota answers 403 for an object that already exists
      const quotaFull = err instanceof KubeApiError && err.status === 403 && /exceeded quota/.test(err.message);
      if (!(err instanceof KubeApiError) || (err.status !== 409 && !quotaFull)) throw err;
      if (quotaFull) {
        const existing = await this.get(objectPath(obj, obj.metadata.name), signal);
        if (existing?.metadata.annotations?.[INSTANCE_ANNOTATION] === obj.metadata.annotations?.[INSTANCE_ANNOTATION] && existing) return 'exists';
        throw err;
      }
    }
    const existing = await this.get(objectPath(obj, obj.metadata.name), signal);
    const mine = obj.metadata.annotations?.[INSTANCE_ANNOTATION];
    if (existing && mine !== undefined && existing.metadata.annotations?.[INSTANCE_ANNOTATION] === mine) return 'exists';
    throw new Conflict(`${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name} exists and was not created by this lab`, {
      publicMessage: 'The lab cluster already has a resource with this lab’s name that the tool did not create.',
    });
  }

  /** Delete; a 404 is success. Returns false when it was already gone. */
  async remove(path: string, opts: { propagation?: 'Foreground' | 'Background'; signal?: AbortSignal } = {}): Promise<boolean> {
    try {
      await this.request('DELETE', path, {
        signal: opts.signal,
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: opts.propagation ?? 'Background' },
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
  }

  /** JSON merge patch. */
  patch<T = K8sObject>(path: string, patch: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>('PATCH', path, { body: patch, contentType: 'application/merge-patch+json', signal, query: STRICT });
  }

  /**
   * A streaming watch from resourceVersion. Calls onEvent per event; resolves when the server ends
   * the stream; rejects with KubeApiError(410) when the version is too old (caller relists).
   */
  async watch(path: string, query: Record<string, string>, onEvent: (type: string, obj: K8sObject) => void, signal: AbortSignal): Promise<void> {
    await this.bucket.take(this.closing.signal);
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries({ ...query, watch: '1', allowWatchBookmarks: 'true' })) url.searchParams.set(k, v);
    const opts = await this.authOptions({ method: 'GET', headers: { accept: 'application/json' } });
    opts.agent = this.agent;
    const mod = url.protocol === 'https:' ? https : http;
    await new Promise<void>((resolve, reject) => {
      const req = mod.request(url, { ...opts, signal }, (res) => {
        this.record('watch', path, res.statusCode ?? 0);
        if ((res.statusCode ?? 0) >= 400) {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString('utf8')));
          res.on('end', () => reject(new KubeApiError(res.statusCode ?? 0, 'WatchFailed', text.slice(0, 200))));
          return;
        }
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8');
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line.trim()) continue;
            let ev: { type: string; object: K8sObject & { code?: number; message?: string } };
            try {
              ev = JSON.parse(line) as typeof ev;
            } catch (err) {
              req.destroy();
              reject(new KubeApiError(500, 'BadWatchEvent', `unparsable watch event: ${String(err)}`));
              return;
            }
            if (ev.type === 'ERROR') {
              req.destroy();
              reject(new KubeApiError(ev.object.code ?? 500, 'WatchError', ev.object.message ?? 'watch error'));
              return;
            }
            onEvent(ev.type, ev.object);
          }
        });
        res.on('end', () => resolve());
        res.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      });
      req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      req.end();
    });
  }

  /** A websocket to the API server (or another base URL) with the tool's credentials, as a byte Duplex. */
  async websocket(url: string, protocols: string[], verb: Verb = 'connect'): Promise<{ ws: WebSocket; stream: Duplex }> {
    await this.bucket.take(this.closing.signal);
    const opts = (await this.authOptions({ headers: {} })) as ClientOptions;
    const ws = new WebSocket(url, protocols, { ...opts, handshakeTimeout: 15_000, perMessageDeflate: false });
    const path = new URL(url).pathname;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        this.record(verb, path, 101);
        resolve();
      });
      ws.once('unexpected-response', (_req, res) => {
        this.record(verb, path, res.statusCode ?? 0);
        const status = res.statusCode ?? 0;
        ws.terminate();
        if (status === 404) reject(new NotFound(`websocket ${path}: 404`, { publicMessage: 'This machine is not available.' }));
        else if (status === 401 || status === 403) reject(new Forbidden(`websocket ${path}: ${status}`, { publicMessage: 'The lab cluster refused the connection.' }));
        else reject(new KubeApiError(status, 'UpgradeFailed', `websocket ${path}`));
      });
      ws.once('error', (e) => reject(new BackendFailure(`websocket ${path}: ${e.message}`, { cause: e, publicMessage: 'The machine could not be reached.' })));
    });
    return { ws, stream: createWebSocketStream(ws) };
  }

  /** close() was called: nothing waits or retries any more. */
  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  close(): void {
    this.closing.abort(new BackendFailure('the Kubernetes client was closed'));
    this.agent.destroy();
  }
}

function verbOf(method: string, path: string): Verb {
  switch (method) {
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return isCollection(path) ? 'list' : 'get';
  }
}

/** /api/v1/namespaces/x/pods is a collection; /api/v1/namespaces/x/pods/y is an object. */
function isCollection(path: string): boolean {
  const parts = path.split('?')[0]?.split('/').filter(Boolean) ?? [];
  const afterVersion = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  return afterVersion.length % 2 === 1;
}

function isConnError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'EAI_AGAIN';
}
