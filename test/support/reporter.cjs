// Mocha's spec reporter, plus a results file with the real counts for the "N passed, N failed" line.
// A failing hook counts as a failure; pending (skipped) tests are never counted as passed.
const Mocha = require('mocha');
const fs = require('node:fs');
const { EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_RUN_END } = Mocha.Runner.constants;

class CountingReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const counts = { passed: 0, failed: 0, pending: 0, failures: [] };
    runner.on(EVENT_TEST_PASS, () => counts.passed++);
    runner.on(EVENT_TEST_PENDING, () => counts.pending++);
    runner.on(EVENT_TEST_FAIL, (t, err) => {
      counts.failed++;
      counts.failures.push({ title: t.fullTitle(), error: String(err && err.message) });
    });
    runner.once(EVENT_RUN_END, () => {
      const file = process.env.LAB_TEST_RESULTS;
      if (file) fs.writeFileSync(file, JSON.stringify(counts, null, 2));
    });
  }
}
module.exports = CountingReporter;
