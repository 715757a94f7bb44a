/**
 * The image catalog: the names a lab's machines use (`image: debian-12`) and, per name, the
 * artifacts each backend runs (a folder of files for QEMU, a containerDisk reference for KubeVirt),
 * built from the same bits. The repository's images/catalog.yaml is the base; an admin's file
 * (config IMAGE_CATALOG, same format) adds names or overrides fields of existing ones.
 *
 * A leaf: the lab layer validates names against it, the backends resolve names through it.
 * Bad catalog files are reported with file:line:col, every problem at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { Conflict, ConfigError } from '../errors.js';

/** The built-in catalog (src/images → ../../images; the same from dist/images). */
export const BUILTIN_CATALOG_FILE = fileURLToPath(new URL('../../images/catalog.yaml', import.meta.url));

/** Image names: lowercase, digits, ".", "_" and "-"; never a path or a registry reference. */
export const IMAGE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface ImageEntry {
  name: string;
  description: string;
  /** Built on this host by `scripts/build-image.sh <recipe>`; absent for an admin's own image. */
  recipe?: string;
  /** For the project's own tests (lab-tiny). */
  testOnly: boolean;
  /** QEMU: the image's folder (absolute, or relative to the image cache). */
  qemu: { dir: string };
  /** KubeVirt: the containerDisk image reference; absent = the image is not available on KubeVirt. */
  kubevirt: { containerDisk?: string };
}

/** Why a name is not an acceptable image name, or undefined when it is. */
export function imageNameProblem(name: string): string | undefined {
  if (name.includes('/') || name.includes('..')) return 'expected an image name from the image catalog, not a path or a registry reference (no "/" or "..")';
  if (!IMAGE_NAME_RE.test(name)) return 'expected an image name (a-z, 0-9, ".", "_" and "-", starting with a letter or digit, at most 63 characters)';
  return undefined;
}

/** The command that builds an image on this host, for error messages and the README. */
export function buildCommand(entry: Pick<ImageEntry, 'name' | 'recipe'>): string | undefined {
  return entry.recipe ? `scripts/build-image.sh ${entry.recipe}` : undefined;
}

/** A lab names an image this host does not have (or a backend cannot run); nothing was started. */
export class ImageMissing extends Conflict {}

export class ImageCatalog {
  private readonly entries: ReadonlyMap<string, ImageEntry>;

  constructor(entries: Iterable<ImageEntry>) {
    this.entries = new Map([...entries].map((e) => [e.name, e]));
  }

  /** The repository's catalog, merged with the admin's file when one is given. Throws ConfigError listing every problem. */
  static load(adminFile?: string): ImageCatalog {
    const base = parseCatalogFile(BUILTIN_CATALOG_FILE);
    if (!adminFile) return new ImageCatalog(base.values());
    return new ImageCatalog(mergeEntries(base, parseCatalogFile(path.resolve(adminFile), base)).values());
  }

  private static builtInCache: ImageCatalog | undefined;
  /** The repository's catalog alone (parsed once). */
  static builtIn(): ImageCatalog {
    ImageCatalog.builtInCache ??= ImageCatalog.load();
    return ImageCatalog.builtInCache;
  }

