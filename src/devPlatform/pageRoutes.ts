/**
 * The development platform's page: the demo course with its activities and launch buttons, the
 * gradebook (line items × students), registered tools, and forms for manual and dynamic
 * registration and for adding an activity by hand. Plain forms and buttons (keyboard-accessible).
 */
import express, { type Router } from 'express';
import {
  DevPlatformActivity, DevPlatformLineItem, DevPlatformTool,
  type DevPlatformActivityDoc, type DevPlatformLineItemDoc, type DevPlatformToolDoc,
} from './models.js';
import { DEMO_COURSE, DEMO_USERS, fullName, type DemoUser } from './claims.js';
import { latestScores } from './agsRoutes.js';
import { createActivity, registerTool } from './registry.js';
import { escapeHtml as h, page, sendHtml } from './html.js';
import type { PlatformContext } from './context.js';

const LAUNCH_BUTTONS: Array<[string, string]> = [['student', 'Launch as student'], ['student2', 'Launch as second student'], ['teacher', 'Launch as teacher']];

/** The languages a launch can carry (launch_presentation.locale), as a Moodle user's language would be. */
const LOCALES: Array<[string, string]> = [['en', 'English'], ['de', 'Deutsch'], ['fr', 'Français'], ['es', 'Español']];

/** Launch forms target the embedded frame, as Moodle embeds tools by default; a checkbox switches to a new window. */
const FRAME = 'tool-frame';
/** Dynamic registration runs in an iframe inside a dialog of this page, as Moodle's admin page does. */
const REG_FRAME = 'registration-frame';

function launchForms(ctx: PlatformContext, a: DevPlatformActivityDoc): string {
  return LAUNCH_BUTTONS.map(([user, label]) => `<form class="inline launch" method="post" action="${h(ctx.urls.issuer)}/launch" target="${FRAME}">
<input type="hidden" name="activityId" value="${h(a._id)}"><input type="hidden" name="user" value="${user}"><input type="hidden" name="locale" value="en">
<button type="submit" aria-label="${h(`${label}: ${a.title}`)}"${user === 'student' ? ' class="primary"' : ''}>${label}</button></form>`).join(' ');
}

async function gradebook(items: DevPlatformLineItemDoc[], users: readonly DemoUser[]): Promise<string> {
  if (!items.length) return '<p>No gradebook columns yet.</p>';
  const students = users.filter((u) => u.role === 'Learner');
  const cells = await Promise.all(items.map(async (li) => new Map((await latestScores(li._id)).map((s) => [s.userId, s]))));
  return `<table aria-label="Gradebook"><thead><tr><th scope="col">Student</th>${items.map((li) => `<th scope="col">${h(li.label)} (/${li.scoreMaximum})</th>`).join('')}</tr></thead>
<tbody>${students.map((u) => `<tr><th scope="row">${h(fullName(u))}</th>${cells.map((m) => {
    const s = m.get(u.id);
    return `<td data-user="${h(u.id)}">${s ? `${s.scoreGiven ?? '–'}${s.scoreMaximum !== null ? ` / ${s.scoreMaximum}` : ''} <small>${h(s.activityProgress)}, ${h(s.gradingProgress)}</small>${s.comment ? `<br><small>${h(s.comment)}</small>` : ''}` : '–'}</td>`;
  }).join('')}</tr>`).join('')}</tbody></table>`;
}

function toolsSection(ctx: PlatformContext, tools: DevPlatformToolDoc[]): string {
  return `<h2>Tools</h2>${tools.length ? `<table><thead><tr><th scope="col">Tool</th><th scope="col">Client id</th><th scope="col">Deployment</th><th scope="col">Registered</th><th scope="col">Add content</th></tr></thead><tbody>
${tools.map((t) => `<tr><td>${h(t.name)}<br><small><code>${h(t.loginUrl)}</code></small></td><td><code>${h(t._id)}</code></td><td>${h(t.deploymentId)}</td><td>${h(t.registeredBy)}</td>
<td><form class="inline launch" method="post" action="${h(ctx.urls.issuer)}/launch" target="${FRAME}"><input type="hidden" name="clientId" value="${h(t._id)}">
<input type="hidden" name="user" value="teacher"><input type="hidden" name="deepLink" value="1"><input type="hidden" name="locale" value="en"><button type="submit" aria-label="Add activity (deep link): ${h(t.name)}">Add activity (deep link)</button></form></td></tr>`).join('')}</tbody></table>` : '<p>No tool registered yet.</p>'}
<details><summary>Register a tool (dynamic registration)</summary>
<form method="post" action="${h(ctx.urls.issuer)}/register/start" target="${REG_FRAME}" id="register-form"><label>Tool registration URL
<input type="url" name="url" required value="${h(new URL(ctx.urls.issuer).origin)}/lti/register"></label>
<button type="submit" class="primary">Register</button></form></details>
<dialog id="registration-dialog" aria-label="Tool registration"><iframe name="${REG_FRAME}" title="Tool registration" class="tool-frame" src="about:blank"></iframe>
<form method="dialog"><button type="submit">Close</button></form></dialog>
<details><summary>Register a tool manually</summary>
<form method="post" action="${h(ctx.urls.issuer)}/tools">
<label>Name <input type="text" name="name" required value="Lab Orchestrator"></label>
<label>Login initiation URL <input type="url" name="loginUrl" required></label>
<label>Launch URL (target_link_uri, also a redirect URI) <input type="url" name="targetLinkUri" required></label>
<label>Deep linking URL (optional) <input type="url" name="deepLinkUrl"></label>
<label>JWKS URL <input type="url" name="jwksUrl" required></label>
<button type="submit" class="primary">Save tool</button></form></details>
<p>Platform details for the tool: issuer <code>${h(ctx.urls.issuer)}</code>, authorization <code>${h(ctx.urls.auth)}</code>,
token <code>${h(ctx.urls.token)}</code>, JWKS <code>${h(ctx.urls.jwks)}</code>, OpenID configuration <code>${h(ctx.urls.openidConfiguration)}</code>.</p>`;
}

