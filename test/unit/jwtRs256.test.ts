import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { JwtRefused, jwsHeader, rsaPublicKey, verifyRs256Jwt, type ClaimRules, type JwtFailure } from '../../src/lti/jwtRs256.js';

const pair = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits });
const main = pair(2048);
const other = pair(2048);
const short = pair(1024);
const b64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const NOW = 1_800_000_000;
const rules: ClaimRules = { issuer: 'https://lms.example.edu', audience: 'client-1', clockTolerance: 5, maxTokenAge: 305, requiredClaims: ['nonce'] };
const good = { iss: rules.issuer, aud: 'client-1', sub: 'u1', nonce: 'n1', iat: NOW - 30, exp: NOW + 30 };

/** A compact JWS signed with node:crypto, whatever its header says (so malformed ones can be built too). */
function token(claims: object | string, o: { key?: KeyObject; header?: object } = {}): string {
  const input = `${b64(o.header ?? { alg: 'RS256', kid: 'k1' })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), o.key ?? main.privateKey).toString('base64url')}`;
}

function refused(t: string, failure: JwtFailure, message: RegExp, key: KeyObject = main.publicKey): void {
  assert.throws(() => verifyRs256Jwt(t, key, rules, NOW), (err: unknown) => {
    assert.ok(err instanceof JwtRefused, String(err));
    assert.equal(err.failure, failure);
    assert.match(err.message, message);
    return true;
  });
}

describe('RS256 id_token verification (node:crypto)', () => {
  it('returns the claims of a token jose signed, with the key taken from the platform\'s JWK', async () => {
    const jwk = main.publicKey.export({ format: 'jwk' });
    const pem = main.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const t = await new SignJWT({ nonce: 'n1', sub: 'u1' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(rules.issuer).setAudience('client-1').setIssuedAt(NOW - 10).setExpirationTime(NOW + 50).sign(await importPKCS8(pem, 'RS256'));
    const claims = verifyRs256Jwt(t, rsaPublicKey({ kty: 'RSA', n: jwk.n!, e: jwk.e! }), rules, NOW);
    assert.equal(claims.sub, 'u1');
    assert.equal(claims.nonce, 'n1');
    assert.equal(jwsHeader(t).kid, 'k1');
  });

  it('accepts an audience array that names the client, and exp within the clock tolerance', () => {
    assert.equal(verifyRs256Jwt(token({ ...good, aud: ['client-1', 'x'] }), main.publicKey, rules, NOW).sub, 'u1');
    assert.equal(verifyRs256Jwt(token({ ...good, exp: NOW - 4 }), main.publicKey, rules, NOW).sub, 'u1');
  });

  it('refuses a token whose claims were changed after signing, or signed by another key', () => {
    const [h, , s] = token(good).split('.');
    refused(`${h}.${b64({ ...good, sub: 'admin' })}.${s}`, 'signature', /signature/);
    refused(token(good, { key: other.privateKey }), 'signature', /signature/);
    refused(`${h}.${b64(good)}.${s!.slice(0, 40)}`, 'signature', /signature/);
  });

  it('refuses alg none, HS256 and unknown critical headers before any signature check', () => {
    refused(`${b64({ alg: 'none' })}.${b64(good)}.`, 'malformed', /alg none/);
    refused(token(good, { header: { alg: 'HS256', kid: 'k1' } }), 'malformed', /alg HS256/);
    refused(token(good, { header: { alg: 'RS256', kid: 'k1', crit: ['exp'], exp: 1 } }), 'malformed', /critical/);
  });

  it('refuses what is not a compact JWS of JSON objects', () => {
    refused('a.b', 'malformed', /compact/);
    refused(`${token(good)}=`, 'malformed', /compact/);
    refused(`${b64('[1]')}.${b64(good)}.AA`, 'malformed', /top-level JSON object/);
    refused(token('not json'), 'malformed', /not JSON/);
  });

  it('refuses a key shorter than 2048 bits', () => {
    refused(token(good, { key: short.privateKey }), 'key', /2048/, short.publicKey);
  });

  it('refuses expired tokens, and tokens issued too long ago', () => {
    refused(token({ ...good, exp: NOW - 5 }), 'expired', /"exp"/);
    refused(token({ ...good, iat: NOW - 311 }), 'expired', /"iat".*past/);
  });

  it('refuses iat and nbf in the future beyond the tolerance', () => {
    refused(token({ ...good, iat: NOW + 6 }), 'claim', /"iat".*should be in the past/);
    refused(token({ ...good, nbf: NOW + 6 }), 'claim', /"nbf"/);
    assert.equal(verifyRs256Jwt(token({ ...good, nbf: NOW + 5 }), main.publicKey, rules, NOW).sub, 'u1');
  });

  it('refuses another issuer or audience, missing required claims and dates that are not numbers', () => {
    refused(token({ ...good, iss: 'https://evil.example' }), 'claim', /"iss"/);
    refused(token({ ...good, aud: 'client-2' }), 'claim', /"aud"/);
    refused(token({ ...good, aud: ['client-2'] }), 'claim', /"aud"/);
    const { nonce: _n, ...noNonce } = good;
    refused(token(noNonce), 'claim', /missing required "nonce"/);
    const { exp: _e, ...noExp } = good;
    refused(token(noExp), 'claim', /missing required "exp"/);
    refused(token({ ...good, exp: String(NOW + 30) }), 'claim', /"exp" claim must be a number/);
  });

  it('reads only RSA public keys from a JWK', () => {
    assert.throws(() => rsaPublicKey({ kty: 'EC', crv: 'P-256', x: 'a', y: 'b' }), /not an RSA public key/);
  });
});
