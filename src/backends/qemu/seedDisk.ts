/**
 * The NoCloud seed of a QEMU machine: the files of the shared generator (../guest/cloudInit.ts)
 * on a small ISO 9660 disk labelled "cidata", attached read-only as the machine's second virtio
 * disk, where cloud-init looks for it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BackendFailure } from '../../errors.js';
import type { NoCloudSeed } from '../guest/cloudInit.js';

const run = promisify(execFile);

/** Write seed.iso (mode 0600: it holds the password and the agent token) from the seed's files. */
export async function writeSeedDisk(seed: NoCloudSeed, out: string): Promise<void> {
  const dir = `${out}.d`;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { mode: 0o700 });
  try {
    const files: Array<[string, string]> = [['meta-data', seed.metaData], ['user-data', seed.userData]];
    if (seed.networkConfig !== undefined) files.push(['network-config', seed.networkConfig]);
    for (const [name, text] of files) fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
    const tmp = `${out}.tmp`;
    await run('genisoimage', ['-quiet', '-output', tmp, '-volid', 'cidata', '-joliet', '-rock', ...files.map(([n]) => path.join(dir, n))], { timeout: 30_000 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, out);
  } catch (err) {
    throw new BackendFailure(`could not build the cloud-init seed disk ${out}: ${(err as Error).message}`, { cause: err });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
