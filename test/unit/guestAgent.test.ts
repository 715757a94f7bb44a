import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import {
  AGENT_TOKEN_FILE, AgentMisbehaved, AgentRefused, AgentSilent, ReplyReader, encodeRequest, envFile, exchange, replyLimit, shellQuote,
} from '../../src/backends/guest/agentProtocol.js';
import { AGENT_SCRIPT } from '../../src/backends/guest/agentScript.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function commandLines(): string[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try { return [fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()]; } catch { return []; }
  });
}

/** The real agent script, one request per process (as the TCP listener runs it), its token in dir, tools from pathDir first. */
function agentStream(dir: string, pathDir: string | undefined): Duplex {
  const script = AGENT_SCRIPT.replace(`TOKEN_FILE=${AGENT_TOKEN_FILE}`, `TOKEN_FILE=${path.join(dir, 'token')}`)
    .replace(/^PATH=([^;]*);/m, (_m, p: string) => `PATH=${pathDir ? `${pathDir}:` : ''}${p};`);
  fs.writeFileSync(path.join(dir, 'agent'), script, { mode: 0o700 });
  const c = spawn('/bin/sh', [path.join(dir, 'agent')], { stdio: ['pipe', 'pipe', 'inherit'] });
  return Duplex.from({ readable: c.stdout, writable: c.stdin });
}

describe('check agent (one protocol and one guest script for both backends)', () => {
  it('quotes values for the shell so that they stay one word, whatever they contain', () => {
    assert.equal(shellQuote(`a'b`), `'a'\\''b'`);
    assert.equal(envFile({ LAB_USER: 'x" ; id ; echo "' }), `export LAB_USER='x" ; id ; echo "'\n`);
    assert.throws(() => envFile({ 'bad-name': 'x' }), /not a shell name/);
    assert.throws(() => envFile({ A: 'x\0y' }), /NUL/);
    assert.match(encodeRequest('abc', { token: 't', command: 'true', timeoutMs: 1500, maxOutputBytes: 5e9 }), /^t abc 2 1048576 - dHJ1ZQ==\n$/);
  });

  it('skips the late reply of an earlier request, and bounds what it buffers for one reply', () => {
    const r = new ReplyReader('mine', { timeoutMs: 5000, maxOutputBytes: 30 });
    assert.equal(r.push(Buffer.from(`R other 0 1 0\n${b64('x')}\n\nR mi`)), undefined);
    const res = r.push(Buffer.from(`ne 3 2 0\n${b64('ok')}\n\n`));
    assert.deepEqual(res, { exitCode: 3, stdout: 'ok', stderr: '', truncated: false, timedOut: false });
    const big = new ReplyReader('id', { timeoutMs: 5000, maxOutputBytes: 30 });
    let out: unknown;
    for (let i = 0; i < 100 && !out; i++) out = big.push(Buffer.alloc(64, 'A'.charCodeAt(0)).fill('R ', 0, i === 0 ? 2 : 0));
    assert.ok(out instanceof AgentMisbehaved, String(out));
    assert.ok(replyLimit(30) < 400);
  });

  const userlands: Array<[string, () => string | undefined]> = [
    ['coreutils', () => undefined],
    ['busybox', () => {
      const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-'));
      for (const a of ['timeout', 'setsid', 'base64', 'head', 'wc', 'tr', 'mktemp', 'cat', 'rm', 'sleep', 'yes', 'printf', 'kill']) fs.symlinkSync('/bin/busybox', path.join(bin, a));
      return bin;
    }],
  ];
  for (const [name, pathDir] of userlands) {
    it(`runs commands with ${name} tools: output, exit code, env values as data, cut to maxBytes, killed at its timeout, a wrong token refused`, async function () {
      this.timeout(30_000);
      if (name === 'busybox' && !fs.existsSync('/bin/busybox')) this.skip();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-'));
      const bin = pathDir();
      const marker = path.join(dir, 'inj');
      fs.writeFileSync(path.join(dir, 'token'), 'sekrit\n', { mode: 0o600 });
      const run = (command: string, o: { token?: string; timeoutMs?: number; max?: number; env?: Record<string, string> } = {}) =>
        exchange(agentStream(dir, bin), { token: o.token ?? 'sekrit', command, timeoutMs: o.timeoutMs ?? 5000, maxOutputBytes: o.max ?? 100, ...(o.env ? { env: o.env } : {}) });
      assert.deepEqual(await run('echo out; echo err >&2; exit 7'), { exitCode: 7, stdout: 'out\n', stderr: 'err\n', truncated: false, timedOut: false });
      const hostile = `x" ; touch ${marker} ; echo "$(touch ${marker})\`touch ${marker}\`'`;
      const r = await run('printf "%s" "$LAB_USER_NAME"', { env: { LAB_USER_NAME: hostile }, max: 1000 });
      assert.equal(r.stdout, hostile, 'the value arrives byte for byte');
      assert.equal(fs.existsSync(marker), false, 'and nothing in it ran');
      const cut = await run('yes | head -c 5000', { max: 10 });
      assert.equal(cut.stdout, 'y\ny\ny\ny\ny\n');
      assert.equal(cut.truncated, true);
      const t0 = Date.now();
      const hung = await run('sleep 37 & sleep 38', { timeoutMs: 1000 });
      assert.equal(hung.timedOut, true);
      assert.ok(Date.now() - t0 < 5000);
      await new Promise((res) => setTimeout(res, 200));
      assert.deepEqual(commandLines().filter((c) => /^sleep 3[78]$/.test(c)), [], 'the whole process group is gone');
      await assert.rejects(run('echo x', { token: 'wrong' }), (e: unknown) => e instanceof AgentRefused && /denied/.test(e.message));
      fs.rmSync(dir, { recursive: true, force: true });
      if (bin) fs.rmSync(bin, { recursive: true, force: true });
    });
  }

  it('gives up on an agent that sends more than one reply can hold, and on one that says nothing', async function () {
    this.timeout(20_000);
    const flood = spawn('/bin/sh', ['-c', 'read l; printf "R "; exec cat /dev/zero'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const before = process.memoryUsage().rss;
    await assert.rejects(exchange(Duplex.from({ readable: flood.stdout, writable: flood.stdin }), { token: 't', command: 'x', timeoutMs: 5000, maxOutputBytes: 1000 }), AgentMisbehaved);
    flood.kill('SIGKILL');
    assert.ok(process.memoryUsage().rss - before < 50e6, 'memory stayed bounded');
    const mute = spawn('/bin/sh', ['-c', 'read l'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await assert.rejects(exchange(Duplex.from({ readable: mute.stdout, writable: mute.stdin }), { token: 't', command: 'x', timeoutMs: 1000, maxOutputBytes: 10 }), AgentSilent);
  });
});
