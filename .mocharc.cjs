// Mocha runs TypeScript through tsx. Root hooks start one FerretDB per run (test/support/hooks.ts).
module.exports = {
  'node-option': ['import=tsx'],
  require: ['test/support/hooks.ts'],
  spec: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
  reporter: 'test/support/reporter.cjs',
  timeout: 60000,
  slow: 5000,
  exit: true,
};
