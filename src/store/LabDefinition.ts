/**
 * Versions of lab definitions. One document per (lab, version); a version is immutable once
 * written (instances keep the version they started with), so its files are stored with it.
 * Versions are numbered per lab ("1", "2", …); unchanged content (same contentHash) never makes a
 * new one. `removedAt` on the newest version means the lab can no longer be started; older
 * versions still resolve for running instances.
 */
import mongoose, { Schema } from 'mongoose';

/** A lab version as the catalog lists it (persisted with the version, so the store owns the shape). */
export interface LabSummary {
  id: string;
  version: string;
  title: string;
  description: string;
  tags: string[];
  /** Estimated time for a student, minutes. */
  durationMinutes: number;
  machines: Array<{ name: string; kind: 'vm' | 'container'; cpus: number; memoryMiB: number; consoles: string[] }>;
  /** Sum over machines, for "estimated resources". */
  resources: { cpus: number; memoryMiB: number };
  grading: { mode: 'steps' | 'checks'; maxScore: number };
  lifetime: LabLifetime;
  /** The platform (our id) whose lab this is; null or absent: the operator's, for every platform. */
  owner?: string | null;
}

export interface LabLifetime {
  /** Limit of one sitting, from start or continue: then the lab is stopped (pausable) or ended. */
  maxMinutes: number;
  /** No user input on any console/desktop channel for this long → the lab is stopped (or expired if not pausable). */
  idleMinutes: number;
  /** May be paused and resumed later. */
  pausable: boolean;
  /** A warning event is sent this long before expiry. */
  warnBeforeMinutes: number;
  /** Days a stopped lab keeps its machines' disks (unset in definitions stored before it existed: the default). */
  keepDays?: number;
}

export interface LabDefinitionDoc {
  /** `${labId}@${version}` — unique, so concurrent imports of the same version cannot both win. */
  _id: string;
  labId: string;
  version: string;
  seq: number;
  contentHash: string;
  /** The parsed lab.yaml with defaults (LabYaml). */
  definition: Record<string, unknown>;
  summary: LabSummary;
  pages: Array<{ id: string; name: string; title: string }>;
  steps: Array<{ id: string; pageId: string; title: string }>;
  files: Array<{ path: string; data: Buffer }>;
  /** Whose lab: a platform's id, or null for the operator's (every platform may use it). Fixed by the first version. */
  owner?: string | null;
  /** Where it came from: "templates" (start-up import) or "admin". */
  source: string;
  removedAt: Date | null;
  createdAt: Date;
}

const schema = new Schema<LabDefinitionDoc>(
  {
    _id: { type: String, required: true },
    labId: { type: String, required: true },
    version: { type: String, required: true },
    seq: { type: Number, required: true },
    contentHash: { type: String, required: true },
    definition: { type: Schema.Types.Mixed, required: true },
    summary: { type: Schema.Types.Mixed, required: true },
    pages: { type: Schema.Types.Mixed, default: [] },
    steps: { type: Schema.Types.Mixed, default: [] },
    // an empty file is content too (mongoose's `required` would refuse a zero-length Buffer)
    files: [{ _id: false, path: { type: String, required: true }, data: { type: Buffer, default: () => Buffer.alloc(0) } }],
    source: { type: String, default: 'templates' },
    owner: { type: String, default: null },
    removedAt: { type: Date, default: null },
  },
  { timestamps: { createdAt: true, updatedAt: false }, minimize: false, versionKey: false },
);
schema.index({ labId: 1, seq: -1 });

export const LabDefinition = mongoose.model<LabDefinitionDoc>('LabDefinition', schema);

/**
 * Insert one version. Through the driver, not a mongoose document: casting a thousand file
 * subdocuments (and cloning their bytes) held the event loop for most of a second on an 8 MiB lab.
 * Throws the driver's duplicate-key error when the version exists.
 */
export async function insertLabVersion(doc: Omit<LabDefinitionDoc, 'createdAt'>): Promise<void> {
  await LabDefinition.collection.insertOne({ ...doc, createdAt: new Date() } as never);
}
