/** While the lab is being prepared: the phases, a progress bar, an estimate; on failure the reason and a retry. */
import { announce, h, progressBar } from './dom.js';
import { dur, t, when } from './i18n.js';
import type { TextKey } from '../../src/i18n.js';
import type { Progress } from './types.js';

const PHASES: Array<[string, TextKey]> = [
  ['queued', 'prov.queued'],
  ['network', 'prov.network'],
  ['disks', 'prov.disks'],
  ['machines-starting', 'prov.machinesStarting'],
  ['machines-booted', 'prov.machinesBooted'],
];

export class ProvisioningPanel {
  readonly el: HTMLElement;
  private readonly bar = progressBar(t('prov.bar'));
  private readonly list = h('ol', { class: 'phases' });
  private readonly message = h('p', { class: 'message' });
  private readonly estimate = h('p', { class: 'estimate' });
  private readonly started = Date.now();
  private firstPercent: number | undefined;
  private announcedPhase = '';
  private shown: Progress | undefined;

  constructor() {
    for (const [id, label] of PHASES) this.list.append(h('li', { 'data-phase': id }, t(label)));
    this.el = h('section', { class: 'provisioning card', 'aria-labelledby': 'prov-title' },
      h('h2', { id: 'prov-title' }, t('prov.title')), this.bar.el, this.message, this.estimate, this.list);
    this.set({ phase: 'queued', percent: 0, message: t('prov.requested') });
  }

  /**
   * Progress from a fetched view: pushed events come first and the server stores progress a moment
   * later, so a view fetched meanwhile may be behind what the page shows; it never moves it back.
   */
  setFromView(p: Progress): void {
    const order = (x: Progress) => PHASES.findIndex(([id]) => id === x.phase);
    const s = this.shown;
    if (s && (order(p) < order(s) || (order(p) === order(s) && p.percent < s.percent))) return;
    this.set(p);
  }

  set(p: Progress): void {
    this.shown = p;
    this.bar.set(p.percent);
    const idx = PHASES.findIndex(([id]) => id === p.phase);
    const label = idx >= 0 ? t(PHASES[idx]![1]) : p.message;
    // the server's words for this moment, in the page's language (a queue position, machines booted)
    this.message.textContent = p.message || label;
    // each phase once; while queued, each new position (the server's words say where in the queue)
    const key = `${p.phase}|${p.queuePosition ?? ''}`;
    if (key !== this.announcedPhase) {
      this.announcedPhase = key;
      announce(p.queuePosition && p.message ? p.message : t('prov.announce', { phase: label, percent: Math.round(p.percent) }));
    }
    Array.from(this.list.children).forEach((li, i) => {
      li.className = i < idx || (i === idx && p.percent >= 100) ? 'done' : i === idx ? 'current' : '';
      if (i === idx) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    });
    this.firstPercent ??= p.percent;
    const elapsed = (Date.now() - this.started) / 1000;
    const gained = p.percent - this.firstPercent;
    if (p.percent >= 100) this.estimate.textContent = t('prov.almost');
    else if (gained >= 5 && elapsed > 2) this.estimate.textContent = t('prov.about', { duration: dur((elapsed * (100 - p.percent)) / gained) });
    else this.estimate.textContent = t('prov.usually');
  }
}

export function failurePanel(reason: string | null, canRetry: boolean, retry: () => void): HTMLElement {
  const b = h('button', { type: 'button', class: 'primary' }, t('fail.retry'));
  b.addEventListener('click', () => {
    b.disabled = true;
    retry();
  });
  return h('section', { class: 'failure card', role: 'alert' },
    h('h2', {}, t('fail.title')),
    h('p', {}, reason ?? t('fail.unknown')),
    canRetry ? b : h('p', {}, t('fail.askStudent')));
}

/** A lab that is not running; a stopped one says until when its disks are kept (`keptUntil`: the lab's expiry). */
export function stoppedPanel(state: string, canStart: boolean, start: () => void, keptUntil?: string | null): HTMLElement {
  const b = h('button', { type: 'button', class: 'primary' }, state === 'stopped' ? t('stopped.startAgain') : t('stopped.startNew'));
  b.addEventListener('click', () => {
    b.disabled = true;
    start();
  });
  const text: Record<string, TextKey> = { stopped: 'stopped.stopped', expired: 'stopped.expired', destroyed: 'stopped.destroyed' };
  const key = text[state];
  const says = state === 'stopped' && keptUntil ? t('stopped.keptUntil', { date: when(keptUntil) }) : key ? t(key) : t('stopped.other', { state: t(`state.${state}` as TextKey) });
  return h('section', { class: 'stopped card' }, h('h2', {}, t('stopped.title')), h('p', {}, says), canStart ? b : null);
}
