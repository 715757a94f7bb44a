/**
 * The lab page (/lab/:instance#session=…): provisioning progress by server push, then the
 * instructions beside the workspace, controls, time left; a teacher sees it view-only.
 */
import './lab.css';
import { ApiError, Session } from './api.js';
import { announce, clear, confirmDialog, formatDuration, h } from './dom.js';
import type { InstanceView, LabEvent, StepProgress, StepRun } from './types.js';
import { ProvisioningPanel, failurePanel, stoppedPanel } from './provisioning.js';
import { Workspace } from './workspace.js';
import { InstructionsPanel } from './instructions.js';

const app = document.getElementById('app')!;
const instanceId = app.dataset.instance ?? '';
const session = Session.fromFragment();

class LabPage {
  private view!: InstanceView;
  private skew = 0;
  private readonly header = h('header', { class: 'topbar' });
  private readonly banner = h('div', { class: 'banner', role: 'status', hidden: true });
  private readonly body = h('main', { class: 'body' });
  private readonly linkState = h('span', { class: 'live-link' });
  private readonly timeLeft = h('span', { class: 'time-left', 'aria-live': 'off' });
  private provisioning: ProvisioningPanel | undefined;
  private workspace: Workspace | undefined;
  private instructions: InstructionsPanel | undefined;
  private shownState = '';

  constructor(private readonly s: Session) {
    clear(app);
    app.append(this.header, this.banner, this.body, h('div', { id: 'live', class: 'sr-only', 'aria-live': 'polite' }));
  }

  async start(): Promise<void> {
    await this.refresh();
    this.s.events(`/api/instances/${instanceId}/events`, (e) => this.onEvent(e as LabEvent), (up, retryInMs) => {
      this.linkState.textContent = up ? '' : retryInMs ? `Live updates lost — retrying in ${Math.ceil(retryInMs / 1000)} s` : 'Live updates stopped';
      this.linkState.className = up ? 'live-link' : 'live-link down';
      app.dataset.live = up ? 'up' : 'down';
      if (up) void this.refresh().catch(() => undefined);
    });
    setInterval(() => this.tickClock(), 1000);
  }

  private async refresh(): Promise<void> {
    this.view = await this.s.api<InstanceView>('GET', `/api/instances/${instanceId}`);
    this.skew = new Date(this.view.serverTime).getTime() - Date.now();
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
        this.warn(`Your lab stops in about ${formatDuration((new Date(e.expiresAt).getTime() - this.now()) / 1000)}. Save your work.`);
        break;
      case 'steps':
        this.view.steps = e.steps;
        this.instructions?.setTicks(e.steps);
        break;
      case 'check':
        if (e.checks) this.instructions?.setCheck(e.stepId, { passed: e.passed, at: e.at, checks: e.checks, ...(e.score ? { score: e.score } : {}) });
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
    if (v.mode === 'control' && v.state === 'running' && v.lifetime?.pausable) controls.append(this.button('Pause', () => this.control('pause')));
    if (v.mode === 'control' && v.state === 'paused') controls.append(this.button('Resume', () => this.control('resume'), 'primary'));
    if (['running', 'paused', 'provisioning'].includes(v.state)) {
      controls.append(this.button('Stop lab', async () => {
        const ok = await confirmDialog({
          title: 'Stop the lab?', danger: true, confirm: 'Stop lab',
          message: v.mode === 'view' ? "The student's machines are shut down." : 'Your machines are shut down. Unsaved work in them may be lost.',
        });
        if (ok) await this.control('stop');
      }, 'danger-outline'));
    }
    if (v.mode === 'view' && ['running', 'paused'].includes(v.state)) {
      controls.append(this.button('Reset lab', async () => {
        const ok = await confirmDialog({ title: 'Reset every machine?', message: "All of the student's machines go back to their initial state.", confirm: 'Reset lab', danger: true });
        if (ok) await this.control('reset');
      }, 'danger-outline'));
    }
    document.title = `${v.title} – Lab`;
    const back = v.mode === 'view' && v.contextId
      ? [h('a', { class: 'button small', href: `/course/${encodeURIComponent(v.contextId)}#session=${encodeURIComponent(this.s.token)}` }, '← Course overview')]
      : [];
    this.header.append(
      ...back,
      h('h1', {}, v.title),
      h('span', { class: `state state-${v.state}` }, v.state),
      ...(v.mode === 'view' ? [h('span', { class: 'view-only', title: 'You are watching a student’s lab' }, `View only · ${v.owner?.name || v.owner?.userId || ''}`)] : []),
      this.linkState,
      h('span', { class: 'spacer' }),
      this.timeLeft,
      controls,
    );
    this.tickClock();
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
      announce(`${verb[0]!.toUpperCase()}${verb.slice(1)} requested.`);
      this.render();
    } catch (err) {
      announce(`Could not ${verb} the lab: ${(err as Error).message}`);
      this.warn(`Could not ${verb} the lab: ${(err as Error).message}`);
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
    this.timeLeft.textContent = `${formatDuration(left)} left`;
    this.timeLeft.className = left <= warnAt ? 'time-left warn' : 'time-left';
    if (left <= warnAt && this.banner.hidden && left > 0) this.warn(`Your lab stops in ${formatDuration(left)}. Save your work.`);
  }

  private render(): void {
    const v = this.view;
    this.renderHeader();
    const group = v.state === 'running' || v.state === 'paused' ? 'lab' : v.state === 'requested' || v.state === 'provisioning' ? 'prov' : v.state;
    if (group !== 'lab') {
      this.workspace?.setLive(false, v.state === 'stopped' ? 'lab stopped' : `lab ${v.state}`);
      this.workspace = undefined;
      this.instructions = undefined;
    }
    if (group === 'lab') {
      if (this.shownState !== 'lab' || !this.workspace) this.renderLab();
      this.workspace!.setPhases(Object.fromEntries(v.machines.map((m) => [m.name, m.status])));
      this.workspace!.setLive(v.state === 'running', 'lab paused');
      this.body.classList.toggle('paused', v.state === 'paused');
    } else if (group === 'prov') {
      if (this.shownState !== 'prov' || !this.provisioning) {
        this.provisioning = new ProvisioningPanel();
        this.body.replaceChildren(this.provisioning.el);
      }
      if (v.progress) this.provisioning.set(v.progress);
    } else if (v.state === 'failed') {
      this.body.replaceChildren(failurePanel(v.failureReason, v.mode === 'control', () => void this.control('start')));
    } else {
      this.body.replaceChildren(stoppedPanel(v.state, v.mode === 'control', () => void this.control('start')));
    }
    if (group !== 'prov') this.provisioning = undefined;
    this.shownState = group;
  }

  private renderLab(): void {
    const v = this.view;
    this.workspace = new Workspace(this.s, v, async (machine) => {
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
    const pausedNote = h('div', { class: 'paused-note', role: 'status' }, 'The lab is paused.');
    this.body.replaceChildren(h('div', { class: 'lab-grid' }, this.instructions.el, ws.el), pausedNote);
  }
}

function fatal(text: string): void {
  clear(app);
  app.append(h('main', { class: 'body' }, h('section', { class: 'card failure', role: 'alert' }, h('h1', {}, 'Cannot open the lab'), h('p', {}, text))));
}

if (!session) fatal('Open the activity from your course to start (this page needs the link from your course).');
else {
  new LabPage(session).start().catch((err: unknown) => {
    fatal(err instanceof ApiError && err.status === 403 ? 'This is not your lab.' : (err as Error).message);
  });
}
