/** What the API returns (mirrors src/http/routes/labApi.ts). */
export type ChannelKind = 'vnc' | 'console';
export type MachinePhase = 'pending' | 'booting' | 'running' | 'paused' | 'stopped' | 'gone' | 'failed';
export type InstanceState = 'requested' | 'provisioning' | 'running' | 'paused' | 'stopped' | 'expired' | 'destroyed' | 'failed';

/** `message` is the server's words in the page's language; queuePosition is set while waiting for capacity (1 = next). */
export interface Progress { phase: string; percent: number; message: string; queuePosition?: number }

export interface InstanceView {
  id: string;
  labId: string;
  title: string;
  state: InstanceState;
  failureReason: string | null;
  progress: Progress | null;
  startedAt: string | null;
  expiresAt: string | null;
  serverTime: string;
  lifetime: { maxMinutes: number; idleMinutes: number; pausable: boolean; warnBeforeMinutes: number; keepDays?: number } | null;
  /** Stopping keeps the disks this many days; a stopped lab's student is warned from `warnAt` on. */
  keep?: { days: number; warnAt: string | null; storageGiB: number | null };
  mode: 'control' | 'view';
  viewer: { userId: string; name: string | null; role: string };
  owner?: { userId: string; name: string | null };
  /** For teachers: the course, to go back to its overview. */
  contextId?: string;
  machines: Array<{ name: string; channels: ChannelKind[]; status: { phase: MachinePhase; reason?: string } }>;
  instructions: {
    title: string;
    pages: Array<{ id: string; title: string; html: string }>;
    steps: Array<{ id: string; pageId: string; title: string; weight: number; hasChecks: boolean }>;
    grading: { mode: 'steps' | 'checks'; maxScore: number };
    /** The language the pages are in. */
    language?: string;
  } | null;
  steps: Record<string, string>;
  stepProgress: StepProgress | null;
  /** Latest results of the automatic checks (labs with checks). */
  checks?: ChecksView | null;
  /** The student's raised hand, if any. */
  hand?: HandView | null;
  /** The teacher's recent messages to this lab or the whole course, oldest first. */
  messages?: ClassMessage[];
  /** A teacher's take-over of this lab: asked for, or active since the student accepted. */
  takeover?: { state: 'requested' | 'active'; by: string; name: string; requestedAt: string; since: string | null } | null;
  /** Every take-over of this lab (who, from, until; null while it lasts). */
  takeovers?: Array<{ name: string; from: string; to: string | null }>;
}

export interface HandView { message: string; raisedAt: string }
export interface ClassMessage { id: string; from: string; text: string; at: string; toAll: boolean }

/** One check's result (output and exit code only for a teacher). */
export interface CheckOutcome { index: number; machine: string; passed: boolean; timedOut: boolean; hint?: string; at: string; passedAt?: string; output?: string; exitCode?: number | null }
export interface StepChecksView { passed: boolean; at: string | null; checks: CheckOutcome[] }
export interface CheckScore { given: number; max: number; complete: boolean }
export interface ChecksView { mode: 'steps' | 'checks'; steps: Record<string, StepChecksView>; score: CheckScore & { passed: number; total: number } }
/** POST /api/instances/:id/steps/:stepId/check */
export interface StepRun { stepId: string; passed: boolean; at: string; checks: CheckOutcome[]; score?: CheckScore }

export interface StepProgress { ticked: number; total: number; percent: number; score: number; maxScore: number }

export type LabEvent =
  | { type: 'hello' }
  | { type: 'progress'; instanceId: string; progress: Progress }
  | { type: 'state'; instanceId: string; state: InstanceState; reason?: string }
  | { type: 'machines'; instanceId: string; machines: Record<string, { phase: MachinePhase }> }
  | { type: 'expiry-warning'; instanceId: string; expiresAt: string }
  | { type: 'steps'; instanceId: string; steps: Record<string, string> }
  | { type: 'check'; instanceId: string; stepId: string; passed: boolean; hint?: string; at: string; checks?: CheckOutcome[]; score?: CheckScore }
  | { type: 'hand'; instanceId: string; raised: boolean; message?: string; at: string }
  | ({ type: 'message'; instanceId: string } & ClassMessage)
  | { type: 'takeover'; instanceId: string; state: 'requested' | 'active' | 'declined' | 'ended'; by: string; name: string; at: string };
