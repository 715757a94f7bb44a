/**
 * ltijs creates the tool's key pair for a new platform with a *synchronous* 4096-bit RSA
 * generation: 0.5–1 s idle and many seconds on a loaded machine, during which the event loop
 * (every websocket proxy included) stands still. This replaces that one function with the same
 * storage steps around an asynchronous (thread-pool) 2048-bit generation, the size Moodle uses for
 * its own LTI keys. ltijs is pinned (5.9.9); if the function is not where we expect, nothing changes.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const generate = promisify(generateKeyPair);
export const TOOL_KEY_BITS = 2048;

interface LtijsDb {
  Get(key: string | false, collection: string, query: Record<string, unknown>): Promise<unknown>;
  Replace(key: string | false, collection: string, query: Record<string, unknown>, item: Record<string, unknown>, index?: Record<string, unknown>): Promise<unknown>;
}

let installed = false;

export function installAsyncToolKeys(): void {
  if (installed) return;
  installed = true;
  const Auth = createRequire(import.meta.url)('ltijs/dist/Utils/Auth.js') as { generatePlatformKeyPair?: unknown };
  if (typeof Auth.generatePlatformKeyPair !== 'function') return;
  Auth.generatePlatformKeyPair = async (encryptionKey: string, db: LtijsDb, platformUrl: string, clientId: string): Promise<string> => {
    let kid = randomBytes(16).toString('hex');
    while (await db.Get(false, 'publickey', { kid })) kid = randomBytes(16).toString('hex');
    const { publicKey, privateKey } = await generate('rsa', {
      modulusLength: TOOL_KEY_BITS,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    });
    const where = { platformUrl, clientId };
    const index = { kid, platformUrl, clientId };
    await db.Replace(encryptionKey, 'publickey', where, { key: publicKey, kid }, index);
    await db.Replace(encryptionKey, 'privatekey', where, { key: privateKey, kid }, index);
    return kid;
  };
}
