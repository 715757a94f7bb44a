/**
 * The lab catalog (implements LabDefinitions): versions of validated labs in the database.
 * Start-up imports templates/; admins add, update and remove labs at run time. Versions are
 * immutable, so their parsed form and rendered instructions are cached in memory by version. Which
 * version is a lab's newest is remembered for a few seconds (a class launching at once reads it
 * once, and FerretDB answers that query only by scanning the lab versions): an add or a removal here
 * forgets it at once; one on another replica is seen here within HEAD_TTL_MS.
 */
import type { BackendKind } from '../../backends/types.js';
import { Conflict, NotFound } from '../../errors.js';
import { ImageCatalog } from '../../images/ImageCatalog.js';
import type { Logger } from '../../logger.js';
import { isDuplicateKey } from '../../store/database.js';
import { insertLabVersion, LabDefinition, type LabDefinitionDoc } from '../../store/LabDefinition.js';
import type { InstanceMachines, InstructionVariables, LabChecks, LabDefinitions, LabSummary, PreparedLab, RenderedInstructions } from '../contracts.js';
import { fillChecks, resolveChecks } from './checks.js';
import { flatVariables, prepareLab } from './prepare.js';
import { validateDir } from './readLabs.js';
import { pickLanguage } from '../../i18n.js';
import { scanPage, type ScannedStep } from './scanInstructions.js';
import { translatedPath, translationLanguages } from './translations.js';
import { fillInstructions, renderTemplate } from './render.js';
import { quantityMiB, type LabYaml } from './schema.js';
import type { ValidLab } from './validateLab.js';

export function summaryOf(lab: ValidLab, version: string): LabSummary {
  const d = lab.def;
  const machines = d.machines.map((m) => ({
    name: m.name,
    kind: m.kind,
    cpus: m.cpus,
    memoryMiB: quantityMiB(m.memory),
    consoles: m.consoles ?? (m.kind === 'vm' ? ['serial', 'vnc'] : ['terminal']),
  }));
  return {
    id: lab.id,
    version,
    title: d.title,
    description: d.description,
    tags: d.tags,
    durationMinutes: d.durationMinutes,
    machines,
    resources: { cpus: machines.reduce((n, m) => n + m.cpus, 0), memoryMiB: machines.reduce((n, m) => n + m.memoryMiB, 0) },
    grading: { mode: d.grading.mode, maxScore: d.grading.maxScore },
    lifetime: { ...d.lifetime },
  };
}

const HEAD_TTL_MS = 5_000;

type Version = Pick<LabDefinitionDoc, '_id' | 'labId' | 'version' | 'definition' | 'pages' | 'steps' | 'files' | 'summary'>;

export class LabCatalog implements LabDefinitions {
  private readonly log: Logger;
  private readonly versions = new Map<string, Promise<Version>>();
  private readonly rendered = new Map<string, RenderedInstructions>();
  private readonly checkCache = new Map<string, LabChecks>();
  /** Each lab's newest version (or none) as read last, and until when it counts. */
  private readonly heads = new Map<string, { until: number; summary: Promise<LabSummary | undefined> }>();

  /** The image catalog labs are validated against and their machines' images resolved through. */
  readonly images: ImageCatalog;

  constructor(o: { log: Logger; images?: ImageCatalog }) {
    this.log = o.log;
    this.images = o.images ?? ImageCatalog.builtIn();
  }

  /** Import every valid lab under dir; invalid ones are logged with every message and skipped. */
  async importDir(dir: string, display: string): Promise<{ imported: Array<{ id: string; version: string; created: boolean }>; invalid: string[]; problems: string[] }> {
    const res = await validateDir(dir, display, this.images);
    if (res.problems.length) this.log.warn({ dir, invalid: res.invalid, problems: res.problems }, 'labs.invalid_skipped');
    const imported = [];
    for (const lab of res.labs) {
      try {
        imported.push({ id: lab.id, ...(await this.add(lab, { source: 'templates', owner: null })) });
      } catch (err) {
        if (!(err instanceof Conflict)) throw err;
        this.log.warn({ lab: lab.id, err: err.message }, 'labs.template_skipped');
      }
    }
    this.log.info({ dir, labs: imported.map((l) => `${l.id}@${l.version}${l.created ? ' (new)' : ''}`) }, 'labs.imported');
    return { imported, invalid: res.invalid, problems: res.problems };
  }

