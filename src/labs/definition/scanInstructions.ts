/**
 * Line-based scan of an instruction page for what validation needs with positions: steps
 * (`## Title {#step-id}` headings and `- [ ] text {#step-id}` list items), variables
 * (`{{machines.web.password}}`), media references (`![alt](media/x.svg)`, `<img src=…>`),
 * code blocks sent to a machine (```` ```sh machine=alpha ````) and knowledge boxes (`:::note`).
 * Rendering (render.ts) uses marked on the same text; this scan only finds and checks.
 */
import { STEP_ID_RE } from './schema.js';
import type { Problem } from './problems.js';

export const BOX_KINDS = ['note', 'tip', 'warning'] as const;

export interface ScannedStep {
  id: string;
  title: string;
  line: number;
  col: number;
}

export interface ScanContext {
  /** Display path of the file, e.g. templates/net/instructions/01-intro.md */
  file: string;
  /** Its path inside the lab folder (instructions/01-intro.md). */
  name: string;
  knownVariables: Set<string>;
  /** Paths in the lab folder (media/x.svg …). */
  files: Set<string>;
  machines: Set<string>;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const HEADING_STEP = /^ {0,3}#{2,6}\s+(.*?)\s*\{#([^}\s]*)\}\s*$/;
const LIST_STEP = /^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?(.*?)\s*\{#([^}\s]*)\}\s*$/;
const TITLE = /^ {0,3}#\s+(.*?)\s*#*\s*$/;
export const VARIABLE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const MD_IMAGE = /!\[[^\]]*\]\(\s*<?([^)\s>]+)/g;
const HTML_MEDIA = /<(?:img|video|audio|source)\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)/gi;

/** `media/x.png`, `./media/x.png` or `../media/x.png` (relative to instructions/) → `media/x.png`; external → null; anything else → undefined. */
export function mediaPath(ref: string): string | null | undefined {
  if (/^https?:\/\//i.test(ref)) return null;
  let p = ref.split(/[?#]/)[0] ?? '';
  try {
    p = decodeURIComponent(p);
  } catch {
    return undefined;
  }
  p = p.replace(/^\.\//, '').replace(/^\.\.\//, '');
  if (!p.startsWith('media/')) return undefined;
  const parts = p.split('/');
  if (parts.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0'))) return undefined;
  return p;
}

export function scanPage(text: string, ctx: ScanContext): { title: string | undefined; steps: ScannedStep[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const steps: ScannedStep[] = [];
  let title: string | undefined;
  const at = (line: number, col: number, path: string, message: string) => problems.push({ file: ctx.file, line, col, path, message });
  let fence: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    for (const m of raw.matchAll(VARIABLE)) {
      const name = m[1] ?? '';
      if (!ctx.knownVariables.has(name)) {
        at(line, (m.index ?? 0) + 1, 'variable', `expected one of ${describeKnown(ctx.knownVariables)}, got {{${name}}}`);
      }
    }
    const f = FENCE.exec(raw);
    if (f) {
      const marker = f[1] ?? '';
      if (fence === undefined) {
        fence = marker;
        const mm = /(?:^|\s)machine=(\S*)/.exec(f[2] ?? '');
        if (mm && !ctx.machines.has(mm[1] ?? '')) {
          at(line, raw.indexOf('machine=') + 1, 'code', `expected machine= one of ${[...ctx.machines].join(', ')}, got "${mm[1]}"`);
        }
        return;
      }
      if (marker.startsWith(fence[0]!) && marker.length >= fence.length && !(f[2] ?? '').trim()) fence = undefined;
      return;
    }
    if (fence !== undefined) return;
    const t = TITLE.exec(raw);
    if (t && title === undefined) title = t[1];
    const box = /^:::\s*(\w*)/.exec(raw);
    if (box && box[1] && !(BOX_KINDS as readonly string[]).includes(box[1])) {
      at(line, 4, 'box', `expected one of ${BOX_KINDS.join(', ')}, got "${box[1]}"`);
    }
    const s = HEADING_STEP.exec(raw) ?? LIST_STEP.exec(raw);
    if (s) {
      const id = s[2] ?? '';
      const col = raw.lastIndexOf('{#') + 1;
      if (!STEP_ID_RE.test(id)) at(line, col, 'step', `expected a step id (a-z, 0-9, - and _), got "{#${id}}"`);
      else steps.push({ id, title: plainText(s[1] ?? ''), line, col });
    }
    for (const re of [MD_IMAGE, HTML_MEDIA]) {
      for (const m of raw.matchAll(re)) {
        const ref = m[1] ?? '';
        const p = mediaPath(ref);
        const col = (m.index ?? 0) + m[0].lastIndexOf(ref) + 1;
        if (p === undefined) at(line, col, 'media', `expected a file under media/ (or an https:// URL), got "${ref}"`);
        else if (p !== null && !ctx.files.has(p)) at(line, col, 'media', `expected an existing file, got "${ref}" (no ${p} in the lab folder)`);
      }
    }
  });
  return { title, steps, problems };
}

/** Markdown inline syntax stripped, for step titles. */
export function plainText(md: string): string {
  return md
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[*_`~]+/g, '')
    .replace(/<[^>]*>/g, '')
    .trim();
}

function describeKnown(vars: Set<string>): string {
  return [...vars].map((v) => `{{${v}}}`).join(', ');
}
