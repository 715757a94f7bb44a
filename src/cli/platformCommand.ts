/**
 * `lab-orchestrator platform add|list`: manual LTI platform registration from the command line,
 * straight to the database (no running server needed; with no MONGODB_URI the embedded FerretDB
 * under DATA_DIR is started for the command). The tool's key for the platform is generated here
 * and encrypted with SECRET_KEY, so the server must run with the same SECRET_KEY (or DATA_DIR in demo mode).
 */
import path from 'node:path';
import type { Command } from './command.js';
import { loadConfig } from '../config.js';
import { ValidationFailed } from '../errors.js';
import { createLogger } from '../logger.js';
import { resolveSecretKey } from '../secrets.js';
import { EmbeddedMongo, defaultFerretBin } from '../db/EmbeddedMongo.js';
import { connectDatabase, ensureIndexes } from '../store/database.js';
import { Platform } from '../store/Platform.js';
import { createLtijsProvider } from '../lti/ltijsProvider.js';
import { PlatformRegistry } from '../lti/platforms.js';
import { platformJson } from '../http/routes/ltiAdminRoutes.js';
import { ltiUrls } from '../lti/urls.js';

const USAGE = `lab-orchestrator platform add --issuer URL --client-id ID --auth-url URL --token-url URL --jwks-url URL --deployment-id ID [--deployment-id ID …] [--name NAME]
lab-orchestrator platform list

Registers an LTI 1.3 platform by hand (for platforms without dynamic registration), or updates it
when the same issuer and client id are registered again (deployment ids are added). Prints the
platform and the tool URLs to enter on the platform's side. Uses the database and SECRET_KEY from
the environment, like "serve".`;

const FLAGS: Record<string, string> = {
  '--issuer': 'issuer', '--client-id': 'clientId', '--auth-url': 'authUrl', '--token-url': 'tokenUrl',
  '--jwks-url': 'jwksUrl', '--deployment-id': 'deploymentIds', '--name': 'name',
};

export function parsePlatformArgs(args: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { deploymentIds: [] };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const key = FLAGS[flag];
    if (!key) throw new ValidationFailed(`unknown option ${flag}`, [`unknown option ${flag}`]);
    const value = inline ?? args[++i];
    if (value === undefined) throw new ValidationFailed(`${flag} needs a value`, [`${flag} needs a value`]);
    if (key === 'deploymentIds') (out.deploymentIds as string[]).push(value);
    else out[key] = value;
  }
  return out;
}

export const platformCommand: Command = {
  summary: 'Register an LTI platform by hand (platform add), or list them (platform list).',
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== 'add' && sub !== 'list') {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    let input: Record<string, string | string[]> = {};
    try {
      if (sub === 'add') input = parsePlatformArgs(rest);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    const config = loadConfig();
    const log = createLogger({ level: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, format: 'json', destination: process.stderr });
    const secretKey = resolveSecretKey(config);
    let embedded: EmbeddedMongo | undefined;
    let uri = config.MONGODB_URI;
    if (!uri) {
      embedded = new EmbeddedMongo({ bin: config.FERRETDB_BIN ?? defaultFerretBin(config.TOOLS_DIR), dataDir: path.join(config.DATA_DIR, 'ferretdb'), synchronous: config.FERRETDB_SYNCHRONOUS, log });
      uri = await embedded.start();
    }
    const db = await connectDatabase(uri, 'lab_orchestrator', log, config.MONGODB_MAX_POOL_SIZE);
    try {
      await ensureIndexes([Platform]);
      const publicUrl = config.PUBLIC_URL ?? `http://localhost:${config.PORT}`;
      const urls = ltiUrls(publicUrl);
      const lti = await createLtijsProvider({ secretKey, dbUri: uri, secureCookies: publicUrl.startsWith('https:'), baseUrl: urls.launch, serverAddon: () => {} });
      const registry = new PlatformRegistry(lti, log);
      await registry.init();
      if (sub === 'list') {
        process.stdout.write(`${JSON.stringify({ platforms: (await registry.list()).map(platformJson) }, null, 2)}\n`);
        return 0;
      }
      try {
        const p = await registry.register({ ...(input as unknown as Parameters<PlatformRegistry['register']>[0]), registeredBy: 'manual' }, { byOperator: true });
        process.stdout.write(`${JSON.stringify({ platform: platformJson(p), tool: urls }, null, 2)}\n`);
        return 0;
      } catch (err) {
        if (err instanceof ValidationFailed) {
          process.stderr.write(`${err.message}\n`);
          return 2;
        }
        throw err;
      }
    } finally {
      await db.close();
      await embedded?.stop();
    }
  },
};
