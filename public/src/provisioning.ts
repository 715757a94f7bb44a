/** While the lab is being prepared: the phases, a progress bar, an estimate; on failure the reason and a retry. */
import { formatDuration, h, progressBar } from './dom.js';
import type { Progress } from './types.js';

const PHASES: Array<[string, string]> = [
  ['queued', 'Waiting for a free slot'],
  ['network', 'Creating the lab network'],
  ['disks', 'Preparing the disks'],
  ['machines-starting', 'Starting the machines'],
  ['machines-booted', 'Machines booted'],
];

export class ProvisioningPanel {
  readonly el: HTMLElement;
  private readonly bar = progressBar('Lab preparation');
  private readonly list = h('ol', { class: 'phases' });
  private readonly message = h('p', { class: 'message' });
  private readonly estimate = h('p', { class: 'estimate' });
  private readonly started = Date.now();
  private firstPercent: number | undefined;

  constructor() {
    for (const [id, label] of PHASES) this.list.append(h('li', { 'data-phase': id }, label));
    this.el = h('section', { class: 'provisioning card', 'aria-labelledby': 'prov-title' },
      h('h2', { id: 'prov-title' }, 'Preparing your lab'), this.bar.el, this.message, this.estimate, this.list);
    this.set({ phase: 'queued', percent: 0, message: 'Requested' });
  }

  set(p: Progress): void {
    this.bar.set(p.percent);
    this.message.textContent = p.message;
    const idx = PHASES.findIndex(([id]) => id === p.phase);
    Array.from(this.list.children).forEach((li, i) => {
      li.className = i < idx || (i === idx && p.percent >= 100) ? 'done' : i === idx ? 'current' : '';
      if (i === idx) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    });
    this.firstPercent ??= p.percent;
    const elapsed = (Date.now() - this.started) / 1000;
    const gained = p.percent - this.firstPercent;
    if (p.percent >= 100) this.estimate.textContent = 'Almost there…';
    else if (gained >= 5 && elapsed > 2) this.estimate.textContent = `About ${formatDuration((elapsed * (100 - p.percent)) / gained)} left`;
    else this.estimate.textContent = 'This usually takes under a minute.';
  }
}

export function failurePanel(reason: string | null, canRetry: boolean, retry: () => void): HTMLElement {
  const b = h('button', { type: 'button', class: 'primary' }, 'Try again');
  b.addEventListener('click', () => {
    b.disabled = true;
    retry();
  });
  return h('section', { class: 'failure card', role: 'alert' },
    h('h2', {}, 'The lab could not be started'),
    h('p', {}, reason ?? 'Something went wrong while preparing the machines.'),
    canRetry ? b : h('p', {}, 'Ask the student to try again.'));
}

export function stoppedPanel(state: string, canStart: boolean, start: () => void): HTMLElement {
  const b = h('button', { type: 'button', class: 'primary' }, state === 'stopped' ? 'Start the lab again' : 'Start a new lab');
  b.addEventListener('click', () => {
    b.disabled = true;
    start();
  });
  const text: Record<string, string> = {
    stopped: 'The lab is stopped. Its machines keep their disks.',
    expired: 'The lab has reached its time limit and was removed.',
    destroyed: 'The lab was removed.',
  };
  return h('section', { class: 'stopped card' }, h('h2', {}, 'Lab not running'), h('p', {}, text[state] ?? `The lab is ${state}.`), canStart ? b : null);
}
