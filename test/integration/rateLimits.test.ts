import assert from 'node:assert/strict';
import { Browser, launchAs, tamperIdToken, type FlowResult } from '../support/ltiFlow.js';
import { atToolPage, startLtiTool, type LtiTestTool } from '../support/ltiTool.js';
import { DEFAULT_RATE_LIMITS } from '../../src/rateLimits.js';
import type { LabDefinitions } from '../../src/labs/contracts.js';
import { fakeLabs } from '../support/fakeLabs.js';

/** The tool's own catalog (templates/), with the fake runtime: tickets need the lab's real machines. */
async function startWithCatalog(env: Record<string, string> = {}): Promise<LtiTestTool> {
  const holder: { labs?: LabDefinitions } = {};
  const labs = new Proxy({}, {
    get: (_t, k: string) => (...a: unknown[]) => (holder.labs as unknown as Record<string, (...x: unknown[]) => unknown>)[k]!(...a),
  }) as LabDefinitions;
  const t = await startLtiTool(env, { fake: { ...fakeLabs(), labs } });
  holder.labs = t.tool.labs;
  return t;
}

/** Launch the activity as platform user `sub` (the dev platform's student, re-signed with another sub and name). */
function launchAsUser(t: LtiTestTool, activityId: string, sub: string): Promise<FlowResult> {
  return launchAs(new Browser(), t.dp.urls.issuer, { activityId, user: 'student' }, {
    stopAt: atToolPage,
    onForm: tamperIdToken(t.dp, (c) => ({ claims: { ...c, sub, name: `Student ${sub}`, given_name: 'Student', family_name: sub } })),
  });
}

function sessionOf(r: FlowResult): { instance: string; session: string } {
  assert.equal(r.status, 302, `launch: ${r.status} ${r.body.slice(0, 200)}`);
  const u = new URL(r.location!);
  return { instance: decodeURIComponent(u.pathname.split('/')[2]!), session: u.hash.replace('#session=', '') };
}

function ticket(t: LtiTestTool, s: { instance: string; session: string }, machine: string): Promise<Response> {
  return fetch(`${t.tool.url}/api/instances/${encodeURIComponent(s.instance)}/tickets`, {
    method: 'POST', headers: { authorization: `Bearer ${s.session}`, 'content-type': 'application/json' }, body: JSON.stringify({ machine, channel: 'console' }),
  });
}

describe('rate limits on launches and tickets (defaults)', function () {
  this.timeout(180_000);
  let t: LtiTestTool;
  let activityId: string;
  before(async () => {
    t = await startWithCatalog();
    activityId = (await t.activity('two-host-network'))._id;
  });
  after(async () => { await t?.tool.shutdown(); });

  it('a class of 40 launching at once, each opening both consoles twice, is never limited', async () => {
    const launches = await Promise.all(Array.from({ length: 40 }, (_, i) => launchAsUser(t, activityId, `class-${i}`)));
    const sessions = launches.map(sessionOf);
    const answers = await Promise.all(sessions.flatMap((s) => ['alpha', 'beta', 'alpha', 'beta'].map((m) => ticket(t, s, m))));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [200]);
  });

  it(`one user launching more than ${DEFAULT_RATE_LIMITS.launchPerUser} times a minute gets 429 with Retry-After; others still launch`, async () => {
    for (let i = 0; i < DEFAULT_RATE_LIMITS.launchPerUser; i++) sessionOf(await launchAsUser(t, activityId, 'hammer'));
    const r = await launchAsUser(t, activityId, 'hammer');
    assert.equal(r.status, 429, r.body.slice(0, 300));
    assert.match(r.body, /Too many launches/);
    const wait = Number(r.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 60, `Retry-After ${wait}`);
    sessionOf(await launchAsUser(t, activityId, 'bystander'));
  });

  it(`one user asking for more than ${DEFAULT_RATE_LIMITS.ticketPerUser} tickets a minute gets 429 with Retry-After`, async () => {
    const s = sessionOf(await launchAsUser(t, activityId, 'ticket-hammer'));
    const answers = [];
    for (let i = 0; i < DEFAULT_RATE_LIMITS.ticketPerUser; i++) answers.push((await ticket(t, s, 'alpha')).status);
    assert.deepEqual([...new Set(answers)], [200]);
    const r = await ticket(t, s, 'alpha');
    assert.equal(r.status, 429);
    assert.match(((await r.json()) as { error: string }).error, /Too many connections/);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  });
});

describe('rate limits per platform', function () {
  this.timeout(180_000);
  let t: LtiTestTool;
  let activityId: string;
  before(async () => {
    t = await startWithCatalog({ RATE_LAUNCH_PER_PLATFORM: '6', RATE_TICKET_PER_PLATFORM: '8' });
    activityId = (await t.activity('two-host-network'))._id;
  });
  after(async () => { await t?.tool.shutdown(); });

  it('a platform past its launch budget gets 429 with Retry-After, whoever launches', async () => {
    // the budget refills at 6 a minute (one per 10 s): six launches in a row pass, the seventh does not
    const first = await Promise.all(Array.from({ length: 6 }, (_, i) => launchAsUser(t, activityId, `p-${i}`)));
    const sessions = first.map(sessionOf);
    const r = await launchAsUser(t, activityId, 'p-new');
    assert.equal(r.status, 429, r.body.slice(0, 300));
    assert.match(r.body, /Too many launches from this platform/);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    // tickets have their own budget: 8 pass, the 9th does not
    const answers = await Promise.all(sessions.slice(0, 4).flatMap((s) => [ticket(t, s, 'alpha'), ticket(t, s, 'beta')]));
    assert.deepEqual([...new Set(answers.map((x) => x.status))], [200]);
    const over = await ticket(t, sessions[5]!, 'alpha');
    assert.equal(over.status, 429);
    assert.match(((await over.json()) as { error: string }).error, /from this platform/);
  });
});
