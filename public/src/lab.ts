/**
 * The lab page (/lab/:instance#session=…): provisioning progress by server push, then the
 * instructions beside the workspace, controls, time left; a teacher sees it view-only.
 */
import './lab.css';
import { ApiError, Session } from './api.js';
import { announce, clear, confirmDialog, h, textDialog } from './dom.js';
import { dur, setLanguage, t, time, when } from './i18n.js';
import type { TextKey } from '../../src/i18n.js';
import type { ClassMessage, InstanceView, LabEvent, StepProgress, StepRun } from './types.js';
import { ProvisioningPanel, failurePanel, stoppedPanel } from './provisioning.js';
import { Workspace } from './workspace.js';
import { InstructionsPanel } from './instructions.js';

const app = document.getElementById('app')!;
const instanceId = app.dataset.instance ?? '';
const session = Session.fromFragment();
setLanguage(session?.locale());

class LabPage {
  private view!: InstanceView;
  private skew = 0;
  private readonly header = h('header', { class: 'topbar' });
  private readonly banner = h('div', { class: 'banner', role: 'status', hidden: true });
  private readonly body = h('main', { class: 'body' });
  private readonly linkState = h('span', { class: 'live-link' });
  private readonly timeLeft = h('span', { class: 'time-left', 'aria-live': 'off' });
  /** The teacher's messages (newest last); hidden while there are none. */
  private readonly messages = h('section', { class: 'messages', role: 'log', 'aria-label': t('class.messages'), hidden: true });
  private readonly shownMessages = new Set<string>();
  /** A teacher's take-over as the student sees it: the request to answer, the one running, the log. */
  private readonly takeoverBox = h('section', { class: 'takeover', hidden: true });
  /** Whether the workspace shown was built with control (the owner, or a teacher whose take-over runs). */
  private workspaceControl = false;
  private provisioning: ProvisioningPanel | undefined;
  private workspace: Workspace | undefined;
  private instructions: InstructionsPanel | undefined;
  private shownState = '';

  constructor(private readonly s: Session) {
    clear(app);
    app.append(this.header, this.banner, this.takeoverBox, this.messages, this.body, h('div', { id: 'live', class: 'sr-only', 'aria-live': 'polite' }));
  }

  async start(): Promise<void> {
    await this.refresh();
    this.s.events(`/api/instances/${instanceId}/events`, (e) => this.onEvent(e as LabEvent), (up, retryInMs) => {
      this.linkState.textContent = up ? '' : retryInMs ? t('lab.liveRetry', { seconds: Math.ceil(retryInMs / 1000) }) : t('lab.liveStopped');
      this.linkState.className = up ? 'live-link' : 'live-link down';
      app.dataset.live = up ? 'up' : 'down';
      if (up) void this.refresh().catch(() => undefined);
    });
    setInterval(() => this.tickClock(), 1000);
  }

  private async refresh(): Promise<void> {
    this.view = await this.s.api<InstanceView>('GET', `/api/instances/${instanceId}`);
    this.skew = new Date(this.view.serverTime).getTime() - Date.now();
    for (const m of this.view.messages ?? []) this.addMessage(m, false);
    this.render();
  }

  private onEvent(e: LabEvent): void {
    switch (e.type) {
      case 'progress':
        this.view.progress = e.progress;
        this.provisioning?.set(e.progress);
        break;
      case 'state':
        if (e.state !== this.view.state) void this.refresh().catch(() => undefined);
        break;
      case 'machines':
        this.workspace?.setPhases(e.machines);
        break;
      case 'expiry-warning':
        this.view.expiresAt = e.expiresAt;
        // a stopped lab is deleted then; a live one stops
        this.warn(t(this.view.state === 'stopped' ? 'lab.deleteWarning' : 'lab.expiryWarning', { duration: dur((new Date(e.expiresAt).getTime() - this.now()) / 1000) }));
        break;
      case 'hand':
        this.view.hand = e.raised ? { message: e.message ?? '', raisedAt: e.at } : null;
        if (this.view.mode === 'control') announce(e.raised ? t('class.handRaisedAnnounce') : t('class.handLowered'));
        this.renderHeader();
        break;
      case 'message':
        this.addMessage(e, true);
        break;
      case 'takeover':
        if (e.state === 'declined' && this.view.mode === 'view') announce(t('take.declined'));
        void this.refresh().catch(() => undefined);
        break;
      case 'steps':
        this.view.steps = e.steps;
        this.instructions?.setTicks(e.steps);
        break;
      case 'check':
        if (e.checks) this.instructions?.setCheck(e.stepId, { passed: e.passed, at: e.at, checks: e.checks, ...(e.score ? { score: e.score } : {}) }, true);
        break;
      default:
        break;
    }
  }

