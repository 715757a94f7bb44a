/** Tiny DOM helpers: no framework, no innerHTML for our own text. */
import { t } from './i18n.js';

type Attrs = Record<string, string | number | boolean | undefined | null | ((e: Event) => void)>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (k === 'class') el.className = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Announce a message to screen readers (and show it in the status line). */
export function announce(text: string): void {
  const live = document.getElementById('live');
  if (live) live.textContent = text;
}

/** A modal confirmation (a <dialog>: focus trapped, Esc cancels). Resolves true on confirm. */
export function confirmDialog(o: { title: string; message: string; confirm: string; danger?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', value: 'cancel' }, t('common.cancel'));
    const ok = h('button', { type: 'button', class: o.danger ? 'danger' : 'primary', value: 'ok' }, o.confirm);
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, o.title), h('p', {}, o.message), h('div', { class: 'actions' }, cancel, ok));
    const done = (v: boolean) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancel.addEventListener('click', () => done(false));
    ok.addEventListener('click', () => done(true));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

export function progressBar(label: string): { el: HTMLElement; set(percent: number, text?: string): void } {
  const fill = h('div', { class: 'fill' });
  const txt = h('span', { class: 'text' });
  const el = h('div', { class: 'progress', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 },
    h('div', { class: 'track' }, fill), txt);
  return {
    el,
    set(percent, text) {
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      fill.style.width = `${p}%`;
      el.setAttribute('aria-valuenow', String(p));
      txt.textContent = text ?? `${p} %`;
    },
  };
}

/**
 * Ask for text to paste (a <dialog> with a text area). Reading the clipboard from script is often
 * blocked inside an LMS iframe; a paste (Ctrl+V) into a text area always works.
 */
export function pasteDialog(o: { title: string; confirm: string; initial?: string }): Promise<string | undefined> {
  return textDialog({ ...o, help: t('dlg.pasteHelp'), label: t('dlg.pasteArea') });
}

/** Ask for a short text (a <dialog> with a labelled text area); undefined when cancelled, or when empty unless `allowEmpty`. */
export function textDialog(o: { title: string; help: string; label: string; confirm: string; initial?: string; maxLength?: number; allowEmpty?: boolean }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const area = h('textarea', { rows: 6, cols: 50, 'aria-label': o.label, class: 'paste-area', ...(o.maxLength ? { maxlength: o.maxLength } : {}) });
    area.value = o.initial ?? '';
    const cancel = h('button', { type: 'button' }, t('common.cancel'));
    const ok = h('button', { type: 'button', class: 'primary' }, o.confirm);
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'text-dialog-title' },
      h('h2', { id: 'text-dialog-title' }, o.title), h('p', {}, o.help), area, h('div', { class: 'actions' }, cancel, ok));
    const done = (v: string | undefined) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancel.addEventListener('click', () => done(undefined));
    ok.addEventListener('click', () => done(o.allowEmpty ? area.value : area.value || undefined));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(undefined);
    });
    document.body.append(dlg);
    dlg.showModal();
    area.focus();
  });
}
