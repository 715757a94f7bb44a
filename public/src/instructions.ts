/**
 * The instructions panel: pages (sanitized HTML from the server), step checkboxes stored per
 * instance, a progress bar of ticked steps, and code blocks with "Copy" and "Send to <machine>".
 * Steps with automatic checks get a "Check" button and their latest result (hint when failed).
 * The score is computed by the server from the stored ticks or checks; this only shows what it returns.
 */
import { announce, h, progressBar } from './dom.js';
import { t, time } from './i18n.js';
import type { CheckScore, InstanceView, StepChecksView, StepProgress, StepRun } from './types.js';

export interface InstructionsDeps {
  view: InstanceView;
  /** Run a step's automatic checks now (owner); absent when checks are not available. */
  check?(stepId: string): Promise<StepRun>;
  tick(stepId: string, done: boolean): Promise<{ steps: Record<string, string>; progress: StepProgress }>;
  sendTo(machine: string, text: string): Promise<boolean>;
  machines: string[];
}

export class InstructionsPanel {
  readonly el: HTMLElement;
  private readonly bar = progressBar(t('ins.stepsDone'));
  private readonly content = h('div', { class: 'page-content', role: 'region' });
  private readonly pager = h('nav', { class: 'pager', 'aria-label': t('ins.pages') });
  private page = 0;
  private ticks: Record<string, string>;
  /** Latest check result per step (from the instance view, a run here, or pushed by the server). */
  private readonly checkResults: Record<string, StepChecksView>;
  private readonly checkRunning = new Set<string>();
  /** Grading by checks: the bar shows the checks' score, not the ticks. */
  private readonly byChecks: boolean;

  constructor(private readonly d: InstructionsDeps) {
    this.ticks = { ...d.view.steps };
    this.checkResults = { ...(d.view.checks?.steps ?? {}) };
    this.byChecks = d.view.instructions?.grading.mode === 'checks' && Boolean(d.view.checks);
    const ins = d.view.instructions;
    this.el = h('section', { class: 'instructions', 'aria-label': t('ins.title') },
      h('header', {}, h('h2', {}, t('ins.title')), this.bar.el),
      this.pager,
      this.content);
    if (!ins || ins.pages.length === 0) {
      this.content.append(h('p', { class: 'empty' }, ins ? t('ins.none') : t('ins.notLoaded')));
      this.bar.el.hidden = true;
      return;
    }
    if (this.byChecks && d.view.checks) this.setCheckScore(d.view.checks.score);
    else if (d.view.stepProgress) this.setProgress(d.view.stepProgress);
    else this.bar.el.hidden = true;
    this.renderPage(0);
  }

