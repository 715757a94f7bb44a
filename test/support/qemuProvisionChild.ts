/**
 * Child process for crash tests: provisions a lab with the QEMU backend and prints each progress
 * event as a JSON line, so the parent can SIGKILL it at a chosen phase.
 * Usage: node --import tsx test/support/qemuProvisionChild.ts <dataDir> <imageDir> <labName> <machines,comma,separated> [qemuBin]
 * With FREEZE_AFTER=<phase> it stops dead right after printing the first event of that phase (the
 * line is written synchronously to the pipe, then the thread sleeps), so the parent's SIGKILL lands
 * at exactly that point however slow the parent is to read it.
 */
import pino from 'pino';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';

const [dataDir, imageDir, name, machines, qemuBin = 'qemu-system-x86_64'] = process.argv.slice(2);
if (!dataDir || !imageDir || !name || !machines) throw new Error('usage: provisionChild <dataDir> <imageDir> <labName> <machines>');
const backend = new QemuBackend({ dataDir, imageDir, qemuBin, accel: 'auto', maxVms: 8, maxMemoryMiB: 2048, log: pino({ level: 'silent' }) });
await backend.provision(
  {
    labId: 'crash', labVersion: '1', network: { internetEgress: false },
    machines: machines.split(',').map((m) => ({ name: m, kind: 'vm' as const, image: 'lab-tiny', cpus: 1, memoryMiB: 128, channels: ['console' as const], credentials: { username: 'student', password: 'pw-crash-1' } })),
  },
  { instanceId: `inst-${name}`, backend: 'qemu', name, generation: 1 },
  (p) => {
    process.stdout.write(JSON.stringify(p) + '\n');
    if (p.phase === process.env.FREEZE_AFTER) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600_000);
  },
);
process.stdout.write('{"done":true}\n');
await backend.close();
