/**
 * The launch benchmark's platform side, in a process of its own as Moodle is a server of its own:
 * the development platform and the test mini tool (the floor) on one HTTP server, with FerretDB
 * (the platform's records in a database of their own), its course a class of learners. Says
 * `ready` with FerretDB's URI, the platform's issuer and the class size; on `register` registers a
 * tool's URLs and answers with the activities.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { startSharedFerret, stopSharedFerret, sharedMongoUri } from '../test/support/ferret.js';
import { createMiniTool, MINI_TOOL_PATH } from '../test/support/miniTool.js';
import { connectDatabase } from '../src/store/database.js';
import { ExpirySweeper } from '../src/store/ExpirySweeper.js';
import { createLogger } from '../src/logger.js';
import { createDevPlatform } from '../src/devPlatform/createDevPlatform.js';

export interface ToolUrls { login: string; launch: string; jwks: string; deepLink: string }
export interface PlatformRegistration { issuer: string; clientId: string; deploymentId: string; authUrl: string; tokenUrl: string; jwksUrl: string }
export type FromLaunchPlatform =
  | { msg: 'ready'; mongoUri: string; issuer: string; classSize: number }
  | { msg: 'registered'; platform: PlatformRegistration; activityId: string; floorActivityId: string }
  | { msg: 'error'; error: string };
export type ToLaunchPlatform = { msg: 'register'; tool: ToolUrls } | { msg: 'stop' };

/** The course's learners besides the demo users (learner1…): taken in turn, each launches a few times a minute at most, as in class. */
const CLASS_SIZE = 150;

const say = (m: FromLaunchPlatform): void => void process.send?.(m);

try {
  await startSharedFerret();
  const log = createLogger({ level: 'warn', format: 'json' });
  const db = await connectDatabase(sharedMongoUri(), 'devplatform', log);
  const app = express();
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dp = await createDevPlatform({ publicUrl: base, log, sweeper: new ExpirySweeper(db.connection, log), classSize: CLASS_SIZE });
  const mini = await createMiniTool();
  app.use('/dev-platform', dp.router);
  app.use(MINI_TOOL_PATH, mini.router);
  const miniReg = await dp.registerTool({ name: 'Mini', ...mini.urls(base) });
  mini.clientId = miniReg._id;
  mini.issuer = dp.urls.issuer;
  const floorActivityId = (await dp.createActivity({ clientId: miniReg._id, title: 'Floor' }))._id;
  process.on('message', (m: ToLaunchPlatform) => {
    void (async () => {
      if (m.msg === 'register') {
        const reg = await dp.registerTool({ name: 'Lab Orchestrator', loginUrl: m.tool.login, targetLinkUri: m.tool.launch, jwksUrl: m.tool.jwks, deepLinkUrl: m.tool.deepLink });
        const activity = await dp.createActivity({ clientId: reg._id, title: 'Activity net-101', url: m.tool.launch, custom: { lab_id: 'net-101' } });
        say({
          msg: 'registered', activityId: activity._id, floorActivityId,
          platform: { issuer: dp.urls.issuer, clientId: reg._id, deploymentId: reg.deploymentId, authUrl: dp.urls.auth, tokenUrl: dp.urls.token, jwksUrl: dp.urls.jwks },
        });
      } else {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
        await db.close();
        await stopSharedFerret();
        process.exit(0);
      }
    })().catch((err: unknown) => say({ msg: 'error', error: (err as Error).message }));
  });
  say({ msg: 'ready', mongoUri: sharedMongoUri(), issuer: dp.urls.issuer, classSize: CLASS_SIZE });
} catch (err) {
  say({ msg: 'error', error: (err as Error).message });
  await stopSharedFerret();
  process.exit(1);
}
