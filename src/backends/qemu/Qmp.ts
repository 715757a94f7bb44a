/**
 * A QMP (QEMU Machine Protocol) client over a unix socket: greeting, qmp_capabilities,
 * execute() with ids, and events. QEMU serves one client per QMP socket at a time.
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { BackendFailure } from '../../errors.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string };

export class Qmp extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    super();
  }

  /** Connect, read the greeting and negotiate capabilities. Retries until the socket exists (up to timeoutMs). */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<Qmp> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await Qmp.connectOnce(socketPath, Math.max(500, end - Date.now()));
      } catch (err) {
        if (Date.now() > end) throw new BackendFailure(`QMP connect to ${socketPath} failed: ${(err as Error).message}`, { cause: err, publicMessage: 'The virtual machine does not answer' });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private static connectOnce(socketPath: string, timeoutMs: number): Promise<Qmp> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(socketPath);
      const qmp = new Qmp(sock);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('no QMP greeting')); }, timeoutMs);
      let greeted = false;
      sock.once('error', (e) => { clearTimeout(timer); if (!greeted) reject(e); });
      sock.on('data', (chunk: Buffer) => {
        qmp.buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = qmp.buf.indexOf('\n')) >= 0) {
          const line = qmp.buf.slice(0, nl).trim();
          qmp.buf = qmp.buf.slice(nl + 1);
          if (!line) continue;
          let msg: Record<string, unknown>;
          try {
            msg = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (!greeted && 'QMP' in msg) {
            greeted = true;
            qmp.execute('qmp_capabilities').then(() => { clearTimeout(timer); resolve(qmp); }, (e: Error) => { clearTimeout(timer); sock.destroy(); reject(e); });
            continue;
          }
          qmp.dispatch(msg);
        }
      });
      sock.on('close', () => {
        qmp.closed = true;
        for (const p of qmp.pending.values()) p.reject(new BackendFailure(`QMP connection closed during ${p.command}`));
        qmp.pending.clear();
        qmp.emit('close');
      });
      sock.on('error', () => { /* surfaced through close */ });
    });
  }

  private dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.event === 'string') {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p || !id) return;
    this.pending.delete(id);
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(new BackendFailure(`QMP ${p.command}: ${e.class ?? 'Error'}: ${e.desc ?? ''}`));
    } else p.resolve(msg.return);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Run a QMP command; resolves with its "return" value, rejects with BackendFailure on an error reply or a closed socket. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closed) return Promise.reject(new BackendFailure(`QMP connection closed (${command})`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BackendFailure(`QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        command,
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** Resolves with the next event of that name (or rejects after timeoutMs). */
  waitEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => { if (e.event === name) { cleanup(); resolve(e); } };
      const onClose = () => { cleanup(); reject(new BackendFailure(`QMP closed while waiting for ${name}`)); };
      const timer = setTimeout(() => { cleanup(); reject(new BackendFailure(`no ${name} event within ${timeoutMs} ms`)); }, timeoutMs);
      const cleanup = () => { clearTimeout(timer); this.off('event', onEvent); this.off('close', onClose); };
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
