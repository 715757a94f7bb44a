import assert from 'node:assert/strict';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Browser, launchAs, parseForms } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { DevPlatformContentItem, DevPlatformLineItem } from '../../src/devPlatform/models.js';
import { Activity } from '../../src/store/Activity.js';
import { DeepLinkRequest } from '../../src/store/DeepLinkRequest.js';
import { LabInstance } from '../../src/store/LabInstance.js';
import { GradeOutbox } from '../../src/store/GradeOutbox.js';
import { agsScore } from '../../src/labs/score.js';
import { waitFor } from '../support/tool.js';
import { fakeLabs } from '../support/fakeLabs.js';
import { QemuBackend } from '../../src/backends/qemu/QemuBackend.js';

const DL = 'https://purl.imsglobal.org/spec/lti-dl/claim/';

describe('LTI deep linking through the development platform', () => {
  let t: LtiTestTool;
  before(async () => { t = await startLtiTool({ GRADE_RETRY_BASE_MS: '100', GRADE_RETRY_MAX_MS: '400', LAB_MAX_KEEP_DAYS: '20' }); });
  after(async () => { await t.tool.shutdown(); });

  it('shows a teacher the lab catalog, returns the chosen lab as a signed ltiResourceLink with custom lab_id and a lineItem, and the saved activity launches that lab', async () => {
    const b = new Browser();
    const catalog = await launchAs(b, t.dp.urls.issuer, { clientId: t.clientId, deepLink: true, user: 'teacher' });
    assert.equal(catalog.status, 200, catalog.body);
    assert.equal(new URL(catalog.url).pathname, '/lti/deeplink');
    for (const text of ['Subnetting 101', 'Two machines on one network', 'router (vm, 1 CPU, 256 MiB)', 'client (container, 1 CPU, 128 MiB)', '2 CPU, 384 MiB per student', 'about 45 min', 'Demo lab (placeholder)']) {
      assert.ok(catalog.body.includes(text), `catalog shows ${text}`);
    }
    const form = parseForms(catalog.body, catalog.url).find((f) => f.fields.labId === 'net-101')!;
    assert.deepEqual(Object.keys(form.fields).sort(), ['keepDays', 'labId', 'lang', 'maxScore', 'request', 'timeLimitMinutes']);
    assert.equal(form.fields.timeLimitMinutes, '90');
    // how long a stopped lab keeps its work: the lab's own 7 days, at most the operator's 20
    assert.equal(form.fields.keepDays, '7');
    assert.match(catalog.body, /<input name="keepDays" type="number" min="1" max="20" value="7">/);
    assert.equal(form.fields.maxScore, '20');
    const before = await DevPlatformContentItem.countDocuments();
    // past the operator's maximum: refused with the range, and the form stays usable
    const tooLong = await b.submit({ ...form, fields: { ...form.fields, keepDays: '21' } });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.body, /Keep stopped labs \(days\) must be a number from 1 to 20/);
    let jwt = '';
    const back = await b.submit({ ...form, fields: { ...form.fields, timeLimitMinutes: '60', maxScore: '15', keepDays: '14', gradingMode: 'steps' } }, {
      onForm: (f) => { if (f.fields.JWT) jwt = f.fields.JWT; },
    });
    assert.equal(back.status, 200, back.body);
    assert.equal(back.url, t.dp.urls.deepLinkReturn, 'the platform accepted our response (it verifies it on our JWKS)');

    // verified on our JWKS, as the platform does
    const { payload, protectedHeader } = await jwtVerify(jwt, createRemoteJWKSet(new URL(t.tool.lti.urls.jwks)), { issuer: t.clientId, audience: t.dp.urls.issuer });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload['https://purl.imsglobal.org/spec/lti/claim/message_type'], 'LtiDeepLinkingResponse');
    assert.equal(payload['https://purl.imsglobal.org/spec/lti/claim/deployment_id'], t.deploymentId);
    assert.ok(typeof payload[`${DL}data`] === 'string' && payload[`${DL}data`], 'data echoed');
    const expectedItem = {
      type: 'ltiResourceLink', title: 'Subnetting 101', text: 'Two machines on one network; find the gateway.', url: t.tool.lti.urls.launch,
      custom: { lab_id: 'net-101', time_limit_minutes: '60', max_score: '15', keep_days: '14' },
      lineItem: { scoreMaximum: 15, label: 'Subnetting 101', resourceId: 'net-101', tag: 'lab-orchestrator' },
    };
    assert.deepEqual(payload[`${DL}content_items`], [expectedItem]);

    // the platform stored the item as sent; saving it creates the activity and its gradebook column
    assert.equal(await DevPlatformContentItem.countDocuments(), before + 1);
    const item = (await DevPlatformContentItem.findOne().sort({ receivedAt: -1 }).lean())!;
    assert.deepEqual(item.item, expectedItem);
    const saved = await fetch(`${t.dp.urls.issuer}/activities/from-item`, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ itemId: item._id }) });
    const { activityId } = (await saved.json()) as { activityId: string };
    const li = (await DevPlatformLineItem.findOne({ resourceLinkId: activityId }).lean())!;
    assert.deepEqual([li.scoreMaximum, li.label, li.resourceId, li.tag], [15, 'Subnetting 101', 'net-101', 'lab-orchestrator']);

    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 302, r.body);
    assert.match(r.location!, /\/lab\/[a-z2-7]{16}#session=/);
    const activity = (await Activity.findOne({ resourceLinkId: activityId }).lean())!;
    assert.equal(activity.labId, 'net-101');
    assert.deepEqual(activity.settings, { timeLimitMinutes: 60, maxScore: 15, keepDays: 14, gradingMode: null }, 'the lab\'s own grading mode: the picker offers none');
    assert.match(activity.lineItemUrl ?? '', new RegExp(`/lineitems/${li._id}/lineitem\\?type_id=\\d+$`));

    // the time limit is the instance's; the maximum score is the scale of every score sent
    const instanceId = /\/lab\/([a-z2-7]+)/.exec(r.location!)![1]!;
    const inst = (await LabInstance.findById(instanceId).lean())!;
    assert.deepEqual([inst.timeLimitMinutes, inst.keepDays], [60, 14]);
    const part = await t.tool.grades.publish(instanceId, agsScore({ scoreGiven: 5, scoreMaximum: 20, complete: false }));
    const full = await t.tool.grades.publish(instanceId, agsScore({ scoreGiven: 20, scoreMaximum: 20, complete: true }));
    await waitFor(async () => (await GradeOutbox.countDocuments({ _id: { $in: [part._id, full._id] }, state: 'delivered' })) === 2, 10_000, 'delivery');
    const got = (await t.dp.receivedScores(li._id, '101')).map((x) => [x.scoreGiven, x.scoreMaximum, x.activityProgress]);
    assert.deepEqual(got, [[3.75, 15, 'InProgress'], [15, 15, 'Completed']]);

    // the catalog form is single use
    const again = await b.submit(form);
    assert.equal(again.status, 400);
    assert.match(again.body, /expired or was already sent/);
  });

  it('refuses a catalog submission without a valid request, and out-of-range options, creating nothing', async () => {
    const n = await DeepLinkRequest.countDocuments({ usedAt: { $ne: null } });
    for (const fields of [{ request: 'made-up', labId: 'net-101', timeLimitMinutes: '10', maxScore: '5' }, { request: 'x', labId: 'net-101', timeLimitMinutes: '100000', maxScore: '5' }, { request: 'x', labId: 'nope', timeLimitMinutes: '1', maxScore: '1' }]) {
      const r = await new Browser().request(`${t.tool.url}/lti/deeplink/submit`, { form: fields });
      assert.ok(r.status === 400 || r.status === 404, `${r.status} ${JSON.stringify(fields)}`);
      assert.doesNotMatch(await r.text(), /\n\s+at /);
    }
    assert.equal(await DeepLinkRequest.countDocuments({ usedAt: { $ne: null } }), n);
  });
});

