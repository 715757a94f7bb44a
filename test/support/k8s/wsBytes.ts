/**
 * Tests' view of a raw-bytes websocket (KubeVirt's plain.kubevirt.io streams): open it with a
 * bearer token, read exact byte counts or until a pattern, and a minimal RFB (VNC) handshake.
 */
import WebSocket from 'ws';

export class WsBytes {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Opens url; rejects with the HTTP status (e.g. "Unexpected server response: 403") if refused. */
  static open(url: string, opts: { token: string; ca: string; protocol?: string }): Promise<WsBytes> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, [opts.protocol ?? 'plain.kubevirt.io'], { headers: { authorization: `Bearer ${opts.token}` }, ca: opts.ca });
      const w = new WsBytes(ws);
      ws.once('open', () => resolve(w));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  private async waitFor<T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`websocket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received so far: ${JSON.stringify(this.buf.toString('latin1').slice(-300))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    return this.waitFor(() => {
      if (this.buf.length < n) return undefined;
      const out = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      return out;
    }, timeoutMs, `${n} bytes`);
  }

  /** Waits until the text received (latin1) matches re; consumes everything up to the match end. */
  readUntil(re: RegExp, timeoutMs = 30_000): Promise<string> {
    return this.waitFor(() => {
      const s = this.buf.toString('latin1');
      const m = re.exec(s);
      if (!m) return undefined;
      const end = m.index + m[0].length;
      this.buf = this.buf.subarray(end);
      return s.slice(0, end);
    }, timeoutMs, String(re));
  }

  /** Waits until nothing has arrived for quietMs, then discards what was received. */
  async drain(quietMs = 1000, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let seen = -1;
    while (seen !== this.buf.length && Date.now() < end) {
      seen = this.buf.length;
      await new Promise((r) => setTimeout(r, quietMs));
    }
    this.buf = Buffer.alloc(0);
  }

  send(data: string | Buffer): void {
    this.ws.send(typeof data === 'string' ? Buffer.from(data) : data);
  }

  waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return this.waitFor(() => this.closed, timeoutMs, 'close');
  }

  close(): void {
    this.ws.close();
  }
}

/** RFB 3.8 handshake with security type None; returns the ServerInit's size and desktop name. */
export async function rfbHandshake(s: WsBytes): Promise<{ version: string; width: number; height: number; name: string }> {
  const version = (await s.read(12)).toString('latin1');
  if (!/^RFB 003\.\d{3}\n$/.test(version)) throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
  s.send('RFB 003.008\n');
  const nTypes = (await s.read(1))[0]!;
  if (nTypes === 0) throw new Error('RFB server refused the connection');
  const types = [...(await s.read(nTypes))];
  if (!types.includes(1)) throw new Error(`RFB server offers no "None" security (types ${types.join(',')})`);
  s.send(Buffer.from([1]));
  const result = (await s.read(4)).readUInt32BE(0);
  if (result !== 0) throw new Error(`RFB security result ${result}`);
  s.send(Buffer.from([1])); // ClientInit: shared
  const init = await s.read(24);
  const nameLen = init.readUInt32BE(20);
  const name = (await s.read(nameLen)).toString('utf8');
  return { version: version.trim(), width: init.readUInt16BE(0), height: init.readUInt16BE(2), name };
}

/**
 * Log in on a lab-tiny serial console (busybox getty/login, ash). A slow TCG guest can drop typed-ahead
 * input (login flushes the tty before reading the password), so each attempt starts from a fresh
 * prompt and a failed one is retried. Resolves once the shell prompt shows.
 */
export async function consoleLogin(c: WsBytes, user: string, password: string, timeoutMs = 150_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  const ok = (p: Promise<unknown>): Promise<boolean> => p.then(() => true, () => false);
  let lastErr = 'no login prompt';
  while (Date.now() < end) {
    c.send('\r');
    if (!(await ok(c.readUntil(/login: $/, 5_000)))) continue;
    await c.drain(1000);
    c.send('\r');
    if (!(await ok(c.readUntil(/login: $/, 10_000)))) continue;
    c.send(`${user}\r`);
    if (!(await ok(c.readUntil(/Password: $/, 15_000)))) { lastErr = 'no password prompt'; continue; }
    await new Promise((r) => setTimeout(r, 1000));
    // "\n", not "\r": if the tty lost ICRNL (getty raced with our keystrokes), login would wait for a
    // newline forever; "\n" ends the line either way.
    c.send(`${password}\n`);
    // busybox ash asks for the cursor position (ESC [6n) right after its prompt.
    if (await ok(c.readUntil(/\$ (\x1b\[6n)?$/, 30_000))) return;
    lastErr = 'no shell prompt after the password';
  }
  throw new Error(`console login as ${user} failed: ${lastErr}`);
}
