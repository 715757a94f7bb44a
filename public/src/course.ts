/**
 * The course overview for teachers (/course/:context#session=…): every student's lab with its
 * state, step progress and time left; open one view-only, reset or stop it. Refreshes itself.
 */
import './lab.css';
import { ApiError, Session } from './api.js';
import { announce, clear, confirmDialog, h, progressBar, textDialog } from './dom.js';
import { dur, setLanguage, t, time, when } from './i18n.js';
import type { TextKey } from '../../src/i18n.js';

interface Row {
  id: string; userId: string; name: string | null; labId: string; state: string;
  progress: { phase: string; percent: number } | null;
  steps: { ticked: number; total: number; percent: number } | null;
  secondsLeft: number | null; lastActivityAt: string | null; expiresAt: string | null;
  /** Automatic checks (labs that have them): which passed and when. */
  checks: { mode: 'steps' | 'checks'; passed: number; total: number; score: number; maxScore: number; complete: boolean; list: Array<{ stepId: string; index: number; passedAt: string }> } | null;
  /** The student's raised hand. */
  hand: { message: string; raisedAt: string } | null;
  /** The last lines of the console the student has open, or null. */
  console: { machine: string; lines: string[] } | null;
  /** Why the student may be stuck (a raised hand, or no progress for a while), or null. */
  stuck: { reason: 'hand' | 'no-progress'; sinceMs: number } | null;
}

/** Stuck first (raised hands, then the longest without progress), otherwise as the server sent them. */
function stuckFirst(rows: Row[]): Row[] {
  const rank = (r: Row) => (r.stuck?.reason === 'hand' ? 2 : r.stuck ? 1 : 0);
  return rows.map((r, i) => ({ r, i })).sort((a, b) => rank(b.r) - rank(a.r) || (b.r.stuck?.sinceMs ?? 0) - (a.r.stuck?.sinceMs ?? 0) || a.i - b.i).map((x) => x.r);
}

const app = document.getElementById('app')!;
const contextId = app.dataset.context ?? '';
const session = Session.fromFragment();
setLanguage(session?.locale());

function fatal(text: string): void {
  clear(app);
  app.append(h('main', { class: 'body' }, h('section', { class: 'card failure', role: 'alert' }, h('h1', {}, t('course.title')), h('p', {}, text))));
}

async function act(s: Session, row: Row, verb: 'reset' | 'stop'): Promise<void> {
  const who = row.name ?? row.userId;
  const ok = await confirmDialog({
    title: verb === 'reset' ? t('course.resetTitle', { who }) : t('course.stopTitle', { who }), danger: true, confirm: verb === 'reset' ? t('lab.reset') : t('lab.stop'),
    message: verb === 'reset' ? t('course.resetMessage') : t('course.stopMessage'),
  });
  if (!ok) return;
  try {
    await s.api('POST', `/api/instances/${row.id}/${verb}`, {});
    announce(verb === 'reset' ? t('course.resetRequested', { who }) : t('course.stopRequested', { who }));
  } catch (err) {
    announce(t('course.actionFailed', { message: (err as Error).message }));
  }
}

/** A message to one student's lab, or (no row) to everyone in the course. */
async function message(s: Session, row?: Row): Promise<void> {
  const who = row ? row.name ?? row.userId : '';
  const text = await textDialog({ title: row ? t('course.messageTo', { who }) : t('course.messageTitleAll'), help: t('course.messageHelp'), label: t('course.messageLabel'), confirm: t('course.send'), maxLength: 1000 });
  if (!text?.trim()) return;
  try {
    const r = await s.api<{ to: number }>('POST', `/api/courses/${encodeURIComponent(contextId)}/messages`, { text, ...(row ? { instanceId: row.id } : {}) });
    announce(t('course.messageSent', { count: r.to }));
  } catch (err) {
    announce(t('course.actionFailed', { message: (err as Error).message }));
  }
}

