import assert from 'node:assert/strict';
import { TicketService, ticketFromProtocols, InvalidTicket } from '../../src/proxy/tickets.js';
import { RfbClientFilter } from '../../src/proxy/rfbClientFilter.js';

const KEY = 'unit-test-secret-key-0123456789abcdefgh';
const seat = { user: 'u1', instance: 'i1', machine: 'web', channel: 'vnc', mode: 'control' } as const;

describe('websocket tickets', () => {
  it('round-trips the bound claims and expires within the TTL', () => {
    const now = 1_000_000;
    const svc = new TicketService(KEY, 30, () => now);
    const { ticket, expiresAt } = svc.issue(seat);
    assert.equal(expiresAt.getTime(), now + 30_000);
    assert.match(ticket, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'only subprotocol token characters');
    assert.deepEqual({ ...svc.verify(ticket), jti: 'x', exp: 0 }, { ...seat, jti: 'x', exp: 0 });
  });

  it('refuses a TTL over 60 s', () => {
    assert.throws(() => new TicketService(KEY, 61), RangeError);
  });

  it('refuses an expired, tampered or foreign ticket', () => {
    let now = 0;
    const svc = new TicketService(KEY, 10, () => now);
    const { ticket } = svc.issue(seat);
    now = 10_000;
    assert.throws(() => svc.verify(ticket), InvalidTicket);
    now = 0;
    const [body, mac] = ticket.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, machine: 'db' })).toString('base64url');
    assert.throws(() => svc.verify(`${forged}.${mac}`), InvalidTicket);
    assert.throws(() => new TicketService('another-key-0123456789abcdefghijklmn', 10, () => now).verify(ticket), InvalidTicket);
    assert.throws(() => svc.verify('garbage'), InvalidTicket);
  });

  it('finds the ticket among the offered subprotocols', () => {
    assert.equal(ticketFromProtocols('lab.v1, ticket.abc.def'), 'abc.def');
    assert.equal(ticketFromProtocols('lab.v1'), undefined);
    assert.equal(ticketFromProtocols(undefined), undefined);
  });
});

describe('RFB client filter', () => {
  const hs = Buffer.concat([Buffer.from('RFB 003.008\n', 'latin1'), Buffer.from([2]), Buffer.alloc(16, 7), Buffer.from([1])]);
  const fbur = Buffer.from([3, 0, 0, 0, 0, 0, 1, 0, 1, 0]);
  const key = Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61]);
  const cut = Buffer.concat([Buffer.from([6, 0, 0, 0, 0, 0, 0, 3]), Buffer.from('abc')]);
  const qemuKey = Buffer.from([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e]);

  it('passes everything in control mode and flags input', () => {
    const f = new RfbClientFilter(false);
    assert.deepEqual(f.push(hs), { forward: hs, input: false });
    assert.equal(f.push(fbur).input, false);
    const r = f.push(Buffer.concat([key, cut, qemuKey]));
    assert.equal(r.input, true);
    assert.equal(r.forward.length, key.length + cut.length + qemuKey.length);
  });

  it('drops keys, pointer, clipboard and QEMU key events in view mode, across chunk boundaries', () => {
    const f = new RfbClientFilter(true);
    const all = Buffer.concat([hs, fbur, key, cut, qemuKey, fbur]);
    const out: Buffer[] = [];
    for (let i = 0; i < all.length; i += 3) out.push(f.push(all.subarray(i, i + 3)).forward);
    assert.deepEqual(Buffer.concat(out), Buffer.concat([hs, fbur, fbur]));
  });

  it('refuses an unknown message in view mode', () => {
    const f = new RfbClientFilter(true);
    f.push(hs);
    assert.throws(() => f.push(Buffer.from([77, 0, 0, 0])));
  });
});
