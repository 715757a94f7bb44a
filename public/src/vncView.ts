/** A machine's desktop in noVNC: scaled to fit, fullscreen, Ctrl-Alt-Del, paste as keystrokes; view-only for teachers. */
import RFB from '@novnc/novnc';
import { ChannelLink } from './channel.js';
import type { Session } from './api.js';

/** The X11 keysym for a character (Latin-1 directly, the rest as Unicode keysyms). */
export function keysymFor(ch: string): number {
  if (ch === '\n' || ch === '\r') return 0xff0d; // Return
  if (ch === '\t') return 0xff09; // Tab
  const cp = ch.codePointAt(0) ?? 0x3f;
  return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff) ? cp : 0x01000000 + cp;
}

export class VncView extends ChannelLink {
  private rfb: RFB | undefined;

  constructor(session: Session, instanceId: string, machine: string, viewOnly: boolean, readonly el: HTMLElement,
    private readonly altText = '', private readonly hintId?: string) {
    super(session, instanceId, machine, 'vnc', viewOnly);
  }

  protected attach(ws: WebSocket): void {
    const rfb = new RFB(this.el, ws, { shared: true });
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.viewOnly = this.viewOnly;
    rfb.focusOnClick = !this.viewOnly;
    rfb.background = '#1b1f24';
    rfb.addEventListener('connect', () => this.connected());
    this.rfb = rfb;
    // the canvas is a picture to assistive technology: say what it is and what to use instead
    const canvas = this.el.querySelector('canvas');
    if (canvas) {
      canvas.setAttribute('role', 'application');
      canvas.setAttribute('aria-label', this.altText);
      if (this.hintId) canvas.setAttribute('aria-describedby', this.hintId);
    }
  }

  protected detach(): void {
    const rfb = this.rfb;
    this.rfb = undefined;
    try {
      rfb?.disconnect();
    } catch {
      // already gone
    }
  }

  ctrlAltDel(): void {
    this.rfb?.sendCtrlAltDel();
  }

  /** Type text as key presses (what "paste" means on a machine without a shared clipboard). */
  async typeText(text: string): Promise<boolean> {
    const rfb = this.rfb;
    if (!rfb || this.viewOnly || this.state.kind !== 'connected') return false;
    for (const ch of text.replace(/\r\n/g, '\n')) {
      rfb.sendKey(keysymFor(ch), null);
      // a little pacing: slow guests drop keys sent in one burst
      await new Promise((r) => setTimeout(r, 8));
    }
    return true;
  }

  focus(): void {
    this.rfb?.focus();
  }
}