  /** A copy with one entry added or changed (tests, the KubeVirt stand-in's local references). */
  with(name: string, patch: Partial<Omit<ImageEntry, 'name'>>): ImageCatalog {
    const prev = this.entries.get(name);
    const entry: ImageEntry = { name, description: '', testOnly: false, qemu: { dir: name }, kubevirt: {}, ...prev, ...patch };
    return new ImageCatalog([...[...this.entries.values()].filter((e) => e.name !== name), entry]);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get(name: string): ImageEntry | undefined {
    return this.entries.get(name);
  }

  /** Names labs may use, sorted (test-only images last). */
  names(o: { includeTestOnly?: boolean } = {}): string[] {
    const all = [...this.entries.values()].filter((e) => o.includeTestOnly !== false || !e.testOnly);
    return all.sort((a, b) => Number(a.testOnly) - Number(b.testOnly) || a.name.localeCompare(b.name)).map((e) => e.name);
  }

  /** The entry, or ImageMissing naming the image and the catalog's names. */
  require(name: string): ImageEntry {
    const e = this.entries.get(name);
    if (!e) {
      const msg = `image "${name}" is not in the image catalog (known: ${this.names().join(', ')})`;
      throw new ImageMissing(msg, { publicMessage: `This lab cannot run here: ${msg}.` });
    }
    return e;
  }

  /** KubeVirt's containerDisk reference for the image, or ImageMissing saying how to provide one. */
  kubevirtContainerDisk(name: string): string {
    const e = this.require(name);
    if (e.kubevirt.containerDisk) return e.kubevirt.containerDisk;
    const build = buildCommand(e);
    const how = build
      ? `package it with \`${build} --containerdisk\`, push the archive to your registry and set images.${name}.kubevirt.containerDisk in the IMAGE_CATALOG file (README "Images")`
      : `set images.${name}.kubevirt.containerDisk in the IMAGE_CATALOG file`;
    throw new ImageMissing(`image "${name}" has no KubeVirt containerDisk: ${how}`, {
      publicMessage: `This lab cannot run here: its image "${name}" is not available on this cluster. Tell your administrator.`,
    });
  }
}

type Entries = Map<string, ImageEntry>;
type RawEntry = Partial<Omit<ImageEntry, 'qemu' | 'kubevirt'>> & { qemu?: { dir?: string }; kubevirt?: { containerDisk?: string } };

function mergeEntries(base: Entries, over: Entries): Entries {
  const out = new Map(base);
  for (const [name, e] of over) out.set(name, e);
  return out;
}

/** Parse one catalog file. With `base`, an entry for a name the base has overrides only the fields it sets. */
export function parseCatalogFile(file: string, base?: Entries): Entries {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`image catalog ${file}: cannot read it (${(err as Error).message})`, { cause: err });
  }
  return parseCatalog(text, file, base);
}

