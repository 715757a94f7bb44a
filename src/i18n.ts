/**
 * The tool's languages, shared by the server pages and the browser bundle: i18next over the
 * message catalogs in src/locales, language negotiation (the launch's locale first, then the
 * browser's), and Intl formatting of times and durations. A leaf: no import of the tool's code.
 *
 * Adding a language: copy src/locales/en.ts to src/locales/<code>.ts, translate every value
 * (the Catalog type makes a missing key a type error), and add it to CATALOGS below.
 */
import i18next, { type i18n as I18n } from 'i18next';
import { en, type Catalog, type MessageKey } from './locales/en.js';
import { de } from './locales/de.js';
import { fr } from './locales/fr.js';
import { es } from './locales/es.js';

export type { MessageKey };


const CATALOGS: Record<string, Catalog> = { en, de, fr, es };
export const LANGUAGES = Object.keys(CATALOGS);
export const DEFAULT_LANGUAGE = 'en';

/** "de_DE", "de-de", "DE" → "de-DE"/"de"; nonsense → undefined. */
export function normalizeTag(tag: string | null | undefined): string | undefined {
  const t = (tag ?? '').trim().replace(/_/g, '-');
  if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(t)) return undefined;
  const [lang, ...rest] = t.split('-');
  return [lang!.toLowerCase(), ...rest.map((p) => (p.length === 2 ? p.toUpperCase() : p))].join('-');
}

/**
 * The first candidate a list of available languages has (exact tag, then its base language);
 * candidates are in order of preference (the launch's locale, then the browser's languages).
 */
export function pickLanguage(candidates: ReadonlyArray<string | null | undefined>, available: readonly string[] = LANGUAGES, fallback = DEFAULT_LANGUAGE): string {
  for (const c of candidates) {
    const tag = normalizeTag(c);
    if (!tag) continue;
    const exact = available.find((a) => a.toLowerCase() === tag.toLowerCase());
    if (exact) return exact;
    const base = tag.split('-')[0]!;
    const same = available.find((a) => a.toLowerCase() === base);
    if (same) return same;
  }
  return fallback;
}

/** An Accept-Language header → tags by preference (q=0 dropped). */
export function acceptLanguages(header: string | undefined): string[] {
  if (!header) return [];
  return header.split(',').map((part, i) => {
    const [tag, ...params] = part.trim().split(';');
    const q = Number(params.map((p) => /^\s*q=([\d.]+)/.exec(p)?.[1]).find(Boolean) ?? '1');
    return { tag: (tag ?? '').trim(), q: Number.isFinite(q) ? q : 0, i };
  }).filter((x) => x.tag && x.tag !== '*' && x.q > 0).sort((a, b) => b.q - a.q || a.i - b.i).map((x) => x.tag);
}

/** A catalog key; plural keys are used without their suffix (`x_one`/`x_other` → `x` with `count`). */
export type TextKey = MessageKey | (MessageKey extends infer K ? (K extends `${infer B}_one` ? B : never) : never);
export type Translate = (key: TextKey, vars?: Record<string, string | number>) => string;

const instances = new Map<string, I18n>();

function instanceFor(lang: string): I18n {
  let i = instances.get(lang);
  if (!i) {
    i = i18next.createInstance();
    void i.init({
      lng: lang, fallbackLng: DEFAULT_LANGUAGE, initAsync: false, showSupportNotice: false,
      resources: Object.fromEntries(Object.entries(CATALOGS).map(([k, v]) => [k, { translation: v }])),
      keySeparator: false, nsSeparator: false, returnNull: false,
      // our text goes into text nodes or through escapeHtml, never into markup unescaped
      interpolation: { escapeValue: false },
    });
    instances.set(lang, i);
  }
  return i;
}

/** A translate function for one language (unknown languages get English). */
export function translator(lang: string): Translate {
  const i = instanceFor(pickLanguage([lang]));
  return (key, vars) => i.t(key, vars ?? {});
}

/** A clock time ("14:05", "2:05 PM") in the language's format. */
export function formatTime(at: Date | string | number, lang: string): string {
  return new Date(at).toLocaleTimeString(lang, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
}

/** A date with its time, in the language's medium form: "Dec 9, 2026, 9:00 AM". */
export function formatDateTime(at: Date | string | number, lang: string): string {
  return new Date(at).toLocaleString(lang, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A duration in seconds, in the language's short units: "1 h 27 min", "1 Std., 27 Min.", "45 s". */
export function formatDuration(seconds: number, lang: string): string {
  const s = Math.max(0, Math.round(seconds));
  const unit = (n: number, u: 'hour' | 'minute' | 'second') => new Intl.NumberFormat(lang, { style: 'unit', unit: u, unitDisplay: 'short' }).format(n);
  if (s < 60) return unit(s, 'second');
  const m = Math.floor(s / 60);
  if (m < 60) return unit(m, 'minute');
  return `${unit(Math.floor(m / 60), 'hour')} ${unit(m % 60, 'minute')}`;
}
