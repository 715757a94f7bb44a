/** Duties: start on leading, stop in reverse on losing the lead, changes applied in order without overlap. */
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Duties, type Duty } from '../../src/leadership.js';

const log = pino({ level: 'silent' });

function duty(name: string, events: string[], stop: () => Promise<void> | void = () => undefined): Duty {
  return { name, start: () => { events.push(`start ${name}`); }, stop: async () => { events.push(`stop ${name}`); await stop(); events.push(`stopped ${name}`); } };
}

describe('Duties', () => {
  it('runs nothing until leading; starts in order, stops in reverse', async () => {
    const events: string[] = [];
    const d = new Duties(log);
    d.add(duty('supervisor', events));
    d.add(duty('outbox', events));
    assert.deepEqual([events, d.isLeader], [[], false]);
    await d.setLeader(true);
    assert.deepEqual(events, ['start supervisor', 'start outbox']);
    await d.setLeader(true);
    assert.equal(events.length, 2, 'leading again changes nothing');
    await d.setLeader(false);
    assert.deepEqual(events.slice(2), ['stop outbox', 'stopped outbox', 'stop supervisor', 'stopped supervisor']);
    assert.equal(d.isLeader, false);
  });

  it('a duty added while leading starts at once', async () => {
    const events: string[] = [];
    const d = new Duties(log);
    await d.setLeader(true);
    d.add(duty('sweeper', events));
    assert.deepEqual(events, ['start sweeper']);
  });

  it('a new lead waits until the previous stop has finished (no overlap of the old and the new run)', async () => {
    const events: string[] = [];
    let finishStop!: () => void;
    const stopping = new Promise<void>((r) => { finishStop = r; });
    const d = new Duties(log);
    d.add(duty('supervisor', events, () => stopping));
    await d.setLeader(true);
    const lost = d.setLeader(false);
    const regained = d.setLeader(true);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['start supervisor', 'stop supervisor'], 'the new start waits for the stop');
    finishStop();
    await Promise.all([lost, regained]);
    assert.deepEqual(events, ['start supervisor', 'stop supervisor', 'stopped supervisor', 'start supervisor']);
  });

  it('a duty whose stop fails does not keep the others running', async () => {
    const events: string[] = [];
    const d = new Duties(log);
    d.add(duty('a', events));
    d.add({ name: 'broken', start: () => undefined, stop: () => Promise.reject(new Error('stuck')) });
    await d.setLeader(true);
    await d.setLeader(false);
    assert.deepEqual(events, ['start a', 'stop a', 'stopped a']);
    assert.equal(d.isLeader, false);
  });
});