async function lowerHand(s: Session, row: Row): Promise<void> {
  try {
    await s.api('DELETE', `/api/instances/${encodeURIComponent(row.id)}/hand`);
    announce(t('class.handLowered'));
  } catch (err) {
    announce(t('course.actionFailed', { message: (err as Error).message }));
  }
}

type NotStarted = { userId: string | null; name: string };

function render(s: Session, all: Row[], tbody: HTMLElement, notStarted: NotStarted[] = [], onlyStuck = false): void {
  const rows = stuckFirst(onlyStuck ? all.filter((r) => r.stuck) : all);
  if (onlyStuck) notStarted = [];
  // a refresh must not take the keyboard focus away
  const active = document.activeElement as HTMLElement | null;
  const focusRow = active?.closest('tr')?.dataset.instance;
  const focusLabel = active?.textContent;
  clear(tbody);
  if (!rows.length && !notStarted.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, t('course.empty'))));
  for (const r of rows) {
    const c = r.checks;
    const bar = progressBar(c?.mode === 'checks' ? t('course.checksBy', { name: r.name ?? r.userId }) : t('course.stepsBy', { name: r.name ?? r.userId }));
    if (c?.mode === 'checks') bar.set(c.maxScore > 0 ? (100 * c.score) / c.maxScore : 0, t('course.checksText', { passed: c.passed, total: c.total, score: c.score, max: c.maxScore }));
    else if (r.steps) bar.set(r.steps.percent, t('course.stepsText', { ticked: r.steps.ticked, total: r.steps.total, percent: r.steps.percent }));
    else bar.set(0, '—');
    const passedList = c?.list.length
      ? h('details', { class: 'checks-passed' }, h('summary', {}, t('course.checksPassed', { count: c.passed })),
        h('ul', {}, ...c.list.map((p) => h('li', { 'data-passed': `${p.stepId}/${p.index}` }, `${p.stepId}${p.index ? ` #${p.index + 1}` : ''} · ${time(p.passedAt)}`))))
      : null;
    const live = ['running', 'paused', 'provisioning'].includes(r.state);
    const open = h('a', { class: 'button', href: `/lab/${encodeURIComponent(r.id)}#session=${encodeURIComponent(s.token)}`, 'data-open': r.id }, t('course.open'));
    const reset = h('button', { type: 'button', class: 'danger-outline', disabled: !live }, t('course.reset'));
    reset.addEventListener('click', () => void act(s, r, 'reset'));
    const stop = h('button', { type: 'button', class: 'danger-outline', disabled: !live }, t('course.stop'));
    stop.addEventListener('click', () => void act(s, r, 'stop'));
    const who = r.name ?? r.userId;
    const msg = h('button', { type: 'button', 'aria-label': t('course.messageTo', { who }) }, t('course.message'));
    msg.addEventListener('click', () => void message(s, r));
    const lower = r.hand ? h('button', { type: 'button', 'aria-label': t('course.lowerHandOf', { who }) }, t('class.lowerHand')) : null;
    lower?.addEventListener('click', () => void lowerHand(s, r));
    const hand = r.hand ? h('div', { class: 'hand', 'data-hand': r.id }, `✋ ${r.hand.message ? t('class.handRaised', { message: r.hand.message }) : t('class.handRaisedNoText')} · ${time(r.hand.raisedAt)}`) : null;
    const stuck = r.stuck?.reason === 'no-progress' ? h('div', { class: 'stuck', 'data-stuck': r.id }, t('course.noProgress', { duration: dur(r.stuck.sinceMs / 1000) })) : null;
    tbody.append(h('tr', { 'data-instance': r.id },
      h('th', { scope: 'row' }, r.name ?? r.userId, h('div', { class: 'muted' }, r.labId), hand, stuck,
        r.console ? h('pre', { class: 'console-tail', 'data-console': r.id, 'aria-label': t('course.consoleOf', { machine: r.console.machine }) }, r.console.lines.join('\n')) : null),
      h('td', {}, h('span', { class: `state state-${r.state}`, 'data-state': r.state }, t(`state.${r.state}` as TextKey)), r.state === 'provisioning' && r.progress ? h('div', { class: 'muted' }, `${r.progress.percent} %`) : null),
      h('td', {}, bar.el, passedList),
      // a stopped lab keeps its disks until its expiry
      h('td', {}, live && r.secondsLeft !== null ? dur(r.secondsLeft) : r.state === 'stopped' && r.expiresAt ? h('span', { 'data-kept-until': r.id }, t('course.keptUntil', { date: when(r.expiresAt) })) : '—'),
      h('td', {}, r.lastActivityAt ? time(r.lastActivityAt) : '—'),
      h('td', { class: 'actions' }, open, msg, lower, reset, stop)));
  }
  // learners from the course roster who have no lab yet
  for (const m of notStarted) {
    tbody.append(h('tr', { class: 'not-started', 'data-learner': m.userId ?? '' },
      h('th', { scope: 'row' }, m.name), h('td', {}, h('span', { class: 'state state-not-started', 'data-state': 'not-started' }, t('course.notStarted'))),
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
  const toAll = h('button', { type: 'button' }, t('course.messageAll'));
  toAll.addEventListener('click', () => void message(s));
  const onlyStuck = h('input', { type: 'checkbox', id: 'only-stuck' });
  const stuckCount = h('span', {});
  let last: { instances: Row[]; notStarted: NotStarted[] | null } | undefined;
  onlyStuck.addEventListener('change', () => { if (last) render(s, last.instances, tbody, last.notStarted ?? [], onlyStuck.checked); });
  clear(app);
  app.append(
    h('header', { class: 'topbar' }, h('h1', {}, t('course.heading')), h('span', { class: 'spacer' }),
      h('label', { class: 'only-stuck' }, onlyStuck, ' ', t('course.onlyStuck'), ' ', stuckCount), updated, toAll),
    h('main', { class: 'body overview' },
      h('table', { class: 'overview-table' },
        h('caption', { class: 'sr-only' }, t('course.caption')),
        h('thead', {}, h('tr', {}, ...(['course.colStudent', 'course.colState', 'course.colProgress', 'course.colTimeLeft', 'course.colLastActivity', 'course.colActions'] as const).map((c) => h('th', { scope: 'col' }, t(c))))),
        tbody)),
    h('div', { id: 'live', class: 'sr-only', 'aria-live': 'polite' }),
  );
  const load = async () => {
    if (document.querySelector('dialog[open]')) return;
    const r = await s.api<{ instances: Row[]; notStarted: NotStarted[] | null }>('GET', `/api/courses/${encodeURIComponent(contextId)}/instances`);
    last = r;
    stuckCount.textContent = `(${r.instances.filter((x) => x.stuck).length})`;
    render(s, r.instances, tbody, r.notStarted ?? [], onlyStuck.checked);
    updated.textContent = t('course.updated', { time: time(Date.now()) });
  };
  await load();
  const reload = () => void load().catch((err: unknown) => { updated.textContent = t('course.updateFailed', { message: (err as Error).message }); });
  // a lab of the course changed (state, steps, checks, a raised hand): reload at once, a burst once
  let soon: ReturnType<typeof setTimeout> | undefined;
  s.events(`/api/courses/${encodeURIComponent(contextId)}/events`, (e) => {
    if ((e as { type?: string }).type === 'hello' || soon) return;
    soon = setTimeout(() => { soon = undefined; reload(); }, 300);
  }, () => undefined);
  // time left and progress without events still move
  setInterval(reload, 5000);
}

if (!session) fatal(t('course.needsLink'));
else main(session).catch((err: unknown) => fatal(err instanceof ApiError && err.status === 403 ? t('course.teachersOnly') : (err as Error).message));
