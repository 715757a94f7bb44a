import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive, waitFor } from '../support/tool.js';
import { ferretBin } from '../support/ferret.js';

const BIN = path.resolve('bin/lab-orchestrator.js');

/** Every child a test started; killed after each test, so a failing test leaves no tool running. */
const children = new Set<ReturnType<typeof spawn>>();

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), ...env } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe('CLI', function () {
  afterEach(() => {
    for (const c of children) c.kill('SIGTERM');
  });
  // the CLI runs through tsx (TypeScript compiled on the fly): on a loaded machine start-up takes a while
  this.timeout(180_000);

  it('prints help for the tool and for each command', async () => {
    const top = run(['--help']);
    assert.equal(await top.exited, 0);
    assert.match(top.out(), /Commands:\n\s+serve/);
    const serve = run(['serve', '--help']);
    assert.equal(await serve.exited, 0);
    assert.match(serve.out(), /lab-orchestrator serve/);
  });

  it('refuses to start on bad config, naming each bad key, with exit code 78', async () => {
    const r = run(['serve'], { PORT: 'x', LAB_MODE: 'staging' });
    assert.equal(await r.exited, 78);
    assert.match(r.err(), /PORT: expected an integer/);
    assert.match(r.err(), /LAB_MODE: expected "demo" or "production"/);
  });

  it('serve starts with embedded FerretDB, prints the URL, and SIGTERM stops it cleanly', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-cli-'));
    const r = run(['serve'], { LAB_MODE: 'demo', PORT: '0', DATA_DIR: dataDir, FERRETDB_BIN: ferretBin(), LOG_LEVEL: 'info' });
    await waitFor(() => /Lab Orchestrator is running: open (http:\S+)/.test(r.out()), 120_000, 'the URL line');
    const url = new URL(/open (http:\S+)/.exec(r.out())![1]!).origin; // the line may point to a page under the origin
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    const ferretPid = Number(/"component":"ferretdb","pid":(\d+)/.exec(r.out())?.[1]);
    assert.ok(pidAlive(ferretPid), 'FerretDB child is running');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
    assert.equal(pidAlive(ferretPid), false, 'no FerretDB left behind');
  });

  it('leaves no FerretDB behind when the tool is SIGKILLed', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-cli-'));
    const r = run(['serve'], { LAB_MODE: 'demo', PORT: '0', DATA_DIR: dataDir, FERRETDB_BIN: ferretBin() });
    await waitFor(() => /Lab Orchestrator is running/.test(r.out()), 120_000, 'start');
    const ferretPid = Number(/"component":"ferretdb","pid":(\d+)/.exec(r.out())?.[1]);
    assert.ok(pidAlive(ferretPid));
    r.child.kill('SIGKILL');
    await r.exited;
    await waitFor(() => !pidAlive(ferretPid), 10_000, 'FerretDB to exit after its parent died');
  });
});