  /**
   * Store a validated lab. Same content as the newest version = no new version (an admin add also
   * makes a removed lab startable again); otherwise version n+1. Safe under concurrent calls.
   * A lab keeps the owner of its first version (null: the operator's; else a platform's id): an
   * add by another owner is a Conflict (who may add is decided by auth/tenancy.ts beforehand).
   */
  async add(lab: ValidLab, o: { source: 'templates' | 'admin'; owner?: string | null }): Promise<{ version: string; created: boolean }> {
    try {
      return await this.store(lab, o);
    } finally {
      this.heads.delete(lab.id);
    }
  }

  private async store(lab: ValidLab, o: { source: 'templates' | 'admin'; owner?: string | null }): Promise<{ version: string; created: boolean }> {
    const owner = o.owner ?? null;
    for (let attempt = 0; ; attempt++) {
      const newest = await LabDefinition.findOne({ labId: lab.id }, { seq: 1, version: 1, contentHash: 1, removedAt: 1, owner: 1 }).sort({ seq: -1 }).lean();
      if (newest && (newest.owner ?? null) !== owner) throw new Conflict(`lab ${lab.id} has another owner`, { publicMessage: `The lab id "${lab.id}" is taken; choose another one.` });
      if (newest && newest.contentHash === lab.contentHash) {
        if (newest.removedAt && o.source === 'admin') await LabDefinition.updateOne({ _id: newest._id }, { $set: { removedAt: null } });
        return { version: newest.version, created: false };
      }
      const seq = (newest?.seq ?? 0) + 1;
      const version = String(seq);
      try {
        await insertLabVersion({
          _id: `${lab.id}@${version}`,
          labId: lab.id,
          version,
          seq,
          contentHash: lab.contentHash,
          definition: lab.def as unknown as Record<string, unknown>,
          summary: { ...summaryOf(lab, version), owner },
          pages: lab.pages,
          steps: lab.steps,
          files: [...lab.files].map(([path, data]) => ({ path, data })),
          source: o.source,
          owner,
          removedAt: null,
        });
        this.log.info({ lab: lab.id, version, source: o.source }, 'labs.version_added');
        return { version, created: true };
      } catch (err) {
        if (!isDuplicateKey(err) || attempt >= 4) throw err;
      }
    }
  }

  /** No longer startable; versions stay for running instances. Throws NotFound for an unknown lab. */
  async remove(labId: string): Promise<void> {
    const n = await LabDefinition.countDocuments({ labId });
    if (!n) throw new NotFound(`lab ${labId} not found`, { publicMessage: `No lab "${labId}".` });
    await LabDefinition.updateMany({ labId, removedAt: null }, { $set: { removedAt: new Date() } });
    this.heads.delete(labId);
    this.log.info({ lab: labId }, 'labs.removed');
  }

  async list(): Promise<LabSummary[]> {
    const rows = await LabDefinition.find({}, { labId: 1, seq: 1, summary: 1, removedAt: 1 }).sort({ labId: 1, seq: -1 }).lean();
    const newest = new Map<string, (typeof rows)[number]>();
    for (const r of rows) if (!newest.has(r.labId)) newest.set(r.labId, r);
    return [...newest.values()].filter((r) => !r.removedAt).map((r) => r.summary);
  }

  latest(labId: string): Promise<LabSummary | undefined> {
    const now = Date.now();
    const known = this.heads.get(labId);
    if (known && known.until > now) return known.summary;
    const summary = LabDefinition.findOne({ labId }, { summary: 1, removedAt: 1 }).sort({ seq: -1 }).lean()
      .then((r) => (r && !r.removedAt ? r.summary : undefined));
    const head = { until: now + HEAD_TTL_MS, summary };
    this.heads.set(labId, head);
    // a failed read is not remembered
    summary.catch(() => { if (this.heads.get(labId) === head) this.heads.delete(labId); });
    if (this.heads.size > 10_000) this.heads.delete(this.heads.keys().next().value!);
    return summary;
  }

  /** Every version of every lab, newest first, for the admin API. */
  async versionsOf(labId?: string): Promise<Array<{ id: string; version: string; title: string; source: string; owner: string | null; createdAt: Date; removedAt: Date | null }>> {
    const rows = await LabDefinition.find(labId ? { labId } : {}, { labId: 1, version: 1, seq: 1, summary: 1, source: 1, owner: 1, createdAt: 1, removedAt: 1 }).sort({ labId: 1, seq: -1 }).lean();
    return rows.map((r) => ({ id: r.labId, version: r.version, title: r.summary.title, source: r.source, owner: r.owner ?? null, createdAt: r.createdAt, removedAt: r.removedAt }));
  }

  /** The owner of a lab (its first version's): null for the operator's, a platform id, or undefined for no such lab. */
  async ownerOf(labId: string): Promise<string | null | undefined> {
    const r = await LabDefinition.findOne({ labId }, { owner: 1 }).sort({ seq: -1 }).lean();
    return r ? (r.owner ?? null) : undefined;
  }