  private now(): number {
    return Date.now() + this.skew;
  }

  private warn(text: string): void {
    this.banner.textContent = text;
    this.banner.hidden = false;
    this.banner.className = 'banner warn';
  }

  private renderHeader(): void {
    const v = this.view;
    clear(this.header);
    const controls = h('div', { class: 'controls' });
    if (v.mode === 'control' && v.state === 'running' && v.lifetime?.pausable) controls.append(this.button(t('lab.pause'), () => this.control('pause')));
    if (v.mode === 'control' && v.state === 'paused') controls.append(this.button(t('lab.resume'), () => this.control('resume'), 'primary'));
    if (['running', 'paused', 'provisioning'].includes(v.state)) {
      controls.append(this.button(t('lab.stop'), async () => {
        const ok = await confirmDialog({
          title: t('lab.stopConfirmTitle'), danger: true, confirm: t('lab.stop'),
          message: v.mode === 'view' ? t('lab.stopConfirmViewer') : v.keep ? t('lab.stopConfirmKeeps', { date: when(new Date(this.now() + v.keep.days * 86_400_000).toISOString()) }) : t('lab.stopConfirmOwner'),
        });
        if (ok) await this.control('stop');
      }, 'danger-outline'));
    }
    // a raised hand: the student raises or lowers it, a watching teacher lowers it
    const hand = v.hand;
    if (hand) {
      controls.append(h('span', { class: 'hand', 'data-hand': 'raised' }, hand.message ? t('class.handRaised', { message: hand.message }) : t('class.handRaisedNoText')));
      controls.append(this.button(t('class.lowerHand'), () => this.setHand(undefined)));
    } else if (v.mode === 'control' && ['running', 'paused', 'provisioning'].includes(v.state)) {
      controls.append(this.button(t('class.raiseHand'), async () => {
        const message = await textDialog({ title: t('class.raiseTitle'), help: t('class.raiseHelp'), label: t('class.raiseLabel'), confirm: t('class.raiseHand'), maxLength: 280, allowEmpty: true });
        if (message !== undefined) await this.setHand(message);
      }));
    }
    if (v.mode === 'view' && ['running', 'paused'].includes(v.state)) {
      // a teacher asks to take control; it runs once the student accepts, until either ends it
      const tk = v.takeover;
      const mine = tk?.by === v.viewer.userId;
      const end = () => this.s.api('DELETE', `/api/instances/${instanceId}/takeover`).then(() => this.refresh()).catch((err: unknown) => this.warn((err as Error).message));
      if (!tk) controls.append(this.button(t('take.ask'), () => this.s.api('POST', `/api/instances/${instanceId}/takeover`, {}).then(() => this.refresh()).catch((err: unknown) => this.warn((err as Error).message))));
      else if (tk.state === 'requested' && mine) controls.append(h('span', { class: 'takeover-state' }, t('take.waiting')), this.button(t('take.withdraw'), end));
      else if (tk.state === 'active' && mine) controls.append(h('span', { class: 'takeover-state' }, t('take.youHave')), this.button(t('take.giveBack'), end, 'primary'));
      else if (tk.state === 'active') controls.append(h('span', { class: 'takeover-state' }, t('take.otherHas', { name: tk.name })));
    }
    if (v.mode === 'view' && ['running', 'paused'].includes(v.state)) {
      controls.append(this.button(t('lab.reset'), async () => {
        const ok = await confirmDialog({ title: t('lab.resetConfirmTitle'), message: t('lab.resetConfirmViewer'), confirm: t('lab.reset'), danger: true });
        if (ok) await this.control('reset');
      }, 'danger-outline'));
    }
    document.title = t('lab.titleSuffix', { title: v.title });
    const back = v.mode === 'view' && v.contextId
      ? [h('a', { class: 'button small', href: `/course/${encodeURIComponent(v.contextId)}#session=${encodeURIComponent(this.s.token)}` }, t('lab.backToCourse'))]
      : [];
    this.header.append(
      ...back,
      h('h1', {}, v.title),
      h('span', { class: `state state-${v.state}`, 'data-state': v.state }, t(`state.${v.state}`)),
      ...(v.mode === 'view' ? [h('span', { class: 'view-only', title: t('lab.viewOnlyTitle') }, t('lab.viewOnly', { name: v.owner?.name || v.owner?.userId || '' }))] : []),
      this.linkState,
      h('span', { class: 'spacer' }),
      this.timeLeft,
      controls,
    );
    this.tickClock();
  }