  private renderPage(i: number): void {
    const ins = this.d.view.instructions!;
    this.page = Math.max(0, Math.min(ins.pages.length - 1, i));
    const page = ins.pages[this.page]!;
    this.content.innerHTML = page.html; // sanitized on the server (lab definitions)
    if (ins.language) this.content.lang = ins.language;
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
    const prev = h('button', { type: 'button', disabled: this.page === 0 }, t('ins.previous'));
    prev.addEventListener('click', () => this.go(this.page - 1));
    const next = h('button', { type: 'button', disabled: this.page === pages.length - 1 }, t('ins.next'));
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
        'aria-label': t('ins.done', { step: step?.title ?? el.textContent?.trim() ?? id }), title: readOnly ? t('ins.tickedByStudent') : t('ins.markDone'),
      });
      box.addEventListener('change', () => void this.toggle(id, box));
      // a task-list item ("- [ ] … {#id}") brings markdown's disabled box: the step's box replaces it
      const taskBox = el.tagName === 'LI' ? el.querySelector(':scope > input[type="checkbox"]:not(.step-box), :scope > p:first-child > input[type="checkbox"]:not(.step-box)') : null;
      taskBox?.remove();
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
    const r = this.checkResults[stepId];
    const running = this.checkRunning.has(stepId);
    row.replaceChildren();
    if (this.d.check && this.d.view.mode === 'control') {
      const b = h('button', { type: 'button', class: 'small', disabled: running }, running ? t('ins.checking') : t('ins.checkWork'));
      b.addEventListener('click', () => void this.runCheck(stepId));
      row.append(b);
    }
    const status = h('div', { class: `check-status ${r?.at && !running ? (r.passed ? 'passed' : 'failed') : ''}`, role: 'status' });
    row.append(status);
    if (!r?.at || running) return;
    status.append(h('strong', {}, r.passed ? t('ins.passed') : t('ins.notYet')), h('span', { class: 'muted' }, t('ins.checkedAt', { time: time(r.at) })));
    const failed = r.checks.filter((c) => !c.passed);
    if (failed.length) status.append(h('ul', { class: 'hints' }, ...failed.map((c) => h('li', {}, c.timedOut ? t('ins.timedOut') : '', c.hint ?? t('ins.didNotPass')))));
    // a teacher sees what each check printed
    for (const c of r.checks) {
      if (c.output === undefined) continue;
      const what = c.passed ? t('ins.checkPassedShort') : c.timedOut ? t('ins.checkTimedOutShort') : t('ins.checkExit', { code: c.exitCode ?? '–' });
      const first = c.passedAt ? t('ins.firstPassed', { time: time(c.passedAt) }) : '';
      status.append(h('details', {}, h('summary', {}, t('ins.checkSummary', { n: c.index + 1, machine: c.machine, what }) + first), h('pre', { class: 'check-output' }, c.output || t('ins.noOutput'))));
    }
  }

  private async runCheck(stepId: string): Promise<void> {
    this.checkRunning.add(stepId);
    this.redrawCheck(stepId);
    try {
      const run = await this.d.check!(stepId);
      this.checkRunning.delete(stepId);
      this.setCheck(stepId, run);
      const step = this.stepTitle(stepId);
      announce(run.passed ? t('ins.checkPassedAnnounce', { step }) : t('ins.checkFailedAnnounce', { step }));
    } catch (err) {
      this.checkRunning.delete(stepId);
      this.redrawCheck(stepId);
      const row = this.content.querySelector<HTMLElement>(`.check-row[data-check="${CSS.escape(stepId)}"] .check-status`);
      if (row) {
        row.className = 'check-status failed';
        row.textContent = (err as Error).message;
      }
      announce(t('ins.checkError', { message: (err as Error).message }));
    }
  }

  private stepTitle(stepId: string): string {
    return this.d.view.instructions?.steps.find((s) => s.id === stepId)?.title ?? stepId;
  }

  /** A check result (from a run here or pushed by the server: announced when it is news). */
  setCheck(stepId: string, run: Pick<StepRun, 'passed' | 'at' | 'checks' | 'score'>, pushed = false): void {
    const before = this.checkResults[stepId];
    if (pushed && before?.at !== run.at && before?.passed !== run.passed) {
      const step = this.stepTitle(stepId);
      announce(run.passed ? t('ins.checkPassedAnnounce', { step }) : t('ins.checkFailedAnnounce', { step }));
    }
    this.checkResults[stepId] = { passed: run.passed, at: run.at, checks: run.checks };
    this.redrawCheck(stepId);
    if (run.score && this.byChecks) this.setCheckScore(run.score);
    // a step whose checks passed is done: tick its box (saved like a tick by hand, so every view shows it)
    const box = this.content.querySelector<HTMLInputElement>(`input.step-box[data-step="${CSS.escape(stepId)}"]`);
    if (run.passed && box && !box.checked && this.d.view.mode === 'control') {
      box.checked = true;
      void this.toggle(stepId, box);
    }
  }

  private redrawCheck(stepId: string): void {
    const row = this.content.querySelector<HTMLElement>(`.check-row[data-check="${CSS.escape(stepId)}"]`);
    if (row) this.renderCheck(row, stepId);
  }

  private setCheckScore(s: CheckScore): void {
    const percent = s.max > 0 ? Math.round((100 * s.given) / s.max) : 0;
    this.bar.el.hidden = false;
    this.bar.set(percent, t('ins.score', { given: s.given, max: s.max }) + (s.complete ? t('ins.allPassed') : ''));
  }

  private async toggle(id: string, box: HTMLInputElement): Promise<void> {
    box.disabled = true;
    try {
      const r = await this.d.tick(id, box.checked);
      this.setTicks(r.steps);
      this.setProgress(r.progress);
      announce(t('ins.stepsAnnounce', { ticked: r.progress.ticked, total: r.progress.total }));
    } catch (err) {
      box.checked = !box.checked;
      announce(t('ins.saveFailed', { message: (err as Error).message }));
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
    if (ins && !this.byChecks) {
      const total = ins.steps.reduce((n, s) => n + Math.max(0, s.weight), 0);
      const got = ins.steps.filter((s) => this.ticks[s.id]).reduce((n, s) => n + Math.max(0, s.weight), 0);
      const ticked = ins.steps.filter((s) => this.ticks[s.id]).length;
      const percent = total > 0 ? Math.round((100 * got) / total) : ins.steps.length ? Math.round((100 * ticked) / ins.steps.length) : 0;
      this.bar.set(percent, t('ins.stepsProgress', { ticked, total: ins.steps.length, percent }));
    }
  }

  private setProgress(p: StepProgress): void {
    if (this.byChecks) return;
    this.bar.el.hidden = p.total === 0;
    this.bar.set(p.percent, t('ins.stepsProgress', { ticked: p.ticked, total: p.total, percent: p.percent }));
  }

  private enhanceCode(): void {
    // code blocks of the instructions only (not a check's output)
    for (const pre of Array.from(this.content.querySelectorAll<HTMLElement>('pre:not(.check-output)'))) {
      const code = pre.querySelector('code');
      const text = (code ?? pre).textContent ?? '';
      const machine = pre.dataset.machine ?? code?.dataset.machine;
      const bar = h('div', { class: 'code-tools' });
      const copy = h('button', { type: 'button', class: 'small' }, t('ins.copy'));
      copy.addEventListener('click', () => {
        void navigator.clipboard?.writeText(text).then(() => announce(t('ins.copied')), () => announce(t('ins.copyDenied')));
      });
      bar.append(copy);
      if (machine && this.d.view.mode === 'control' && this.d.machines.includes(machine)) {
        const send = h('button', { type: 'button', class: 'small primary', 'data-send': machine }, t('ins.sendTo', { machine }));
        send.addEventListener('click', () => void this.d.sendTo(machine, text.replace(/\n+$/, '')));
        bar.append(send);
      }
      pre.classList.add('has-tools');
      pre.before(bar);
    }
  }
}
