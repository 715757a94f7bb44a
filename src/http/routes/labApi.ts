/**
 * The lab page's API (all behind the Bearer session):
 *   GET  /api/instances/:id                 state, progress, machines, time left, instructions, ticks
 *   GET  /api/instances/:id/events          server push (SSE over fetch, so the Bearer header works)
 *   POST /api/instances/:id/tickets         {machine, channel} → a websocket ticket
 *   POST /api/instances/:id/steps/:stepId   {done} → stored on the instance; the score is derived here
 *   POST /api/instances/:id/{start|pause|resume|stop|reset}
 * Owners control their lab; teachers of the course watch it (view-only) and may reset or stop it.
 */
import express, { type Router, type Request } from 'express';
import { decodeJwt } from 'jose';
import { BadRequest, Forbidden, NotFound } from '../../errors.js';
import { acceptLanguages, pickLanguage, translator } from '../../i18n.js';
import { localProgress } from '../progressText.js';
import type { Logger } from '../../logger.js';
import type { LabDefinitions, LabEvent, LabRuntime } from '../../labs/contracts.js';
import type { SessionTokens } from '../../auth/session.js';
import type { TicketService } from '../../proxy/tickets.js';
import type { ChannelKind, MachineStatus } from '../../backends/types.js';
import { stepScore } from '../../labs/score.js';
import { isoTicks } from '../../labs/StepTicks.js';
import { labAccess, requireOwner, type LabAccess } from './labAccess.js';
import type { CheckRunner } from '../../labs/checks/CheckRunner.js';
import type { UserAndPlatformLimit } from '../../rateLimits.js';
import type { MediaTokens } from '../../auth/mediaTokens.js';
import { viewerOf } from '../../auth/tenancy.js';
import { signMediaUrls } from '../../labs/definition/render.js';
import { LabCatalogCache } from '../../labs/LabCatalogCache.js';
import type { Classroom } from '../../labs/Classroom.js';
import { DEFAULT_RETENTION, deletionWarningMs, keepDaysOf, type RetentionPolicy } from '../../labs/retention.js';
import type { LabInstanceDoc } from '../../store/LabInstance.js';

export interface LabApiDeps {
  runtime: LabRuntime;
  labs: LabDefinitions;
  sessions: SessionTokens;
  tickets: TicketService;
  log: Logger;
  catalog?: LabCatalogCache;
  /** Display names by user id (teachers see whose lab they watch). */
  userNames?: (userIds: string[]) => Promise<Record<string, string>>;
  /** Automatic checks: their latest results are part of the instance view (with output for a teacher). */
  checks?: Pick<CheckRunner, 'results'>;
  /** Heartbeat on the event stream (proxies drop silent connections). */
  heartbeatMs?: number;
  /** Websocket tickets per user and per platform. */
  ticketLimit?: UserAndPlatformLimit;
  /** Signs the instructions' media URLs for the viewer (a private lab's media are served only with them). */
  media?: MediaTokens;
  /** Raised hands and the teacher's messages. */
  classroom?: Classroom;
  /** How long stopped labs keep their disks (default: DEFAULT_RETENTION). */
  retention?: RetentionPolicy;
}

type Handler = (req: Request, res: express.Response) => Promise<void>;
const wrap = (h: Handler): express.RequestHandler => (req, res, next) => void h(req, res).catch(next);

const STEP_ID = /^[A-Za-z0-9_-]{1,100}$/;

