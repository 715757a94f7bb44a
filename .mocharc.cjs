// Mocha runs TypeScript through tsx; scripts/test.sh passes the spec (all of test/ unless given files). Root hooks start one FerretDB per run (test/support/hooks.ts).
module.exports = {
  'node-option': ['import=tsx'],
  require: ['test/support/hooks.ts'],
  reporter: 'test/support/reporter.cjs',
  timeout: 60000,
  slow: 5000,
};