  private version(labId: string, version: string): Promise<Version> {
    const key = `${labId}@${version}`;
    let p = this.versions.get(key);
    if (!p) {
      p = LabDefinition.findById(key, { labId: 1, version: 1, definition: 1, pages: 1, steps: 1, files: 1, summary: 1 })
        .lean()
        .then((d) => {
          if (!d) throw new NotFound(`lab ${key} not found`, { publicMessage: `No lab "${labId}" version ${version}.` });
          return d as Version;
        });
      this.versions.set(key, p);
      p.catch(() => this.versions.delete(key));
    }
    return p;
  }

  async prepare(labId: string, version: string, existing: InstanceMachines, opts: { backend?: BackendKind } = {}): Promise<PreparedLab> {
    const v = await this.version(labId, version);
    return prepareLab(labId, version, v.definition as unknown as LabYaml, existing, opts.backend, this.images);
  }

  async instructions(labId: string, version: string, vars: InstructionVariables, languages: ReadonlyArray<string | undefined> = []): Promise<RenderedInstructions> {
    const v = await this.version(labId, version);
    const def = v.definition as unknown as LabYaml;
    const defaultLanguage = def.language ?? 'en';
    const language = pickLanguage(languages, [defaultLanguage, ...translationLanguages(v.files.map((f) => f.path))], defaultLanguage);
    const key = `${labId}@${version}#${language}`;
    let t = this.rendered.get(key);
    if (!t) {
      const text = (name: string) => bytes(v.files.find((f) => f.path === name)?.data).toString('utf8');
      const translated = language !== defaultLanguage;
      const pages = v.pages.map((p) => {
        if (!translated) return { id: p.id, title: p.title, markdown: text(p.name), steps: [] as ScannedStep[] };
        const markdown = text(translatedPath(p.name, language));
        const scan = scanPage(markdown, { file: p.name, name: p.name, knownVariables: new Set(), files: new Set(), machines: new Set() });
        return { id: p.id, title: scan.title ?? p.title, markdown, steps: scan.steps };
      });
      const stepTitle = new Map(pages.flatMap((p) => p.steps.map((s) => [s.id, s.title] as const)));
      t = {
        ...renderTemplate({
          labId,
          version,
          title: def.title,
          pages: pages.map(({ id, title, markdown }) => ({ id, title, markdown })),
          steps: v.steps.map((s) => ({ ...s, title: stepTitle.get(s.id) ?? s.title })),
          grading: def.grading,
        }),
        language,
      };
      this.rendered.set(key, t);
    }
    return fillInstructions(t, flatVariables({ user: vars.user, lab: { title: vars.lab.title ?? t.title, expires: vars.lab.expires }, machines: vars.machines }));
  }

  /**
   * The automatic checks of labId@version, scripts resolved to their content (used as they are).
   * With vars, commands and hints are filled in for one instance; without, they keep their
   * `{{variables}}` (the check runner fills them per run). Throws NotFound.
   */
  async checks(labId: string, version: string, vars?: InstructionVariables): Promise<LabChecks> {
    const key = `${labId}@${version}`;
    let c = this.checkCache.get(key);
    if (!c) {
      const v = await this.version(labId, version);
      c = resolveChecks(v.definition as unknown as LabYaml, v.steps.map((s) => s.id), (p) => {
        const f = v.files.find((x) => x.path === p);
        return f ? bytes(f.data) : undefined;
      });
      this.checkCache.set(key, c);
    }
    if (!vars) return c;
    return fillChecks(c, flatVariables({ user: vars.user, lab: { title: vars.lab.title ?? c.title, expires: vars.lab.expires }, machines: vars.machines }));
  }

  /** A file from the lab's media/ folder (exact stored path only). Throws NotFound. */
  async media(labId: string, version: string, rel: string): Promise<Buffer> {
    const v = await this.version(labId, version);
    const f = v.files.find((x) => x.path === `media/${rel}`);
    if (!f) throw new NotFound(`media ${labId}@${version}/${rel} not found`, { publicMessage: 'No such media file.' });
    return bytes(f.data);
  }
}

/** A stored file's bytes: a Buffer from mongoose documents, a BSON Binary from lean() reads. */
function bytes(data: unknown): Buffer {
  if (data === undefined || data === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data);
  const bin = data as { buffer?: Uint8Array; position?: number };
  if (bin.buffer instanceof Uint8Array) return Buffer.from(bin.buffer.subarray(0, bin.position ?? bin.buffer.length));
  throw new Error('unexpected stored file data');
}
