/**
 * The workspace: a tab per machine (arrow keys move between tabs, as in the WAI-ARIA tabs
 * pattern). A machine's tab shows its desktop (noVNC) or console (xterm) — a switch when it has
 * both — with its status, connection state and tools. Connections open when a view is first shown
 * and stay open while the lab runs.
 */
import { announce, confirmDialog, h, clear, pasteDialog } from './dom.js';
import { t as tr } from './i18n.js';
import { CLOSE } from '../../src/closeCodes.js';
import type { Session } from './api.js';
import type { ChannelKind, InstanceView, MachinePhase } from './types.js';
import { ConsoleView } from './consoleView.js';
import { VncView } from './vncView.js';
import type { ChannelLink, LinkState } from './channel.js';

interface MachineTab {
  name: string;
  channels: ChannelKind[];
  tab: HTMLButtonElement;
  panel: HTMLElement;
  statusEl: HTMLElement;
  linkEl: HTMLElement;
  views: Partial<{ vnc: VncView; console: ConsoleView }>;
  hosts: Partial<Record<ChannelKind, HTMLElement>>;
  active: ChannelKind;
  switchBtns: Partial<Record<ChannelKind, HTMLButtonElement>>;
  phase: MachinePhase;
}

/** A close reason from the server (English, src/closeCodes.ts) in the page's language. */
function reasonText(reason: string): string {
  const name = (Object.keys(CLOSE) as Array<keyof typeof CLOSE>).find((k) => CLOSE[k].reason === reason);
  return name ? tr(`close.${name}`) : reason;
}

const SCREEN_READER_KEY = 'lab-orchestrator.screen-reader';

/** The student asked for xterm's screen-reader mode (kept in this browser). */
export function screenReaderWanted(): boolean {
  try {
    return localStorage.getItem(SCREEN_READER_KEY) === '1';
  } catch {
    return false;
  }
}

export class Workspace {
  readonly el: HTMLElement;
  private readonly tabs: MachineTab[] = [];
  private current: MachineTab | undefined;
  private live = true;

  constructor(private readonly session: Session, private readonly view: InstanceView, private readonly onReset: (machine: string) => Promise<void>) {
    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': tr('ws.machines') });
    const panels = h('div', { class: 'panels' });
    this.el = h('section', { class: 'workspace', 'aria-label': tr('ws.workspace') }, tablist, panels);
    for (const m of view.machines) {
      const t = this.makeTab(m.name, m.channels, m.status.phase);
      tablist.append(t.tab);
      panels.append(t.panel);
      this.tabs.push(t);
    }
    tablist.addEventListener('keydown', (e) => {
      const i = this.tabs.findIndex((t) => t === this.current);
      const n = this.tabs.length;
      const to = e.key === 'ArrowRight' ? (i + 1) % n : e.key === 'ArrowLeft' ? (i - 1 + n) % n : e.key === 'Home' ? 0 : e.key === 'End' ? n - 1 : -1;
      if (to >= 0) {
        e.preventDefault();
        this.select(this.tabs[to]!.name, true);
      }
    });
    if (this.tabs[0]) this.select(this.tabs[0].name, false);
    if (!this.tabs.length) panels.append(h('p', { class: 'empty' }, tr('ws.noMachines')));
  }

