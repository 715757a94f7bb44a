/**
 * Validate one lab folder (as an in-memory file map, so a directory and an uploaded archive go
 * through the same code) and report every problem at once with file:line:col. A lab with no
 * problems comes back as a ValidLab: the parsed definition with defaults, its pages and steps.
 */
import { createHash } from 'node:crypto';
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { ImageCatalog } from '../../images/ImageCatalog.js';
import { LabSchema, NAME_RE, type LabYaml, type MachineYaml } from './schema.js';
import { describeValue, YamlPositions, type Problem, type YamlPath } from './problems.js';
import { scanPage, VARIABLE, type ScannedStep } from './scanInstructions.js';
import { checkTranslations } from './translations.js';

/** Lab folder contents: posix path relative to the folder → bytes. */
export type LabFiles = Map<string, Buffer>;

export interface ValidLab {
  id: string;
  def: LabYaml;
  pages: Array<{ id: string; name: string; title: string }>;
  steps: Array<{ id: string; pageId: string; title: string }>;
  /** Only what the lab serves or runs: lab.yaml, instructions/*.md, instructions/<lang>/*.md, media/**, checks/**. */
  files: LabFiles;
  /** sha256 over the stored files: unchanged content = same hash = no new version. */
  contentHash: string;
}

export const MAX_LAB_BYTES = 8 * 1024 * 1024;
/** lab.yaml is parsed on the request thread (the examples are ~2 KiB; 64 KiB parses in well under 100 ms). */
export const MAX_LAB_YAML_BYTES = 64 * 1024;
/** Instruction pages, all together (scanned on the request thread, rendered at first use). */
export const MAX_INSTRUCTIONS_BYTES = 1024 * 1024;
/** Alias expansions in lab.yaml (yaml's own default): a few aliases that expand aliases make a "billion laughs". */
export const MAX_YAML_ALIASES = 100;
const STORED = /^(lab\.yaml|instructions\/([a-z]{2,3}(-[A-Z]{2})?\/)?[^/]+\.md|media\/.+|checks\/.+)$/;

export function hasCredentials(m: Pick<MachineYaml, 'kind' | 'credentials'>): boolean {
  return m.kind === 'vm' || m.credentials !== undefined;
}

/** Variables available to instructions and hints: user, lab and per-machine ones. */
export function knownVariables(def: { machines: Array<Pick<MachineYaml, 'name' | 'kind' | 'credentials'>> }, o: { instanceOnly?: boolean } = {}): Set<string> {
  const vars = new Set<string>(o.instanceOnly ? ['lab.title'] : ['user.name', 'lab.title', 'lab.expires']);
  for (const m of def.machines) {
    if (hasCredentials(m)) {
      vars.add(`machines.${m.name}.username`);
      vars.add(`machines.${m.name}.password`);
    }
    vars.add(`machines.${m.name}.ip`);
    vars.add(`machines.${m.name}.host`);
  }
  return vars;
}

export function contentHash(files: LabFiles): string {
  const h = createHash('sha256');
  for (const p of [...files.keys()].sort()) h.update(`${p}\0${createHash('sha256').update(files.get(p)!).digest('hex')}\n`);
  return h.digest('hex');
}