export function labApiRouter(d: LabApiDeps): Router {
  const r = express.Router();
  r.use('/api/instances', d.sessions.require(), express.json({ limit: '16kb' }));
  const catalog = d.catalog ?? new LabCatalogCache(d.labs);

  r.get('/api/instances/:id', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    res.setHeader('Cache-Control', 'no-store');
    res.json(await instanceView(d, catalog, a, viewerLanguages(req)));
  }));

  r.get('/api/instances/:id/events', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
    res.flushHeaders();
    const t = translator(pickLanguage(viewerLanguages(req)));
    // progress in the viewer's language (the backend's own words are English, for logs)
    const send = (e: LabEvent | { type: 'hello' }) => res.write(`data: ${JSON.stringify(e.type === 'progress' ? { ...e, progress: localProgress(e.progress, t) } : e)}\n\n`);
    send({ type: 'hello' });
    const unsubscribe = d.runtime.subscribe(a.inst._id, send);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), d.heartbeatMs ?? 15_000);
    const exp = sessionExp(req);
    const end = setTimeout(() => res.end(), Math.min(2 ** 31 - 1, Math.max(1000, (exp ?? Date.now() + 8 * 3600_000) - Date.now())));
    req.on('close', () => {
      unsubscribe();
      clearInterval(beat);
      clearTimeout(end);
    });
  }));

  r.post('/api/instances/:id/tickets', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    const body = (req.body ?? {}) as { machine?: unknown; channel?: unknown };
    const machine = typeof body.machine === 'string' ? body.machine : '';
    const channel = body.channel === 'vnc' || body.channel === 'console' ? (body.channel as ChannelKind) : undefined;
    if (!machine || !channel) throw new BadRequest('machine and channel (vnc|console) are required');
    await d.ticketLimit?.take(a.session.userId, a.session.platformId);
    const machines = await catalog.machines(a.inst);
    if (!machines.find((m) => m.name === machine)?.channels.includes(channel)) {
      throw new NotFound(`no ${channel} on ${machine}`, { publicMessage: `This lab has no ${channel === 'vnc' ? 'desktop' : 'console'} on "${machine}".` });
    }
    const exp = sessionExp(req);
    // a teacher whose take-over the student accepted controls the machines until it ends
    const mode = a.mode === 'view' && (await d.classroom?.controls(a.inst._id, a.session.userId)) ? 'control' : a.mode;
    const { ticket, expiresAt } = d.tickets.issue({
      user: a.session.userId, instance: a.inst._id, machine, channel, mode, ...(exp ? { sessionExp: exp } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ ticket, expiresAt, path: `/ws/${channel}/${a.inst._id}/${machine}`, protocol: 'lab.v1', mode });
  }));

  r.post('/api/instances/:id/steps/:stepId', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    requireOwner(a);
    const stepId = String(req.params.stepId);
    const done = (req.body as { done?: unknown } | undefined)?.done;
    if (typeof done !== 'boolean') throw new BadRequest('done must be true or false');
    const { steps, grading } = await catalog.steps(a.inst);
    if (!STEP_ID.test(stepId) || !steps.some((s) => s.id === stepId)) throw new NotFound(`no step ${stepId}`, { publicMessage: 'This step does not exist in the lab.', messageKey: 'err.noSuchStep' });
    const { ticks, score } = await d.runtime.tickStep(a.inst._id, stepId, done, { steps, grading });
    res.json({ steps: ticks, progress: progressOf(score) });
  }));

  // the student raises a hand (again: the message is replaced); the student or a watching teacher lowers it
  r.post('/api/instances/:id/hand', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    requireOwner(a);
    if (!d.classroom) throw new NotFound('no classroom', { publicMessage: 'Raising a hand is not available here.' });
    res.json({ hand: await d.classroom.raiseHand(a.inst, (req.body as { message?: unknown } | undefined)?.message) });
  }));
  r.delete('/api/instances/:id/hand', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    if (!d.classroom) throw new NotFound('no classroom', { publicMessage: 'Raising a hand is not available here.' });
    await d.classroom.lowerHand(a.inst);
    res.status(204).end();
  }));

  // take-over: a watching teacher asks; the student accepts or declines; either ends it
  const classroom = (): Classroom => {
    if (!d.classroom) throw new NotFound('no classroom', { publicMessage: 'Taking control is not available here.' });
    return d.classroom;
  };
  r.post('/api/instances/:id/takeover', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    if (a.mode !== 'view') throw new Forbidden('owner asks to take over own lab', { publicMessage: 'Only a teacher of the course can ask to take control of a lab.' });
    res.json({ takeover: await classroom().requestTakeover(a.inst, { userId: a.session.userId, name: a.session.name ?? 'Teacher' }) });
  }));
  r.post('/api/instances/:id/takeover/answer', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    requireOwner(a);
    const accept = (req.body as { accept?: unknown } | undefined)?.accept;
    if (typeof accept !== 'boolean') throw new BadRequest('accept must be true or false');
    res.json({ takeover: await classroom().answerTakeover(a.inst, accept) });
  }));
  r.delete('/api/instances/:id/takeover', wrap(async (req, res) => {
    const a = await labAccess(d.runtime, req, String(req.params.id));
    await classroom().endTakeover(a.inst);
    res.status(204).end();
  }));

  const control = (verb: 'start' | 'pause' | 'resume' | 'stop' | 'reset', teacherMay: boolean) =>
    wrap(async (req, res) => {
      const a = await labAccess(d.runtime, req, String(req.params.id));
      if (a.mode !== 'control' && !teacherMay) requireOwner(a);
      const id = a.inst._id;
      d.log.info({ instance: id, verb, by: a.mode === 'control' ? 'owner' : 'teacher' }, 'lab.control');
      if (verb === 'reset') {
        const machine = (req.body as { machine?: unknown } | undefined)?.machine;
        if (machine !== undefined && typeof machine !== 'string') throw new BadRequest('machine must be a string');
        await d.runtime.reset(id, machine);
      } else if (verb === 'start') await d.runtime.start(id);
      else await d.runtime[verb](id);
      res.json(await instanceView(d, catalog, { ...a, inst: (await d.runtime.get(id)) ?? a.inst }, viewerLanguages(req)));
    });
  r.post('/api/instances/:id/start', control('start', false));
  r.post('/api/instances/:id/pause', control('pause', false));
  r.post('/api/instances/:id/resume', control('resume', false));
  r.post('/api/instances/:id/stop', control('stop', true));
  r.post('/api/instances/:id/reset', control('reset', true));
  return r;
}

