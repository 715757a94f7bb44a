/**
 * A real OCI registry for tests: Debian's docker-registry (the CNCF distribution registry, v2 API)
 * on a free port of 127.0.0.1, storing under a temporary folder, plain HTTP (clients treat loopback
 * registries as insecure: skopeo needs --dest-tls-verify=false / --src-tls-verify=false).
 * scripts/setup-test.sh installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Registry {
  /** "127.0.0.1:<port>", the host part of image references on it. */
  host: string;
  logFile: string;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-registry-'));
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log: { level: info, accesslog: { disabled: true } }',
    `storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(dir, 'data'))} }, delete: { enabled: true } }`,
    'http: { addr: "127.0.0.1:0", secret: test-only-upload-secret }',
    '',
  ].join('\n'));
  const logFile = path.join(dir, 'registry.log');
  const fd = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let spawnError: Error | undefined;
  child.once('error', (err) => { spawnError = err; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const killOnExit = (): void => { child.kill('SIGKILL'); };
  process.on('exit', killOnExit);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    process.off('exit', killOnExit);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // it logs the address it bound ("listening on 127.0.0.1:<port>")
  const end = Date.now() + 20_000;
  for (;;) {
    const m = /listening on (127\.0\.0\.1:\d+)/.exec(fs.readFileSync(logFile, 'utf8'));
    if (m?.[1]) return { host: m[1], logFile, stop };
    if (spawnError || child.exitCode !== null || Date.now() > end) {
      const log = spawnError ? `${spawnError.message} (scripts/setup-test.sh installs docker-registry)` : fs.readFileSync(logFile, 'utf8');
      await stop();
      throw new Error(`docker-registry did not start:\n${log.trimEnd().split('\n').slice(-10).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