/** `images`: the catalog VM image names are checked against (default: the repository's catalog). */
export function validateLab(id: string, all: LabFiles, prefix: string, images: ImageCatalog = ImageCatalog.builtIn()): { lab?: ValidLab; problems: Problem[] } {
  const yamlFile = `${prefix}/lab.yaml`;
  const problems: Problem[] = [];
  const files: LabFiles = new Map([...all].filter(([p]) => STORED.test(p)));
  const total = [...files.values()].reduce((n, b) => n + b.length, 0);
  if (total > MAX_LAB_BYTES) problems.push({ file: prefix, line: 1, col: 1, path: 'files', message: `expected at most ${MAX_LAB_BYTES / 1048576} MiB in total, got ${(total / 1048576).toFixed(1)} MiB` });
  if (!NAME_RE.test(id)) problems.push({ file: yamlFile, line: 1, col: 1, path: 'id', message: `expected the folder name to be a lab id (a-z, 0-9 and "-", starting with a letter), got "${id}"` });
  const text = files.get('lab.yaml');
  if (!text) return { problems: [...problems, { file: yamlFile, line: 1, col: 1, path: '(file)', message: 'expected a lab.yaml file, got nothing' }] };
  if (text.length > MAX_LAB_YAML_BYTES) return { problems: [...problems, { file: yamlFile, line: 1, col: 1, path: '(file)', message: `expected at most ${MAX_LAB_YAML_BYTES / 1024} KiB, got ${(text.length / 1024).toFixed(0)} KiB` }] };
  const pageBytes = [...files].filter(([p]) => p.startsWith('instructions/')).reduce((n, [, b]) => n + b.length, 0);
  if (pageBytes > MAX_INSTRUCTIONS_BYTES) return { problems: [...problems, { file: `${prefix}/instructions`, line: 1, col: 1, path: '(folder)', message: `expected at most ${MAX_INSTRUCTIONS_BYTES / 1048576} MiB of instruction pages in total, got ${(pageBytes / 1048576).toFixed(1)} MiB` }] };

  const lineCounter = new LineCounter();
  const doc = parseDocument(text.toString('utf8'), { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const p = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
      problems.push({ file: yamlFile, line: p.line, col: p.col, path: '(syntax)', message: `expected valid YAML, got ${e.message.split('\n')[0]}` });
    }
    return { problems };
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    const at = firstAlias(doc, lineCounter);
    return { problems: [...problems, { file: yamlFile, ...at, path: '(aliases)', message: `expected at most ${MAX_YAML_ALIASES} alias expansions (aliases that expand to aliases multiply the document), got more` }] };
  }
  const pos = new YamlPositions(yamlFile, doc, lineCounter, raw);

  // duplicate machine names on the raw document, so they are reported alongside schema problems
  const rawMachines = (raw as { machines?: unknown } | null)?.machines;
  if (Array.isArray(rawMachines)) {
    const seen = new Map<string, number>();
    rawMachines.forEach((m: unknown, i) => {
      const n = (m as { name?: unknown } | null)?.name;
      if (typeof n !== 'string') return;
      const first = seen.get(n);
      if (first !== undefined) problems.push(pos.problem(['machines', i, 'name'], `expected a unique machine name, got "${n}" (also machines[${first}].name)`));
      else seen.set(n, i);
    });
  }

  const parsed = LabSchema.safeParse(raw);
  if (!parsed.success) for (const issue of parsed.error.issues) problems.push(...pos.fromZod(issue, (p) => objectKeys(LabSchema, p)));
  const def = parsed.success ? parsed.data : undefined;
  if (def?.id !== undefined && def.id !== id) problems.push(pos.problem(['id'], `expected the folder name "${id}", got "${def.id}"`));
  def?.machines.forEach((m, i) => {
    if (m.kind === 'vm' && !images.has(m.image)) problems.push(pos.problem(['machines', i, 'image'], `expected an image from the image catalog (${images.names().join(', ')}), got "${m.image}"`));
  });

  // instructions are scanned even when lab.yaml has problems (with what can be read from it), so every problem shows at once
  const machineList = def?.machines ?? bestEffortMachines(rawMachines);
  const machines = new Set(machineList.map((m) => m.name));
  const vars = knownVariables({ machines: machineList });
  const checkVars = (path: YamlPath, s: string | undefined, allowed: Set<string>) => {
    for (const m of (s ?? '').matchAll(VARIABLE)) {
      if (!allowed.has(m[1] ?? '')) problems.push(pos.problem(path, `expected one of ${[...allowed].map((v) => `{{${v}}}`).join(', ')}, got {{${m[1]}}}`));
    }
  };
  def?.machines.forEach((m, i) => checkVars(['machines', i, 'userData'], m.userData, knownVariables(def, { instanceOnly: true })));

  // pages and steps
  const rawInstructions = (raw as { instructions?: unknown } | null)?.instructions;
  const listed = def ? def.instructions : Array.isArray(rawInstructions) ? rawInstructions.filter((x): x is string => typeof x === 'string') : undefined;
  const pageNames = listed
    ? listed.map((n) => `instructions/${n}`)
    : [...files.keys()].filter((p) => /^instructions\/[^/]+\.md$/.test(p)).sort();
  if (!pageNames.length) problems.push(pos.problem(['instructions'], 'expected at least one page in instructions/*.md, got nothing'));
  const pages: ValidLab['pages'] = [];
  const steps: ValidLab['steps'] = [];
  const stepAt = new Map<string, { file: string; step: ScannedStep }>();
  pageNames.forEach((name, i) => {
    const body = files.get(name);
    if (!body) {
      problems.push(pos.problem(['instructions', i], `expected an existing file, got "${name.slice(13)}" (no ${name} in the lab folder)`));
      return;
    }
    const file = `${prefix}/${name}`;
    const pageId = name.slice('instructions/'.length, -3);
    const scan = scanPage(body.toString('utf8'), { file, name, knownVariables: vars, files: new Set(files.keys()), machines });
    problems.push(...scan.problems);
    pages.push({ id: pageId, name, title: scan.title ?? pageId });
    for (const s of scan.steps) {
      const prev = stepAt.get(s.id);
      if (prev) {
        problems.push({ file, line: s.line, col: s.col, path: 'step', message: `expected a unique step id, got "{#${s.id}}" (also at ${prev.file}:${prev.step.line}:${prev.step.col})` });
        continue;
      }
      stepAt.set(s.id, { file, step: s });
      steps.push({ id: s.id, pageId, title: s.title });
    }
  });
  problems.push(...checkTranslations({
    files, prefix, pageNames: pageNames.filter((n) => files.has(n)), defaultLanguage: def?.language ?? 'en',
    scan: (text, file, name) => scanPage(text, { file, name, knownVariables: vars, files: new Set(files.keys()), machines }),
  }));
  if (!def) return { problems };

  // grading: step ids, checks
  let checkCount = 0;
  for (const [stepId, g] of Object.entries(def.grading.steps)) {
    const base = ['grading', 'steps', stepId];
    if (!stepAt.has(stepId)) problems.push(pos.problem(base, `expected a step id from the instructions (${[...stepAt.keys()].join(', ') || 'none'}), got "${stepId}"`, { key: true }));
    g.checks.forEach((c, i) => {
      checkCount++;
      const p = [...base, 'checks', i];
      if (c.machine === undefined && def.machines.length > 1) problems.push(pos.problem(p, `expected machine: one of ${[...machines].join(', ')} (the lab has several), got nothing`));
      if (c.machine !== undefined && !machines.has(c.machine)) problems.push(pos.problem([...p, 'machine'], `expected one of ${[...machines].join(', ')}, got "${c.machine}"`));
      if ((c.script === undefined) === (c.command === undefined)) problems.push(pos.problem(p, `expected exactly one of script, command, got ${c.script === undefined ? 'neither' : 'both'}`));
      if (c.script !== undefined && (!c.script.startsWith('checks/') || !files.has(c.script))) problems.push(pos.problem([...p, 'script'], `expected a file under checks/ in the lab folder, got ${describeValue(c.script)}`));
      checkVars([...p, 'command'], c.command, vars);
      checkVars([...p, 'hint'], c.hint, vars);
    });
  }
  if (def.grading.mode === 'checks' && checkCount === 0) problems.push(pos.problem(['grading', 'mode'], 'expected at least one check under grading.steps when mode is checks, got none'));

  if (problems.length) return { problems };
  return { lab: { id, def, pages, steps, files, contentHash: contentHash(files) }, problems };
}