function addActivityForm(ctx: PlatformContext, tools: DevPlatformToolDoc[]): string {
  if (!tools.length) return '';
  return `<details><summary>Add an activity by hand</summary><form method="post" action="${h(ctx.urls.issuer)}/activities">
<label>Tool <select name="clientId">${tools.map((t) => `<option value="${h(t._id)}">${h(t.name)} (${h(t._id)})</option>`).join('')}</select></label>
<label>Title <input type="text" name="title" required></label>
<label>Custom parameters (one <code>key=value</code> per line) <textarea name="custom" rows="3" cols="40"></textarea></label>
<label>Maximum grade (empty = not graded) <input type="text" inputmode="numeric" name="scoreMaximum"></label>
<button type="submit">Add activity</button></form></details>`;
}

export function pageRoutes(ctx: PlatformContext): Router {
  const r = express.Router();

  r.get('/', async (_req, res) => {
    const [tools, activities, items] = await Promise.all([
      DevPlatformTool.find().sort({ typeId: 1 }).lean(),
      DevPlatformActivity.find({ contextId: DEMO_COURSE.id }).sort({ createdAt: 1 }).lean(),
      DevPlatformLineItem.find({ contextId: DEMO_COURSE.id }).sort({ createdAt: 1 }).lean(),
    ]);
    const book = await gradebook(items, ctx.users);
    sendHtml(res, 200, (nonce) => page('Development LTI platform', `
<h1>Development LTI platform</h1>
<p>A stand-in for Moodle to try the tool. Demo users: ${DEMO_USERS.map((u) => `${h(fullName(u))} (${u.role === 'Learner' ? 'student' : 'teacher'})`).join(', ')}${ctx.users.length > DEMO_USERS.length ? `, and ${ctx.users.length - DEMO_USERS.length} more students` : ''}.</p>
<h2>${h(DEMO_COURSE.title)} <small>(${h(DEMO_COURSE.label)})</small></h2>
<h3>Activities</h3>
${activities.length ? `<ul>${activities.map((a) => `<li id="activity-${h(a._id)}"><strong>${h(a.title)}</strong> ${a.lineItemId ? '<small>(graded)</small>' : ''}<br>${launchForms(ctx, a)}</li>`).join('')}</ul>` : '<p>No activities yet: use "Add activity (deep link)" next to a tool.</p>'}
${addActivityForm(ctx, tools)}
<p><label><input type="checkbox" id="new-window"> Open launches in a new window instead of the embedded frame</label></p>
<p><label>Language of the launched user (launch_presentation.locale) <select id="launch-locale">${LOCALES.map(([v, n]) => `<option value="${v}" lang="${v}">${n}</option>`).join('')}</select></label></p>
<iframe name="${FRAME}" title="Tool (embedded, like Moodle)" class="tool-frame" src="about:blank"></iframe>
<h3>Gradebook</h3>${book}
${toolsSection(ctx, tools)}
<script nonce="${nonce}">
var regDialog = document.getElementById('registration-dialog');
var regForm = document.getElementById('register-form');
if (regForm) regForm.addEventListener('submit', function () { regDialog.showModal(); });
window.addEventListener('message', function (e) {
  if (!e.data || e.data.subject !== 'org.imsglobal.lti.close') return;
  if (regDialog.open) regDialog.close();
  location.reload();
});
document.getElementById('launch-locale').addEventListener('change', function (e) {
  document.querySelectorAll('form.launch input[name=locale]').forEach(function (i) { i.value = e.target.value; });
});
document.getElementById('new-window').addEventListener('change', function (e) {
  document.querySelectorAll('form.launch').forEach(function (f) { f.target = e.target.checked ? '_blank' : '${FRAME}'; });
});
</script>`, nonce));
  });

  r.post('/tools', async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const s = (k: string) => (typeof b[k] === 'string' && b[k] ? (b[k] as string) : undefined);
    const tool = await registerTool({
      ...(s('clientId') ? { clientId: s('clientId') } : {}),
      name: s('name') ?? '', loginUrl: s('loginUrl') ?? '', targetLinkUri: s('targetLinkUri') ?? '', jwksUrl: s('jwksUrl') ?? '',
      deepLinkUrl: s('deepLinkUrl') ?? null,
      ...(Array.isArray(b.redirectUris) ? { redirectUris: b.redirectUris.map(String) } : {}),
    });
    if (req.is('json')) res.status(201).json({ clientId: tool._id, deploymentId: tool.deploymentId, issuer: ctx.urls.issuer });
    else res.redirect(303, ctx.urls.page);
  });

  r.post('/activities', async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const custom: Record<string, string> = {};
    for (const line of String(b.custom ?? '').split(/\r?\n/)) {
      const i = line.indexOf('=');
      if (i > 0) custom[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const max = Number(b.scoreMaximum);
    const a = await createActivity({
      clientId: String(b.clientId ?? ''), title: String(b.title ?? '').trim() || 'Untitled activity', custom,
      lineItem: max > 0 ? { scoreMaximum: max } : null,
    });
    if (req.is('json')) res.status(201).json({ activityId: a._id, lineItemId: a.lineItemId });
    else res.redirect(303, `${ctx.urls.page}#activity-${a._id}`);
  });
  return r;
}
