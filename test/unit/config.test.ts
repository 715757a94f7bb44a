import assert from 'node:assert/strict';
import { loadConfig, redact } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('config', () => {
  it('applies documented defaults in demo mode', () => {
    const c = loadConfig({ LAB_MODE: 'demo' });
    assert.equal(c.PORT, 3000);
    assert.equal(c.HOST, '127.0.0.1');
    assert.equal(c.TRUST_PROXY, false);
    assert.equal(c.LOG_FORMAT, 'json');
    assert.equal(c.MONGODB_URI, undefined);
  });

  it('rejects bad values with a message naming every bad key and what was expected', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: '70000', TRUST_PROXY: 'maybe', LOG_FORMAT: 'xml', MONGODB_URI: 'postgres://x', PUBLIC_URL: 'not a url', FERRETDB_SYNCHRONOUS: 'off', SECRET_KEY: 'x'.repeat(40) });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, 'throws ConfigError');
    const msg = err.message;
    assert.match(msg, /PORT: expected at most 65535 \(got "70000"\)/);
    assert.match(msg, /TRUST_PROXY: expected true or false \(got "maybe"\)/);
    assert.match(msg, /LOG_FORMAT: expected "json" or "pretty" \(got "xml"\)/);
    assert.match(msg, /MONGODB_URI: expected a mongodb:\/\/ or mongodb\+srv:\/\/ URI/);
    assert.match(msg, /PUBLIC_URL: expected an absolute URL/);
    assert.match(msg, /FERRETDB_SYNCHRONOUS: expected "normal" or "full" \(got "off"\)/);
  });

  it('requires PUBLIC_URL and SECRET_KEY in production, naming both', () => {
    assert.throws(() => loadConfig({ LAB_MODE: 'production' }), (e: Error) => /PUBLIC_URL: required/.test(e.message) && /SECRET_KEY: required/.test(e.message));
  });

  it('never reads "false" as true', () => {
    assert.equal(loadConfig({ LAB_MODE: 'demo', TRUST_PROXY: 'false' }).TRUST_PROXY, false);
    assert.equal(loadConfig({ LAB_MODE: 'demo', TRUST_PROXY: '1' }).TRUST_PROXY, true);
  });

  it('never shows a secret value, even in an error', () => {
    assert.throws(() => loadConfig({ LAB_MODE: 'demo', SECRET_KEY: 'hunter2-short' }), (e: Error) => !e.message.includes('hunter2') && /SECRET_KEY: .*\[redacted\]/.test(e.message));
  });

  it('redacts secrets and URI credentials before logging', () => {
    const c = loadConfig({ LAB_MODE: 'demo', SECRET_KEY: 's'.repeat(40), ADMIN_TOKEN: 'a'.repeat(20), MONGODB_URI: 'mongodb://user:pw@db:27017/x' });
    const r = JSON.stringify(redact(c));
    assert.ok(!r.includes('sss'), 'secret key hidden');
    assert.ok(!r.includes('aaaa'), 'admin token hidden');
    assert.ok(!r.includes('pw@'), 'uri password hidden');
    assert.match(r, /mongodb:\/\/\[redacted\]@db:27017/);
  });
});
