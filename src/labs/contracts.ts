/**
 * Contracts between the lab layers, agreed up front so they can be built in parallel:
 *
 *   LTI launch ──ensureInstance/start──▶ LabService ──prepare()──▶ LabDefinitions (catalog)
 *        │                                   │  └──provision/openChannel──▶ LabBackend
 *        └── deep linking: LabDefinitions.list()      └──subscribe()──▶ lab page (SSE/ws)
 *
 * src/labs/definition/ implements LabDefinitions; src/labs/LabService.ts implements LabRuntime.
 * Only types live here.
 */
import type { Duplex } from 'node:stream';
import type { BackendKind, BackendLabSpec, ChannelKind, ExecResult, MachineStatus, Progress } from '../backends/types.js';
import type { InstanceState, LabInstanceDoc, LabInstanceKey } from '../store/LabInstance.js';
import type { StepScore } from './score.js';

/** What the deep-linking catalog and the API show about a lab (no secrets, no instructions). */
export type { LabSummary, LabLifetime } from '../store/LabDefinition.js';
import type { LabSummary, LabLifetime } from '../store/LabDefinition.js';


/** Per-instance machine variables: generated or fixed credentials. Stored on LabInstance.machines. */
export type InstanceMachines = Record<string, {
  username?: string;
  password?: string;
  /** Where the lab's other machines reach it ({{machines.NAME.ip}}): as the backend reported it once provisioned (before that, the QEMU convention 10.10.0.11, .12, … by machine order). */
  ip?: string;
  /** A name that resolves to it inside the lab ({{machines.NAME.host}}), as the backend reported it. */
  host?: string;
}>;

/** Everything the runtime needs to run one instance of one lab version. */
export interface PreparedLab {
  spec: BackendLabSpec;
  lifetime: LabLifetime;
  /** Credentials per machine: the `existing` ones passed in are kept; missing ones are generated. The caller persists them. */
  machines: InstanceMachines;
}

/** The lab catalog as the rest of the tool sees it (implemented by src/labs/definition/). */
export interface LabDefinitions {
  list(): Promise<LabSummary[]>;
  /** Latest (startable) version, or undefined when the lab does not exist or was removed. */
  latest(labId: string): Promise<LabSummary | undefined>;
  /**
   * Build the backend spec for an instance of labId@version (a removed lab's old versions still resolve for running instances). Throws NotFound.
   * opts.backend picks each VM's image for that backend (Conflict when the lab has none for it); without it, the qemu image, else the kubevirt one.
   */
  prepare(labId: string, version: string, existing: InstanceMachines, opts?: { backend?: BackendKind }): Promise<PreparedLab>;
  /**
   * The instructions of labId@version rendered (sanitized HTML) with this instance's variables filled in, in the first of
   * `languages` the lab has (else its default language). Throws NotFound.
   */
  instructions(labId: string, version: string, vars: InstructionVariables, languages?: ReadonlyArray<string | undefined>): Promise<RenderedInstructions>;
  /**
   * The automatic checks of labId@version, scripts resolved to their content (used as they are); with vars, commands and
   * hints are filled in for that instance. Throws NotFound. Optional so stand-in catalogs need not implement it.
   */
  checks?(labId: string, version: string, vars?: InstructionVariables): Promise<LabChecks>;
}

/** One automatic check as the runner needs it (src/labs/checks/). */
export interface ResolvedCheck {
  /** Position in the step's list; results are stored under (stepId, index). */
  index: number;
  /** The machine to run on (filled in when the lab has one machine). */
  machine: string;
  /** The program run with sh on the machine: the lab's `command` (templated), or the content of its `script` (as it is). */
  command: string;
  /** For one instance (LabDefinitions.checks with variables): the values its `${LAB_…}` references stand for. */
  env?: Record<string, string>;
  /** The script file it came from (checks/x.sh), if any. */
  script?: string;
  timeoutSeconds: number;
  hint?: string;
  /** The check's own weight inside its step. */
  weight: number;
}

export interface StepChecks {
  stepId: string;
  checks: ResolvedCheck[];
}

export interface LabChecks {
  /** The lab's title ({{lab.title}} in hints). */
  title: string;
  mode: 'steps' | 'checks';
  maxScore: number;
  /** Run the checks in the background this often, when set. */
  checkEverySeconds?: number;
  /** Only steps that have at least one check, in definition order. */
  steps: StepChecks[];
}

/** One check's outcome as the lab page shows it (no output: that is for the teacher). */
export interface CheckOutcome {
  index: number;
  machine: string;
  passed: boolean;
  timedOut: boolean;
  /** Filled-in hint, only when the check failed. */
  hint?: string;
  at: string;
  /** When it first passed (a passed check keeps counting for the grade). */
  passedAt?: string;
}

/** Variables an instruction page may use: {{user.name}}, {{machines.web.username}}, {{machines.web.password}}, {{lab.expires}}, {{lab.title}}. */
export interface InstructionVariables {
  user: { name: string };
  machines: InstanceMachines;
  lab: { expires: string; title?: string };
}

