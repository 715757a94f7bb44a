/**
 * Deep linking: a verified LtiDeepLinkingRequest from a teacher gets our lab catalog (title,
 * description, machines, resources, duration) with per-activity options; the chosen lab goes back
 * to the platform as one signed `ltiResourceLink` content item carrying `custom.lab_id` (and the
 * options) and a `lineItem`, so Moodle creates the gradebook column. Learners never get here.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import express, { type Router } from 'express';
import { SignJWT } from 'jose';
import type { Logger } from '../logger.js';
import type { LabDefinitions, LabRuntime, LabSummary } from '../labs/contracts.js';
import { BadRequest, Forbidden, NotFound } from '../errors.js';
import { escapeHtml } from '../html.js';
import { DeepLinkRequest } from '../store/DeepLinkRequest.js';
import { upsertUser, type UserIds } from '../store/User.js';
import { CLAIM, mapRoles, obj, str } from './claims.js';
import { displayName, launchLocale } from './launch.js';
import { formatDuration, pickLanguage, translator, type Translate } from '../i18n.js';
import type { PlatformRegistry } from './platforms.js';
import { mayUseLab } from '../auth/tenancy.js';
import type { VerifiedLaunch } from './verifyIdToken.js';
import type { LtiUrls } from './urls.js';
import { DEFAULT_KEEP_DAYS } from '../labs/retention.js';

const REQUEST_TTL_MS = 3600_000;
export const LINE_ITEM_TAG = 'lab-orchestrator';

function page(title: string, body: string, lang = 'en'): string {
  return `<!doctype html><html lang="${escapeHtml(lang)}"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css"></head>
<body><main>${body}</main></body></html>`;
}

/** The keep-time option's default: the lab's own, within the operator's maximum. */
function defaultKeepDays(lab: LabSummary, maxKeepDays: number): number {
  return Math.max(1, Math.min(lab.lifetime.keepDays ?? DEFAULT_KEEP_DAYS, maxKeepDays));
}

function labCard(lab: LabSummary, requestId: string, submitUrl: string, unavailable: string | null, t: Translate, lang: string, maxKeepDays: number): string {
  const e = (s: string) => escapeHtml(s);
  const machines = lab.machines.map((m) => e(t('pick.machine', { name: m.name, kind: m.kind, cpus: m.cpus, memory: m.memoryMiB }))).join(', ');
  return `<article class="lab" data-lab-id="${e(lab.id)}">
<h2>${e(lab.title)}</h2><p>${e(lab.description)}</p>
<dl><dt>${e(t('pick.machines'))}</dt><dd>${machines || e(t('pick.noMachines'))}</dd>
<dt>${e(t('pick.resources'))}</dt><dd>${e(t('pick.resourcesValue', { cpus: lab.resources.cpus, memory: lab.resources.memoryMiB }))}</dd>
<dt>${e(t('pick.duration'))}</dt><dd>${e(t('pick.durationValue', { duration: formatDuration(lab.durationMinutes * 60, lang) }))}</dd>
<dt>${e(t('pick.grading'))}</dt><dd>${e(lab.grading.mode === 'steps' ? t('pick.gradingSteps') : t('pick.gradingChecks'))} ${e(t('pick.setByLab'))}</dd></dl>
${unavailable ? `<p class="unavailable" role="note"><strong>${e(t('pick.unavailable'))}</strong> ${e(unavailable)}.</p></article>` : `<form method="post" action="${e(submitUrl)}">
<input type="hidden" name="request" value="${e(requestId)}"><input type="hidden" name="labId" value="${e(lab.id)}"><input type="hidden" name="lang" value="${e(lang)}">
<label>${e(t('pick.timeLimit'))} <input name="timeLimitMinutes" type="number" min="1" max="${Math.max(1, lab.lifetime.maxMinutes)}" value="${lab.lifetime.maxMinutes}"></label>
<label>${e(t('pick.keepDays'))} <input name="keepDays" type="number" min="1" max="${maxKeepDays}" value="${defaultKeepDays(lab, maxKeepDays)}"></label>
<label>${e(t('pick.maxScore'))} <input name="maxScore" type="number" min="1" step="any" value="${lab.grading.maxScore}"></label>
<button type="submit" aria-label="${e(t('pick.addLabel', { title: lab.title }))}">${e(t('pick.add'))}</button></form></article>`}`;
}

export interface DeepLinkDeps {
  labs: LabDefinitions;
  /** Our user ids, derived from (issuer, sub). */
  userIds: UserIds;
  /** Says which labs this deployment cannot run (they are listed with the reason, not offered). */
  runtime?: Pick<LabRuntime, 'unavailableReason'>;
  log: Logger;
  urls: LtiUrls;
  /** The operator's maximum keep time for stopped labs (days). */
  maxKeepDays: number;
}

