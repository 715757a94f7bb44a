/**
 * /metrics after a real launch and a real lab run on the KubeVirt backend (real API server, the
 * stand-in booting a real guest, the tool as its ServiceAccount): every family has a non-zero value,
 * label names come from a short fixed list, and no ticket, token or user name is in any label.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startTestTool, waitFor, type TestTool } from '../support/tool.js';
import { Browser, launchAs } from '../support/ltiFlow.js';
import { sharedKubeVirt } from '../support/kubevirt-standin/launcher.js';
import { STANDIN_IMAGE_CATALOG } from '../support/imageCatalog.js';
import { installTool, TOOL_NS, TOOL_SA } from '../support/kubevirtTool.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const LABEL_NAMES = new Set(['message_type', 'phase', 'backend', 'state', 'channel', 'direction', 'verb', 'status', 'result', 'le']);
const FAMILIES = [
  'lab_lti_launch_duration_seconds_count', 'lab_provision_phase_duration_seconds_count', 'lab_instances', 'lab_ws_sessions_active',
  'lab_ws_bytes_total', 'lab_grade_outbox_pending', 'lab_grade_outbox_oldest_pending_seconds', 'lab_k8s_api_requests_total', 'lab_check_runs_total',
];

interface Sample { name: string; labels: Record<string, string>; value: number }
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

describe('/metrics after a launch and a lab run (KubeVirt backend)', function () {
  this.timeout(300_000);
  let tool: TestTool;
  let instanceId = '';
  let ws: WebSocket | undefined;

  before(async () => {
    const { cp, standIn } = await sharedKubeVirt();
    const kubeconfig = await installTool(cp);
    tool = await startTestTool({
      LAB_MODE: 'demo', DEV_PLATFORM_REGISTER: 'true', METRICS_TOKEN, LOG_LEVEL: 'info',
      BACKEND: 'kubevirt', KUBECONFIG: kubeconfig, KUBEVIRT_SUBRESOURCE_URL: standIn.baseUrl,
      KUBEVIRT_TOOL_NAMESPACE: TOOL_NS, KUBEVIRT_SERVICE_ACCOUNT: TOOL_SA, KUBEVIRT_BOOT_TIMEOUT_MS: '180000',
      IMAGE_CATALOG: STANDIN_IMAGE_CATALOG,
    });
  });
  after(async () => {
    ws?.close();
    tool?.devPlatform?.setScoresAvailable(true);
    if (instanceId) await tool?.runtime.destroy(instanceId).catch(() => undefined);
    await tool?.shutdown();
  });

  it('shows a non-zero value for every family, and nothing personal or secret in any label', async () => {
    const dp = tool.devPlatform!;
    const r = await launchAs(new Browser(), dp.urls.issuer, { activityId: 'demo-linux-basics', user: 'student' }, { stopAt: (n) => new URL(n.url).pathname.startsWith('/lab/') });
    assert.ok(r.location, `launch redirected to the lab page (${r.status})`);
    const loc = new URL(r.location, tool.url);
    instanceId = loc.pathname.split('/').pop()!;
    const session = new URLSearchParams(loc.hash.slice(1)).get('session')!;
    const auth = { authorization: `Bearer ${session}`, 'content-type': 'application/json' };
    await waitFor(async () => {
      const res = await fetch(`${tool.url}/api/instances/${instanceId}`, { headers: auth });
      return res.ok && ((await res.json()) as { state: string }).state === 'running';
    }, 240_000, 'the lab running');

    // a console session, kept open while scraping (active sessions), with bytes both ways
    const tr = await fetch(`${tool.url}/api/instances/${instanceId}/tickets`, { method: 'POST', headers: auth, body: JSON.stringify({ machine: 'box', channel: 'console' }) });
    const { ticket } = (await tr.json()) as { ticket: string };
    ws = new WebSocket(`${tool.url.replace(/^http/, 'ws')}/ws/console/${instanceId}/box`, ['lab.v1', `ticket.${ticket}`], { headers: { origin: new URL(tool.publicUrl).origin } });
    let got = 0;
    ws.on('message', (d: Buffer) => { got += d.length; });
    await new Promise<void>((res, rej) => { ws!.once('open', () => res()); ws!.once('error', rej); });
    ws.send(Buffer.from('\r'));
    await waitFor(() => got > 0, 60_000, 'console output');

    // a check run (it fails: nothing done yet), then a score stuck in the outbox while the platform is down
    const check = await fetch(`${tool.url}/api/instances/${instanceId}/steps/make-dir/check`, { method: 'POST', headers: auth });
    assert.ok(check.status < 300, `check ran (${check.status})`);
    dp.setScoresAvailable(false);
    await tool.grades.publish(instanceId, { activityProgress: 'InProgress', gradingProgress: 'Pending', scoreGiven: 1, scoreMaximum: 10 });
    await new Promise((res) => setTimeout(res, 1500));

    const text = await (await fetch(`${tool.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    const samples = parse(text);
    for (const f of FAMILIES) {
      const total = samples.filter((s) => s.name === f).reduce((a, s) => a + s.value, 0);
      assert.ok(total > 0, `${f} is non-zero (got ${total})`);
    }
    assert.ok(samples.some((s) => s.name === 'lab_provision_phase_duration_seconds_count' && s.labels.backend === 'kubevirt' && s.value > 0));
    assert.ok(samples.some((s) => s.name === 'lab_instances' && s.labels.state === 'running' && s.value >= 1));

    // ours (the process_* / nodejs_* defaults carry no request data)
    const ours = samples.filter((s) => /^lab_(lti|provision|instances|ws|grade|k8s|check)/.test(s.name));
    assert.ok(ours.length > 0);
    const secrets = [ticket, session, session.split('.')[2]!, instanceId, 'Alice', 'Student', dp.urls.issuer];
    for (const s of ours) {
      for (const [k, v] of Object.entries(s.labels)) {
        assert.ok(LABEL_NAMES.has(k), `${s.name}: unexpected label ${k}`);
        for (const x of secrets) assert.ok(!v.includes(x), `${s.name}{${k}} carries ${x === ticket ? 'the ticket' : x === session ? 'the session token' : x}`);
      }
    }
  });
});
