/**
 * The instructions panel: pages (sanitized HTML from the server), step checkboxes stored per
 * instance, a progress bar of ticked steps, and code blocks with "Copy" and "Send to <machine>".
 * The score is computed by the server from the stored ticks; this only shows what it returns.
 */
import { announce, h, progressBar } from './dom.js';
import type { InstanceView, StepProgress } from './types.js';

export interface CheckState {
  passed: boolean;
  hint?: string;
  running?: boolean;
}

export interface InstructionsDeps {
  view: InstanceView;
  /** Run a step's automatic checks now (owner); absent when checks are not available. */
  check?(stepId: string): Promise<{ passed: boolean; checks: Array<{ hint?: string; passed: boolean }> }>;
  tick(stepId: string, done: boolean): Promise<{ steps: Record<string, string>; progress: StepProgress }>;
  sendTo(machine: string, text: string): Promise<boolean>;
  machines: string[];
}

export class InstructionsPanel {
  readonly el: HTMLElement;
  private readonly bar = progressBar('Steps done');
  private readonly content = h('div', { class: 'page-content' });
  private readonly pager = h('nav', { class: 'pager', 'aria-label': 'Instruction pages' });
  private page = 0;
  private ticks: Record<string, string>;
  private readonly checks = new Map<string, CheckState>();

  constructor(private readonly d: InstructionsDeps) {
    this.ticks = { ...d.view.steps };
    const ins = d.view.instructions;
    this.el = h('section', { class: 'instructions', 'aria-label': 'Instructions' },
      h('header', {}, h('h2', {}, 'Instructions'), this.bar.el),
      this.pager,
      this.content);
    if (!ins || ins.pages.length === 0) {
      this.content.append(h('p', { class: 'empty' }, ins ? 'This lab has no instructions.' : 'The instructions could not be loaded.'));
      this.bar.el.hidden = true;
      return;
    }
    if (d.view.stepProgress) this.setProgress(d.view.stepProgress);
    else this.bar.el.hidden = true;
    this.renderPage(0);
  }

  private renderPage(i: number): void {
    const ins = this.d.view.instructions!;
    this.page = Math.max(0, Math.min(ins.pages.length - 1, i));
    const page = ins.pages[this.page]!;
    this.content.innerHTML = page.html; // sanitized on the server (lab definitions)
    this.content.setAttribute('aria-label', page.title);
    this.enhanceSteps();
    this.enhanceCode();
    this.renderPager();
    this.content.scrollTop = 0;
  }

  private renderPager(): void {
    const pages = this.d.view.instructions!.pages;
    this.pager.replaceChildren();
    if (pages.length < 2) return;
    const prev = h('button', { type: 'button', disabled: this.page === 0 }, '‹ Previous');
    prev.addEventListener('click', () => this.go(this.page - 1));
    const next = h('button', { type: 'button', disabled: this.page === pages.length - 1 }, 'Next ›');
    next.addEventListener('click', () => this.go(this.page + 1));
    const list = h('ol', { class: 'page-list' });
    pages.forEach((p, i) => {
      const b = h('button', { type: 'button', class: 'page-link', 'aria-current': i === this.page ? 'page' : undefined }, `${i + 1}. ${p.title}`);
      b.addEventListener('click', () => this.go(i));
      list.append(h('li', {}, b));
    });
    this.pager.append(prev, list, next);
  }

  private go(i: number): void {
    this.renderPage(i);
    (this.content.querySelector('h1, h2, h3') as HTMLElement | null)?.setAttribute('tabindex', '-1');
    (this.content.querySelector('h1, h2, h3') as HTMLElement | null)?.focus();
  }

  /** Steps are headings, list items or blocks carrying data-step-id: each gets a checkbox at its start. */
  private enhanceSteps(): void {
    const readOnly = this.d.view.mode !== 'control';
    const steps = this.d.view.instructions!.steps;
    for (const el of Array.from(this.content.querySelectorAll<HTMLElement>('[data-step-id]'))) {
      const id = el.dataset.stepId!;
      const step = steps.find((s) => s.id === id);
      const box = h('input', {
        type: 'checkbox', class: 'step-box', 'data-step': id, disabled: readOnly, checked: Boolean(this.ticks[id]),
        'aria-label': `Done: ${step?.title ?? el.textContent?.trim() ?? id}`, title: readOnly ? 'Ticked by the student' : 'Mark this step done',
      });
      box.addEventListener('change', () => void this.toggle(id, box));
      el.classList.add('step');
      el.classList.toggle('done', Boolean(this.ticks[id]));
      el.prepend(box);
      if (step?.hasChecks) {
        if (el.tagName === 'LI') el.append(this.checkRow(id));
        else el.after(this.checkRow(id));
      }
    }
  }

