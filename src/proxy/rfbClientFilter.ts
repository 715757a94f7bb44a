/**
 * Reads the client → server half of an RFB (VNC) connection message by message, so the proxy can
 * (a) tell user input (keys, pointer, clipboard) from the viewer's own traffic (update requests),
 * for the idle limit, and (b) drop every input message for a teacher's view-only connection — a
 * guarantee on the server, whatever the browser sends. Handles RFB 3.7/3.8 with security types
 * None and VNC authentication (what QEMU and KubeVirt offer); anything else is passed through
 * untouched in control mode and refused in view mode.
 */
import { BadRequest } from '../errors.js';

export interface FilterResult {
  /** Bytes to send upstream (the input unchanged in control mode; without input messages in view mode). */
  forward: Buffer;
  /** The chunk carried user input. */
  input: boolean;
}

type State = 'version' | 'security' | 'vnc-auth' | 'client-init' | 'messages' | 'opaque';

const INPUT = new Set([4, 5, 6]);
const MAX_MESSAGE_BYTES = 1 << 20;

export class RfbClientFilter {
  private state: State = 'version';
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly viewOnly: boolean) {}

  /** Feed the next chunk from the browser. Throws BadRequest when a view-only stream cannot be parsed. */
  push(chunk: Buffer): FilterResult {
    if (this.state === 'opaque') return { forward: chunk, input: chunk.length > 0 };
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    let input = false;
    for (;;) {
      const n = this.nextLength();
      if (n === 'opaque') {
        if (this.viewOnly) throw new BadRequest('unsupported VNC client message in view-only mode', { publicMessage: 'This viewer is not supported in view-only mode.' });
        this.state = 'opaque';
        out.push(this.buf);
        input = input || this.buf.length > 0;
        this.buf = Buffer.alloc(0);
        break;
      }
      if (n !== undefined && n > MAX_MESSAGE_BYTES) {
        // a huge clipboard paste: do not buffer it whole
        if (this.viewOnly) throw new BadRequest('VNC message too large in view-only mode', { publicMessage: 'This viewer is not supported in view-only mode.' });
        this.state = 'opaque';
        continue;
      }
      if (n === undefined || this.buf.length < n) break;
      const msg = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      const wasMessage = this.state === 'messages';
      input = this.advance(msg) || input;
      if (!(this.viewOnly && wasMessage && dropInView(msg))) out.push(msg);
    }
    return { forward: out.length === 1 ? out[0]! : Buffer.concat(out), input };
  }

  /** Length of the next complete unit, undefined when more bytes are needed to know, 'opaque' when unparseable. */
  private nextLength(): number | undefined | 'opaque' {
    const b = this.buf;
    switch (this.state) {
      case 'version': return 12;
      case 'security': return 1;
      case 'vnc-auth': return 16;
      case 'client-init': return 1;
      case 'opaque': return 'opaque';
      case 'messages': break;
    }
    if (b.length < 1) return undefined;
    const type = b[0]!;
    const need = (k: number, f: () => number): number | undefined => (b.length < k ? undefined : f());
    switch (type) {
      case 0: return 20; // SetPixelFormat
      case 2: return need(4, () => 4 + 4 * b.readUInt16BE(2)); // SetEncodings
      case 3: return 10; // FramebufferUpdateRequest
      case 4: return 8; // KeyEvent
      case 5: return 6; // PointerEvent
      case 6: return need(8, () => 8 + Math.abs(b.readInt32BE(4))); // ClientCutText (negative = extended)
      case 150: return 10; // EnableContinuousUpdates
      case 248: return need(9, () => 9 + b[8]!); // ClientFence
      case 250: return 4; // xvp (power actions)
      case 251: return need(8, () => 8 + 16 * b[6]!); // SetDesktopSize
      case 255: // QEMU client messages: 0 extended key event, 1 audio (operation 2 carries a format)
        if (b.length < 2) return undefined;
        if (b[1] === 0) return 12;
        if (b[1] !== 1) return 'opaque';
        return need(4, () => (b.readUInt16BE(2) === 2 ? 10 : 4));
      default: return 'opaque';
    }
  }

  /** Move the handshake state on; returns whether the unit is user input. */
  private advance(msg: Buffer): boolean {
    switch (this.state) {
      case 'version': {
        const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(msg.toString('latin1'));
        // 3.3 lets the server pick the security type, which this half of the stream cannot see
        this.state = m && Number(m[1]) === 3 && Number(m[2]) >= 7 ? 'security' : 'opaque';
        return false;
      }
      case 'security':
        this.state = msg[0] === 1 ? 'client-init' : msg[0] === 2 ? 'vnc-auth' : 'opaque';
        return false;
      case 'vnc-auth':
        this.state = 'client-init';
        return false;
      case 'client-init':
        this.state = 'messages';
        return false;
      default:
        return INPUT.has(msg[0]!) || (msg[0] === 255 && msg[1] === 0);
    }
  }
}

function dropInView(msg: Buffer): boolean {
  const t = msg[0]!;
  return INPUT.has(t) || t === 250 || t === 251 || (t === 255 && msg[1] === 0);
}
