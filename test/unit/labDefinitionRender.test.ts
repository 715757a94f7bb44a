import { ImageCatalog } from '../../src/images/ImageCatalog.js';
import { Conflict } from '../../src/errors.js';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fillInstructions, renderTemplate, type RenderInput } from '../../src/labs/definition/render.js';
import { flatVariables, prepareLab } from '../../src/labs/definition/prepare.js';
import { validateDir } from '../../src/labs/definition/readLabs.js';
import { fillChecks, resolveChecks } from '../../src/labs/definition/checks.js';
import type { ValidLab } from '../../src/labs/definition/validateLab.js';

function render(markdown: string, extra: Partial<RenderInput> = {}) {
  return renderTemplate({
    labId: 'net',
    version: '3',
    title: 'Networks',
    pages: [{ id: '01-intro', title: 'Intro', markdown }],
    steps: [],
    grading: { mode: 'steps', maxScore: 100, steps: {} },
    ...extra,
  });
}
const html = (md: string) => render(md).pages[0]!.html;

describe('lab instructions: rendering and sanitizing', () => {
  it('never lets <script>, event handlers or javascript: URLs through', () => {
    const out = html(`# Title

<script>alert(1)</script>
<img src="media/x.png" onerror="alert(2)">
<a href="javascript:alert(3)">click</a> [md link](javascript:alert%284%29) [data](data:text/html,<script>alert(5)</script>)
<div onclick="alert(6)" onmouseover="alert(7)">hover</div>
<svg onload="alert(8)"><script>alert(9)</script></svg>
<iframe src="https://evil.example"></iframe><object data="x"></object><embed src="x">
<style>body { display: none }</style><form action="https://evil.example"><input name="q"></form>
<a href="JaVaScRiPt:alert(10)">caps</a> <a href="  javascript:alert(11)">spaces</a> <img src="javascript:alert(12)">
<p style="background:url(javascript:alert(13))">styled</p>
`);
    for (const bad of [/<script/i, /\son\w+=/i, /(href|src|action)="\s*(javascript|data):/i, /<iframe/i, /<object/i, /<embed/i, /<style/i, /<form/i, /style=/i, /<svg/i]) {
      assert.doesNotMatch(out, bad, `${bad} must not survive:\n${out}`);
    }
    assert.match(out, /<div>hover<\/div>/, 'harmless content stays');
  });

  it('drops author ids (no DOM clobbering) but keeps the step ids it generates', () => {
    const out = html('## Do it {#do-it}\n\n<div id="ticket" class="x step">a</div>\n');
    assert.match(out, /<h2 id="step-do-it" class="step" data-step-id="do-it">Do it<\/h2>/);
    assert.doesNotMatch(out, /id="ticket"/);
  });

  it('turns headings and list items with {#id} into steps, with weights and checks from grading', () => {
    const t = render('# Page\n\n## Make a dir {#make-dir}\n\n- [ ] Write a *file* {#write-file}\n- plain item\n\n## Not a step\n', {
      steps: [{ id: 'make-dir', pageId: '01-intro', title: 'Make a dir' }, { id: 'write-file', pageId: '01-intro', title: 'Write a file' }],
      grading: { mode: 'checks', maxScore: 10, steps: { 'make-dir': { weight: 1, checks: [{ weight: 2 }, { weight: 1 }] }, 'write-file': { weight: 1, checks: [] } } },
    });
    const out = t.pages[0]!.html;
    assert.match(out, /<h2 id="step-make-dir" class="step" data-step-id="make-dir">Make a dir<\/h2>/);
    assert.match(out, /<li id="step-write-file" class="step" data-step-id="write-file"><input type="checkbox" disabled \/> Write a <em>file<\/em><\/li>/);
    assert.match(out, /<li>plain item<\/li>/);
    assert.match(out, /<h2>Not a step<\/h2>/);
    assert.deepEqual(t.steps, [
      { id: 'make-dir', pageId: '01-intro', title: 'Make a dir', weight: 3, hasChecks: true },
      { id: 'write-file', pageId: '01-intro', title: 'Write a file', weight: 1, hasChecks: false },
    ]);
    assert.deepEqual(t.grading, { mode: 'checks', maxScore: 10 });
  });

  it('renders knowledge boxes, code blocks with copy / send-to-machine attributes, and media URLs', () => {
    const out = html(':::warning Careful\nThis **deletes**.\n:::\n\n```sh machine=web\nrm -rf /tmp/x && echo "<done>"\n```\n\n```\nplain\n```\n\n![up](../media/a/b.png) <img src="media/c.png">\n');
    assert.match(out, /<aside class="box box-warning" role="note"><p class="box-title">Careful<\/p><p>This <strong>deletes<\/strong>.<\/p>\n<\/aside>/);
    assert.match(out, /<pre class="code" data-copy="true" data-machine="web" data-lang="sh"><code class="language-sh">rm -rf \/tmp\/x &amp;&amp; echo "&lt;done&gt;"\n<\/code><\/pre>/);
    assert.match(out, /<pre class="code" data-copy="true"><code>plain\n<\/code><\/pre>/);
    assert.match(out, /src="\/labs\/net\/3\/media\/a\/b.png"/);
    assert.match(out, /<img src="\/labs\/net\/3\/media\/c.png" \/>/);
  });

  it('fills variables per instance: HTML-escaped in text, URL-encoded in links, never markup', () => {
    const t = render('Hi {{user.name}}! <a href="{{user.name}}">me</a> [site](https://x.example/?u={{user.name}})\n\n```sh machine=web\necho {{machines.web.password}}\n```\n');
    const out = fillInstructions(t, { 'user.name': '<img src=x onerror=alert(1)> javascript:alert(2)', 'machines.web.password': 'p"w<' }).pages[0]!.html;
    assert.match(out, /Hi &lt;img src=x onerror=alert\(1\)&gt; javascript:alert\(2\)!/);
    assert.match(out, /href="%3Cimg%20src%3Dx%20onerror%3Dalert\(1\)%3E%20javascript%3Aalert\(2\)"/);
    assert.match(out, /href="https:\/\/x.example\/\?u=%3Cimg/);
    assert.match(out, /echo p&quot;w&lt;/);
    assert.doesNotMatch(out, /<img src=x/);
    assert.equal(t.pages[0]!.html.includes('{{user.name}}'), true, 'the cached template keeps its placeholders');
  });
});

describe('lab definitions: prepare() per instance', () => {
  let labs: ValidLab[];
  before(async () => {
    labs = (await validateDir(path.resolve('templates'), 'templates')).labs;
  });
  const lab = (id: string) => labs.find((l) => l.id === id)!;

  it('builds the backend spec with channels, quantities, images per backend and lab-network addresses', () => {
    const p = prepareLab('two-host-network', '1', lab('two-host-network').def, {}, 'qemu');
    assert.equal(p.spec.labId, 'two-host-network');
    assert.equal(p.spec.labVersion, '1');
    assert.deepEqual(p.spec.network, { internetEgress: false });
    assert.deepEqual(p.spec.machines.map((m) => [m.name, m.kind, m.image, m.cpus, m.memoryMiB, m.channels.join('+')]), [
      ['alpha', 'vm', 'debian-12', 1, 512, 'console+vnc'],
      ['beta', 'vm', 'debian-12', 1, 512, 'console+vnc'],
    ]);
    assert.equal(p.machines.alpha!.ip, '10.10.0.11');
    assert.equal(p.machines.beta!.ip, '10.10.0.12');
    assert.deepEqual(p.lifetime, { maxMinutes: 120, idleMinutes: 30, pausable: true, warnBeforeMinutes: 10, keepDays: 7 });
    const images = ImageCatalog.builtIn().with('debian-12', { kubevirt: { containerDisk: 'registry.example.edu/labs/debian-12:1' } });
    const k = prepareLab('vm-and-container', '1', lab('vm-and-container').def, {}, 'kubevirt', images);
    assert.deepEqual(k.spec.machines.map((m) => [m.name, m.kind, m.image, m.memoryMiB, m.channels.join('+'), m.ports]), [
      ['client', 'vm', 'registry.example.edu/labs/debian-12:1', 512, 'console', undefined],
      ['web', 'container', 'docker.io/library/nginx:1.27-alpine', 128, 'console', [80]],
    ]);
    assert.equal(k.spec.machines[1]!.credentials, undefined, 'a container has no login');
  });

  it('generates a different password per instance and keeps an instance\'s stored one', () => {
    const def = lab('linux-basics').def;
    const a = prepareLab('linux-basics', '1', def, {});
    const b = prepareLab('linux-basics', '1', def, {});
    const pa = a.machines.box!.password!;
    const pb = b.machines.box!.password!;
    assert.match(pa, /^[a-zA-Z2-9]{14}$/);
    assert.notEqual(pa, pb);
    assert.deepEqual(a.spec.machines[0]!.credentials, { username: 'student', password: pa });
    const again = prepareLab('linux-basics', '1', def, a.machines);
    assert.equal(again.machines.box!.password, pa, 'existing credentials are kept');
  });

  it('puts each instance\'s generated password where the instructions reference it', async () => {
    const l = lab('linux-basics');
    const t = renderTemplate({
      labId: l.id, version: '1', title: l.def.title,
      pages: l.pages.map((p) => ({ id: p.id, title: p.title, markdown: l.files.get(p.name)!.toString() })),
      steps: l.steps, grading: l.def.grading,
    });
    const pages = [1, 2].map(() => {
      const p = prepareLab(l.id, '1', l.def, {});
      const filled = fillInstructions(t, flatVariables({ user: { name: 'Ada' }, lab: { title: l.def.title, expires: '12:00' }, machines: p.machines }));
      return { html: filled.pages[0]!.html, password: p.machines.box!.password! };
    });
    for (const [i, p] of pages.entries()) {
      assert.ok(p.html.includes(`<code>${p.password}</code>`), `instance ${i} shows its own password`);
      assert.ok(!p.html.includes(pages[1 - i]!.password), 'and not the other one');
      assert.match(p.html, /Welcome, Ada!/);
      assert.doesNotMatch(p.html, /\{\{/);
    }
  });

  it('resolves checks for the runner: the only machine by default, scripts by content, commands and hints templated', () => {
    const one = lab('linux-basics');
    const c1 = resolveChecks(one.def, one.steps.map((s) => s.id), (p) => one.files.get(p));
    assert.deepEqual(c1.steps.flatMap((s) => s.checks.map((c) => [s.stepId, c.machine, c.weight])), [
      ['make-dir', 'box', 1], ['write-file', 'box', 2], ['copy-file', 'box', 1], ['start-process', 'box', 2], ['stop-process', 'box', 2],
      ['ssh-service', 'box', 1], ['ssh-port', 'box', 1],
    ]);
    assert.match(c1.steps[3]!.checks[0]!.command, /^#!\/bin\/sh\n# Passes when \/tmp\/notes\/sleeper.pid names a running "sleep" process/);
    const two = lab('two-host-network');
    const p = prepareLab(two.id, '1', two.def, {});
    const c2 = fillChecks(resolveChecks(two.def, two.steps.map((s) => s.id), () => undefined), flatVariables({ lab: {}, machines: p.machines }));
    assert.deepEqual(c2.steps[0], {
      stepId: 'find-address',
      checks: [{
        index: 0, machine: 'alpha', command: 'grep -qx "${LAB_MACHINES_BETA_IP}" /tmp/beta-address', env: { LAB_MACHINES_BETA_IP: '10.10.0.12' }, timeoutSeconds: 30, weight: 1,
        hint: "/tmp/beta-address on alpha should contain beta's IPv4 address and nothing else (no /24).",
      }],
    });
  });

  it('refuses KubeVirt for an image with no containerDisk, saying how to provide one, before anything is created', () => {
    const def = structuredClone(lab('linux-basics').def);
    def.machines[0]!.image = 'debian-12';
    assert.throws(() => prepareLab('linux-basics', '1', def, {}, 'kubevirt'), (err: Error) => {
      assert.equal(err.name, 'ImageMissing');
      assert.ok(err instanceof Conflict);
      assert.match(err.message, /image "debian-12" has no KubeVirt containerDisk: package it with `scripts\/build-image.sh debian-12 --containerdisk`, push the archive to your registry and set images.debian-12.kubevirt.containerDisk in the IMAGE_CATALOG file/);
      return true;
    });
    assert.equal(prepareLab('linux-basics', '1', def, {}, 'qemu').spec.machines[0]!.image, 'debian-12', 'QEMU gets the catalog name');
  });

  it('refuses an image a stored version names that the catalog no longer has', () => {
    const def = structuredClone(lab('linux-basics').def);
    def.machines[0]!.image = 'gone-image';
    assert.throws(() => prepareLab('linux-basics', '1', def, {}, 'qemu'), { name: 'ImageMissing', message: /image "gone-image" is not in the image catalog \(known: debian-12, debian-12-desktop, lab-tiny\)/ });
  });

  it('still runs versions stored with the older per-backend image map', () => {
    const def = structuredClone(lab('linux-basics').def);
    (def.machines[0] as { image: unknown }).image = { qemu: 'lab-tiny', kubevirt: 'quay.io/containerdisks/debian:12' };
    assert.equal(prepareLab('linux-basics', '1', def, {}, 'qemu').spec.machines[0]!.image, 'lab-tiny');
    assert.equal(prepareLab('linux-basics', '1', def, {}, 'kubevirt').spec.machines[0]!.image, 'quay.io/containerdisks/debian:12');
    delete (def.machines[0] as { image: { kubevirt?: string } }).image.kubevirt;
    assert.throws(() => prepareLab('linux-basics', '1', def, {}, 'kubevirt'), { name: 'Conflict', message: /machine box has no kubevirt image/ });
  });
});