  /** The student's side of a take-over: the request to answer, the one running, the log of all. */
  private renderTakeover(): void {
    const v = this.view;
    const box = this.takeoverBox;
    clear(box);
    box.removeAttribute('role');
    const tk = v.takeover;
    if (v.mode === 'control' && tk?.state === 'requested') {
      box.setAttribute('role', 'alert');
      const allow = this.button(t('take.allow'), () => this.answerTakeover(true), 'primary');
      const decline = this.button(t('take.decline'), () => this.answerTakeover(false));
      box.append(h('p', {}, t('take.requestText', { name: tk.name })), allow, decline);
    } else if (v.mode === 'control' && tk?.state === 'active') {
      const end = this.button(t('take.end'), () => this.s.api('DELETE', `/api/instances/${instanceId}/takeover`).then(() => this.refresh()).catch((err: unknown) => this.warn((err as Error).message)));
      box.append(h('p', {}, t('take.activeText', { name: tk.name, time: time(tk.since ?? tk.requestedAt) })), end);
    }
    const log = v.takeovers ?? [];
    if (v.mode === 'control' && log.length) {
      box.append(h('details', { class: 'takeover-log' }, h('summary', {}, t('take.log')),
        h('ul', {}, ...log.map((x) => h('li', {}, t('take.logItem', { name: x.name, from: when(x.from), to: x.to ? time(x.to) : t('take.now') }))))));
    }
    box.hidden = box.childElementCount === 0;
  }

  private async answerTakeover(accept: boolean): Promise<void> {
    try {
      await this.s.api('POST', `/api/instances/${instanceId}/takeover/answer`, { accept });
      await this.refresh();
    } catch (err) {
      this.warn((err as Error).message);
    }
  }

  /** Raise the hand with a message, or lower it (undefined). */
  private async setHand(message: string | undefined): Promise<void> {
    try {
      if (message === undefined) {
        await this.s.api('DELETE', `/api/instances/${instanceId}/hand`);
        this.view.hand = null;
      } else {
        this.view.hand = (await this.s.api<{ hand: InstanceView['hand'] }>('POST', `/api/instances/${instanceId}/hand`, { message })).hand ?? null;
      }
      this.renderHeader();
    } catch (err) {
      this.warn((err as Error).message);
    }
  }

  /** Show a teacher's message once (a reload or a reconnect brings the same ones again). */
  private addMessage(m: ClassMessage, live: boolean): void {
    if (this.shownMessages.has(m.id)) return;
    this.shownMessages.add(m.id);
    this.messages.hidden = false;
    this.messages.append(h('p', { class: 'message', 'data-message': m.id }, h('span', { class: 'muted' }, t('class.messageFrom', { from: m.from, time: time(m.at) })), ' ', m.text));
    if (live) announce(t('class.messageAnnounce', { from: m.from, text: m.text }));
  }

  private button(label: string, f: () => Promise<void> | void, cls = ''): HTMLButtonElement {
    const b = h('button', { type: 'button', class: cls }, label);
    b.addEventListener('click', () => {
      b.disabled = true;
      Promise.resolve(f()).finally(() => { b.disabled = false; });
    });
    return b;
  }

  private async control(verb: 'pause' | 'resume' | 'stop' | 'reset' | 'start', body?: unknown): Promise<void> {
    try {
      this.view = await this.s.api<InstanceView>('POST', `/api/instances/${instanceId}/${verb}`, body ?? {});
      announce(t(`lab.requested.${verb}`));
      this.render();
    } catch (err) {
      const text = t(`lab.failed.${verb}`, { message: (err as Error).message });
      announce(text);
      this.warn(text);
    }
  }

