/**
 * The deep-linking return: verifies the tool's LtiDeepLinkingResponse JWT (signature on the
 * tool's JWKS, aud = our issuer, nonce once, message type, deployment id, our `data` echoed) and
 * stores the content items. Like Moodle (`auto_create: false`), nothing is added to the course
 * until the teacher saves an item (`POST /activities/from-item`), which creates the activity with
 * the item's custom parameters and, when it has a `lineItem`, its gradebook column.
 */
import express, { type Router } from 'express';
import { BadRequest, NotFound, Unauthorized } from '../errors.js';
import { DevPlatformContentItem, DevPlatformLaunch, type DevPlatformContentItemDoc } from './models.js';
import { CLAIM } from './claims.js';
import { createActivity, newId, stringRecord } from './registry.js';
import { useOnce } from './tokenRoutes.js';
import { escapeHtml, page, sendHtml } from './html.js';
import type { PlatformContext } from './context.js';
import { KeyedMutex } from '../KeyedMutex.js';

export function deepLinkRoutes(ctx: PlatformContext): Router {
  const r = express.Router();
  const saves = new KeyedMutex();

  r.post('/deeplink/return', async (req, res) => {
    const jwt = (req.body as Record<string, unknown> | undefined)?.JWT;
    if (typeof jwt !== 'string') throw new BadRequest('the JWT form field is missing');
    const { tool, payload } = await ctx.verifier.verify(jwt, { audience: ctx.urls.issuer, maxTokenAge: '1h' });
    if (payload[CLAIM.messageType] !== 'LtiDeepLinkingResponse') throw new BadRequest('message_type must be LtiDeepLinkingResponse');
    if (payload[CLAIM.version] !== '1.3.0') throw new BadRequest('version must be 1.3.0');
    if (payload[CLAIM.deploymentId] !== tool.deploymentId) throw new BadRequest('deployment_id is not this tool\'s');
    const nonce = payload.nonce;
    if (typeof nonce !== 'string' || !nonce) throw new BadRequest('nonce is required');
    const data = payload[CLAIM.dlData];
    const launch = typeof data === 'string' ? await DevPlatformLaunch.findById(data).lean() : null;
    if (!launch || launch.clientId !== tool._id || launch.messageType !== 'LtiDeepLinkingRequest') {
      throw new BadRequest('data does not echo a deep-linking request of this platform');
    }
    if (!(await useOnce(`nonce:${tool._id}:${nonce}`, tool._id, new Date(Date.now() + 3600_000)))) throw new Unauthorized('nonce was already used');
    const items = payload[CLAIM.contentItems] ?? [];
    if (!Array.isArray(items)) throw new BadRequest('content_items must be an array');
    const problems = items.flatMap((it: unknown, i) =>
      it && typeof it === 'object' && (it as { type?: unknown }).type === 'ltiResourceLink' ? [] : [`content_items[${i}]: only ltiResourceLink is accepted`]);
    if (problems.length) throw new BadRequest(problems.join('; '));
    const stored: DevPlatformContentItemDoc[] = [];
    for (const item of items as Array<Record<string, unknown>>) {
      stored.push((await DevPlatformContentItem.create({ _id: newId(), clientId: tool._id, contextId: launch.contextId, item })).toObject());
    }
    ctx.log.info({ clientId: tool._id, items: stored.length }, 'devplatform.deep_link_received');
    const msg = typeof payload[CLAIM.dlMsg] === 'string' ? String(payload[CLAIM.dlMsg]) : '';
    const errMsg = typeof payload[CLAIM.dlErrorMsg] === 'string' ? String(payload[CLAIM.dlErrorMsg]) : '';
    sendHtml(res, 200, (nonceAttr) => page('Content from the tool', `
<h1>Content returned by ${escapeHtml(tool.name)}</h1>
${msg ? `<p>${escapeHtml(msg)}</p>` : ''}${errMsg ? `<p role="alert">${escapeHtml(errMsg)}</p>` : ''}
<p>${stored.length} item(s). Save an item to add it to the course (the platform does not auto-create).</p>
<ul>${stored.map((s) => `<li data-item-id="${escapeHtml(s._id)}"><strong>${escapeHtml(String(s.item.title ?? 'Untitled'))}</strong>
${s.item.lineItem ? ` — graded out of ${escapeHtml(String((s.item.lineItem as { scoreMaximum?: unknown }).scoreMaximum ?? '?'))}` : ''}
<pre>${escapeHtml(JSON.stringify(s.item, null, 2))}</pre>
<form method="post" action="${escapeHtml(ctx.urls.issuer)}/activities/from-item" target="_top"><input type="hidden" name="itemId" value="${escapeHtml(s._id)}">
<button type="submit" class="primary">Save and return to course</button></form></li>`).join('')}</ul>
<p><a href="${escapeHtml(ctx.urls.page)}" target="_top">Back to the course</a></p>`, nonceAttr));
  });

  r.post('/activities/from-item', async (req, res) => {
    const itemId = String((req.body as Record<string, unknown> | undefined)?.itemId ?? '');
    // FerretDB's findOneAndUpdate is not an atomic compare-and-set: serialize saves of one item
    const activityId = await saves.run(itemId, () => saveItem(itemId));
    if (req.accepts(['html', 'json']) === 'json') res.status(201).json({ activityId });
    else res.redirect(303, `${ctx.urls.page}#activity-${activityId}`);
  });

  async function saveItem(itemId: string): Promise<string | null> {
    const ci = await DevPlatformContentItem.findById(itemId).lean();
    if (!ci) throw new NotFound('no such content item');
    let activityId = ci.activityId;
    // claim the item first, so a double-submitted save creates one activity
    const claimed = activityId ? null : await DevPlatformContentItem.findOneAndUpdate({ _id: ci._id, activityId: null }, { $set: { activityId: newId() } }, { new: true, lean: true });
    if (claimed?.activityId) {
      const li = ci.item.lineItem as { label?: unknown; scoreMaximum?: unknown; resourceId?: unknown; tag?: unknown } | undefined;
      const max = Number(li?.scoreMaximum);
      await createActivity({
        id: claimed.activityId,
        clientId: ci.clientId,
        title: typeof ci.item.title === 'string' && ci.item.title ? ci.item.title : 'Untitled activity',
        url: typeof ci.item.url === 'string' ? ci.item.url : null,
        custom: stringRecord(ci.item.custom),
        lineItem: li && max > 0 ? {
          scoreMaximum: max,
          ...(typeof li.label === 'string' ? { label: li.label } : {}),
          ...(typeof li.resourceId === 'string' ? { resourceId: li.resourceId } : {}),
          ...(typeof li.tag === 'string' ? { tag: li.tag } : {}),
        } : null,
      });
      activityId = claimed.activityId;
    }
    activityId ??= (await DevPlatformContentItem.findById(ci._id).lean())?.activityId ?? null;
    return activityId;
  }
  return r;
}
