/**
 * Instruction pages → sanitized HTML. Rendering happens once per lab version (cached by the
 * catalog) with `{{variables}}` left in place; per instance they are filled in *after*
 * sanitizing, HTML-escaped in text and URL-encoded in links, so no variable value (a user's name
 * from the LMS, say) can ever add markup or a javascript: URL.
 *
 * Markdown conventions (documented in templates/README.md):
 *   ## Title {#step-id}        a step (any heading level 2–6)
 *   - [ ] Do this {#step-id}   a step as a list item
 *   :::note|tip|warning Title  a knowledge box, closed by a line `:::`
 *   ```sh machine=web          a code block with "copy" and "send to machine web"
 *   ![alt](media/x.svg)        media from the lab's media/ folder
 *
 * Why sanitize-html: an allowlist sanitizer on a real HTML parser (htmlparser2), server-side
 * without a DOM — DOMPurify would need jsdom — and widely used and maintained. Regex filtering of
 * author HTML is how XSS gets through.
 */
import { Marked, Renderer, type Token, type Tokens, type TokenizerAndRendererExtension } from 'marked';
import sanitizeHtml from 'sanitize-html';
import type { RenderedInstructions, RenderedStep } from '../contracts.js';
import { BOX_KINDS, mediaPath, VARIABLE } from './scanInstructions.js';
import { fillText } from './prepare.js';
import { escapeHtml } from '../../html.js';

export interface RenderInput {
  labId: string;
  version: string;
  title: string;
  pages: Array<{ id: string; title: string; markdown: string }>;
  steps: Array<{ id: string; pageId: string; title: string }>;
  grading: { mode: 'steps' | 'checks'; maxScore: number; steps: Record<string, { weight: number; checks: Array<{ weight: number }> }> };
}

