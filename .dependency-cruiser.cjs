/**
 * The layer rule, enforced in CI (scripts/test.sh runs `npm run lint:layers`):
 *   entry (main.ts, cli.ts, cli/, compose/)
 *     → http/ → devPlatform/ (mounted only when enabled; depends on store and lti leaves)
 *     → lti/, proxy/ → labs/ → auth/ → store/ → db/
 *   backends/ depend only on leaves; leaves (errors, logger, config, metrics, html, closeCodes,
 *   secrets, leadership, KeyedMutex, images/ — the image catalog, i18n and its catalogs in locales/) depend only on leaves. No cycles anywhere.
 */
const LEAVES = '^src/((errors|logger|config|metrics|html|closeCodes|secrets|leadership|KeyedMutex|i18n|rateLimits)\\.ts$|images/|locales/[a-z-]+\\.ts$)';
const ENTRY = '^src/(main\\.ts|cli\\.ts|cli/|compose/)';

/** from: a folder (regex on path); allowed: what it may import besides itself and the leaves. */
const layer = (name, from, allowed) => ({
  name: `layer-${name}`,
  comment: `${name} may import only: ${allowed.join(', ') || 'leaves'} (and leaves)`,
  severity: 'error',
  from: { path: from },
  to: { path: '^src/', pathNot: [LEAVES, from, ...allowed] },
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    layer('leaves', LEAVES, []),
    layer('db', '^src/db/', []),
    layer('store', '^src/store/', ['^src/db/', '^src/backends/types\\.ts$']),
    layer('auth', '^src/auth/', ['^src/store/']),
    layer('backends', '^src/backends/', []),
    layer('labs', '^src/labs/', ['^src/store/', '^src/auth/', '^src/backends/types\\.ts$']),
    layer('proxy', '^src/proxy/', ['^src/labs/', '^src/store/', '^src/backends/types\\.ts$']),
    layer('lti', '^src/lti/', ['^src/labs/', '^src/store/', '^src/auth/', '^src/db/', '^src/backends/types\\.ts$']),
    layer('devPlatform', '^src/devPlatform/', ['^src/store/', '^src/lti/(claimNames|httpUrl)\\.ts$', '^src/labs/contracts\\.ts$']),
    layer('http', '^src/http/', ['^src/lti/', '^src/labs/', '^src/proxy/', '^src/auth/', '^src/store/', '^src/backends/types\\.ts$']),
    {
      name: 'entry-only',
      comment: 'only the composition root and the CLI import the entry modules',
      severity: 'error',
      from: { path: '^src/', pathNot: ENTRY },
      to: { path: ENTRY },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    includeOnly: '^src/',
  },
};
