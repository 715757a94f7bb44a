/**
 * Certificates and keys for the test control plane, made with the openssl CLI (node:crypto cannot
 * issue X.509 certificates): a throw-away CA, serving certificates signed by it, and the
 * service-account signing key pair. Everything lives in the control plane's temp dir.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
}

/** A CA valid for a day (the control plane lives for one test run). */
export function createCa(dir: string): Pki {
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.crt');
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caCert, '-days', '1', '-subj', '/CN=lab-orchestrator-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { dir, caCert, caKey };
}

/** A serving certificate for `name` with the given SANs (e.g. "IP:127.0.0.1", "DNS:localhost"). */
export function issueServingCert(pki: Pki, name: string, sans: string[]): { cert: string; key: string } {
  const key = path.join(pki.dir, `${name}.key`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const cert = path.join(pki.dir, `${name}.crt`);
  const ext = path.join(pki.dir, `${name}.ext`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  fs.writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`);
  openssl([
    'x509', '-req', '-in', csr, '-CA', pki.caCert, '-CAkey', pki.caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '1', '-out', cert, '-extfile', ext,
  ]);
  return { cert, key };
}

/** A client certificate for `cn` (organisation `org`) signed by the CA: the API server's identity towards kubelets. */
export function issueClientCert(pki: Pki, name: string, cn: string, org: string): { cert: string; key: string } {
  const key = path.join(pki.dir, `${name}.key`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const cert = path.join(pki.dir, `${name}.crt`);
  const ext = path.join(pki.dir, `${name}.ext`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=${org}/CN=${cn}`]);
  fs.writeFileSync(ext, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  openssl([
    'x509', '-req', '-in', csr, '-CA', pki.caCert, '-CAkey', pki.caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '1', '-out', cert, '-extfile', ext,
  ]);
  return { cert, key };
}

/** The key pair the API server signs (and verifies) service-account tokens with. */
export function createServiceAccountKeys(dir: string): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = path.join(dir, 'sa.key');
  const pub = path.join(dir, 'sa.pub');
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey: priv, publicKey: pub };
}