export interface RenderedStep {
  /** Unique in the lab; ticks and checks are stored under it. */
  id: string;
  pageId: string;
  title: string;
  weight: number;
  /** Automatic checks exist for this step (grading mode `checks`). */
  hasChecks: boolean;
}

export interface RenderedInstructions {
  labId: string;
  version: string;
  title: string;
  /** Sanitized HTML per page. Steps carry `data-step-id`; code blocks carry `data-machine` when they may be sent to a machine; media URLs are absolute paths under /labs/:id/:version/media/. */
  pages: Array<{ id: string; title: string; html: string }>;
  steps: RenderedStep[];
  grading: { mode: 'steps' | 'checks'; maxScore: number };
  /** The language the pages are in (the lab's default language or one of its translations). */
  language?: string;
}

/** What LabService pushes to subscribers (the lab page). */
export type LabEvent =
  | { type: 'progress'; instanceId: string; progress: Progress }
  | { type: 'state'; instanceId: string; state: InstanceState; reason?: string }
  | { type: 'machines'; instanceId: string; machines: Record<string, MachineStatus> }
  | { type: 'expiry-warning'; instanceId: string; expiresAt: string }
  | { type: 'steps'; instanceId: string; steps: Record<string, string> }
  /** The student raised (or the student or a teacher lowered) a hand. */
  | { type: 'hand'; instanceId: string; raised: boolean; message?: string; at: string }
  /** A teacher's message to this lab's student, or to the whole course. */
  | { type: 'message'; instanceId: string; id: string; from: string; text: string; at: string; toAll: boolean }
  /** A teacher asked to take control, the student accepted or declined, or the take-over ended. `by`: the teacher's user id. */
  | { type: 'takeover'; instanceId: string; state: 'requested' | 'active' | 'declined' | 'ended'; by: string; name: string; at: string }
  | {
      type: 'check'; instanceId: string; stepId: string; passed: boolean; hint?: string; at: string;
      /** Every check of the step (added by the check runner). */
      checks?: CheckOutcome[];
      /** The lab's score from checks after this run (grading mode `checks`). */
      score?: { given: number; max: number; complete: boolean };
    };

export type InstanceKey = LabInstanceKey;

/** The runtime (src/labs/LabService.ts) as the LTI launch and the lab page use it. */
export interface LabRuntime {
  /** Exactly one instance per (activity, user), even under concurrent calls. */
  ensureInstance(key: InstanceKey): Promise<LabInstanceDoc>;
  /**
   * Start (or restart a finished) instance; returns at once, provisioning runs in the background. Idempotent.
   * `current`: the record as the caller just read or wrote it, so start() need not read it again.
   */
  start(instanceId: string, current?: LabInstanceDoc): Promise<LabInstanceDoc>;
  get(instanceId: string): Promise<LabInstanceDoc | undefined>;
  /** Why this deployment can never run the lab (its backend lacks a machine kind), or null. */
  unavailableReason?(lab: Pick<LabSummary, 'machines'>): string | null;
  pause(instanceId: string): Promise<void>;
  resume(instanceId: string): Promise<void>;
  stop(instanceId: string): Promise<void>;
  reset(instanceId: string, machine?: string): Promise<void>;
  destroy(instanceId: string): Promise<void>;
  status(instanceId: string): Promise<Record<string, MachineStatus>>;
  /** A raw byte stream to a machine of a running instance. Throws NotFound/Conflict with a message the page can show. */
  openChannel(instanceId: string, machine: string, channel: ChannelKind): Promise<Duplex>;
  /** A small PNG of a machine's screen (LabBackend.screenshot). Throws NotFound/Conflict (no screen, not running, no backend support). */
  screenshot?(instanceId: string, machine: string): Promise<Buffer>;
  /** The last console bytes of a machine from what the backend keeps (LabBackend.consoleHistory), or null. */
  consoleHistory?(instanceId: string, machine: string, maxBytes: number): Promise<Buffer | null>;
  /** Run a command on a machine; `env` holds values the command refers to (never spliced into its text). */
  exec?(instanceId: string, machine: string, command: string, opts: { timeoutMs: number; maxOutputBytes: number; env?: Record<string, string> }): Promise<ExecResult>;
  /** User input seen on a channel (resets the idle timer; throttled internally). */
  noteActivity(instanceId: string): void;
  /** Live events for one instance; returns the unsubscribe function. */
  subscribe(instanceId: string, listener: (e: LabEvent) => void): () => void;
  /** Publish an event to the instance's subscribers. */
  emit(event: LabEvent): void;
  /** Tick or untick a step (serialized with the instance's other writes); publishes the event and, in steps mode, the score. */
  tickStep(instanceId: string, stepId: string, done: boolean, lab: Pick<RenderedInstructions, 'steps' | 'grading'>): Promise<StepTickResult>;
}

/** What a step tick did: the instance after it, whether anything changed, all ticks (ISO times), the derived score. */
export interface StepTickResult {
  inst: LabInstanceDoc;
  changed: boolean;
  ticks: Record<string, string>;
  score: StepScore;
}
