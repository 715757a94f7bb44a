/**
 * "Warm before class" on the course overview: a small form to schedule a class session for the
 * activity the teacher came from (labs prepared before the start, handed out at launch), and the
 * course's sessions with how many labs are ready, handed out and wasted; a session that has not
 * ended can be cancelled (after a confirmation saying what happens to its labs).
 */
import type { Session } from './api.js';
import { announce, clear, confirmDialog, h } from './dom.js';
import { t, when } from './i18n.js';

interface WarmView { id: string; startsAt: string; endsAt: string; expected: number; state: string; ready: number; preparing: number; handedOut: number; wasted: number }

/** Local date-time for <input type="datetime-local">, an hour from now, on the minute. */
function inAnHour(): string {
  const d = new Date(Date.now() + 3600_000);
  d.setSeconds(0, 0);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

export function warmPanel(s: Session, contextId: string): HTMLElement {
  const base = `/api/courses/${encodeURIComponent(contextId)}/warm-sessions`;
  const start = h('input', { type: 'datetime-local', id: 'warm-start', required: true, value: inAnHour() });
  const expected = h('input', { type: 'number', id: 'warm-expected', min: '1', max: '500', placeholder: t('warm.expectedRoster') });
  const duration = h('input', { type: 'number', id: 'warm-duration', min: '5', max: '1440', value: '90' });
  const list = h('ul', { class: 'warm-sessions', 'aria-label': t('warm.listLabel') });
  const refresh = async () => {
    const r = await s.api<{ sessions: WarmView[] }>('GET', base);
    clear(list);
    for (const w of r.sessions) {
      const status = w.state === 'ended' ? ` · ${t('warm.ended')}` : w.state === 'cancelled' ? ` · ${t('warm.cancelledState')}` : '';
      list.append(h('li', { 'data-warm': w.id }, t('warm.row', {
        start: when(w.startsAt), end: when(w.endsAt), expected: w.expected, ready: w.ready + w.preparing, handed: w.handedOut, wasted: w.wasted,
      }), status, ' ', w.state === 'scheduled' ? cancelButton(w) : null));
    }
  };
  const cancelButton = (w: WarmView) => h('button', {
    type: 'button', class: 'warm-cancel', 'aria-label': t('warm.cancelLabel', { start: when(w.startsAt) }),
    onclick: () => void (async () => {
      if (!(await confirmDialog({ title: t('warm.cancelTitle'), message: t('warm.cancelConfirm'), confirm: t('warm.cancelYes'), danger: true }))) return;
      try {
        await s.api('DELETE', `${base}/${encodeURIComponent(w.id)}`);
        announce(t('warm.cancelDone'));
      } catch (err) {
        announce(t('course.actionFailed', { message: (err as Error).message }));
      }
      await refresh().catch(() => undefined);
    })(),
  }, t('warm.cancel'));
  const form = h('form', { class: 'warm-form' },
    h('label', { for: 'warm-start' }, t('warm.start')), start,
    h('label', { for: 'warm-expected' }, t('warm.expected')), expected,
    h('label', { for: 'warm-duration' }, t('warm.duration')), duration,
    h('button', { type: 'submit' }, t('warm.schedule')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { startsAt: new Date(start.value).toISOString(), durationMinutes: Number(duration.value), ...(expected.value ? { expected: Number(expected.value) } : {}) };
    void s.api<WarmView & { requested: number }>('POST', base, body).then(async (w) => {
      announce(t('warm.scheduled', { count: w.expected, start: when(w.startsAt) }));
      await refresh();
    }, (err: unknown) => announce(t('course.actionFailed', { message: (err as Error).message })));
  });
  void refresh().catch(() => undefined);
  return h('details', { class: 'card warm' }, h('summary', {}, t('warm.title')), h('p', { class: 'muted' }, t('warm.help')), form, list);
}