const STEP_SUFFIX = /\s*\{#([a-z0-9][-a-z0-9_]*)\}\s*$/;
type StepToken = Token & { stepId?: string };

/** Remove the trailing `{#id}` from the last text token of an inline token list. */
function stripSuffix(tokens: Token[] | undefined): void {
  const last = tokens?.[tokens.length - 1];
  if (last && 'text' in last && typeof last.text === 'string') {
    last.text = last.text.replace(STEP_SUFFIX, '');
    if ('raw' in last) last.raw = last.raw.replace(STEP_SUFFIX, '');
  }
}

const boxes: TokenizerAndRendererExtension = {
  name: 'box',
  level: 'block',
  start: (src) => /^:::/m.exec(src)?.index,
  tokenizer(src) {
    const m = /^:::[ \t]*(\w+)[ \t]*([^\n]*)\n([\s\S]*?)\n:::[ \t]*(?:\n+|$)/.exec(src);
    if (!m || !(BOX_KINDS as readonly string[]).includes(m[1] ?? '')) return undefined;
    const token = { type: 'box', raw: m[0], kind: m[1]!, title: (m[2] ?? '').trim(), tokens: [] as Token[] };
    this.lexer.blockTokens(m[3] ?? '', token.tokens);
    return token;
  },
  renderer(token) {
    const kind = String(token.kind);
    const title = String(token.title) || kind.charAt(0).toUpperCase() + kind.slice(1);
    return `<aside class="box box-${kind}" role="note"><p class="box-title">${escapeHtml(title)}</p>${this.parser.parse(token.tokens ?? [])}</aside>\n`;
  },
};

function markdown(): Marked {
  return new Marked({
    gfm: true,
    extensions: [boxes],
    walkTokens(token: StepToken) {
      if (token.type === 'heading' && (token as Tokens.Heading).depth >= 2) {
        const h = token as Tokens.Heading & StepToken;
        const m = STEP_SUFFIX.exec(h.text);
        if (m) {
          h.stepId = m[1];
          h.text = h.text.replace(STEP_SUFFIX, '');
          stripSuffix(h.tokens);
        }
      } else if (token.type === 'list_item') {
        const li = token as Tokens.ListItem & StepToken;
        const first = li.tokens[0] as (Token & { text?: string; tokens?: Token[] }) | undefined;
        const firstLine = first?.text?.split('\n')[0] ?? '';
        const m = STEP_SUFFIX.exec(firstLine);
        if (first && m && (first.type === 'text' || first.type === 'paragraph') && !first.text?.includes('\n')) {
          li.stepId = m[1];
          first.text = first.text?.replace(STEP_SUFFIX, '');
          stripSuffix(first.tokens);
        }
      }
    },
    renderer: {
      heading(this: Renderer, token: Tokens.Heading & StepToken) {
        const html = Renderer.prototype.heading.call(this, token);
        return token.stepId ? html.replace(/^<h(\d)>/, `<h$1 id="step-${token.stepId}" class="step" data-step-id="${token.stepId}">`) : html;
      },
      listitem(this: Renderer, item: Tokens.ListItem & StepToken) {
        const html = Renderer.prototype.listitem.call(this, item);
        return item.stepId ? html.replace(/^<li>/, `<li id="step-${item.stepId}" class="step" data-step-id="${item.stepId}">`) : html;
      },
      code(token: Tokens.Code) {
        const info = token.lang ?? '';
        const lang = /^[\w+-]*/.exec(info)?.[0] ?? '';
        const machine = /(?:^|\s)machine=([a-z0-9-]+)/.exec(info)?.[1];
        const attrs = `class="code" data-copy="true"${machine ? ` data-machine="${machine}"` : ''}${lang ? ` data-lang="${escapeHtml(lang)}"` : ''}`;
        const text = token.text.endsWith('\n') ? token.text : `${token.text}\n`;
        return `<pre ${attrs}><code${lang ? ` class="language-${escapeHtml(lang)}"` : ''}>${escapeHtml(text)}</code></pre>\n`;
      },
    },
  });
}

/** Variables in URLs are kept in their %7B%7B…%7D%7D form so they are filled in URL-encoded. */
function protectUrl(u: string): string {
  return u.replace(/\{\{/g, '%7B%7B').replace(/\}\}/g, '%7D%7D');
}

function sanitizeOptions(mediaBase: string): sanitizeHtml.IOptions {
  const media = (src: string | undefined): string | undefined => {
    if (!src) return undefined;
    const p = mediaPath(src);
    if (p === null) return /^https:\/\//i.test(src) ? protectUrl(src) : undefined;
    if (p === undefined) return undefined;
    return `${mediaBase}/${p.slice('media/'.length).split('/').map(encodeURIComponent).join('/')}`;
  };
  // only our own ids (step-*): an author's id could clobber globals the page script reads
  const ownIds = (attribs: sanitizeHtml.Attributes): sanitizeHtml.Attributes => {
    if (!attribs.id || attribs.id.startsWith('step-')) return attribs;
    const { id: _dropped, ...rest } = attribs;
    return rest;
  };
  const withMedia: sanitizeHtml.Transformer = (tagName, attribs) => {
    const { src, ...rest } = ownIds(attribs);
    const s = media(src);
    return { tagName, attribs: s ? { ...rest, src: s } : rest };
  };
  return {
    allowedTags: [
      'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p', 'br', 'hr', 'blockquote', 'ul', 'ol', 'li', 'dl', 'dt', 'dd',
      'strong', 'b', 'em', 'i', 'del', 's', 'ins', 'sub', 'sup', 'mark', 'kbd', 'code', 'pre', 'span', 'div',
      'a', 'img', 'video', 'audio', 'source', 'figure', 'figcaption', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
      'details', 'summary', 'aside', 'input',
    ],
    allowedAttributes: {
      '*': ['id', 'class', 'title', 'data-step-id', 'data-machine', 'data-copy', 'data-lang', 'role'],
      a: ['href', 'target', 'rel'],
      img: ['src', 'alt', 'width', 'height'],
      video: ['src', 'controls', 'width', 'height', 'loop', 'muted'],
      audio: ['src', 'controls'],
      source: ['src', 'type'],
      input: ['type', 'checked', 'disabled'],
      th: ['align'],
      td: ['align'],
      ol: ['start'],
    },
    allowedClasses: { '*': ['step', 'box', 'box-note', 'box-tip', 'box-warning', 'box-title', 'code', 'language-*'] },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['https'], video: ['https'], audio: ['https'], source: ['https'] },
    allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
    allowProtocolRelative: false,
    disallowedTagsMode: 'discard',
    transformTags: {
      a: (tagName, attribs) => {
        const href = attribs.href ? protectUrl(attribs.href) : undefined;
        const external = !!href && /^https?:\/\//i.test(href);
        return { tagName, attribs: { ...ownIds(attribs), ...(href ? { href } : {}), ...(external ? { target: '_blank', rel: 'noopener noreferrer' } : {}) } };
      },
      img: withMedia,
      video: withMedia,
      audio: withMedia,
      source: withMedia,
      '*': (tagName, attribs) => ({ tagName, attribs: ownIds(attribs) }),
      input: (_tagName, attribs) => ({ tagName: 'input', attribs: { type: 'checkbox', disabled: '', ...('checked' in attribs ? { checked: '' } : {}) } }),
    },
  };
}