  private makeTab(name: string, channels: ChannelKind[], phase: MachinePhase): MachineTab {
    const id = `tab-${name}`;
    const statusEl = h('span', { class: `phase phase-${phase}` }, tr(`phase.${phase}`));
    const tab = h('button', { type: 'button', role: 'tab', id, 'aria-controls': `panel-${name}`, 'aria-selected': 'false', tabindex: -1, class: 'tab' },
      h('span', { class: 'name' }, name), statusEl);
    const linkEl = h('span', { class: 'link', role: 'status' });
    const toolbar = h('div', { class: 'toolbar' });
    const stage = h('div', { class: 'stage' });
    const panel = h('div', { role: 'tabpanel', id: `panel-${name}`, 'aria-labelledby': id, class: 'panel', hidden: true }, toolbar, stage);
    const t: MachineTab = { name, channels, tab, panel, statusEl, linkEl, views: {}, hosts: {}, active: channels.includes('vnc') ? 'vnc' : 'console', switchBtns: {}, phase };
    tab.addEventListener('click', () => this.select(name, true));

    if (channels.length > 1) {
      const sw = h('div', { class: 'switch', role: 'group', 'aria-label': tr('ws.view') });
      for (const c of channels) {
        const b = h('button', { type: 'button', 'aria-pressed': 'false' }, c === 'vnc' ? tr('ws.desktop') : tr('ws.console'));
        b.addEventListener('click', () => this.show(t, c));
        t.switchBtns[c] = b;
        sw.append(b);
      }
      toolbar.append(sw);
    }
    const hintId = `hint-${name}`;
    for (const c of channels) {
      const host = h('div', { class: `host host-${c}`, hidden: true });
      this.keyboardExit(host, tab, c, name);
      t.hosts[c] = host;
      stage.append(host);
    }
    const tools = h('div', { class: 'tools' });
    const fullscreen = h('button', { type: 'button' }, tr('ws.fullscreen'));
    fullscreen.addEventListener('click', () => void stage.requestFullscreen?.().catch(() => announce(tr('ws.fullscreenDenied'))));
    if (this.view.mode === 'control') {
      const cad = h('button', { type: 'button', class: 'only-vnc' }, tr('ws.ctrlAltDel'));
      cad.addEventListener('click', () => t.views.vnc?.ctrlAltDel());
      const pasteKeys = h('button', { type: 'button', class: 'only-vnc', title: tr('ws.pasteKeysTitle') }, tr('ws.pasteKeys'));
      pasteKeys.addEventListener('click', () => void this.pasteAsKeys(t));
      const copy = h('button', { type: 'button', class: 'only-console', title: tr('ws.copyTitle') }, tr('ws.copy'));
      copy.addEventListener('click', () => t.views.console?.copySelection());
      const paste = h('button', { type: 'button', class: 'only-console' }, tr('ws.paste'));
      paste.addEventListener('click', () => void this.pasteToConsole(t));
      tools.append(cad, pasteKeys, copy, paste);
    }
    if (channels.includes('console')) {
      const sr = h('button', { type: 'button', class: 'only-console', 'aria-pressed': String(screenReaderWanted()), 'data-sr-toggle': name }, tr('ws.screenReader'));
      sr.addEventListener('click', () => {
        const on = sr.getAttribute('aria-pressed') !== 'true';
        sr.setAttribute('aria-pressed', String(on));
        try {
          localStorage.setItem(SCREEN_READER_KEY, on ? '1' : '0');
        } catch {
          // storage blocked in the frame: the mode still applies to this page
        }
        t.views.console?.setScreenReaderMode(on);
        announce(tr(on ? 'ws.screenReaderOn' : 'ws.screenReaderOff'));
      });
      tools.append(sr);
    }
    const reset = h('button', { type: 'button', class: 'danger-outline' }, tr('ws.resetMachine', { machine: name }));
    reset.addEventListener('click', () => void this.confirmReset(name));
    tools.append(fullscreen, reset);
    toolbar.append(linkEl, h('span', { class: 'kbd-hint', id: hintId }, tr('ws.leaveHint')), tools);
    return t;
  }

  /**
   * A desktop or a terminal takes every key, Tab included: Ctrl+Shift+↑, or Escape twice in a row,
   * leaves it for the machine's tab. When focus enters, the way out is announced (live region).
   */
  private keyboardExit(host: HTMLElement, tab: HTMLElement, c: ChannelKind, machine: string): void {
    let lastEsc = 0;
    host.addEventListener('keydown', (e) => {
      const twiceEsc = e.key === 'Escape' && !e.ctrlKey && !e.altKey && !e.metaKey && e.timeStamp - lastEsc < 800;
      if (e.key === 'Escape') lastEsc = twiceEsc ? 0 : e.timeStamp;
      if ((e.key === 'ArrowUp' && e.ctrlKey && e.shiftKey) || twiceEsc) {
        e.preventDefault();
        e.stopImmediatePropagation();
        tab.focus();
      }
    }, true);
    host.addEventListener('focusin', (e) => {
      if (host.contains(e.relatedTarget as Node | null)) return;
      announce(tr(c === 'console' ? 'ws.consoleEntered' : 'ws.desktopEntered', { machine }));
    });
  }

  private async confirmReset(machine: string): Promise<void> {
    const ok = await confirmDialog({
      title: tr('ws.resetMachineTitle', { machine }), message: tr('ws.resetMachineMessage', { machine }), confirm: tr('ws.resetMachine', { machine }), danger: true,
    });
    if (ok) await this.onReset(machine);
  }

  private async pasteAsKeys(tab: MachineTab): Promise<void> {
    // the clipboard API is usually blocked in an LMS iframe: let the user paste into a text area instead
    const fromClipboard = await navigator.clipboard?.readText().catch(() => '') ?? '';
    const text = await pasteDialog({ title: tr('ws.typeInto', { machine: tab.name }), confirm: tr('ws.typeIt'), initial: fromClipboard });
    if (!text) return;
    const ok = await tab.views.vnc?.typeText(text);
    announce(ok ? tr('ws.typed', { machine: tab.name }) : tr('ws.notConnected', { machine: tab.name }));
    tab.views.vnc?.focus();
  }

  private async pasteToConsole(tab: MachineTab): Promise<void> {
    const fromClipboard = await navigator.clipboard?.readText().catch(() => '') ?? '';
    const text = await pasteDialog({ title: tr('ws.pasteInto', { machine: tab.name }), confirm: tr('ws.paste'), initial: fromClipboard });
    if (!text) return;
    tab.views.console?.term.paste(text);
    tab.views.console?.focus();
  }

