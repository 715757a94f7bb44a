/**
 * LTI Advantage services of the demo course: AGS line items, scores and results, and NRPS
 * memberships. URLs carry Moodle's `?type_id=` query (the scores URL is the line item path +
 * `/scores` with the query kept after it). Scores for teachers are refused with 400 and a score
 * older than the last stored one for that user with 409, like Moodle.
 */
import express, { type Request, type Response, type Router } from 'express';
import { BadRequest, Conflict, Forbidden, NotFound } from '../errors.js';
import {
  DevPlatformLineItem, DevPlatformScore, type DevPlatformLineItemDoc, type DevPlatformToolDoc,
} from './models.js';
import { isDuplicateKey } from '../store/database.js';
import { DEMO_COURSE, SCOPE, demoUser, fullName, serviceUrls, type DemoUser } from './claims.js';
import { createLineItem, lineItemFields } from './registry.js';
import { requireScope } from './tokenRoutes.js';
import type { PlatformContext } from './context.js';

const ACTIVITY = ['Initialized', 'Started', 'InProgress', 'Submitted', 'Completed'];
const GRADING = ['FullyGraded', 'Pending', 'PendingManual', 'Failed', 'NotReady'];

/** Like Moodle, service bodies must carry their AGS media type. */
function requireType(req: Request, type: string): void {
  // a plain error with its own status: the error handler answers 415 with this message
  if (!req.is(type)) throw Object.assign(new Error(`Content-Type must be ${type}`), { status: 415 });
}

function toolOf(req: Request, res: Response): DevPlatformToolDoc {
  const tool = res.locals.devPlatformTool;
  if (!tool) throw new Forbidden('no tool');
  if (req.params.contextId !== DEMO_COURSE.id) throw new NotFound('no such course');
  const typeId = req.query.type_id;
  if (typeId !== undefined && typeId !== String(tool.typeId)) throw new Forbidden('type_id does not match the access token');
  return tool;
}

async function lineItemOf(req: Request, tool: DevPlatformToolDoc): Promise<DevPlatformLineItemDoc> {
  const li = await DevPlatformLineItem.findOne({ _id: String(req.params.id), clientId: tool._id }).lean();
  if (!li) throw new NotFound('no such line item');
  return li;
}

export function lineItemJson(issuer: string, tool: DevPlatformToolDoc, li: DevPlatformLineItemDoc): Record<string, unknown> {
  const out: Record<string, unknown> = { id: serviceUrls(issuer, li.contextId, tool.typeId).lineItem(li._id), label: li.label, scoreMaximum: li.scoreMaximum };
  for (const k of ['resourceId', 'resourceLinkId', 'tag', 'startDateTime', 'endDateTime'] as const) if (li[k]) out[k] = li[k];
  return out;
}

