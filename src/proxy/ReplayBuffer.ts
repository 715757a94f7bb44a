/**
 * The tail of a console's output, bounded in bytes, replayed to each viewer that joins so a new
 * screen shows what the machine printed last (its banner, the login prompt) instead of nothing.
 * When old output is dropped, the replay starts at the next line: a cut through the middle of a
 * line could land inside a terminal escape sequence and garble the screen.
 */
export class ReplayBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private cut = false;

  constructor(readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    if (this.maxBytes <= 0 || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.maxBytes) {
      const first = this.chunks[0]!;
      const over = this.size - this.maxBytes;
      this.cut = true;
      if (first.length <= over) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(over);
        this.size -= over;
      }
    }
  }

  /** What a joining viewer receives first (empty when nothing was printed yet). */
  replay(): Buffer {
    const all = Buffer.concat(this.chunks, this.size);
    if (!this.cut) return all;
    const nl = all.indexOf(0x0a);
    return nl >= 0 && nl < all.length - 1 ? all.subarray(nl + 1) : all;
  }
}
