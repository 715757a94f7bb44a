import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateLab, type LabFiles } from '../../src/labs/definition/validateLab.js';
import { formatProblem, sortProblems } from '../../src/labs/definition/problems.js';
import { validateDir } from '../../src/labs/definition/readLabs.js';
import { ImageCatalog } from '../../src/images/ImageCatalog.js';

function files(f: Record<string, string>): LabFiles {
  return new Map(Object.entries(f).map(([k, v]) => [k, Buffer.from(v)]));
}

const YAML = `schemaVersion: 1
title: Networks
machines:
  - name: web
    image: debian-12
`;
const PAGE = `# Intro

## First step {#first}

Log in as {{machines.web.username}} with {{machines.web.password}}.
`;

function problems(f: Record<string, string>): string[] {
  return sortProblems(validateLab('net', files({ 'lab.yaml': YAML, 'instructions/01-intro.md': PAGE, ...f }), 'templates/net').problems).map(formatProblem);
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [path.resolve('bin/lab-orchestrator.js'), ...args], { env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
}

describe('lab definitions: validation', () => {
  it('accepts a one-machine lab of five lines and fills in the defaults', () => {
    const r = validateLab('net', files({ 'lab.yaml': YAML, 'instructions/01-intro.md': PAGE }), 'templates/net');
    assert.deepEqual(r.problems, []);
    const def = r.lab!.def;
    assert.equal(def.machines[0]!.kind, 'vm');
    assert.equal(def.machines[0]!.memory, '512Mi');
    assert.equal(def.machines[0]!.cpus, 1);
    assert.deepEqual(def.lifetime, { maxMinutes: 120, idleMinutes: 30, pausable: true, warnBeforeMinutes: 10, keepDays: 7 });
    assert.deepEqual(def.network, { internetEgress: false });
    assert.equal(def.grading.mode, 'steps');
    assert.deepEqual(r.lab!.steps, [{ id: 'first', pageId: '01-intro', title: 'First step' }]);
    assert.deepEqual(r.lab!.pages, [{ id: '01-intro', name: 'instructions/01-intro.md', title: 'Intro' }]);
  });

  it('reports bad YAML with the file, line and column of the syntax error', () => {
    assert.deepEqual(problems({ 'lab.yaml': 'schemaVersion: 1\ntitle: [broken\nmachines: []\n' }), [
      'templates/net/lab.yaml:3:1 (syntax): expected valid YAML, got Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
  });

  it('reports duplicate YAML keys as a syntax error at the second key', () => {
    const out = problems({ 'lab.yaml': `${YAML}title: Again\n` });
    assert.equal(out.length, 1);
    assert.match(out[0]!, /^templates\/net\/lab\.yaml:6:1 \(syntax\): expected valid YAML, got Map keys must be unique/);
  });

  it('reports wrong types at the value, with the path, what was expected and what was found', () => {
    const y = `${YAML}    memory: 512\n    cpus: two\n    consoles: serial\nlifetime:\n  pausable: maybe\n`;
    assert.deepEqual(problems({ 'lab.yaml': y }), [
      'templates/net/lab.yaml:6:13 machines[0].memory: expected a "512Mi"-style quantity, got 512',
      'templates/net/lab.yaml:7:11 machines[0].cpus: expected an integer from 1 to 16, got "two"',
      'templates/net/lab.yaml:8:15 machines[0].consoles: expected a list such as [serial, vnc], got "serial"',
      'templates/net/lab.yaml:10:13 lifetime.pausable: expected true or false, got "maybe"',
    ]);
  });

  it('reports a missing required key at the map that lacks it', () => {
    assert.deepEqual(problems({ 'lab.yaml': 'schemaVersion: 1\nmachines:\n  - name: web\n    image: lab-tiny\n' }), [
      'templates/net/lab.yaml:1:1 title: expected a title, got nothing',
    ]);
  });

  it('reports every unknown key at the key, naming the keys that are allowed', () => {
    const y = `${YAML}    colour: red\nnetwork:\n  internet: true\n`;
    assert.deepEqual(problems({ 'lab.yaml': y }), [
      'templates/net/lab.yaml:6:5 machines[0].colour: expected one of name, kind, image, cpus, memory, disk, consoles, credentials, userData, ports, got unknown key "colour"',
      'templates/net/lab.yaml:8:3 network.internet: expected one of internetEgress, got unknown key "internet"',
    ]);
  });

  it('reports duplicate machine names at the second name, together with schema problems', () => {
    const y = `${YAML}  - name: web\n    image: lab-tiny\n    cpus: 0\n`;
    assert.deepEqual(problems({ 'lab.yaml': y }), [
      'templates/net/lab.yaml:6:11 machines[1].name: expected a unique machine name, got "web" (also machines[0].name)',
      'templates/net/lab.yaml:8:11 machines[1].cpus: expected an integer from 1 to 16, got 0',
    ]);
  });

  it('reports an unknown variable in instructions at its line and column', () => {
    const md = `${PAGE}\nBye {{user.nam}} and {{machines.db.password}}.\n`;
    const out = problems({ 'instructions/01-intro.md': md });
    assert.equal(out.length, 2);
    assert.match(out[0]!, /^templates\/net\/instructions\/01-intro\.md:7:5 variable: expected one of \{\{user\.name\}\}, .*\{\{machines\.web\.password\}\}, \{\{machines\.web\.ip\}\}, \{\{machines\.web\.host\}\}, got \{\{user\.nam\}\}$/);
    assert.match(out[1]!, /^templates\/net\/instructions\/01-intro\.md:7:22 variable: .*got \{\{machines\.db\.password\}\}$/);
  });

  it('reports a missing image file and a media path outside media/', () => {
    const md = `${PAGE}\n![net](media/net.svg) and ![x](../lab.yaml)\n<img src="media/gone.png">\n`;
    assert.deepEqual(problems({ 'instructions/01-intro.md': md }), [
      'templates/net/instructions/01-intro.md:7:8 media: expected an existing file, got "media/net.svg" (no media/net.svg in the lab folder)',
      'templates/net/instructions/01-intro.md:7:32 media: expected a file under media/ (or an https:// URL), got "../lab.yaml"',
      'templates/net/instructions/01-intro.md:8:11 media: expected an existing file, got "media/gone.png" (no media/gone.png in the lab folder)',
    ]);
    assert.deepEqual(problems({ 'instructions/01-intro.md': `${PAGE}\n![net](media/net.svg)\n`, 'media/net.svg': '<svg/>' }), []);
  });

  it('reports a duplicate step id at the second occurrence, naming the first, across pages', () => {
    const out = problems({ 'instructions/02-more.md': '# More\n\n- [ ] again {#first}\n' });
    assert.deepEqual(out, [
      'templates/net/instructions/02-more.md:3:13 step: expected a unique step id, got "{#first}" (also at templates/net/instructions/01-intro.md:3:15)',
    ]);
  });

  it('ignores step markers, images and boxes inside code blocks but checks variables there', () => {
    const md = `${PAGE}\n\`\`\`md\n## Not a step {#first}\n![x](media/none.png)\n{{nope}}\n\`\`\`\n`;
    assert.deepEqual(problems({ 'instructions/01-intro.md': md }), [
      'templates/net/instructions/01-intro.md:10:1 variable: expected one of {{user.name}}, {{lab.title}}, {{lab.expires}}, {{machines.web.username}}, {{machines.web.password}}, {{machines.web.ip}}, {{machines.web.host}}, got {{nope}}',
    ]);
  });

  it('reports a code block sent to an unknown machine and an unknown box kind', () => {
    const md = `${PAGE}\n\`\`\`sh machine=db\nls\n\`\`\`\n\n:::danger\nx\n:::\n`;
    assert.deepEqual(problems({ 'instructions/01-intro.md': md }), [
      'templates/net/instructions/01-intro.md:7:7 code: expected machine= one of web, got "db"',
      'templates/net/instructions/01-intro.md:11:4 box: expected one of note, tip, warning, got "danger"',
    ]);
  });

  it('checks the grading section against the instructions, the machines and the check scripts', () => {
    const y = `${YAML}grading:
  mode: checks
  steps:
    first:
      checks:
        - machine: db
          script: checks/missing.sh
          timeoutSeconds: 0
        - command: test -f /x
          script: checks/x.sh
          hint: "{{machines.web.pasword}}"
    nope:
      weight: 2
`;
    assert.deepEqual(problems({ 'lab.yaml': y, 'checks/x.sh': 'true' }), [
      'templates/net/lab.yaml:13:27 grading.steps.first.checks[0].timeoutSeconds: expected an integer from 1 to 600, got 0',
    ]);
    const y2 = y.replace('timeoutSeconds: 0', 'timeoutSeconds: 5');
    assert.deepEqual(problems({ 'lab.yaml': y2, 'checks/x.sh': 'true' }), [
      'templates/net/lab.yaml:11:20 grading.steps.first.checks[0].machine: expected one of web, got "db"',
      'templates/net/lab.yaml:12:19 grading.steps.first.checks[0].script: expected a file under checks/ in the lab folder, got "checks/missing.sh"',
      'templates/net/lab.yaml:14:11 grading.steps.first.checks[1]: expected exactly one of script, command, got both',
      'templates/net/lab.yaml:16:17 grading.steps.first.checks[1].hint: expected one of {{user.name}}, {{lab.title}}, {{lab.expires}}, {{machines.web.username}}, {{machines.web.password}}, {{machines.web.ip}}, {{machines.web.host}}, got {{machines.web.pasword}}',
      'templates/net/lab.yaml:17:5 grading.steps.nope: expected a step id from the instructions (first), got "nope"',
    ]);
  });

  it('requires an OCI image reference on a container machine and no VM consoles on it', () => {
    const y = `${YAML}  - name: db\n    kind: container\n    image: "-nginx"\n    consoles: [vnc]\n`;
    assert.deepEqual(problems({ 'lab.yaml': y }), [
      'templates/net/lab.yaml:8:12 machines[1].image: expected an OCI image reference such as docker.io/library/nginx:1.27-alpine, got "-nginx"',
      'templates/net/lab.yaml:9:16 machines[1].consoles[0]: expected terminal for a container, got "vnc"',
    ]);
  });

  it('refuses a VM image the catalog does not have, naming the ones it has', () => {
    const y = YAML.replace('image: debian-12', 'image: debian-13');
    assert.deepEqual(problems({ 'lab.yaml': y }), [
      'templates/net/lab.yaml:5:12 machines[0].image: expected an image from the image catalog (debian-12, debian-12-desktop, lab-tiny), got "debian-13"',
    ]);
  });

  it('refuses an image name that is a path or a registry reference, with its position', () => {
    for (const bad of ['../debian-12', 'quay.io/containerdisks/debian:12', 'debian..12']) {
      assert.deepEqual(problems({ 'lab.yaml': YAML.replace('image: debian-12', `image: "${bad}"`) }), [
        `templates/net/lab.yaml:5:12 machines[0].image: expected an image name from the image catalog, not a path or a registry reference (no "/" or ".."), got "${bad}"`,
      ], bad);
    }
  });

  it('refuses the per-backend image map of older labs with a message saying what to write', () => {
    assert.deepEqual(problems({ 'lab.yaml': YAML.replace('image: debian-12', 'image: { qemu: lab-tiny, kubevirt: quay.io/containerdisks/debian:12 }') }), [
      'templates/net/lab.yaml:5:12 machines[0].image: expected an image name such as debian-12 (one name from the image catalog for every backend; a container: an OCI image reference), got a map',
    ]);
  });

  it('checks image names against the catalog it is given (an admin\'s own image)', () => {
    const images = ImageCatalog.builtIn().with('ubuntu-24', { description: 'Ubuntu' });
    const y = YAML.replace('image: debian-12', 'image: ubuntu-24');
    const r = validateLab('net', files({ 'lab.yaml': y, 'instructions/01-intro.md': PAGE }), 'templates/net', images);
    assert.deepEqual(r.problems, []);
    assert.equal(r.lab?.def.machines[0]?.image, 'ubuntu-24');
  });

  it('requires the id in lab.yaml to match the folder name', () => {
    assert.deepEqual(problems({ 'lab.yaml': `${YAML}id: other\n` }), ['templates/net/lab.yaml:6:5 id: expected the folder name "net", got "other"']);
  });

  it('the same content gives the same hash; any change to a served file changes it', () => {
    const a = validateLab('net', files({ 'lab.yaml': YAML, 'instructions/01-intro.md': PAGE, 'notes.txt': 'x' }), 'x').lab!;
    const b = validateLab('net', files({ 'lab.yaml': YAML, 'instructions/01-intro.md': PAGE }), 'x').lab!;
    const c = validateLab('net', files({ 'lab.yaml': YAML, 'instructions/01-intro.md': `${PAGE}\nMore.\n` }), 'x').lab!;
    assert.equal(a.contentHash, b.contentHash, 'files the lab does not serve are ignored');
    assert.notEqual(b.contentHash, c.contentHash);
  });
});

describe('lab definitions: the shipped examples and `validate`', function () {
  this.timeout(30_000);

  it('every example in templates/ is valid', async () => {
    const r = await validateDir(path.resolve('templates'), 'templates');
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.labs.map((l) => l.id).sort(), ['desktop-basics', 'linux-basics', 'two-host-network', 'vm-and-container']);
    for (const l of r.labs) {
      assert.ok([...l.files.keys()].some((p) => p.startsWith('media/')), `${l.id} has media`);
      assert.equal(l.def.grading.mode, 'checks', `${l.id} grades with checks`);
      for (const s of l.steps) assert.ok(l.def.grading.steps[s.id]?.checks.length, `${l.id} step ${s.id} has a check`);
    }
  });

  it('`validate` prints nothing and exits 0 on the examples', async () => {
    const r = await runCli(['validate']);
    assert.equal(r.out, '');
    assert.equal(r.err, '');
    assert.equal(r.code, 0);
  });

  it('`validate dir` prints one line per problem and exits 1', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'labs-'));
    fs.mkdirSync(path.join(dir, 'net', 'instructions'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'net', 'lab.yaml'), `${YAML}    memory: 1G\n`);
    fs.writeFileSync(path.join(dir, 'net', 'instructions', 'a.md'), 'Hi {{who}}\n');
    fs.mkdirSync(path.join(dir, 'empty'));
    const r = await runCli(['validate', dir]);
    assert.equal(r.code, 1);
    assert.equal(r.out, [
      `${dir}/empty/lab.yaml:1:1 (file): expected a lab.yaml file, got nothing`,
      `${dir}/net/instructions/a.md:1:4 variable: expected one of {{user.name}}, {{lab.title}}, {{lab.expires}}, {{machines.web.username}}, {{machines.web.password}}, {{machines.web.ip}}, {{machines.web.host}}, got {{who}}`,
      `${dir}/net/lab.yaml:6:13 machines[0].memory: expected a "512Mi"-style quantity (Mi or Gi), got "1G"`,
      '',
    ].join('\n'));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('`validate` checks image names against the catalog plus the IMAGE_CATALOG file, and reports a bad catalog file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'labs-'));
    fs.mkdirSync(path.join(dir, 'net', 'instructions'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'net', 'lab.yaml'), YAML.replace('image: debian-12', 'image: ubuntu-24'));
    fs.writeFileSync(path.join(dir, 'net', 'instructions', 'a.md'), PAGE);
    const unknown = await runCli(['validate', dir]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.out, `${dir}/net/lab.yaml:5:12 machines[0].image: expected an image from the image catalog (debian-12, debian-12-desktop, lab-tiny), got "ubuntu-24"\n`);
    const catalog = path.join(dir, 'images.yaml');
    fs.writeFileSync(catalog, 'schemaVersion: 1\nimages:\n  ubuntu-24:\n    kubevirt: { containerDisk: registry.example.edu/labs/ubuntu:24.04 }\n');
    assert.deepEqual(await runCli(['validate', dir], { IMAGE_CATALOG: catalog }), { code: 0, out: '', err: '' });
    fs.writeFileSync(catalog, 'schemaVersion: 1\nimages:\n  ubuntu/24: {}\n');
    const bad = await runCli(['validate', dir], { IMAGE_CATALOG: catalog });
    assert.equal(bad.code, 1);
    assert.equal(bad.out, `Invalid image catalog:\n  ${catalog}:3:3 images.ubuntu/24: expected an image name from the image catalog, not a path or a registry reference (no "/" or ".."), got "ubuntu/24"\n`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
