/**
 * Websocket tickets: short-lived (≤ 60 s), single-use, bound to user, instance, machine and
 * channel. The page asks for one through the authenticated API and carries it in
 * `Sec-WebSocket-Protocol` (so it never appears in a URL or an access log).
 *
 * Format: `<base64url(JSON claims)>.<base64url(HMAC-SHA256)>` — only token characters, so it is a
 * valid subprotocol name. The key is derived from SECRET_KEY under its own label: a session token
 * can never pass as a ticket, nor a ticket as a session. Tickets are never logged.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ChannelKind } from '../backends/types.js';
import { Forbidden } from '../errors.js';
import { consumeTicketId } from '../store/TicketUse.js';

/** The subprotocol the server answers with; the ticket rides along as `ticket.<ticket>`. */
export const WS_PROTOCOL = 'lab.v1';
export const TICKET_PROTOCOL_PREFIX = 'ticket.';
export const MAX_TICKET_TTL_SECONDS = 60;

export type ChannelMode = 'control' | 'view';

export interface TicketClaims {
  /** Our user id of whoever asked for it. */
  user: string;
  instance: string;
  machine: string;
  channel: ChannelKind;
  /** 'view': a teacher watching — no input reaches the machine. */
  mode: ChannelMode;
  /** Expiry, ms since the epoch. */
  exp: number;
  /** When the session that asked for the ticket expires (ms); the socket closes then ("session expired"). */
  sessionExp?: number;
  jti: string;
}

export class InvalidTicket extends Forbidden {}

export class TicketService {
  private readonly key: Buffer;
  private readonly ttlMs: number;

  constructor(secretKey: string, ttlSeconds = MAX_TICKET_TTL_SECONDS, private readonly now: () => number = Date.now) {
    if (!(ttlSeconds > 0 && ttlSeconds <= MAX_TICKET_TTL_SECONDS)) throw new RangeError(`ticket TTL must be 1..${MAX_TICKET_TTL_SECONDS} s`);
    this.key = createHmac('sha256', secretKey).update('ws-ticket-v1').digest();
    this.ttlMs = ttlSeconds * 1000;
  }

  issue(c: Omit<TicketClaims, 'exp' | 'jti'>): { ticket: string; expiresAt: Date } {
    const claims: TicketClaims = { ...c, exp: this.now() + this.ttlMs, jti: randomBytes(16).toString('base64url') };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { ticket: `${body}.${this.sign(body)}`, expiresAt: new Date(claims.exp) };
  }

  /** Checks signature, shape and expiry (not use). Throws InvalidTicket. */
  verify(ticket: string): TicketClaims {
    const dot = ticket.indexOf('.');
    if (dot <= 0 || ticket.length > 2048) throw new InvalidTicket('malformed ticket');
    const body = ticket.slice(0, dot);
    const mac = Buffer.from(ticket.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.sign(body), 'base64url');
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) throw new InvalidTicket('bad ticket signature');
    let c: Partial<TicketClaims>;
    try {
      c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Partial<TicketClaims>;
    } catch (err) {
      throw new InvalidTicket('malformed ticket', { cause: err });
    }
    const ok =
      typeof c.user === 'string' && typeof c.instance === 'string' && typeof c.machine === 'string' &&
      (c.channel === 'vnc' || c.channel === 'console') && (c.mode === 'control' || c.mode === 'view') &&
      typeof c.exp === 'number' && typeof c.jti === 'string' && (c.sessionExp === undefined || typeof c.sessionExp === 'number');
    if (!ok) throw new InvalidTicket('malformed ticket claims');
    if (c.exp! <= this.now()) throw new InvalidTicket('expired ticket');
    return c as TicketClaims;
  }

  /** Verify, then mark used in the database (atomic: of concurrent uses exactly one passes). */
  async consume(ticket: string): Promise<TicketClaims> {
    const c = this.verify(ticket);
    // kept a minute past expiry, so clock skew between replicas never reopens a window
    if (!(await consumeTicketId(c.jti, new Date(c.exp + 60_000)))) throw new InvalidTicket('ticket already used');
    return c;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

/** The ticket from a `Sec-WebSocket-Protocol` header value, if one is offered. */
export function ticketFromProtocols(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const p of header.split(',')) {
    const t = p.trim();
    if (t.startsWith(TICKET_PROTOCOL_PREFIX)) return t.slice(TICKET_PROTOCOL_PREFIX.length);
  }
  return undefined;
}
