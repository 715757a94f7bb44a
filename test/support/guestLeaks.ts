/**
 * Guests a test file leaves behind. Every QEMU this run starts is a descendant of the mocha process
 * (the QEMU backend's detached guests, the KubeVirt stand-in's guests), so "nothing left" is: no
 * qemu-system process in our process tree. The root hooks check it after each file's last suite,
 * so one file's guests never load the machine for the files after it.
 */
import fs from 'node:fs';

interface Proc {
  pid: number;
  ppid: number;
  qemu: boolean;
}

function table(): Proc[] {
  const out: Proc[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')[0] ?? '';
      out.push({ pid: Number(e), ppid, qemu: /(^|\/)qemu-system-/.test(cmd) });
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** QEMU processes in the tree under `root` (default: this process). */
export function qemuDescendants(root = process.pid): number[] {
  const procs = table();
  const children = new Map<number, Proc[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    if (p.qemu) found.push(p.pid);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return found.sort((a, b) => a - b);
}

/**
 * Waits up to `graceMs` for the guests a finished file started to exit (a destroy may still be
 * reaping them), then kills what is left and throws, naming the file.
 */
export async function assertNoGuestsLeft(file: string, graceMs = 20_000): Promise<void> {
  const until = Date.now() + graceMs;
  let left = qemuDescendants();
  while (left.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    left = qemuDescendants();
  }
  if (!left.length) return;
  for (const pid of left) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  throw new Error(`${file} left ${left.length} QEMU guest(s) running ${graceMs / 1000} s after its last test (pids ${left.join(', ')}; killed now)`);
}
