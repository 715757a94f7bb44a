import { t } from './i18n.js';

/**
 * The session and the API. The launch puts our session token in the URL fragment (#session=…):
 * it is read once, removed from the address bar and kept in memory only; every request sends it
 * as `Authorization: Bearer`. No cookies, so it works inside Moodle's iframe.
 */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class Session {
  constructor(readonly token: string) {}

  /** Takes the token out of location.hash (and the URL) — undefined when there is none. */
  static fromFragment(): Session | undefined {
    const m = /(?:^#|&)session=([^&]+)/.exec(location.hash);
    if (!m?.[1]) return undefined;
    const rest = location.hash.replace(/(?:^#|&)session=[^&]+/, '').replace(/^&/, '');
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    return new Session(decodeURIComponent(m[1]));
  }

  private payload(): { exp?: unknown; locale?: unknown } {
    try {
      return JSON.parse(atob(this.token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown; locale?: unknown };
    } catch {
      return {};
    }
  }

  /** When the token expires (ms), from its payload. */
  expiresAt(): number | undefined {
    const p = this.payload();
    return typeof p.exp === 'number' ? p.exp * 1000 : undefined;
  }

  /** The launch's locale (launch_presentation.locale), when the platform sent one. */
  locale(): string | undefined {
    const p = this.payload();
    return typeof p.locale === 'string' ? p.locale : undefined;
  }

  async api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, t('lab.unreachable'));
    }
    const data = (await res.json().catch(() => ({}))) as { error?: string };
    if (!res.ok) throw new ApiError(res.status, data.error ?? `HTTP ${res.status}`);
    return data as T;
  }

  /**
   * Server push over fetch (so the Bearer header is sent): calls onEvent per `data:` line, and
   * reconnects with backoff when the stream breaks, telling onLink about the state.
   */
  events(path: string, onEvent: (e: unknown) => void, onLink: (up: boolean, retryInMs?: number) => void): () => void {
    let stopped = false;
    let ctrl: AbortController | undefined;
    let delay = 1000;
    const run = async () => {
      while (!stopped) {
        ctrl = new AbortController();
        try {
          const res = await fetch(path, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, signal: ctrl.signal, cache: 'no-store' });
          if (res.status === 401 || res.status === 403) {
            onLink(false);
            return;
          }
          if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
          onLink(true);
          delay = 1000;
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i: number;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              for (const line of block.split('\n')) if (line.startsWith('data: ')) onEvent(JSON.parse(line.slice(6)));
            }
          }
        } catch {
          // network drop or tool restart: fall through to the retry
        }
        if (stopped) return;
        onLink(false, delay);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(15_000, delay * 2);
      }
    };
    void run();
    return () => {
      stopped = true;
      ctrl?.abort();
    };
  }
}
