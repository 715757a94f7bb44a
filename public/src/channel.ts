/**
 * One desktop or console connection: asks the API for a ticket, opens the websocket with the
 * ticket as a subprotocol (never in the URL), and reconnects by itself after a network drop or a
 * tool restart — with a fresh ticket each time and a visible state. Closes the server decided on
 * (lab stopped, session expired, another tab, not your lab) are final and shown with their reason.
 */
import { ApiError, type Session } from './api.js';
import { t as tr } from './i18n.js';
import type { ChannelKind } from './types.js';
import { CLOSE, FINAL_CLOSE } from '../../src/closeCodes.js';

export type LinkState =
  | { kind: 'idle' }
  | { kind: 'connecting' }
  | { kind: 'connected' }
  | { kind: 'reconnecting'; inMs: number; why: string }
  | { kind: 'closed'; reason: string; canRetry: boolean };


export abstract class ChannelLink {
  state: LinkState = { kind: 'idle' };
  protected ws: WebSocket | undefined;
  private attempt = 0;
  private timer: number | undefined;
  private wanted = false;
  onState: (s: LinkState) => void = () => undefined;

  constructor(
    protected readonly session: Session,
    readonly instanceId: string,
    readonly machine: string,
    readonly channel: ChannelKind,
    readonly viewOnly: boolean,
  ) {}

  /** Open (or re-open) the connection. */
  connect(): void {
    this.wanted = true;
    window.clearTimeout(this.timer);
    void this.open();
  }

  /** Close and stay closed (tab removed, lab stopped). */
  disconnect(reason = 'closed'): void {
    this.wanted = false;
    window.clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    this.detach();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'bye');
    this.set({ kind: 'closed', reason, canRetry: true });
  }

  protected abstract attach(ws: WebSocket): void;
  protected abstract detach(): void;

  protected set(s: LinkState): void {
    this.state = s;
    this.onState(s);
  }

  /** Called by subclasses once the protocol on top is up (RFB handshake done, or socket open). */
  protected connected(): void {
    this.attempt = 0;
    this.set({ kind: 'connected' });
  }

  private async open(): Promise<void> {
    this.set(this.attempt === 0 ? { kind: 'connecting' } : this.state);
    let t: { ticket: string; path: string; protocol: string };
    try {
      t = await this.session.api('POST', `/api/instances/${this.instanceId}/tickets`, { machine: this.machine, channel: this.channel });
    } catch (err) {
      const e = err as ApiError;
      if (e.status === 401 || e.status === 403 || e.status === 404) return this.set({ kind: 'closed', reason: e.message, canRetry: false });
      return this.retry(e.message);
    }
    if (!this.wanted) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${t.path}`;
    const ws = new WebSocket(url, [t.protocol, `ticket.${t.ticket}`]);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.addEventListener('close', (e) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.detach();
      if (!this.wanted) return;
      const final = FINAL_CLOSE[e.code];
      if (final !== undefined) this.set({ kind: 'closed', reason: e.reason || tr('ws.closedCode', { code: e.code }), canRetry: final.userCanRetry });
      else this.retry(e.code === CLOSE.shutdown.code ? tr('ws.restarting') : e.reason || tr('ws.connectionLost'));
    });
    this.attach(ws);
  }

  private retry(why: string): void {
    const inMs = Math.min(15_000, 1000 * 2 ** Math.min(this.attempt, 4));
    this.attempt++;
    this.set({ kind: 'reconnecting', inMs, why });
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.open(), inMs);
  }
}
