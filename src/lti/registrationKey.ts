/**
 * The key in the tool's LTI registration URL: whoever has the URL can register a platform, so
 * only operators see it (never a log line), and the operator can rotate it. Random, kept in the
 * database (every replica agrees; a rotation takes effect everywhere at the next registration).
 */
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { setSetting, settingOrInit } from '../store/ToolSetting.js';

const SETTING = 'lti.registrationKey';

function newKey(): string {
  return randomBytes(24).toString('base64url');
}

export class RegistrationKeys {
  private last = '';

  /** The current key (created on first use). */
  async current(): Promise<string> {
    this.last = await settingOrInit(SETTING, newKey);
    return this.last;
  }

  /** The key this process saw last (after current() or rotate()). */
  known(): string {
    return this.last;
  }

  /** A new key; URLs with the old one stop working at once. */
  async rotate(): Promise<string> {
    const key = newKey();
    await setSetting(SETTING, key);
    this.last = key;
    return key;
  }

  /** Constant-time check against the stored key (read fresh, so a rotation elsewhere counts). */
  async matches(candidate: string): Promise<boolean> {
    const key = await this.current();
    return timingSafeEqual(createHash('sha256').update(candidate).digest(), createHash('sha256').update(key).digest());
  }
}
