/**
 * axe-core (WCAG 2.0/2.1 A and AA rules) in a page or frame of Chromium. The engine is evaluated
 * through the debugging protocol, so the page's own CSP (script-src 'self') does not block it.
 * "Needs review" results must each be explained by the caller; anything else fails the test.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import type { Frame, Page } from 'playwright-core';

const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

export interface AxeFinding { id: string; impact: string | null; help: string; targets: string[] }

export async function runAxe(where: Page | Frame): Promise<{ violations: AxeFinding[]; incomplete: AxeFinding[] }> {
  await where.evaluate(AXE_SOURCE);
  // runs in the page (a string: the test code is type-checked without the DOM library)
  return where.evaluate(`(async () => {
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ${JSON.stringify(WCAG_TAGS)} }, resultTypes: ['violations', 'incomplete'] });
    const map = (xs) => xs.map((x) => ({ id: x.id, impact: x.impact, help: x.help, targets: x.nodes.map((n) => n.target.map(String).join(' ')) }));
    return { violations: map(r.violations), incomplete: map(r.incomplete) };
  })()`);
}

/** Fails with every violation, and every "needs review" item whose rule has no explanation in `explained`. */
export async function expectAccessible(where: Page | Frame, name: string, explained: Record<string, string> = {}): Promise<void> {
  const r = await runAxe(where);
  const unexplained = r.incomplete.filter((x) => !explained[x.id]);
  const text = (xs: AxeFinding[]) => xs.map((x) => `  ${x.id} (${x.impact ?? '-'}): ${x.help} at ${x.targets.slice(0, 3).join(', ')}`).join('\n');
  const used = [...new Set(r.incomplete.map((x) => x.id))];
  if (used.length) console.log(`      ${name}: needs review, explained: ${used.join(', ')}`);
  if (r.violations.length || unexplained.length) {
    throw new Error(`${name}: ${r.violations.length} violation(s), ${unexplained.length} unexplained "needs review"\n${text(r.violations)}\n${text(unexplained)}`);
  }
}

/**
 * axe's color-contrast rule alone: how many text nodes it computed and passed, and where it could
 * not decide (with axe's reason), so a caller can check that contrast was really measured and
 * that every undecided place is one it knows. A node axe could not decide because it was scrolled
 * partly out of its box is scrolled into view and measured again.
 */
export async function contrastReport(where: Page | Frame): Promise<{ passed: number; violations: string[]; undecided: Array<{ target: string; why: string }> }> {
  await where.evaluate(AXE_SOURCE);
  return where.evaluate(`(async () => {
    const only = { runOnly: { type: 'rule', values: ['color-contrast'] }, resultTypes: ['passes', 'violations', 'incomplete'] };
    const nodes = (xs) => xs.flatMap((x) => x.nodes);
    const target = (n) => n.target.map(String).join(' ');
    const r = await axe.run(document, only);
    const out = { passed: nodes(r.passes).length, violations: nodes(r.violations).map(target), undecided: [] };
    for (const n of nodes(r.incomplete)) {
      const el = n.target.length === 1 ? document.querySelector(String(n.target[0])) : null;
      if (el) {
        el.scrollIntoView({ block: 'center' });
        const again = await axe.run(el, only);
        if (!nodes(again.incomplete).length) {
          out.passed += nodes(again.passes).length;
          out.violations.push(...nodes(again.violations).map(target));
          continue;
        }
      }
      out.undecided.push({ target: target(n), why: (n.any[0] && n.any[0].message) || '' });
    }
    return out;
  })()`);
}