/** The catalog page for a verified deep-linking request (teachers and administrators only). */
export async function renderCatalog(v: VerifiedLaunch, d: DeepLinkDeps): Promise<string> {
  const role = mapRoles(v.claims[CLAIM.roles]);
  if (role === 'learner') throw new Forbidden('deep linking by a learner', { publicMessage: 'Only teachers can add labs to a course.', messageKey: 'err.learnerDeepLink' });
  const user = await upsertUser({ issuer: v.platform.issuer, sub: v.sub, name: displayName(v.claims), email: str(v.claims.email) || null, role }, d.userIds);
  const settings = obj(v.claims[CLAIM.deepLinkingSettings]);
  const acceptTypes = Array.isArray(settings.accept_types) ? settings.accept_types.filter((t): t is string => typeof t === 'string') : [];
  if (acceptTypes.length && !acceptTypes.includes('ltiResourceLink')) throw new BadRequest('platform does not accept ltiResourceLink', { publicMessage: 'This platform does not accept LTI resource links here.' });
  const req = await DeepLinkRequest.create({
    _id: randomBytes(24).toString('base64url'), issuer: v.platform.issuer, clientId: v.platform.clientId, deploymentId: v.deploymentId,
    returnUrl: str(settings.deep_link_return_url), data: typeof settings.data === 'string' ? settings.data : null,
    acceptTypes, userId: user._id, expiresAt: new Date(Date.now() + REQUEST_TTL_MS),
  });
  // the operator's labs and the platform's own, never another platform's
  const viewer = { kind: 'platform' as const, platformId: v.platform._id };
  const labs = (await d.labs.list()).filter((l) => mayUseLab(viewer, l.owner ?? null));
  d.log.info({ user: user._id, labs: labs.length }, 'lti.deep_link_catalog');
  const lang = pickLanguage([launchLocale(v.claims)]);
  const t = translator(lang);
  const why = (l: LabSummary) => d.runtime?.unavailableReason?.(l) ?? null;
  // the labs this deployment can run first; the others only say why not
  const ordered = [...labs.filter((l) => !why(l)), ...labs.filter((l) => why(l))];
  const cards = ordered.map((l) => labCard(l, req._id, `${d.urls.deepLink}/submit`, why(l), t, lang, d.maxKeepDays)).join('\n');
  return page(t('pick.title'), `<h1>${escapeHtml(t('pick.heading'))}</h1>${cards || `<p>${escapeHtml(t('pick.none'))}</p>`}`, lang);
}

function num(v: unknown, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new BadRequest(`${what} out of range`, { publicMessage: `${what} must be a number from ${min} to ${max}.` });
  return n;
}

/** The content item for a lab with the teacher's options. */
export function contentItem(lab: LabSummary, o: { timeLimitMinutes: number; maxScore: number; keepDays: number }, launchUrl: string): Record<string, unknown> {
  return {
    type: 'ltiResourceLink',
    title: lab.title,
    text: lab.description,
    url: launchUrl,
    custom: { lab_id: lab.id, time_limit_minutes: String(o.timeLimitMinutes), max_score: String(o.maxScore), keep_days: String(o.keepDays) },
    lineItem: { scoreMaximum: o.maxScore, label: lab.title, resourceId: lab.id, tag: LINE_ITEM_TAG },
  };
}

export function deepLinkingRoutes(d: DeepLinkDeps & { registry: PlatformRegistry }): Router {
  const r = express.Router();
  r.post('/deeplink/submit', (req, res, next) => {
    (async () => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      const lab = await d.labs.latest(str(b.labId));
      if (!lab) throw new NotFound('no such lab', { publicMessage: 'That lab does not exist (any more).' });
      const unavailable = d.runtime?.unavailableReason?.(lab);
      if (unavailable) throw new BadRequest(`lab ${lab.id} cannot run here`, { publicMessage: `That lab cannot run on this server: ${unavailable}.` });
      const options = {
        timeLimitMinutes: Math.round(num(b.timeLimitMinutes, 'Time limit', 1, Math.max(1, lab.lifetime.maxMinutes))),
        maxScore: num(b.maxScore, 'Maximum score', 0.01, 100_000),
        // absent from an older form: the lab's own keep time
        keepDays: b.keepDays === undefined || b.keepDays === '' ? defaultKeepDays(lab, d.maxKeepDays) : Math.round(num(b.keepDays, 'Keep stopped labs (days)', 1, d.maxKeepDays)),
      };
      const dl = await DeepLinkRequest.findOneAndUpdate(
        { _id: str(b.request), usedAt: null, expiresAt: { $gt: new Date() } }, { $set: { usedAt: new Date() } }, { new: true, lean: true },
      );
      if (!dl) throw new BadRequest('unknown, used or expired deep-linking request', { publicMessage: 'This selection has expired or was already sent. Start again from your course.', messageKey: 'err.selectionExpired' });
      const platform = await d.registry.find(dl.issuer, dl.clientId);
      if (!platform || !mayUseLab({ kind: 'platform', platformId: platform._id }, lab.owner ?? null)) throw new NotFound('lab of another platform', { publicMessage: 'That lab does not exist (any more).' });
      const key = await d.registry.toolKey(dl.issuer, dl.clientId);
      const jwt = await new SignJWT({
        nonce: randomUUID(),
        [CLAIM.messageType]: 'LtiDeepLinkingResponse',
        [CLAIM.version]: '1.3.0',
        [CLAIM.deploymentId]: dl.deploymentId,
        [CLAIM.contentItems]: [contentItem(lab, options, d.urls.launch)],
        [CLAIM.dlMsg]: `Added lab: ${lab.title}`,
        ...(dl.data !== null ? { [CLAIM.dlData]: dl.data } : {}),
      }).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).setIssuer(dl.clientId).setAudience(dl.issuer)
        .setIssuedAt().setExpirationTime('5m').sign(key.privateKey);
      d.log.info({ lab: lab.id, issuer: dl.issuer }, 'lti.deep_link_returned');
      const lang = pickLanguage([str(b.lang)]);
      const t = translator(lang);
      res.type('html').send(page(t('pick.returning'), `<p>${escapeHtml(t('pick.returning'))}</p>
<form id="dlr" method="post" action="${escapeHtml(dl.returnUrl)}"><input type="hidden" name="JWT" value="${escapeHtml(jwt)}">
<noscript><button type="submit">${escapeHtml(t('pick.continue'))}</button></noscript></form>
<script>document.getElementById('dlr').submit()</script>`, lang));
    })().catch(next);
  });
  return r;
}
