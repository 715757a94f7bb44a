import assert from 'node:assert/strict';
import { lastLines } from '../../src/proxy/consoleText.js';

describe('console text for a glance (lastLines)', () => {
  it('keeps the last lines, without escape sequences, with carriage returns and backspaces applied', () => {
    const raw = 'boot\r\n\x1b[1;32mok\x1b[0m\r\nalpha login: student\r\nPassword: \r\n\x1b]0;title\x07student@alpha:~$ ls -l\r\ntotal 0\r\nstudent@alpha:~$ ecoh\b\b\bcho hi\r\nhi\r\nstudent@alpha:~$ ';
    assert.deepEqual(lastLines(Buffer.from(raw), 4), ['total 0', 'student@alpha:~$ echo hi', 'hi', 'student@alpha:~$']);
    assert.deepEqual(lastLines(Buffer.from('progress 10%\rprogress 99%\r\n'), 3), ['progress 99%']);
  });

  it('cuts long lines and gives nothing for an empty screen', () => {
    assert.deepEqual(lastLines(Buffer.from(`${'x'.repeat(300)}\n`), 2, 80), ['x'.repeat(80)]);
    assert.deepEqual(lastLines(Buffer.from('\r\n\r\n\x1b[2J'), 5), []);
  });
});
