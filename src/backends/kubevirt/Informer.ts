/**
 * A minimal shared informer: LIST, then WATCH from the list's resourceVersion, keeping a cache by
 * namespace/name and telling listeners about every change. A watch that ends is resumed from the
 * last seen version; one that fails with 410 Gone (version too old) relists. Errors back off
 * (capped at 5 s) and are logged, never thrown: the cache stays as it was until the next list.
 * Objects are kept and handed on without `metadata.managedFields` (server-side apply's bookkeeping,
 * about two fifths of a lab's namespace, VMI and NetworkPolicies as served; nothing here reads it),
 * as client-go's informers strip it with TransformStripManagedFields.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../logger.js';
import { KubeApiError, type KubeClient } from './client.js';
import type { K8sObject } from './manifests.js';

export type InformerEvent = 'ADDED' | 'MODIFIED' | 'DELETED';

export class Informer<T extends K8sObject = K8sObject> {
  private readonly cache = new Map<string, T>();
  private readonly events = new EventEmitter();
  private readonly abort = new AbortController();
  private rv = '';
  private syncedOnce: Promise<void>;
  private markSynced!: () => void;
  private loop: Promise<void> | undefined;
  /** Last time the list or watch failed (0 = healthy). */
  failingSince = 0;
  /** Lists done (1 + relists), for tests of the 410 path. */
  lists = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly path: string,
    private readonly labelSelector: string,
    private readonly log: Logger,
  ) {
    this.events.setMaxListeners(0);
    this.syncedOnce = new Promise((r) => (this.markSynced = r));
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  /** Resolves once the first list is in the cache. */
  synced(): Promise<void> {
    return this.syncedOnce;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(key(namespace, name));
  }

  items(): T[] {
    return [...this.cache.values()];
  }

  /** Listen to changes; returns an unsubscribe function. */
  on(fn: (type: InformerEvent, obj: T) => void): () => void {
    this.events.on('change', fn);
    return () => this.events.off('change', fn);
  }

  private async relist(): Promise<void> {
    const list = await this.client.request<{ metadata: { resourceVersion: string }; items: T[] }>(
      'GET',
      this.path,
      { query: { labelSelector: this.labelSelector }, signal: this.abort.signal },
      'list',
    );
    this.lists++;
    const seen = new Set<string>();
    for (const item of list.items) {
      stripManagedFields(item);
      const k = key(item.metadata.namespace, item.metadata.name);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, item);
      if (old?.metadata.resourceVersion !== item.metadata.resourceVersion) this.events.emit('change', old ? 'MODIFIED' : 'ADDED', item);
    }
    for (const [k, old] of this.cache) {
      if (!seen.has(k)) {
        this.cache.delete(k);
        this.events.emit('change', 'DELETED', old);
      }
    }
    this.rv = list.metadata.resourceVersion;
    this.markSynced();
  }

  private async run(): Promise<void> {
    let delay = 100;
    let needList = true;
    while (!this.abort.signal.aborted) {
      try {
        if (needList) await this.relist();
        needList = false;
        await this.client.watch(
          this.path,
          { labelSelector: this.labelSelector, resourceVersion: this.rv, timeoutSeconds: String(240 + Math.floor(Math.random() * 60)) },
          (type, obj) => this.apply(type, obj as T),
          this.abort.signal,
        );
        this.failingSince = 0;
        delay = 100;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (err instanceof KubeApiError && err.status === 410) {
          this.log.debug({ path: this.path }, 'k8s.watch_expired_relist');
          needList = true;
          continue;
        }
        if (!this.failingSince) this.failingSince = Date.now();
        this.log.warn({ err, path: this.path }, 'k8s.watch_failed');
        needList = true;
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(5000, delay * 2);
      }
    }
  }

  private apply(type: string, obj: T): void {
    if (obj.metadata.resourceVersion) this.rv = obj.metadata.resourceVersion;
    if (type === 'BOOKMARK') return;
    stripManagedFields(obj);
    const k = key(obj.metadata.namespace, obj.metadata.name);
    if (type === 'DELETED') this.cache.delete(k);
    else this.cache.set(k, obj);
    this.events.emit('change', type as InformerEvent, obj);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }
}

function key(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`;
}

function stripManagedFields(obj: K8sObject): void {
  delete (obj.metadata as { managedFields?: unknown }).managedFields;
}