/** When the request's session token expires (ms), for closing streams and sockets in time. */
function sessionExp(req: Request): number | undefined {
  const h = req.get('authorization');
  try {
    const exp = h?.startsWith('Bearer ') ? decodeJwt(h.slice(7)).exp : undefined;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function progressOf(s: ReturnType<typeof stepScore>) {
  return { ticked: s.ticked, total: s.total, percent: s.maxWeight > 0 ? Math.round((100 * s.weight) / s.maxWeight) : s.total ? Math.round((100 * s.ticked) / s.total) : 0, score: s.scoreGiven, maxScore: s.scoreMaximum };
}

/** The viewer's languages by preference: the launch's locale, then the browser's. */
function viewerLanguages(req: Request): string[] {
  return [req.session?.locale, ...acceptLanguages(req.get('accept-language'))].filter((l): l is string => Boolean(l));
}

/** What stopping keeps: for how many days, when the student is warned before deletion, and the disks' size. */
function keepView(inst: LabInstanceDoc, policy: RetentionPolicy) {
  const warnAt = inst.state === 'stopped' && inst.expiresAt ? new Date(new Date(inst.expiresAt).getTime() - deletionWarningMs(inst, policy)) : null;
  return { days: keepDaysOf(inst, policy), warnAt, storageGiB: inst.storageGiB ?? null };
}

async function instanceView(d: LabApiDeps, catalog: LabCatalogCache, a: LabAccess, languages: string[]) {
  const { inst } = a;
  // a teacher reads the student's instructions: {{user.name}} is the owner's name
  const names: Record<string, string> = a.mode === 'view' && d.userNames ? await d.userNames([inst.userId]).catch(() => ({})) : {};
  const userName = a.mode === 'control' ? a.session.name ?? '' : names[inst.userId] ?? '';
  const [machines, status, rendered] = await Promise.all([
    catalog.machines(inst).catch(() => []),
    d.runtime.status(inst._id).catch((): Record<string, MachineStatus> => ({})),
    d.labs
      .instructions(inst.labId, inst.labVersion, {
        user: { name: userName },
        machines: inst.machines ?? {},
        lab: { expires: inst.expiresAt ? `${new Date(inst.expiresAt).toISOString().slice(11, 16)} UTC` : '' },
      }, languages)
      .catch((err: unknown) => {
        d.log.warn({ err, instance: inst._id }, 'lab.instructions_failed');
        return null;
      }),
  ]);
  const instructions = rendered && d.media ? signMediaUrls(rendered, d.media.issue(inst.labId, inst.labVersion, viewerOf(a.session))) : rendered;
  const score = instructions ? stepScore(instructions.grading, instructions.steps, inst.steps ?? {}) : undefined;
  return {
    id: inst._id,
    labId: inst.labId,
    labVersion: inst.labVersion,
    title: instructions?.title ?? inst.labId,
    state: inst.state,
    failureReason: inst.failureReason,
    progress: inst.progress ? localProgress(inst.progress, translator(pickLanguage(languages))) : null,
    startedAt: inst.startedAt,
    expiresAt: inst.expiresAt,
    serverTime: new Date().toISOString(),
    lifetime: inst.lifetime ?? null,
    keep: keepView(inst, d.retention ?? DEFAULT_RETENTION),
    mode: a.mode,
    viewer: { userId: a.session.userId, name: a.session.name ?? null, role: a.session.role },
    contextId: a.mode === 'view' ? inst.contextId : undefined,
    owner: a.mode === 'view' ? { userId: inst.userId, name: names[inst.userId] ?? null } : undefined,
    machines: machines.map((m) => ({ ...m, status: status[m.name] ?? { phase: 'pending' } })),
    instructions,
    steps: isoTicks(inst.steps),
    stepProgress: score ? progressOf(score) : null,
    checks: d.checks && instructions?.steps.some((st) => st.hasChecks) ? await d.checks.results(inst, { teacher: a.mode === 'view' }).catch(() => null) : null,
    hand: d.classroom ? await d.classroom.hand(inst._id).catch(() => null) : null,
    messages: d.classroom ? await d.classroom.messages(inst).catch(() => []) : [],
    takeover: d.classroom ? await d.classroom.takeover(inst._id).catch(() => null) : null,
    takeovers: d.classroom ? await d.classroom.takeoverLog(inst._id).catch(() => []) : [],
  };
}