export function parseCatalog(text: string, file: string, base?: Entries): Entries {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const problems: string[] = [];
  const at = (p: Array<string | number>, o: { key?: boolean } = {}) => {
    const { line, col } = positionOf(doc, lines, p, o.key);
    return `${file}:${line}:${col} ${p.join('.') || '(document)'}`;
  };
  for (const e of doc.errors) {
    const p = lines.linePos(e.pos[0]);
    problems.push(`${file}:${p.line}:${p.col} (syntax): expected valid YAML, got ${e.message.split('\n')[0]}`);
  }
  const out: Entries = new Map();
  if (!problems.length) readEntries(doc.toJS() as unknown, { at, problems, out, base });
  if (problems.length) throw new ConfigError(`Invalid image catalog:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return out;
}

interface ReadCtx {
  at: (p: Array<string | number>, o?: { key?: boolean }) => string;
  problems: string[];
  out: Entries;
  base?: Entries;
}

const ENTRY_KEYS = new Set(['description', 'recipe', 'testOnly', 'qemu', 'kubevirt']);

function readEntries(raw: unknown, c: ReadCtx): void {
  const doc = raw as { schemaVersion?: unknown; images?: unknown } | null;
  if (!doc || typeof doc !== 'object') return void c.problems.push(`${c.at([])}: expected a map with schemaVersion: 1 and images`);
  if (doc.schemaVersion !== 1) c.problems.push(`${c.at(['schemaVersion'])}: expected 1, got ${JSON.stringify(doc.schemaVersion) ?? 'nothing'}`);
  for (const k of Object.keys(doc)) if (k !== 'schemaVersion' && k !== 'images') c.problems.push(`${c.at([k])}: expected one of schemaVersion, images, got "${k}"`);
  const images = doc.images;
  if (!images || typeof images !== 'object' || Array.isArray(images)) return void c.problems.push(`${c.at(['images'])}: expected a map of image name → entry`);
  for (const [name, v] of Object.entries(images as Record<string, unknown>)) readEntry(name, v, c);
}

function readEntry(name: string, v: unknown, c: ReadCtx): void {
  const p = ['images', name];
  const nameProblem = imageNameProblem(name);
  if (nameProblem) c.problems.push(`${c.at(p, { key: true })}: ${nameProblem}, got "${name}"`);
  if (!v || typeof v !== 'object' || Array.isArray(v)) return void c.problems.push(`${c.at(p)}: expected a map such as { description: ..., recipe: ... }`);
  const r = v as RawEntry & Record<string, unknown>;
  for (const k of Object.keys(r)) if (!ENTRY_KEYS.has(k)) c.problems.push(`${c.at([...p, k])}: expected one of ${[...ENTRY_KEYS].join(', ')}, got "${k}"`);
  const str = (key: string, val: unknown, re?: RegExp, what = 'a string') => {
    if (val === undefined || (typeof val === 'string' && val.length > 0 && val.length <= 300 && (!re || re.test(val)))) return;
    c.problems.push(`${c.at([...p, ...key.split('.')])}: expected ${what}, got ${JSON.stringify(val)}`);
  };
  str('description', r.description);
  str('recipe', r.recipe, IMAGE_NAME_RE, 'a recipe name (scripts/images/<recipe>.recipe or lab-tiny)');
  if (r.testOnly !== undefined && typeof r.testOnly !== 'boolean') c.problems.push(`${c.at([...p, 'testOnly'])}: expected true or false, got ${JSON.stringify(r.testOnly)}`);
  for (const [key, allowed] of [['qemu', 'dir'], ['kubevirt', 'containerDisk']] as const) {
    const sub = r[key] as Record<string, unknown> | undefined;
    if (sub === undefined || sub === null) continue;
    if (typeof sub !== 'object' || Array.isArray(sub)) { c.problems.push(`${c.at([...p, key])}: expected a map such as { ${allowed}: ... }`); continue; }
    for (const k of Object.keys(sub)) if (k !== allowed) c.problems.push(`${c.at([...p, key, k])}: expected ${allowed}, got "${k}"`);
  }
  str('qemu.dir', r.qemu?.dir, /^[^\0]+$/, 'a folder path');
  str('kubevirt.containerDisk', r.kubevirt?.containerDisk, /^[a-z0-9][\w.\-/:@]*$/i, 'a container image reference such as registry.example.edu/labs/debian-12:1');
  const prev = c.base?.get(name);
  c.out.set(name, {
    name,
    description: r.description ?? prev?.description ?? '',
    ...((r.recipe ?? prev?.recipe) ? { recipe: r.recipe ?? prev?.recipe } : {}),
    testOnly: r.testOnly ?? prev?.testOnly ?? false,
    qemu: { dir: r.qemu?.dir ?? prev?.qemu.dir ?? name },
    kubevirt: { ...(prev?.kubevirt ?? {}), ...(r.kubevirt?.containerDisk ? { containerDisk: r.kubevirt.containerDisk } : {}) },
  });
}

/** Line and column of the node at path (with key: of its map key), or of its deepest existing ancestor. */
function positionOf(doc: Document.Parsed, lines: LineCounter, p: Array<string | number>, key = false): { line: number; col: number } {
  let node: unknown = doc.contents;
  let offset = isNode(node) ? (node.range?.[0] ?? 0) : 0;
  for (const [i, seg] of p.entries()) {
    if (!isMap(node)) break;
    const pair = node.items.find((it) => isNode(it.key) && (it.key as { value?: unknown }).value === seg);
    if (!pair) break;
    node = pair.value;
    const atKey = key && i === p.length - 1;
    const r = isNode(pair.value) && !atKey ? pair.value.range : isNode(pair.key) ? pair.key.range : undefined;
    if (r) offset = r[0];
  }
  return lines.linePos(offset);
}
