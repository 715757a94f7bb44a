/**
 * Click to console on the local QEMU backend: from an LTI launch through the development platform
 * (login, id_token, instance, LabService, QemuBackend) to the guest's shell prompt arriving on the
 * console channel (ticket, websocket, proxy) — beside the floor: a bare qemu-system-x86_64 of the
 * same lab-tiny image (same accelerator, kernel command line, guest settings, disk and NIC; 512 MiB
 * against the lab's 256 MiB) started by hand, timed to the same prompt on its serial port. Goal ≤ 1.5×. The lab is the test
 * fixtures' `shell-steps` (one lab-tiny machine): the example labs boot Debian, whose start is the
 * debian bench's.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startTestTool, waitFor } from '../test/support/tool.js';
import { Browser, launchAs } from '../test/support/ltiFlow.js';
import { detectAccel } from '../src/backends/qemu/kvm.js';
import { kernelOf } from '../src/backends/qemu/util.js';
import { guestConfig } from '../src/backends/qemu/labState.js';
import { defaultToolsDir } from '../src/config.js';
import { pct, type BenchRow } from './lib.mjs';

const RUNS = Number(process.env.CONSOLE_BENCH_RUNS ?? 3);
const PROMPT = /login: /;

async function bareBoot(img: string, accel: string): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-qemu-'));
  fs.writeFileSync(path.join(dir, 'config'), guestConfig({ hostname: 'box', ip: '10.10.0.11/24', user: 'student', pass: 'bench', egress: false, agentToken: 'bench', hosts: [{ name: 'box', ip: '10.10.0.11' }] }));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.join(img, 'disk.qcow2'), '-F', 'qcow2', path.join(dir, 'home.qcow2')]);
  const t0 = performance.now();
  const q = spawn('qemu-system-x86_64', [
    '-nodefaults', '-no-user-config', '-machine', 'pc', '-accel', accel, '-smp', '1', '-m', '512',
    '-kernel', kernelOf(img), '-initrd', path.join(img, 'initramfs.gz'), '-append', 'console=ttyS0 quiet panic=5',
    '-serial', 'stdio', '-vga', 'std', '-display', 'none',
    '-drive', `file=${path.join(dir, 'home.qcow2')},if=virtio,format=qcow2`,
    '-netdev', 'user,restrict=on,id=n0', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:0a:00:0b',
    '-fw_cfg', `name=opt/lab/config,file=${path.join(dir, 'config')}`,
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  const ms = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bare boot: no prompt in 120 s')), 120_000);
    q.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (PROMPT.test(out)) { clearTimeout(timer); resolve(performance.now() - t0); }
    });
  });
  q.kill('SIGKILL');
  await new Promise((r) => q.once('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
  return ms;
}

export async function run(): Promise<BenchRow[]> {
  const img = path.join(defaultToolsDir(), 'images', 'lab-tiny');
  if (!fs.existsSync(path.join(img, 'vmlinuz'))) throw new Error(`no guest image at ${img} (run scripts/setup.sh)`);
  const accel = await detectAccel({ setting: 'auto', qemuBin: 'qemu-system-x86_64', kernel: kernelOf(img) });
  const floors: number[] = [];
  for (let i = 0; i < RUNS; i++) floors.push(await bareBoot(img, accel));

  const tool = await startTestTool({ LOG_LEVEL: 'warn', DEV_PLATFORM_REGISTER: 'true', TEMPLATES_DIR: path.resolve('test/fixtures/templates') });
  const measured: number[] = [];
  try {
    const dp = tool.devPlatform!;
    const origin = new URL(tool.publicUrl).origin;
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      // a fresh user per run, so each launch provisions a new lab
      const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: 'demo-shell-steps', user: i % 2 ? 'student2' : 'student' }, { stopAt: (n) => new URL(n.url).pathname.startsWith('/lab/') });
      if (!r.location) throw new Error(`launch did not reach the lab page (${r.status})`);
      const loc = new URL(r.location, tool.url);
      const instanceId = loc.pathname.split('/').pop()!;
      const session = new URLSearchParams(loc.hash.slice(1)).get('session')!;
      const auth = { authorization: `Bearer ${session}`, 'content-type': 'application/json' };
      await waitFor(async () => {
        const res = await fetch(`${tool.url}/api/instances/${instanceId}`, { headers: auth });
        return res.ok && ((await res.json()) as { state: string }).state === 'running';
      }, 180_000, 'lab running');
      const tr = await fetch(`${tool.url}/api/instances/${instanceId}/tickets`, { method: 'POST', headers: auth, body: JSON.stringify({ machine: 'box', channel: 'console' }) });
      const { ticket } = (await tr.json()) as { ticket: string };
      const ws = new WebSocket(`${tool.url.replace(/^http/, 'ws')}/ws/console/${instanceId}/box`, ['lab.v1', `ticket.${ticket}`], { headers: { origin } });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        ws.once('error', reject);
        ws.once('open', () => ws.send(Buffer.from('\r')));
        ws.on('message', (d: Buffer) => { out += d.toString('latin1'); if (PROMPT.test(out)) resolve(); });
      });
      measured.push(performance.now() - t0);
      ws.close();
      await tool.runtime.destroy(instanceId);
    }
  } finally {
    await tool.shutdown();
  }
  const f = pct(floors, 50), m = pct(measured, 50);
  return [{
    bench: 'click to console', metric: `launch → shell prompt on console (QEMU ${accel}), median of ${RUNS}`, value: m / 1000, floor: f / 1000, unit: 's',
    goal: '≤ 1.5× floor', meets: m <= 1.5 * f, note: `runs ${measured.map((x) => (x / 1000).toFixed(1)).join(', ')}; bare ${floors.map((x) => (x / 1000).toFixed(1)).join(', ')}`,
  }];
}
