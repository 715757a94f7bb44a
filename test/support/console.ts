/** Drive a serial console byte stream in tests: wait for output, type, log in. */
import type { Duplex } from 'node:stream';

export class ConsoleSession {
  private text = '';
  /** Everything received so far (ANSI escapes left in). */
  get output(): string {
    return this.text;
  }
  private mark = 0;
  constructor(readonly stream: Duplex) {
    stream.on('data', (c: Buffer) => { this.text += c.toString('utf8'); });
  }
  send(s: string): void {
    this.stream.write(s);
  }
  /** Wait for output matching re after the last expect() match; returns the match. */
  async expect(re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.text.slice(this.mark);
      const m = re.exec(rest);
      if (m) {
        this.mark += m.index + m[0].length;
        return m;
      }
      if (Date.now() > end) throw new Error(`console: no ${String(re)} within ${timeoutMs} ms; last output: ${JSON.stringify(rest.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** Press Enter until a login prompt shows, then log in and wait for the shell prompt. */
  async login(user: string, pass: string, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    this.send('\n');
    await this.expect(/login: /, timeoutMs);
    this.send(`${user}\n`);
    await this.expect(/Password: /, Math.max(1000, end - Date.now()));
    this.send(`${pass}\n`);
    await this.expect(/\$ $|\$ /, Math.max(1000, end - Date.now()));
  }
  /**
   * Run a shell command in the logged-in shell (cd, variables and background jobs stay) and return
   * what it printed, stdout and stderr. The console also carries whatever else the guest writes
   * there meanwhile (kernel messages, boot services), so the output is not read off the screen as
   * it comes: it goes to a file first and is then printed with a tag in front of each line, and
   * only tagged lines count. (The typed command line never holds the tag as printed: "$p:".)
   */
  async run(cmd: string, timeoutMs = 15_000): Promise<string> {
    const tag = `O${Math.random().toString(36).slice(2, 10)}`;
    const file = `/tmp/.console-${tag}`;
    this.send(`echo B${tag}B; { ${cmd}; } >${file} 2>&1; p=${tag}; sed "s/^/$p:/" ${file}; rm -f ${file}; echo E${tag}E\n`);
    // the marker's line starts after a newline, or after a carriage return (bash's bracketed-paste
    // mode ends with "\x1b[?2004l\r" before a command's output)
    await this.expect(new RegExp(`[\\r\\n]B${tag}B\\r?\\n`), timeoutMs);
    const start = this.mark;
    await this.expect(new RegExp(`E${tag}E`), timeoutMs);
    const lines = this.text.slice(start, this.mark - (tag.length + 2)).replace(/\r/g, '').split('\n');
    return lines.flatMap((l) => {
      const i = l.indexOf(`${tag}:`);
      return i < 0 ? [] : [`${l.slice(i + tag.length + 1)}\n`];
    }).join('');
  }
}
