/** The tool's signing/encryption secret: from SECRET_KEY, or in demo mode generated once under DATA_DIR. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';

export function resolveSecretKey(config: Config): string {
  if (config.SECRET_KEY) return config.SECRET_KEY;
  if (config.LAB_MODE !== 'demo') throw new ConfigError('SECRET_KEY: required when LAB_MODE=production');
  const file = path.join(config.DATA_DIR, 'secret-key');
  fs.mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const key = randomBytes(32).toString('base64url');
    // 'wx' fails if another process created it first; then read theirs.
    try {
      fs.writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
      return key;
    } catch {
      return fs.readFileSync(file, 'utf8').trim();
    }
  }
}
