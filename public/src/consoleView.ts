/** A serial console or container terminal in xterm.js: fit to size, scroll-back, copy/paste; read-only for teachers. */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { ChannelLink } from './channel.js';
import type { Session } from './api.js';

export class ConsoleView extends ChannelLink {
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly encoder = new TextEncoder();
  private readonly observer: ResizeObserver;

  constructor(session: Session, instanceId: string, machine: string, viewOnly: boolean, readonly el: HTMLElement, screenReader = false, hintId?: string) {
    super(session, instanceId, machine, 'console', viewOnly);
    this.term = new Terminal({
      disableStdin: viewOnly, scrollback: 5000, cursorBlink: !viewOnly && !matchMedia('(prefers-reduced-motion: reduce)').matches, fontSize: 14, convertEol: false, screenReaderMode: screenReader,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      theme: { background: '#0f1419', foreground: '#e6e6e6' },
    });
    this.term.loadAddon(this.fit);
    this.term.open(el);
    // the hint (how to leave) is read with the terminal's name when it takes focus
    if (hintId) this.term.textarea?.setAttribute('aria-describedby', hintId);
    this.term.onData((d) => this.send(d));
    // Ctrl+Shift+C copies the selection (Ctrl+C goes to the machine)
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.ctrlKey && e.shiftKey && e.key === 'ArrowUp') return false; // leaves the screen (see Workspace)
      if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && e.code === 'KeyC') {
        void navigator.clipboard?.writeText(this.term.getSelection());
        return false;
      }
      return true;
    });
    this.observer = new ResizeObserver(() => this.refit());
    this.observer.observe(el);
  }

  refit(): void {
    if (this.el.offsetParent !== null) {
      try {
        this.fit.fit();
      } catch {
        // not laid out yet
      }
    }
  }

  /** Type text into the console (send to machine, paste). False when not connected. */
  send(text: string): boolean {
    if (this.viewOnly || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(this.encoder.encode(text));
    return true;
  }

  /** xterm's screen-reader mode: output mirrored into an accessible live tree. */
  setScreenReaderMode(on: boolean): void {
    this.term.options.screenReaderMode = on;
  }

  copySelection(): void {
    void navigator.clipboard?.writeText(this.term.getSelection());
  }

  focus(): void {
    this.term.focus();
  }

  protected attach(ws: WebSocket): void {
    ws.addEventListener('open', () => {
      this.connected();
      this.refit();
      if (!this.viewOnly) this.term.focus();
    });
    ws.addEventListener('message', (e) => {
      this.term.write(new Uint8Array(e.data as ArrayBuffer));
    });
  }

  protected detach(): void {
    // the terminal keeps its scroll-back across reconnects
  }
}