  private tickClock(): void {
    const v = this.view;
    if (!v?.expiresAt || !['running', 'paused', 'provisioning'].includes(v.state)) {
      this.timeLeft.textContent = '';
      return;
    }
    const left = (new Date(v.expiresAt).getTime() - this.now()) / 1000;
    const warnAt = (v.lifetime?.warnBeforeMinutes ?? 5) * 60;
    this.timeLeft.textContent = t('common.left', { duration: dur(left) });
    this.timeLeft.className = left <= warnAt ? 'time-left warn' : 'time-left';
    if (left <= warnAt && this.banner.hidden && left > 0) this.warn(t('lab.expiresIn', { duration: dur(left) }));
  }

  private render(): void {
    const v = this.view;
    this.renderHeader();
    this.renderTakeover();
    const group = v.state === 'running' || v.state === 'paused' ? 'lab' : v.state === 'requested' || v.state === 'provisioning' ? 'prov' : v.state;
    if (group !== 'lab') {
      this.workspace?.setLive(false, v.state === 'stopped' ? t('lab.closedStopped') : t('lab.closedOther', { state: t(`state.${v.state}` as TextKey) }));
      this.workspace = undefined;
      this.instructions = undefined;
    }
    if (group === 'lab') {
      const control = v.mode === 'control' || (v.takeover?.state === 'active' && v.takeover.by === v.viewer.userId);
      if (this.shownState !== 'lab' || !this.workspace || control !== this.workspaceControl) {
        // a take-over began or ended: the screens reconnect with the new rights
        this.workspace?.setLive(false, t('close.takeoverEnded'));
        this.renderLab(control);
      }
      this.workspace!.setPhases(Object.fromEntries(v.machines.map((m) => [m.name, m.status])));
      this.workspace!.setLive(v.state === 'running', t('lab.closedPaused'));
      this.body.classList.toggle('paused', v.state === 'paused');
    } else if (group === 'prov') {
      if (this.shownState !== 'prov' || !this.provisioning) {
        this.provisioning = new ProvisioningPanel();
        this.body.replaceChildren(this.provisioning.el);
      }
      if (v.progress) this.provisioning.setFromView(v.progress);
    } else if (v.state === 'failed') {
      this.body.replaceChildren(failurePanel(v.failureReason, v.mode === 'control', () => void this.control('start')));
    } else {
      this.body.replaceChildren(stoppedPanel(v.state, v.mode === 'control', () => void this.control('start'), v.expiresAt));
      // a stopped lab near its deletion says so when the page opens (the supervisor's warning event reaches only open pages)
      if (v.state === 'stopped' && v.expiresAt && v.keep?.warnAt && new Date(v.keep.warnAt).getTime() <= this.now()) {
        this.warn(t('lab.deleteWarning', { duration: dur(Math.max(0, (new Date(v.expiresAt).getTime() - this.now()) / 1000)) }));
      }
    }
    if (group !== 'prov') this.provisioning = undefined;
    this.shownState = group;
  }

  private renderLab(control = this.view.mode === 'control'): void {
    const v = this.view;
    this.workspaceControl = control;
    this.workspace = new Workspace(this.s, control ? { ...v, mode: 'control' } : v, async (machine) => {
      await this.control('reset', { machine });
    });
    const ws = this.workspace;
    this.instructions = new InstructionsPanel({
      view: v,
      machines: ws.machineNames(),
      sendTo: (m, text) => ws.sendTo(m, text),
      tick: (stepId, done) => this.s.api<{ steps: Record<string, string>; progress: StepProgress }>('POST', `/api/instances/${instanceId}/steps/${encodeURIComponent(stepId)}`, { done }),
      check: (stepId) => this.s.api<StepRun>('POST', `/api/instances/${instanceId}/steps/${encodeURIComponent(stepId)}/check`, {}),
    });
    const pausedNote = h('div', { class: 'paused-note', role: 'status' }, t('lab.paused'));
    this.body.replaceChildren(h('div', { class: 'lab-grid' }, this.instructions.el, ws.el), pausedNote);
  }
}

function fatal(text: string): void {
  clear(app);
  app.append(h('main', { class: 'body' }, h('section', { class: 'card failure', role: 'alert' }, h('h1', {}, t('lab.cannotOpen')), h('p', {}, text))));
}

if (!session) fatal(t('lab.needsLink'));
else {
  new LabPage(session).start().catch((err: unknown) => {
    fatal(err instanceof ApiError && err.status === 403 ? t('lab.notYours') : (err as Error).message);
  });
}