export function agsRoutes(ctx: PlatformContext): Router {
  const r = express.Router();
  const base = '/services/:contextId/lineitems';
  const anyLineItemScope = requireScope(SCOPE.lineItem, SCOPE.lineItemReadonly);

  r.get(base, anyLineItemScope, async (req, res) => {
    const tool = toolOf(req, res);
    const q: Record<string, unknown> = { contextId: DEMO_COURSE.id, clientId: tool._id };
    if (typeof req.query.resource_link_id === 'string') q.resourceLinkId = req.query.resource_link_id;
    if (typeof req.query.resource_id === 'string') q.resourceId = req.query.resource_id;
    if (typeof req.query.tag === 'string') q.tag = req.query.tag;
    const items = await DevPlatformLineItem.find(q).sort({ createdAt: 1 }).lean();
    res.type('application/vnd.ims.lis.v2.lineitemcontainer+json').send(JSON.stringify(items.map((li) => lineItemJson(ctx.urls.issuer, tool, li))));
  });

  r.post(base, requireScope(SCOPE.lineItem), async (req, res) => {
    const tool = toolOf(req, res);
    requireType(req, 'application/vnd.ims.lis.v2.lineitem+json');
    const li = await createLineItem({ clientId: tool._id, ...lineItemFields((req.body ?? {}) as Record<string, unknown>) });
    res.status(201).type('application/vnd.ims.lis.v2.lineitem+json').send(JSON.stringify(lineItemJson(ctx.urls.issuer, tool, li)));
  });

  r.get(`${base}/:id/lineitem`, anyLineItemScope, async (req, res) => {
    const tool = toolOf(req, res);
    res.type('application/vnd.ims.lis.v2.lineitem+json').send(JSON.stringify(lineItemJson(ctx.urls.issuer, tool, await lineItemOf(req, tool))));
  });

  r.put(`${base}/:id/lineitem`, requireScope(SCOPE.lineItem), async (req, res) => {
    const tool = toolOf(req, res);
    requireType(req, 'application/vnd.ims.lis.v2.lineitem+json');
    const li = await lineItemOf(req, tool);
    const { resourceLinkId: _fixed, ...fields } = lineItemFields((req.body ?? {}) as Record<string, unknown>);
    const updated = await DevPlatformLineItem.findByIdAndUpdate(li._id, { $set: fields }, { new: true, lean: true });
    if (!updated) throw new NotFound('no such line item');
    res.type('application/vnd.ims.lis.v2.lineitem+json').send(JSON.stringify(lineItemJson(ctx.urls.issuer, tool, updated)));
  });

  r.delete(`${base}/:id/lineitem`, requireScope(SCOPE.lineItem), async (req, res) => {
    const tool = toolOf(req, res);
    const li = await lineItemOf(req, tool);
    await DevPlatformScore.deleteMany({ lineItemId: li._id });
    await DevPlatformLineItem.deleteOne({ _id: li._id });
    res.status(204).end();
  });

  r.post(`${base}/:id/lineitem/scores`, requireScope(SCOPE.score), async (req, res) => {
    const tool = toolOf(req, res);
    if (!ctx.scoresAvailable) {
      res.status(503).json({ error: 'the platform is unavailable (simulated outage)', status: 503 });
      return;
    }
    requireType(req, 'application/vnd.ims.lis.v1.score+json');
    const li = await lineItemOf(req, tool);
    await storeScore(li, (req.body ?? {}) as Record<string, unknown>, ctx.users);
    ctx.log.info({ lineItem: li._id }, 'devplatform.score_stored');
    res.status(204).end();
  });

  r.get(`${base}/:id/lineitem/results`, requireScope(SCOPE.resultReadonly), async (req, res) => {
    const tool = toolOf(req, res);
    const li = await lineItemOf(req, tool);
    const lineItemUrl = serviceUrls(ctx.urls.issuer, li.contextId, tool.typeId).lineItem(li._id);
    const latest = await latestScores(li._id, typeof req.query.user_id === 'string' ? req.query.user_id : undefined);
    const results = latest.map((s) => ({
      id: `${lineItemUrl.replace(/\?.*/, '')}/results/${s.userId}`,
      scoreOf: lineItemUrl,
      userId: s.userId,
      ...(s.scoreGiven !== null ? { resultScore: s.scoreGiven, resultMaximum: s.scoreMaximum ?? li.scoreMaximum } : {}),
      ...(s.comment ? { comment: s.comment } : {}),
    }));
    res.type('application/vnd.ims.lis.v2.resultcontainer+json').send(JSON.stringify(results));
  });

  r.get('/services/:contextId/memberships', requireScope(SCOPE.nrps), (req, res) => {
    toolOf(req, res);
    const role = typeof req.query.role === 'string' ? req.query.role.replace(/^.*#/, '') : undefined;
    const members = ctx.users.filter((u) => !role || u.role === role);
    const limit = Math.max(1, Number(req.query.limit) || members.length);
    const from = Math.max(0, Number(req.query.from) || 0);
    const page = members.slice(from, from + limit);
    const self = `${ctx.urls.issuer}${req.originalUrl.slice(new URL(ctx.urls.issuer).pathname.length)}`;
    if (from + limit < members.length) {
      const next = new URL(self);
      next.searchParams.set('from', String(from + limit));
      next.searchParams.set('limit', String(limit));
      res.setHeader('Link', `<${next.toString()}>; rel="next"`);
    }
    res.type('application/vnd.ims.lti-nrps.v2.membershipcontainer+json').send(JSON.stringify({
      id: self,
      context: { id: DEMO_COURSE.id, label: DEMO_COURSE.label, title: DEMO_COURSE.title },
      members: page.map((u) => ({
        status: 'Active', name: fullName(u), given_name: u.givenName, family_name: u.familyName, email: u.email,
        user_id: u.id, roles: [u.role],
      })),
    }));
  });
  return r;
}

/** Validate and append a score; 400 for bad input or a non-gradable user, 409 for an earlier timestamp. */
async function storeScore(li: DevPlatformLineItemDoc, b: Record<string, unknown>, users: readonly DemoUser[]): Promise<void> {
  const user = demoUser(String(b.userId ?? ''), users);
  if (!user || typeof b.userId !== 'string') throw new BadRequest('userId is not a user of this course');
  if (user.role !== 'Learner') throw new BadRequest('this user cannot be graded (not a student)');
  if (typeof b.activityProgress !== 'string' || !ACTIVITY.includes(b.activityProgress)) throw new BadRequest('activityProgress is invalid');
  if (typeof b.gradingProgress !== 'string' || !GRADING.includes(b.gradingProgress)) throw new BadRequest('gradingProgress is invalid');
  const given = b.scoreGiven;
  const max = b.scoreMaximum;
  if (given !== undefined && given !== null && (typeof given !== 'number' || given < 0)) throw new BadRequest('scoreGiven must be a number >= 0');
  if (given !== undefined && given !== null && (typeof max !== 'number' || !(max > 0))) throw new BadRequest('scoreMaximum is required with scoreGiven');
  const ts = typeof b.timestamp === 'string' ? new Date(b.timestamp) : null;
  if (!ts || Number.isNaN(ts.getTime())) throw new BadRequest('timestamp must be an ISO 8601 date-time');
  for (let attempt = 0; ; attempt++) {
    const last = await DevPlatformScore.findOne({ lineItemId: li._id, userId: user.id }).sort({ seq: -1 }).lean();
    if (last && ts.getTime() < last.timestamp.getTime()) throw new Conflict('Refusing score with an earlier timestamp for item and user');
    try {
      await DevPlatformScore.create({
        lineItemId: li._id, userId: user.id,
        // like Moodle's scores.php: a grade stands only when FullyGraded; anything else is stored as no grade
        scoreGiven: typeof given === 'number' && b.gradingProgress === 'FullyGraded' ? given : null, scoreMaximum: typeof max === 'number' ? max : null,
        activityProgress: b.activityProgress, gradingProgress: b.gradingProgress,
        comment: typeof b.comment === 'string' ? b.comment : null, timestamp: ts, seq: (last?.seq ?? 0) + 1,
      });
      return;
    } catch (err) {
      if (!isDuplicateKey(err) || attempt >= 5) throw err;
    }
  }
}

/** The latest score per user of a line item. */
export async function latestScores(lineItemId: string, userId?: string) {
  const all = await DevPlatformScore.find({ lineItemId, ...(userId ? { userId } : {}) }).sort({ seq: 1 }).lean();
  const byUser = new Map<string, (typeof all)[number]>();
  for (const s of all) byUser.set(s.userId, s);
  return [...byUser.values()];
}