  /** "Check my work" for a step with automatic checks, and its latest result. */
  private checkRow(stepId: string): HTMLElement {
    const row = h('div', { class: 'check-row', 'data-check': stepId });
    this.renderCheck(row, stepId);
    return row;
  }

  private renderCheck(row: HTMLElement, stepId: string): void {
    const st = this.checks.get(stepId);
    row.replaceChildren();
    if (this.d.check && this.d.view.mode === 'control') {
      const b = h('button', { type: 'button', class: 'small', disabled: st?.running }, st?.running ? 'Checking…' : 'Check my work');
      b.addEventListener('click', () => void this.runCheck(stepId));
      row.append(b);
    }
    const status = h('span', { class: `check-status ${st && !st.running ? (st.passed ? 'passed' : 'failed') : ''}`, role: 'status' });
    if (st && !st.running) status.append(st.passed ? '✓ Passed' : `✗ Not yet${st.hint ? `: ${st.hint}` : ''}`);
    row.append(status);
  }

  private async runCheck(stepId: string): Promise<void> {
    this.setCheck(stepId, { ...(this.checks.get(stepId) ?? { passed: false }), running: true });
    try {
      const r = await this.d.check!(stepId);
      const hint = r.checks.find((c) => !c.passed && c.hint)?.hint;
      this.setCheck(stepId, { passed: r.passed, ...(hint ? { hint } : {}) });
    } catch (err) {
      this.setCheck(stepId, { passed: false, hint: (err as Error).message });
    }
  }

  /** A check result (from a run here or pushed by the server). */
  setCheck(stepId: string, st: CheckState): void {
    this.checks.set(stepId, st);
    const row = this.content.querySelector<HTMLElement>(`.check-row[data-check="${CSS.escape(stepId)}"]`);
    if (row) this.renderCheck(row, stepId);
  }

  private async toggle(id: string, box: HTMLInputElement): Promise<void> {
    box.disabled = true;
    try {
      const r = await this.d.tick(id, box.checked);
      this.setTicks(r.steps);
      this.setProgress(r.progress);
      announce(`${r.progress.ticked} of ${r.progress.total} steps done.`);
    } catch (err) {
      box.checked = !box.checked;
      announce(`Could not save the step: ${(err as Error).message}`);
    } finally {
      box.disabled = false;
    }
  }

  setTicks(ticks: Record<string, string>): void {
    this.ticks = { ...ticks };
    for (const box of Array.from(this.content.querySelectorAll<HTMLInputElement>('input.step-box'))) {
      const on = Boolean(this.ticks[box.dataset.step!]);
      box.checked = on;
      box.closest('.step')?.classList.toggle('done', on);
    }
    const ins = this.d.view.instructions;
    if (ins) {
      const total = ins.steps.reduce((n, s) => n + Math.max(0, s.weight), 0);
      const got = ins.steps.filter((s) => this.ticks[s.id]).reduce((n, s) => n + Math.max(0, s.weight), 0);
      const ticked = ins.steps.filter((s) => this.ticks[s.id]).length;
      const percent = total > 0 ? Math.round((100 * got) / total) : ins.steps.length ? Math.round((100 * ticked) / ins.steps.length) : 0;
      this.bar.set(percent, `${ticked} of ${ins.steps.length} steps · ${percent} %`);
    }
  }

  private setProgress(p: StepProgress): void {
    this.bar.el.hidden = p.total === 0;
    this.bar.set(p.percent, `${p.ticked} of ${p.total} steps · ${p.percent} %`);
  }

  private enhanceCode(): void {
    for (const pre of Array.from(this.content.querySelectorAll<HTMLElement>('pre'))) {
      const code = pre.querySelector('code');
      const text = (code ?? pre).textContent ?? '';
      const machine = pre.dataset.machine ?? code?.dataset.machine;
      const bar = h('div', { class: 'code-tools' });
      const copy = h('button', { type: 'button', class: 'small' }, 'Copy');
      copy.addEventListener('click', () => {
        void navigator.clipboard?.writeText(text).then(() => announce('Copied.'), () => announce('Copy was not allowed by the browser.'));
      });
      bar.append(copy);
      if (machine && this.d.view.mode === 'control' && this.d.machines.includes(machine)) {
        const send = h('button', { type: 'button', class: 'small primary', 'data-send': machine }, `Send to ${machine}`);
        send.addEventListener('click', () => void this.d.sendTo(machine, text.replace(/\n+$/, '')));
        bar.append(send);
      }
      pre.classList.add('has-tools');
      pre.before(bar);
    }
  }
}
