/**
 * Websocket upgrades (Express never sees them). For `/ws/{vnc|console}/:instance/:machine`:
 * the Origin must be the tool's public origin, and the ticket offered in `Sec-WebSocket-Protocol`
 * must be valid, unexpired, bound to this very instance, machine and channel, and unused — it is
 * consumed here. Only then is the socket accepted and handed to the ChannelProxy, which dials the
 * machine. Any failure is a raw `403` and a destroyed socket, before anything is dialed.
 * Neither the ticket nor the protocol header is ever logged.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../logger.js';
import { InvalidTicket, TICKET_PROTOCOL_PREFIX, WS_PROTOCOL, ticketFromProtocols, type TicketService } from '../proxy/tickets.js';
import type { ChannelProxy } from '../proxy/channelProxy.js';

export interface UpgradeDeps {
  /** e.g. https://labs.example.edu — compared with the Origin header exactly. */
  publicOrigin: string;
  tickets: TicketService;
  proxy: ChannelProxy;
  log: Logger;
  /** Largest websocket message accepted from a browser; larger closes with 1009. */
  maxPayloadBytes: number;
}

const PATH = /^\/ws\/(vnc|console)\/([a-z0-9-]{1,64})\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/;

function destroyOnError(this: Duplex): void {
  this.destroy();
}

export function attachUpgradeHandler(server: http.Server, d: UpgradeDeps): { close(): void } {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: d.maxPayloadBytes,
    perMessageDeflate: false,
    // answer with our protocol name, never with the ticket
    handleProtocols: (protocols) => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false),
  });
  const origin = new URL(d.publicOrigin).origin;

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    // a listener of its own (not a closure here), so the socket, which lives as long as the session,
    // does not keep this upgrade's request, headers and logger alive
    socket.on('error', destroyOnError);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const m = PATH.exec(path);
    const log = d.log.child({ path: m ? `/ws/${m[1]}` : 'other' });
    const refuse = (status: 403 | 404, why: string) => {
      log.info({ status, why }, 'ws.refused');
      socket.end(`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Not Found'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    };
    if (!m) return refuse(404, 'unknown path');
    if (req.headers.origin !== origin) return refuse(403, 'origin mismatch');
    const ticket = ticketFromProtocols(req.headers['sec-websocket-protocol']);
    if (!ticket) return refuse(403, 'no ticket');
    const [, channel, instance, machine] = m;
    let claims;
    try {
      claims = d.tickets.verify(ticket);
    } catch (err) {
      return refuse(403, (err as Error).message);
    }
    if (claims.instance !== instance || claims.machine !== machine || claims.channel !== channel) return refuse(403, 'ticket for another channel');
    const verified = claims;
    d.tickets.consume(ticket).then(
      () => {
        if (socket.destroyed) return;
        // the ticket must not linger in the request object either
        const rest = (req.headers['sec-websocket-protocol'] ?? '')
          .split(',').map((p) => p.trim()).filter((p) => p && !p.startsWith(TICKET_PROTOCOL_PREFIX)).join(', ');
        if (rest) req.headers['sec-websocket-protocol'] = rest;
        else delete req.headers['sec-websocket-protocol'];
        wss.handleUpgrade(req, socket, head, (ws) => {
          d.proxy.attach(ws, verified).catch((err: unknown) => log.error({ err }, 'ws.attach_failed'));
        });
      },
      (err: unknown) => {
        if (!(err instanceof InvalidTicket)) log.warn({ err }, 'ws.ticket_store_failed');
        refuse(403, err instanceof InvalidTicket ? err.message : 'ticket store unavailable');
      },
    );
  };
  server.on('upgrade', onUpgrade);
  return {
    close() {
      server.off('upgrade', onUpgrade);
      d.proxy.closeAll();
      wss.close();
    },
  };
}
