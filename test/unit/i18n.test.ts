/** The message catalogs, language negotiation, Intl formatting, and instructions in several languages. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { acceptLanguages, formatDuration, LANGUAGES, pickLanguage, translator } from '../../src/i18n.js';
import { en } from '../../src/locales/en.js';
import { de } from '../../src/locales/de.js';
import { fr } from '../../src/locales/fr.js';
import { es } from '../../src/locales/es.js';
import { validateLab, type LabFiles } from '../../src/labs/definition/validateLab.js';
import { formatProblem, sortProblems } from '../../src/labs/definition/problems.js';
import { translationLanguages } from '../../src/labs/definition/translations.js';

const placeholders = (s: string) => [...s.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]).sort();

describe('i18n: catalogs', () => {
  it('has English, German, French and Spanish, each complete with the same placeholders as English', () => {
    assert.deepEqual([...LANGUAGES].sort(), ['de', 'en', 'es', 'fr']);
    for (const [name, cat] of Object.entries({ de, fr, es })) {
      assert.deepEqual(Object.keys(cat).sort(), Object.keys(en).sort(), `${name}: same keys`);
      for (const [k, v] of Object.entries(cat)) {
        assert.ok(v.trim().length > 0, `${name} ${k} is empty`);
        assert.deepEqual(placeholders(v), placeholders(en[k as keyof typeof en]), `${name} ${k}: placeholders`);
      }
    }
  });

  it('has no message the code never shows: each key is named in src/, public/src/ or templates/ (plurals by their base, `prefix.${…}` keys by their prefix)', () => {
    const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    const code = ['src', 'public/src', 'templates'].flatMap(walk)
      .filter((f) => /\.(ts|mts|html)$/.test(f) && !f.includes(`${path.sep}locales${path.sep}`))
      .map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    const prefixes = [...code.matchAll(/`([\w-]+(?:\.[\w-]+)*\.)\$\{/g)].map((m) => m[1]!);
    const named = (k: string) => [`'${k}'`, `"${k}"`, `\`${k}\``].some((q) => code.includes(q)) || prefixes.some((p) => k.startsWith(p));
    const unused = Object.keys(en).filter((k) => !named(k.replace(/_(zero|one|two|few|many|other)$/, '')));
    assert.deepEqual(unused, [], 'keys no page, route or template uses');
  });

  it('translates with values and plurals, and falls back to English for an unknown language', () => {
    assert.equal(translator('de')('ins.stepsAnnounce', { ticked: 2, total: 3 }), '2 von 3 Schritten erledigt.');
    assert.equal(translator('fr')('course.checksPassed', { count: 1 }), '1 vérification réussie');
    assert.equal(translator('fr')('course.checksPassed', { count: 4 }), '4 vérifications réussies');
    assert.equal(translator('xx')('lab.pause'), 'Pause');
    // values are text, never markup: they come out as given (the pages put them in text nodes or escape them)
    assert.equal(translator('en')('ws.sent', { machine: '<b>' }), 'Sent to <b>.');
  });
});

describe('i18n: choosing the language', () => {
  it('takes the launch locale first, then the browser languages, matching base languages', () => {
    assert.equal(pickLanguage(['de_DE', 'fr']), 'de');
    assert.equal(pickLanguage(['fr_ca']), 'fr');
    assert.equal(pickLanguage([undefined, 'pt-BR', 'es-MX']), 'es');
    assert.equal(pickLanguage(['pt', 'nonsense!']), 'en');
    assert.equal(pickLanguage(['de'], ['en', 'fr'], 'fr'), 'fr');
  });

  it('reads Accept-Language by q value, dropping q=0 and *', () => {
    assert.deepEqual(acceptLanguages('en;q=0.5, fr-CH, fr;q=0.9, de;q=0, *;q=0.1'), ['fr-CH', 'fr', 'en']);
    assert.deepEqual(acceptLanguages(undefined), []);
  });

  it('formats durations in the language (Intl units)', () => {
    // Intl puts (narrow) no-break spaces between number and unit in some languages
    const d = (s: number, l: string) => formatDuration(s, l).replace(/[\u00a0\u202f]/g, ' ');
    assert.equal(d(45, 'en'), '45 sec');
    assert.equal(d(87 * 60 + 10, 'fr'), '1 h 27 min');
    assert.equal(d(87 * 60, 'de'), '1 Std. 27 Min.');
    assert.equal(d(-5, 'es'), '0 s');
  });
});

const YAML = `schemaVersion: 1
title: Networks
machines:
  - name: web
    image: debian-12
`;
const PAGE = '# Intro\n\n## First step {#first}\n\n- [ ] Second {#second}\n';

function problems(f: Record<string, string>, yaml = YAML): { lab: boolean; problems: string[] } {
  const files: LabFiles = new Map(Object.entries({ 'lab.yaml': yaml, 'instructions/01-intro.md': PAGE, ...f }).map(([k, v]) => [k, Buffer.from(v)]));
  const r = validateLab('net', files, 'templates/net');
  return { lab: Boolean(r.lab), problems: sortProblems(r.problems).map(formatProblem) };
}

describe('lab definitions: instructions per language', () => {
  it('accepts a translation with the same steps and stores it', () => {
    const r = validateLab('net', new Map(Object.entries({
      'lab.yaml': YAML, 'instructions/01-intro.md': PAGE, 'instructions/de/01-intro.md': '# Einführung\n\n## Erster Schritt {#first}\n\n- [ ] Zweiter {#second}\n',
    }).map(([k, v]) => [k, Buffer.from(v)])), 'templates/net');
    assert.deepEqual(r.problems, []);
    assert.deepEqual(translationLanguages(r.lab!.files.keys()), ['de']);
  });

  it('reports a missing page, an extra page, a changed or missing step id with file:line:col', () => {
    const r = problems({
      'instructions/fr/01-intro.md': '# Intro\n\n## Premier pas {#premier}\n',
      'instructions/fr/02-extra.md': '# Extra\n',
      'instructions/es/02-other.md': '# Otra\n',
    });
    assert.equal(r.lab, false);
    assert.deepEqual(r.problems, [
      'templates/net/instructions/es:1:1 language: expected a translation of 01-intro.md (instructions/es/01-intro.md), got nothing',
      'templates/net/instructions/es/02-other.md:1:1 language: expected one of the default pages (01-intro.md), got 02-other.md',
      'templates/net/instructions/fr/01-intro.md:1:1 step: expected step "{#second}" (as at templates/net/instructions/01-intro.md:5:14), got nothing',
      'templates/net/instructions/fr/01-intro.md:3:16 step: expected step "{#first}" here (as at templates/net/instructions/01-intro.md:3:15), got "{#premier}"',
      'templates/net/instructions/fr/02-extra.md:1:1 language: expected one of the default pages (01-intro.md), got 02-extra.md',
    ]);
  });

  it('refuses a translation folder in the default language and a bad language tag', () => {
    assert.deepEqual(problems({ 'instructions/de/01-intro.md': PAGE }, `${YAML}language: de\n`).problems, [
      'templates/net/instructions/de:1:1 language: expected translations only (the default pages in instructions/ are already de), got instructions/de/',
    ]);
    const bad = problems({}, `${YAML}language: German\n`).problems;
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /lab\.yaml:6:11 language: expected a language tag such as en or pt-BR/);
  });
});
