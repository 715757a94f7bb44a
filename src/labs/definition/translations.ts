/**
 * Instructions in several languages: the default pages are instructions/*.md (in the lab's
 * `language`, English unless lab.yaml says otherwise); a translation is instructions/<lang>/ with
 * the same file names, and every page must have the same steps with the same ids in the same
 * order, so ticks, checks and scores mean the same in every language.
 */
import { posix } from 'node:path';
import type { Problem } from './problems.js';
import { scanPage, type ScannedStep } from './scanInstructions.js';

const TRANSLATED = /^instructions\/([a-z]{2,3}(?:-[A-Z]{2})?)\/([^/]+\.md)$/;

/** The languages a lab's files translate its instructions into (sorted). */
export function translationLanguages(paths: Iterable<string>): string[] {
  const langs = new Set<string>();
  for (const p of paths) {
    const m = TRANSLATED.exec(p);
    if (m) langs.add(m[1]!);
  }
  return [...langs].sort();
}

/** Where the translation of a default page is (instructions/01-intro.md → instructions/de/01-intro.md). */
export function translatedPath(pageName: string, lang: string): string {
  return `instructions/${lang}/${posix.basename(pageName)}`;
}

export interface TranslationInput {
  files: Map<string, Buffer>;
  prefix: string;
  /** The default pages (instructions/*.md) in order. */
  pageNames: string[];
  defaultLanguage: string;
  scan: (text: string, file: string, name: string) => { title: string | undefined; steps: ScannedStep[]; problems: Problem[] };
}

/** Every problem of every translation: missing or extra pages, steps that differ from the default pages. */
export function checkTranslations(o: TranslationInput): Problem[] {
  const problems: Problem[] = [];
  const langs = translationLanguages(o.files.keys());
  const base = new Map<string, ScannedStep[]>();
  for (const name of o.pageNames) {
    const body = o.files.get(name);
    if (body) base.set(name, o.scan(body.toString('utf8'), `${o.prefix}/${name}`, name).steps);
  }
  for (const lang of langs) {
    const dir = `${o.prefix}/instructions/${lang}`;
    if (lang === o.defaultLanguage) {
      problems.push({ file: dir, line: 1, col: 1, path: 'language', message: `expected translations only (the default pages in instructions/ are already ${lang}), got instructions/${lang}/` });
      continue;
    }
    const expected = new Set(o.pageNames.map((n) => translatedPath(n, lang)));
    for (const p of [...o.files.keys()].filter((k) => k.startsWith(`instructions/${lang}/`) && !expected.has(k)).sort()) {
      problems.push({ file: `${o.prefix}/${p}`, line: 1, col: 1, path: 'language', message: `expected one of the default pages (${o.pageNames.map((n) => posix.basename(n)).join(', ')}), got ${posix.basename(p)}` });
    }
    for (const name of o.pageNames) {
      const path = translatedPath(name, lang);
      const body = o.files.get(path);
      if (!body) {
        problems.push({ file: dir, line: 1, col: 1, path: 'language', message: `expected a translation of ${posix.basename(name)} (${path}), got nothing` });
        continue;
      }
      const file = `${o.prefix}/${path}`;
      const scan = o.scan(body.toString('utf8'), file, path);
      problems.push(...scan.problems);
      problems.push(...sameSteps(base.get(name) ?? [], scan.steps, file, `${o.prefix}/${name}`));
    }
  }
  return problems;
}

function sameSteps(want: ScannedStep[], got: ScannedStep[], file: string, baseFile: string): Problem[] {
  const problems: Problem[] = [];
  const n = Math.max(want.length, got.length);
  for (let i = 0; i < n; i++) {
    const w = want[i];
    const g = got[i];
    if (w && g && w.id === g.id) continue;
    if (g && !w) problems.push({ file, line: g.line, col: g.col, path: 'step', message: `expected no further step (${baseFile} has ${want.length}), got "{#${g.id}}"` });
    else if (g && w) problems.push({ file, line: g.line, col: g.col, path: 'step', message: `expected step "{#${w.id}}" here (as at ${baseFile}:${w.line}:${w.col}), got "{#${g.id}}"` });
    else if (w) problems.push({ file, line: 1, col: 1, path: 'step', message: `expected step "{#${w.id}}" (as at ${baseFile}:${w.line}:${w.col}), got nothing` });
  }
  return problems;
}
