import assert from 'node:assert/strict';
import { DAY_MS, DEFAULT_RETENTION, deletionWarningMs, keepDaysOf, keptUntil, labStorageGiB, storageRefusal } from '../../src/labs/retention.js';

const lifetime = (keepDays?: number) => ({ maxMinutes: 60, idleMinutes: 30, pausable: true, warnBeforeMinutes: 5, ...(keepDays ? { keepDays } : {}) });

describe('retention: how long a stopped lab keeps its work', () => {
  it('takes the activity\'s keep days over the lab\'s, the lab\'s over the default, and never more than the operator allows', () => {
    const policy = { maxKeepDays: 10, warnDays: 2 };
    assert.equal(keepDaysOf({ keepDays: 3, lifetime: lifetime(5) }, policy), 3);
    assert.equal(keepDaysOf({ keepDays: null, lifetime: lifetime(5) }, policy), 5);
    assert.equal(keepDaysOf({ keepDays: null, lifetime: lifetime() }, policy), 7, 'a definition stored before keepDays existed');
    assert.equal(keepDaysOf({ keepDays: null, lifetime: null }, policy), 7);
    assert.equal(keepDaysOf({ keepDays: 30, lifetime: lifetime(5) }, policy), 10, 'the operator caps the teacher');
    assert.equal(keepDaysOf({ keepDays: null, lifetime: lifetime(60) }, policy), 10, 'and the author');
    assert.equal(keepDaysOf({ keepDays: 0.4, lifetime: null }, policy), 1, 'at least a day');
  });

  it('keeps a lab stopped now until that many days later and warns at most half of that before', () => {
    const now = new Date('2026-12-07T09:00:00Z');
    assert.equal(keptUntil(now, { keepDays: 14, lifetime: null }, DEFAULT_RETENTION).toISOString(), '2026-12-21T09:00:00.000Z');
    assert.equal(deletionWarningMs({ keepDays: 14, lifetime: null }, DEFAULT_RETENTION), 2 * DAY_MS);
    assert.equal(deletionWarningMs({ keepDays: 1, lifetime: null }, DEFAULT_RETENTION), DAY_MS / 2, 'a one-day keep warns half a day before');
  });

  it('counts the disks of virtual machines only, 10 GiB each unless the lab names a size', () => {
    assert.equal(labStorageGiB([{ kind: 'vm' }, { kind: 'vm', diskGiB: 4 }, { kind: 'container' }]), 14);
    assert.equal(labStorageGiB([{ kind: 'container' }]), 0);
  });

  it('refuses a stop that passes the operator\'s total for stopped labs, with the numbers', () => {
    assert.equal(storageRefusal(90, 10, { ...DEFAULT_RETENTION }), null, 'no total: always fits');
    assert.equal(storageRefusal(90, 10, { ...DEFAULT_RETENTION, maxStoppedStorageGiB: 100 }), null, 'exactly full fits');
    assert.equal(storageRefusal(91, 10, { ...DEFAULT_RETENTION, maxStoppedStorageGiB: 100 }), 'Stopped labs on this server already keep 91 GiB of the 100 GiB allowed, and this lab needs 10 GiB. Keep it running and finish it, or ask your teacher.');
  });
});
