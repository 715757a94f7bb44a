/**
 * The course overview for teachers (/course/:context#session=…): one card per learner with a live
 * thumbnail of the lab's screen (or its console's last lines), state, step progress, checks, time
 * left and a raised hand; open one view-only, reset or stop it. Refreshes itself.
 */
import './lab.css';
import { ApiError, Session } from './api.js';
import { announce, clear, confirmDialog, h, progressBar, textDialog } from './dom.js';
import { dur, setLanguage, t, time, when } from './i18n.js';
import type { TextKey } from '../../src/i18n.js';
import { ScreenThumbnails } from './screens.js';
import { warmPanel } from './warmSessions.js';

interface Row {
  id: string; userId: string; name: string | null; labId: string; state: string;
  progress: { phase: string; percent: number } | null;
  steps: { ticked: number; total: number; percent: number } | null;
  secondsLeft: number | null; lastActivityAt: string | null; expiresAt: string | null; storageGiB?: number | null;
  /** Automatic checks (labs that have them): which passed and when. */
  checks: { mode: 'steps' | 'checks'; passed: number; total: number; score: number; maxScore: number; complete: boolean; list: Array<{ stepId: string; index: number; passedAt: string }> } | null;
  /** The student's raised hand. */
  hand: { message: string; raisedAt: string } | null;
  /** The last lines of the student's console, or null. */
  console: { machine: string; lines: string[] } | null;
  /** The machine whose screen thumbnail the card shows, or null (no desktop, or not running). */
  screen: string | null;
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

/** The card's glance: the screen thumbnail (labs with a desktop), else the console's last lines, else nothing. */
function glance(r: Row, who: string): HTMLElement | null {
  if (r.screen) {
    return h('div', { class: 'glance' }, h('img', { 'data-screen': r.id, alt: t('course.screenOf', { machine: r.screen, who }), width: 320, height: 240 }));
  }
  if (r.console) return h('div', { class: 'glance' }, h('pre', { class: 'console-tail', 'data-console': r.id, 'aria-label': t('course.consoleOf', { machine: r.console.machine }) }, r.console.lines.join('\n')));
  return null;
}

function card(s: Session, r: Row): HTMLElement {
  const c = r.checks;
  const who = r.name ?? r.userId;
  const bar = progressBar(c?.mode === 'checks' ? t('course.checksBy', { name: who }) : t('course.stepsBy', { name: who }));
  if (c?.mode === 'checks') bar.set(c.maxScore > 0 ? (100 * c.score) / c.maxScore : 0, t('course.checksText', { passed: c.passed, total: c.total, score: c.score, max: c.maxScore }));
  else if (r.steps) bar.set(r.steps.percent, t('course.stepsText', { ticked: r.steps.ticked, total: r.steps.total, percent: r.steps.percent }));
  else bar.set(0, '—');
  const passedList = c?.list.length
    ? h('details', { class: 'checks-passed' }, h('summary', {}, t('course.checksPassed', { count: c.passed })),
      h('ul', {}, ...c.list.map((p) => h('li', { 'data-passed': `${p.stepId}/${p.index}` }, `${p.stepId}${p.index ? ` #${p.index + 1}` : ''} · ${time(p.passedAt)}`))))
    : null;
  const live = ['running', 'paused', 'provisioning'].includes(r.state);
  const open = h('a', { class: 'button', href: `/lab/${encodeURIComponent(r.id)}#session=${encodeURIComponent(s.token)}`, 'data-open': r.id, 'aria-label': `${t('course.open')}: ${who}` }, t('course.open'));
  const reset = h('button', { type: 'button', class: 'danger-outline', disabled: !live, 'aria-label': `${t('course.reset')}: ${who}` }, t('course.reset'));
  reset.addEventListener('click', () => void act(s, r, 'reset'));
  const stop = h('button', { type: 'button', class: 'danger-outline', disabled: !live, 'aria-label': `${t('course.stop')}: ${who}` }, t('course.stop'));
  stop.addEventListener('click', () => void act(s, r, 'stop'));
  const msg = h('button', { type: 'button', 'aria-label': t('course.messageTo', { who }) }, t('course.message'));
  msg.addEventListener('click', () => void message(s, r));
  const lower = r.hand ? h('button', { type: 'button', 'aria-label': t('course.lowerHandOf', { who }) }, t('class.lowerHand')) : null;
  lower?.addEventListener('click', () => void lowerHand(s, r));
  const hand = r.hand ? h('div', { class: 'hand', 'data-hand': r.id }, `✋ ${r.hand.message ? t('class.handRaised', { message: r.hand.message }) : t('class.handRaisedNoText')} · ${time(r.hand.raisedAt)}`) : null;
  const stuck = r.stuck?.reason === 'no-progress' ? h('div', { class: 'stuck', 'data-stuck': r.id }, t('course.noProgress', { duration: dur(r.stuck.sinceMs / 1000) })) : null;
  // a stopped lab keeps its disks until its expiry
  const left = live && r.secondsLeft !== null ? dur(r.secondsLeft) : r.state === 'stopped' && r.expiresAt ? h('span', { 'data-kept-until': r.id }, t('course.keptUntil', { date: when(r.expiresAt) }), r.storageGiB ? ` · ${t('course.size', { size: r.storageGiB })}` : '') : '—';
  const headingId = `who-${r.id}`;
  return h('li', {}, h('article', { class: `learner-card${r.hand ? ' hand-up' : ''}`, 'data-instance': r.id, 'aria-labelledby': headingId },
    glance(r, who),
    h('h2', { id: headingId }, who), h('div', { class: 'muted' }, r.labId), hand, stuck,
    h('dl', { class: 'facts' },
      h('dt', {}, t('course.colState')), h('dd', {}, h('span', { class: `state state-${r.state}`, 'data-state': r.state }, t(`state.${r.state}` as TextKey)), r.state === 'provisioning' && r.progress ? ` ${r.progress.percent} %` : null),
      h('dt', {}, t('course.colProgress')), h('dd', {}, bar.el, passedList),
      h('dt', {}, t('course.colTimeLeft')), h('dd', {}, left),
      h('dt', {}, t('course.colLastActivity')), h('dd', {}, r.lastActivityAt ? time(r.lastActivityAt) : '—')),
    h('div', { class: 'actions' }, open, msg, lower, reset, stop)));
}

function render(s: Session, all: Row[], grid: HTMLElement, screens: ScreenThumbnails, notStarted: NotStarted[] = [], onlyStuck = false): void {
  const rows = stuckFirst(onlyStuck ? all.filter((r) => r.stuck) : all);
  if (onlyStuck) notStarted = [];
  // a refresh must not take the keyboard focus away
  const active = document.activeElement as HTMLElement | null;
  const focusCard = active?.closest<HTMLElement>('[data-instance]')?.dataset.instance;
  const focusLabel = active?.textContent;
  const focusOpen = active instanceof HTMLDetailsElement || active?.parentElement instanceof HTMLDetailsElement;
  clear(grid);
  if (!rows.length && !notStarted.length) grid.append(h('li', { class: 'empty' }, t('course.empty')));
  for (const r of rows) grid.append(card(s, r));
  // learners from the course roster who have no lab yet
  for (const m of notStarted) {
    grid.append(h('li', {}, h('article', { class: 'learner-card not-started', 'data-learner': m.userId ?? '' },
      h('h2', {}, m.name),
      h('dl', { class: 'facts' }, h('dt', {}, t('course.colState')), h('dd', {}, h('span', { class: 'state state-not-started', 'data-state': 'not-started' }, t('course.notStarted')))))));
  }
  screens.attach(Array.from(grid.querySelectorAll<HTMLImageElement>('img[data-screen]')));
  if (focusCard) {
    const again = Array.from(grid.querySelectorAll<HTMLElement>(`[data-instance="${CSS.escape(focusCard)}"] a, [data-instance="${CSS.escape(focusCard)}"] button, [data-instance="${CSS.escape(focusCard)}"] summary`)).find((e) => e.textContent === focusLabel);
    again?.focus();
    if (focusOpen && again?.parentElement instanceof HTMLDetailsElement) again.parentElement.open = true;
  }
}

async function main(s: Session): Promise<void> {
  const grid = h('ul', { class: 'learner-grid', 'aria-label': t('course.caption') });
  const screens = new ScreenThumbnails(s, contextId);
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  const toAll = h('button', { type: 'button' }, t('course.messageAll'));
  toAll.addEventListener('click', () => void message(s));
  const onlyStuck = h('input', { type: 'checkbox', id: 'only-stuck' });
  const stuckCount = h('span', {});
  let last: { instances: Row[]; notStarted: NotStarted[] | null } | undefined;
  onlyStuck.addEventListener('change', () => { if (last) render(s, last.instances, grid, screens, last.notStarted ?? [], onlyStuck.checked); });
  clear(app);
  app.append(
    h('header', { class: 'topbar' }, h('h1', {}, t('course.heading')), h('span', { class: 'spacer' }),
      h('label', { class: 'only-stuck' }, onlyStuck, ' ', t('course.onlyStuck'), ' ', stuckCount), updated, toAll),
    h('main', { class: 'body overview' }, warmPanel(s, contextId), grid),
    h('div', { id: 'live', class: 'sr-only', 'aria-live': 'polite' }),
  );
  (window as { courseScreens?: ScreenThumbnails }).courseScreens = screens;
  const load = async () => {
    if (document.querySelector('dialog[open]')) return;
    const r = await s.api<{ instances: Row[]; notStarted: NotStarted[] | null }>('GET', `/api/courses/${encodeURIComponent(contextId)}/instances`);
    last = r;
    stuckCount.textContent = `(${r.instances.filter((x) => x.stuck).length})`;
    render(s, r.instances, grid, screens, r.notStarted ?? [], onlyStuck.checked);
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
  // time left, progress and console lines without events still move (not while the tab is hidden)
  setInterval(() => { if (document.visibilityState === 'visible') reload(); }, 5000);
}

if (!session) fatal(t('course.needsLink'));
else main(session).catch((err: unknown) => fatal(err instanceof ApiError && err.status === 403 ? t('course.teachersOnly') : (err as Error).message));
