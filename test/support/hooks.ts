/**
 * Mocha root hooks: one FerretDB for the whole run, stopped at the end; likewise the Kubernetes
 * control plane and KubeVirt stand-in, which start lazily on first use (test/support/k8s/).
 * After each test file: no QEMU guest it started may still run (test/support/guestLeaks.ts), and no
 * KubeVirt VM may be left in the shared control plane (deleted, so the stand-in stops booting it).
 * After the run: nothing may keep the process alive (mocha runs without --exit); what does is
 * reported and the run fails.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHook } from 'node:async_hooks';
import { startSharedFerret, stopSharedFerret } from './ferret.js';
import { stopSharedControlPlane } from './k8s/controlPlane.js';
import { clearSharedKubeVirt, stopSharedKubeVirt } from './kubevirt-standin/launcher.js';
import { assertNoGuestsLeft } from './guestLeaks.js';
import { closeLeftToolClients } from './kubevirtTool.js';

/** Adds the guest check after the last top-level suite of each file. */
function checkGuestsPerFile(root: Mocha.Suite): void {
  const last = new Map<string, Mocha.Suite>();
  for (const s of root.suites) if (s.file) last.set(s.file, s);
  for (const [file, suite] of last) {
    suite.afterAll(`no QEMU guest left by ${path.basename(file)}`, async function (this: Mocha.Context) {
      this.timeout(150_000);
      const name = path.relative(process.cwd(), file);
      // VMs left in the shared control plane would be booted again by the stand-in for every
      // later file: delete them first, then report them as this file's leak.
      const vms = await clearSharedKubeVirt();
      const clients = closeLeftToolClients();
      await assertNoGuestsLeft(name);
      if (clients) throw new Error(`${name} left ${clients} KubeVirt backend(s) open, their watches running (closed now)`);
      if (vms.length) throw new Error(`${name} left ${vms.length} running KubeVirt VMI(s) in the control plane: ${vms.join(', ')} (deleted now)`);
    });
  }
}

/** Where each live timer was made, so a timer that keeps the run alive can be named. */
const timers = new Map<number, { timer: { hasRef(): boolean }; at: string }>();
createHook({
  init(id, type, _trigger, resource) {
    if (type !== 'Timeout') return;
    // deep enough to reach the awaiting callers (the async frames), which name who keeps waiting
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 24;
    const stack = new Error().stack ?? '';
    Error.stackTraceLimit = limit;
    const at = stack.split('\n').slice(2).filter((l) => !l.includes('node:')).slice(0, 10).join('\n');
    timers.set(id, { timer: resource as { hasRef(): boolean }, at });
  },
  destroy(id) {
    timers.delete(id);
  },
}).enable();

/**
 * Fails the run, naming them, if handles keep the process alive once everything was stopped: a
 * failure is added to the results file scripts/test.sh reads, and the exit code is 1 (mocha's own
 * exit listener would set it back to its count of failed tests).
 */
function watchForLeakedHandles(graceMs: number): void {
  const t = setTimeout(() => {
    const resources = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout');
    const held = [...timers.values()].filter((x) => x.timer.hasRef()).map((x) => `a timer made at\n${x.at}`);
    const what = `the test run did not end ${graceMs / 1000} s after its last test; still open: ${[...resources, ...held].join(',\n') || '(nothing named)'}`;
    process.stderr.write(`\n${what}\n`);
    const file = process.env.LAB_TEST_RESULTS;
    if (file && fs.existsSync(file)) {
      const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { failed: number; failures: Array<{ title: string; error: string }> };
      r.failed++;
      r.failures.push({ title: 'the run ends by itself', error: what });
      fs.writeFileSync(file, JSON.stringify(r, null, 2));
    }
    process.on('exit', () => { process.exitCode = 1; });
    process.exit(1);
  }, graceMs);
  t.unref();
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    const root = this.test?.parent;
    if (root) checkGuestsPerFile(root);
    await startSharedFerret();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    try {
      await stopSharedKubeVirt();
    } finally {
      try {
        await stopSharedControlPlane();
      } finally {
        await stopSharedFerret();
        watchForLeakedHandles(Number(process.env.LAB_TEST_LEAK_GRACE_MS ?? 15_000));
      }
    }
  },
};