/** Where the first alias (`*name`) of the document is. */
function firstAlias(doc: Document.Parsed, lines: LineCounter): { line: number; col: number } {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  const p = lines.linePos(offset);
  return { line: p.line, col: p.col };
}

/** Machine names, kinds and credentials as far as they can be read from a document that failed the schema. */
function bestEffortMachines(raw: unknown): Array<Pick<MachineYaml, 'name' | 'kind' | 'credentials'>> {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((m: unknown) => {
    const r = (m ?? {}) as { name?: unknown; kind?: unknown; credentials?: unknown };
    if (typeof r.name !== 'string') return [];
    return [{ name: r.name, kind: r.kind === 'container' ? ('container' as const) : ('vm' as const), credentials: r.credentials ? { username: 'x' } : undefined }];
  });
}

/** The keys a strict object in the schema allows at path (for "unknown key" messages). */
function objectKeys(schema: z.ZodTypeAny, path: YamlPath): string[] | undefined {
  const unwrap = (t: z.ZodTypeAny): z.ZodTypeAny => {
    for (;;) {
      if (t instanceof z.ZodEffects) t = t.innerType();
      else if (t instanceof z.ZodDefault) t = t._def.innerType as z.ZodTypeAny;
      else if (t instanceof z.ZodOptional) t = t.unwrap() as z.ZodTypeAny;
      else return t;
    }
  };
  let s = unwrap(schema);
  for (const seg of path) {
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodTypeAny>)[String(seg)] ?? z.never();
    else if (s instanceof z.ZodArray) s = s.element as z.ZodTypeAny;
    else if (s instanceof z.ZodRecord) s = s.valueSchema as z.ZodTypeAny;
    else return undefined;
    s = unwrap(s);
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : undefined;
}
