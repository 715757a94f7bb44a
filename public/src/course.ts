/**
 * The course overview for teachers (/course/:context#session=…): every student's lab with its
 * state, step progress and time left; open one view-only, reset or stop it. Refreshes itself.
 */
import './lab.css';
import { ApiError, Session } from './api.js';
import { announce, clear, confirmDialog, formatDuration, h, progressBar } from './dom.js';

interface Row {
  id: string; userId: string; name: string | null; labId: string; state: string;
  progress: { phase: string; percent: number } | null;
  steps: { ticked: number; total: number; percent: number } | null;
  secondsLeft: number | null; lastActivityAt: string | null;
  /** Automatic checks (labs that have them): which passed and when. */
  checks: { mode: 'steps' | 'checks'; passed: number; total: number; score: number; maxScore: number; complete: boolean; list: Array<{ stepId: string; index: number; passedAt: string }> } | null;
}

const app = document.getElementById('app')!;
const contextId = app.dataset.context ?? '';
const session = Session.fromFragment();

function fatal(text: string): void {
  clear(app);
  app.append(h('main', { class: 'body' }, h('section', { class: 'card failure', role: 'alert' }, h('h1', {}, 'Course labs'), h('p', {}, text))));
}

async function act(s: Session, row: Row, verb: 'reset' | 'stop'): Promise<void> {
  const who = row.name ?? row.userId;
  const ok = await confirmDialog({
    title: verb === 'reset' ? `Reset ${who}'s lab?` : `Stop ${who}'s lab?`, danger: true, confirm: verb === 'reset' ? 'Reset lab' : 'Stop lab',
    message: verb === 'reset' ? 'Every machine goes back to its initial state.' : 'The machines are shut down.',
  });
  if (!ok) return;
  try {
    await s.api('POST', `/api/instances/${row.id}/${verb}`, {});
    announce(`${verb === 'reset' ? 'Reset' : 'Stop'} requested for ${who}.`);
  } catch (err) {
    announce(`Could not ${verb}: ${(err as Error).message}`);
  }
}

type NotStarted = { userId: string | null; name: string };

function render(s: Session, rows: Row[], tbody: HTMLElement, notStarted: NotStarted[] = []): void {
  // a refresh must not take the keyboard focus away
  const active = document.activeElement as HTMLElement | null;
  const focusRow = active?.closest('tr')?.dataset.instance;
  const focusLabel = active?.textContent;
  clear(tbody);
  if (!rows.length && !notStarted.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No student has started a lab in this course yet.')));
  for (const r of rows) {
    const c = r.checks;
    const bar = progressBar(c?.mode === 'checks' ? `Checks passed by ${r.name ?? r.userId}` : `Steps done by ${r.name ?? r.userId}`);
    if (c?.mode === 'checks') bar.set(c.maxScore > 0 ? (100 * c.score) / c.maxScore : 0, `${c.passed}/${c.total} checks · ${c.score} / ${c.maxScore}`);
    else if (r.steps) bar.set(r.steps.percent, `${r.steps.ticked}/${r.steps.total} · ${r.steps.percent} %`);
    else bar.set(0, '—');
    const passedList = c?.list.length
      ? h('details', { class: 'checks-passed' }, h('summary', {}, `${c.passed} check${c.passed === 1 ? '' : 's'} passed`),
        h('ul', {}, ...c.list.map((p) => h('li', { 'data-passed': `${p.stepId}/${p.index}` }, `${p.stepId}${p.index ? ` #${p.index + 1}` : ''} · ${new Date(p.passedAt).toLocaleTimeString()}`))))
      : null;
    const live = ['running', 'paused', 'provisioning'].includes(r.state);
    const open = h('a', { class: 'button', href: `/lab/${encodeURIComponent(r.id)}#session=${encodeURIComponent(s.token)}`, 'data-open': r.id }, 'Open (view only)');
    const reset = h('button', { type: 'button', class: 'danger-outline', disabled: !live }, 'Reset');
    reset.addEventListener('click', () => void act(s, r, 'reset'));
    const stop = h('button', { type: 'button', class: 'danger-outline', disabled: !live }, 'Stop');
    stop.addEventListener('click', () => void act(s, r, 'stop'));
    tbody.append(h('tr', { 'data-instance': r.id },
      h('th', { scope: 'row' }, r.name ?? r.userId, h('div', { class: 'muted' }, r.labId)),
      h('td', {}, h('span', { class: `state state-${r.state}` }, r.state), r.state === 'provisioning' && r.progress ? h('div', { class: 'muted' }, `${r.progress.percent} %`) : null),
      h('td', {}, bar.el, passedList),
      h('td', {}, live && r.secondsLeft !== null ? formatDuration(r.secondsLeft) : '—'),
      h('td', {}, r.lastActivityAt ? new Date(r.lastActivityAt).toLocaleTimeString() : '—'),
      h('td', { class: 'actions' }, open, reset, stop)));
  }
  // learners from the course roster who have no lab yet
  for (const m of notStarted) {
    tbody.append(h('tr', { class: 'not-started', 'data-learner': m.userId ?? '' },
      h('th', { scope: 'row' }, m.name), h('td', {}, h('span', { class: 'state' }, 'not started')),
      h('td', {}, '—'), h('td', {}, '—'), h('td', {}, '—'), h('td', {})));
  }
  if (focusRow) {
    const again = Array.from(tbody.querySelectorAll<HTMLElement>(`tr[data-instance="${CSS.escape(focusRow)}"] a, tr[data-instance="${CSS.escape(focusRow)}"] button`)).find((e) => e.textContent === focusLabel);
    again?.focus();
  }
}

async function main(s: Session): Promise<void> {
  const tbody = h('tbody');
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  clear(app);
  app.append(
    h('header', { class: 'topbar' }, h('h1', {}, 'Labs in this course'), h('span', { class: 'spacer' }), updated),
    h('main', { class: 'body overview' },
      h('table', { class: 'overview-table' },
        h('caption', { class: 'sr-only' }, 'Students and their labs'),
        h('thead', {}, h('tr', {}, ...['Student', 'State', 'Progress', 'Time left', 'Last activity', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody)),
    h('div', { id: 'live', class: 'sr-only', 'aria-live': 'polite' }),
  );
  const load = async () => {
    if (document.querySelector('dialog[open]')) return;
    const r = await s.api<{ instances: Row[]; notStarted: NotStarted[] | null }>('GET', `/api/courses/${encodeURIComponent(contextId)}/instances`);
    render(s, r.instances, tbody, r.notStarted ?? []);
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };
  await load();
  setInterval(() => void load().catch((err: unknown) => { updated.textContent = `Update failed: ${(err as Error).message}`; }), 5000);
}

if (!session) fatal('Open this page from your course (it needs the link from your course).');
else main(session).catch((err: unknown) => fatal(err instanceof ApiError && err.status === 403 ? 'Only teachers of this course can see this.' : (err as Error).message));
