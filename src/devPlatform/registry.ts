/**
 * The development platform's registry: tools (manual or dynamic registration), the demo course's
 * activities and its gradebook columns (line items). Storage only plus input validation.
 */
import { randomBytes } from 'node:crypto';
import {
  DevPlatformActivity, DevPlatformLineItem, DevPlatformTool,
  type DevPlatformActivityDoc, type DevPlatformLineItemDoc, type DevPlatformToolDoc,
} from './models.js';
import { isDuplicateKey } from '../store/database.js';
import { ValidationFailed } from '../errors.js';
import { ALL_SCOPES, DEMO_COURSE } from './claims.js';
import { httpUrl } from '../lti/httpUrl.js';

export interface ToolRegistration {
  /** Keep an existing client id (re-registration updates that tool); omitted = a new one. */
  clientId?: string;
  name: string;
  loginUrl: string;
  targetLinkUri: string;
  /** Defaults to [targetLinkUri] (+ deepLinkUrl). */
  redirectUris?: string[];
  jwksUrl: string;
  deepLinkUrl?: string | null;
  scopes?: string[];
  custom?: Record<string, string>;
  registeredBy?: 'manual' | 'dynamic';
  registrationUrl?: string | null;
}

/** Register a tool or update the one with `clientId`. Throws ValidationFailed listing every problem. */
export async function registerTool(r: ToolRegistration): Promise<DevPlatformToolDoc> {
  const problems: string[] = [];
  const loginUrl = httpUrl(r.loginUrl, 'loginUrl', problems);
  const targetLinkUri = httpUrl(r.targetLinkUri, 'targetLinkUri', problems);
  const jwksUrl = httpUrl(r.jwksUrl, 'jwksUrl', problems);
  const deepLinkUrl = r.deepLinkUrl ? httpUrl(r.deepLinkUrl, 'deepLinkUrl', problems) : null;
  const redirectUris = (r.redirectUris?.length ? r.redirectUris : [targetLinkUri, ...(deepLinkUrl ? [deepLinkUrl] : [])])
    .map((u, i) => httpUrl(u, `redirectUris[${i}]`, problems));
  if (!r.name?.trim()) problems.push('name: required');
  if (problems.length) throw new ValidationFailed(`invalid tool registration: ${problems.join('; ')}`, problems);
  const fields = {
    name: r.name.trim(), loginUrl, targetLinkUri, redirectUris, jwksUrl, deepLinkUrl,
    scopes: r.scopes ?? ALL_SCOPES, custom: r.custom ?? {}, registeredBy: r.registeredBy ?? 'manual',
    registrationUrl: r.registrationUrl ?? null,
  };
  if (r.clientId) {
    const existing = await DevPlatformTool.findByIdAndUpdate(r.clientId, { $set: fields }, { new: true, lean: true });
    if (existing) return existing;
  }
  for (let attempt = 0; ; attempt++) {
    const last = await DevPlatformTool.findOne({}, { typeId: 1 }).sort({ typeId: -1 }).lean();
    const typeId = (last?.typeId ?? 0) + 1;
    try {
      const doc = await DevPlatformTool.create({
        _id: r.clientId ?? randomBytes(12).toString('base64url'), typeId, deploymentId: String(typeId), ...fields,
      });
      return doc.toObject();
    } catch (err) {
      if (!isDuplicateKey(err) || attempt >= 5) throw err;
    }
  }
}

export function newId(): string {
  return randomBytes(9).toString('base64url');
}

export interface LineItemInput {
  clientId: string;
  label: string;
  scoreMaximum: number;
  resourceId?: string | null;
  resourceLinkId?: string | null;
  tag?: string | null;
  startDateTime?: string | null;
  endDateTime?: string | null;
}

/** Validate an AGS line item body (as sent by a tool) into stored fields. */
export function lineItemFields(body: Record<string, unknown>): Omit<LineItemInput, 'clientId'> {
  const problems: string[] = [];
  const label = body.label;
  const max = body.scoreMaximum;
  if (typeof label !== 'string' || !label.trim()) problems.push('label: required string');
  if (typeof max !== 'number' || !(max > 0)) problems.push('scoreMaximum: required number > 0');
  const opt = (k: string) => {
    const v = body[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') problems.push(`${k}: expected a string`);
    return typeof v === 'string' ? v : null;
  };
  const out = {
    label: String(label ?? ''), scoreMaximum: Number(max), resourceId: opt('resourceId'), resourceLinkId: opt('resourceLinkId'),
    tag: opt('tag'), startDateTime: opt('startDateTime'), endDateTime: opt('endDateTime'),
  };
  if (problems.length) throw new ValidationFailed(`invalid line item: ${problems.join('; ')}`, problems);
  return out;
}

export async function createLineItem(i: LineItemInput): Promise<DevPlatformLineItemDoc> {
  const doc = await DevPlatformLineItem.create({
    _id: newId(), contextId: DEMO_COURSE.id, clientId: i.clientId, label: i.label, scoreMaximum: i.scoreMaximum,
    resourceId: i.resourceId ?? null, resourceLinkId: i.resourceLinkId ?? null, tag: i.tag ?? null,
    startDateTime: i.startDateTime ?? null, endDateTime: i.endDateTime ?? null,
  });
  return doc.toObject();
}

export interface ActivityInput {
  /** A pre-chosen resource link id (default: a new one). */
  id?: string;
  clientId: string;
  title: string;
  url?: string | null;
  custom?: Record<string, string>;
  /** Creates a gradebook column for the activity. */
  lineItem?: { label?: string; scoreMaximum: number; resourceId?: string; tag?: string } | null;
}

/** Add an activity (resource link) to the demo course, with its gradebook column if asked. */
export async function createActivity(a: ActivityInput): Promise<DevPlatformActivityDoc> {
  const tool = await DevPlatformTool.findById(a.clientId).lean();
  if (!tool) throw new ValidationFailed(`no tool with client id ${a.clientId}`);
  const id = a.id ?? newId();
  let lineItemId: string | null = null;
  if (a.lineItem) {
    const li = await createLineItem({
      clientId: a.clientId, label: a.lineItem.label ?? a.title, scoreMaximum: a.lineItem.scoreMaximum,
      resourceId: a.lineItem.resourceId ?? null, tag: a.lineItem.tag ?? null, resourceLinkId: id,
    });
    lineItemId = li._id;
  }
  const doc = await DevPlatformActivity.create({
    _id: id, clientId: a.clientId, contextId: DEMO_COURSE.id, title: a.title, url: a.url ?? null, custom: a.custom ?? {}, lineItemId,
  });
  return doc.toObject();
}

/** String-valued custom parameters only (LTI custom values are strings). */
export function stringRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) if (x !== undefined && x !== null) out[k] = String(x);
  return out;
}
