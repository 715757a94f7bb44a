/**
 * A terminal byte stream as plain lines, for a glance (the course overview's console thumbnails):
 * escape sequences removed, carriage returns overwrite the line, backspaces erase, other control
 * characters dropped. Not a terminal emulator: full-screen programs come out as their last lines.
 */
// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-byte escapes
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

export function lastLines(bytes: Buffer, n: number, maxWidth = 120): string[] {
  const text = bytes.toString('utf8').replace(ESCAPES, '');
  const lines: string[] = [];
  let cur = '';
  let col = 0;
  for (const ch of text) {
    if (ch === '\n') {
      lines.push(cur);
      cur = '';
      col = 0;
    } else if (ch === '\r') {
      col = 0;
    } else if (ch === '\b') {
      col = Math.max(0, col - 1);
    } else if (ch >= ' ' || ch === '\t') {
      const c = ch === '\t' ? ' ' : ch;
      cur = cur.slice(0, col) + c + cur.slice(col + 1);
      col++;
    }
  }
  lines.push(cur);
  const kept = lines.map((l) => l.trimEnd().slice(0, maxWidth));
  while (kept.length && !kept[kept.length - 1]) kept.pop();
  return kept.slice(-n);
}
