/** The lab page: tickets, the websocket proxy on the server's upgrades, and the page, API and course routes. */
import type http from 'node:http';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Mount } from '../http/createApp.js';
import type { SessionTokens } from '../auth/session.js';
import type { LabDefinitions, LabRuntime } from '../labs/contracts.js';
import type { LabInstanceDoc } from '../store/LabInstance.js';
import type { CheckRunner } from '../labs/checks/CheckRunner.js';
import { TicketService } from '../proxy/tickets.js';
import { ChannelProxy } from '../proxy/channelProxy.js';
import { attachUpgradeHandler } from '../http/upgrade.js';
import { labApiRouter } from '../http/routes/labApi.js';
import { LabCatalogCache } from '../labs/LabCatalogCache.js';
import { Classroom } from '../labs/Classroom.js';
import { courseApiRouter, type CourseApiDeps } from '../http/routes/courseApi.js';
import { labPagesRouter } from '../http/routes/labPages.js';
import { warmSessionRoutes, type WarmSessionRouteDeps } from '../http/routes/warmSessionRoutes.js';
import { thumbnailRouter } from '../http/routes/thumbnailRoutes.js';
import { consoleTails, glanceMachine, prefersConsole, type GlanceDeps } from '../http/routes/courseGlance.js';
import { Thumbnails } from '../labs/Thumbnails.js';
import { NotFound } from '../errors.js';
import { checkRoutes } from '../http/routes/checkRoutes.js';
import { userNames } from '../store/User.js';
import type { RateLimits } from '../rateLimits.js';
import type { MediaTokens } from '../auth/mediaTokens.js';
import { retentionPolicy } from './labs.js';

export interface LabPageDeps {
  server: http.Server;
  publicUrl: string;
  secretKey: string;
  runtime: LabRuntime;
  labs: LabDefinitions;
  sessions: SessionTokens;
  media: MediaTokens;
  checks: CheckRunner;
  log: Logger;
  metrics: Metrics;
  limits: RateLimits;
  /** The learners of a course (NRPS), for the teacher's overview. */
  learners?: CourseApiDeps['learners'];
  /** Warm sessions (scheduling labs ahead of a class): absent when the runtime was replaced. */
  warm?: Pick<WarmSessionRouteDeps, 'labs' | 'backend'>;
}

/** Returns the routes to mount and what to run before the server closes (upgraded sockets keep close() waiting). */
export function buildLabPage(config: Config, d: LabPageDeps): { mounts: Mount[]; beforeClose: () => void } {
  const tickets = new TicketService(d.secretKey, config.TICKET_TTL_SECONDS);
  const classroom = new Classroom({ runtime: d.runtime });
  const proxy = new ChannelProxy({
    runtime: d.runtime, log: d.log.child({ component: 'ws-proxy' }), metrics: d.metrics,
    pingIntervalMs: config.WS_PING_INTERVAL_MS, idleTimeoutMs: config.WS_IDLE_TIMEOUT_MS, maxPerUser: config.WS_MAX_PER_USER,
    seatTtlMs: config.WS_SEAT_TTL_MS,
    mayControl: (instanceId, userId) => classroom.controls(instanceId, userId),
  });
  const upgrades = attachUpgradeHandler(d.server, {
    publicOrigin: d.publicUrl, tickets, proxy, log: d.log.child({ component: 'ws-upgrade' }), maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
  });
  const catalog = new LabCatalogCache(d.labs);
  const glance: GlanceDeps = { catalog, openConsoles: (ids) => proxy.consoleTails(ids), lastUsed: (id) => proxy.lastUsed(id), runtime: d.runtime };
  const thumbnails = new Thumbnails({
    take: (id, machine) => (d.runtime.screenshot ? d.runtime.screenshot(id, machine) : Promise.reject(new NotFound('no screenshots', { publicMessage: 'Screen thumbnails are not available on this server.' }))),
  });
  const mounts: Mount[] = [
    { path: '/', router: checkRoutes({ runtime: d.runtime, runner: d.checks, sessions: d.sessions }) },
    { path: '/', router: labApiRouter({ runtime: d.runtime, labs: d.labs, sessions: d.sessions, tickets, log: d.log, catalog, userNames, checks: d.checks, ticketLimit: d.limits.ticket, media: d.media, classroom, retention: retentionPolicy(config) }) },
    { path: '/', router: courseApiRouter({ sessions: d.sessions, runtime: d.runtime, consoleTails: (docs) => consoleTails(glance, docs), catalog,
      ...(d.runtime.screenshot ? { screenOf: (inst: LabInstanceDoc, tail?: { machine: string; lines: string[] }) => prefersConsole(glance, inst._id, tail) ? Promise.resolve(undefined) : glanceMachine(glance, inst, 'vnc') } : {}), userNames, checks: d.checks, classroom, ...(d.learners ? { learners: d.learners } : {}) }) },
    { path: '/', router: thumbnailRouter({ ...glance, sessions: d.sessions, thumbnails }) },
    ...(d.warm ? [{ path: '/', router: warmSessionRoutes({ ...d.warm, sessions: d.sessions, ...(d.learners ? { learners: d.learners } : {}) }) }] : []),
    { path: '/', router: labPagesRouter() },
  ];
  return { mounts, beforeClose: () => upgrades.close() };
}