describe('labs this deployment cannot run (a QEMU server and a lab with a container)', () => {
  let t: LtiTestTool;
  const fake = fakeLabs();
  // the QEMU backend's own rule, on the fake runtime
  fake.runtime.unavailableReason = (lab) => QemuBackend.prototype.cannotRun.call(null, lab.machines);
  before(async () => { t = await startLtiTool({}, { fake }); });
  after(async () => { await t.tool.shutdown(); });

  it('lists the lab in the picker with the reason and no way to add it; a forced submission is refused', async () => {
    const b = new Browser();
    const catalog = await launchAs(b, t.dp.urls.issuer, { clientId: t.clientId, deepLink: true, user: 'teacher' });
    assert.equal(catalog.status, 200, catalog.body);
    assert.match(catalog.body, /Subnetting 101[\s\S]*Not available on this server:<\/strong> machine client is a container, and this server runs virtual machines only \(QEMU backend\)/);
    const forms = parseForms(catalog.body, catalog.url);
    assert.ok(!forms.some((f) => f.fields.labId === 'net-101'), 'no form for the lab that cannot run');
    const other = forms.find((f) => f.fields.labId)!;
    assert.ok(other, 'the labs that can run are still offered');
    const forced = await b.submit({ ...other, fields: { ...other.fields, labId: 'net-101' } });
    assert.equal(forced.status, 400);
    assert.match(forced.body, /cannot run on this server/);
  });

  it('tells a student who launches it why, without a retry, and creates no lab', async () => {
    const a = await t.activity('net-101');
    const r = await launchAs(new Browser(), t.dp.urls.issuer, { activityId: a._id, user: 'student' }, { stopAt: atToolPage });
    assert.equal(r.status, 409, r.body);
    assert.match(r.body, /cannot run on this server: machine client is a container.*Ask your teacher to choose another lab/);
    assert.doesNotMatch(r.body, /Try again|retry/i);
    assert.deepEqual(fake.started, [], 'nothing started');
  });
});
