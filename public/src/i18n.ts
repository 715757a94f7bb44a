/**
 * The page's language: the launch's locale (carried in the session token), else the browser's.
 * Every text the bundle shows goes through t(); times and durations through Intl.
 */
import { formatDateTime, formatDuration, formatTime, pickLanguage, translator, type TextKey, type Translate } from '../../src/i18n.js';

let current = pickLanguage(navigator.languages);
let tr: Translate = translator(current);

/** Choose the language from the launch's locale (if any), then the browser's; sets <html lang>. */
export function setLanguage(launchLocale: string | undefined): string {
  current = pickLanguage([launchLocale, ...navigator.languages]);
  tr = translator(current);
  document.documentElement.lang = current;
  return current;
}

export function lang(): string {
  return current;
}

export function t(key: TextKey, vars?: Record<string, string | number>): string {
  return tr(key, vars);
}

/** "1 h 27 min" in the page's language. */
export function dur(seconds: number): string {
  return formatDuration(seconds, current);
}

/** A clock time in the page's language. */
export function time(at: string | number | Date): string {
  return formatTime(at, current);
}

/** A date with its time in the page's language. */
export function when(at: string | number | Date): string {
  return formatDateTime(at, current);
}