  select(name: string, focus: boolean): void {
    const t = this.tabs.find((x) => x.name === name);
    if (!t) return;
    for (const x of this.tabs) {
      const on = x === t;
      x.tab.setAttribute('aria-selected', String(on));
      x.tab.tabIndex = on ? 0 : -1;
      x.panel.hidden = !on;
    }
    this.current = t;
    if (focus) t.tab.focus();
    this.show(t, t.active);
  }

  private show(t: MachineTab, c: ChannelKind): void {
    t.active = c;
    for (const [k, host] of Object.entries(t.hosts) as Array<[ChannelKind, HTMLElement]>) host.hidden = k !== c;
    for (const [k, b] of Object.entries(t.switchBtns) as Array<[ChannelKind, HTMLButtonElement]>) b.setAttribute('aria-pressed', String(k === c));
    t.panel.dataset.channel = c;
    const v = this.ensureView(t, c);
    if (this.live && v.state.kind === 'idle') v.connect();
    if (v instanceof ConsoleView) requestAnimationFrame(() => v.refit());
    this.showLink(t);
  }

  private ensureView(t: MachineTab, c: ChannelKind): ChannelLink {
    const existing = t.views[c];
    if (existing) return existing;
    const host = t.hosts[c]!;
    const viewOnly = this.view.mode === 'view';
    const hint = tr(t.channels.includes('console') ? 'ws.desktopAlt' : 'ws.desktopAltNoConsole', { machine: t.name });
    const v = c === 'vnc'
      ? new VncView(this.session, this.view.id, t.name, viewOnly, host, hint, `hint-${t.name}`)
      : new ConsoleView(this.session, this.view.id, t.name, viewOnly, host, screenReaderWanted(), `hint-${t.name}`);
    v.onState = () => { if (t.active === c) this.showLink(t); };
    if (c === 'vnc') t.views.vnc = v as VncView;
    else t.views.console = v as ConsoleView;
    return v;
  }

  private showLink(t: MachineTab): void {
    const v = t.views[t.active];
    const s: LinkState = v?.state ?? { kind: 'idle' };
    clear(t.linkEl);
    t.linkEl.className = `link link-${s.kind}`;
    const text =
      s.kind === 'connected' ? (this.view.mode === 'view' ? tr('ws.connectedViewOnly') : tr('ws.connected'))
        : s.kind === 'connecting' ? tr('ws.connecting')
          : s.kind === 'reconnecting' ? tr('ws.reconnecting', { seconds: Math.ceil(s.inMs / 1000), why: reasonText(s.why) })
            : s.kind === 'closed' ? tr('ws.disconnected', { reason: reasonText(s.reason) }) : '';
    t.linkEl.append(text);
    if (s.kind === 'closed' && s.canRetry && v) {
      const b = h('button', { type: 'button', class: 'small' }, s.reason === CLOSE.otherTab.reason ? tr('ws.useHere') : tr('ws.reconnect'));
      b.addEventListener('click', () => v.connect());
      t.linkEl.append(' ', b);
    }
  }

  setPhases(phases: Record<string, { phase: MachinePhase }>): void {
    for (const t of this.tabs) {
      const p = phases[t.name]?.phase;
      if (!p) continue;
      t.phase = p;
      t.statusEl.className = `phase phase-${p}`;
      t.statusEl.textContent = tr(`phase.${p}`);
    }
  }

  /** Lab running: (re)open the view that is shown; not running: close them all (once per change). */
  setLive(live: boolean, reason: string): void {
    if (live === this.live) return;
    this.live = live;
    for (const t of this.tabs) {
      for (const v of Object.values(t.views)) if (!live) v.disconnect(reason);
      this.showLink(t);
    }
    if (live && this.current) {
      this.ensureView(this.current, this.current.active).connect();
      this.show(this.current, this.current.active);
    }
  }

  /** "Send to machine": type into its console if it has one, else into its desktop. */
  async sendTo(machine: string, text: string): Promise<boolean> {
    const t = this.tabs.find((x) => x.name === machine);
    if (!t || this.view.mode !== 'control') return false;
    const channel: ChannelKind = t.channels.includes('console') ? 'console' : 'vnc';
    this.select(machine, false);
    this.show(t, channel);
    const v = this.ensureView(t, channel);
    const line = text.replace(/\r?\n/g, '\r').replace(/\r?$/, '\r');
    for (let i = 0; i < 50 && v.state.kind !== 'connected'; i++) await new Promise((r) => setTimeout(r, 100));
    const sent = v instanceof ConsoleView ? v.send(line) : await (v as VncView).typeText(text.endsWith('\n') ? text : `${text}\n`);
    announce(sent ? tr('ws.sent', { machine }) : tr('ws.notConnectedYet', { machine }));
    (v as ConsoleView | VncView).focus();
    return sent;
  }

  machineNames(): string[] {
    return this.tabs.map((t) => t.name);
  }
}