/** Render every page (variables left as {{…}}). */
export function renderTemplate(input: RenderInput): RenderedInstructions {
  const md = markdown();
  const mediaBase = `/labs/${encodeURIComponent(input.labId)}/${encodeURIComponent(input.version)}/media`;
  const opts = sanitizeOptions(mediaBase);
  const pages = input.pages.map((p) => ({ id: p.id, title: p.title, html: sanitizeHtml(md.parse(p.markdown, { async: false }), opts) }));
  const steps: RenderedStep[] = input.steps.map((s) => {
    const g = input.grading.steps[s.id];
    const checks = g?.checks ?? [];
    // what the step is worth: in checks mode the weights of its checks, else its own weight
    const weight = input.grading.mode === 'checks' && checks.length ? checks.reduce((n, c) => n + c.weight, 0) : (g?.weight ?? 1);
    return { id: s.id, pageId: s.pageId, title: s.title, weight, hasChecks: checks.length > 0 };
  });
  return { labId: input.labId, version: input.version, title: input.title, pages, steps, grading: { mode: input.grading.mode, maxScore: input.grading.maxScore } };
}

/** Fill `{{variables}}` into rendered pages: HTML-escaped in text and attributes, URL-encoded inside URLs. */
export function fillInstructions(t: RenderedInstructions, vars: Record<string, string | undefined>): RenderedInstructions {
  const fill = (html: string) =>
    html
      .replace(/%7B%7B\s*([^%{}]*?)\s*%7D%7D/gi, (all, name: string) => (vars[name] === undefined ? all : encodeURIComponent(vars[name]!)))
      .replace(VARIABLE, (all, name: string) => (vars[name] === undefined ? all : escapeHtml(vars[name]!)));
  return {
    ...t,
    pages: t.pages.map((p) => ({ ...p, title: fillText(p.title, vars), html: fill(p.html) })),
    steps: t.steps.map((s) => ({ ...s })),
  };
}

/** Add `?t=<token>` to every media URL of labId@version in the pages (the signed URLs of a private lab's media). */
export function signMediaUrls(t: RenderedInstructions, token: string): RenderedInstructions {
  const base = `/labs/${encodeURIComponent(t.labId)}/${encodeURIComponent(t.version)}/media/`;
  const q = `?t=${encodeURIComponent(token)}`;
  const sign = (html: string) => html.split(`"${base}`).map((part, i) => (i === 0 ? part : part.replace(/^([^"?#]*)"/, `$1${q}"`))).join(`"${base}`);
  return { ...t, pages: t.pages.map((p) => ({ ...p, html: sign(p.html) })) };
}
