/** What the API returns (mirrors src/http/routes/labApi.ts). */
export type ChannelKind = 'vnc' | 'console';
export type MachinePhase = 'pending' | 'booting' | 'running' | 'paused' | 'stopped' | 'gone' | 'failed';
export type InstanceState = 'requested' | 'provisioning' | 'running' | 'paused' | 'stopped' | 'expired' | 'destroyed' | 'failed';

export interface Progress { phase: string; percent: number; message: string }

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
  lifetime: { maxMinutes: number; idleMinutes: number; pausable: boolean; warnBeforeMinutes: number } | null;
  mode: 'control' | 'view';
  viewer: { name: string | null; role: string };
  owner?: { userId: string; name: string | null };
  machines: Array<{ name: string; channels: ChannelKind[]; status: { phase: MachinePhase; reason?: string } }>;
  instructions: {
    title: string;
    pages: Array<{ id: string; title: string; html: string }>;
    steps: Array<{ id: string; pageId: string; title: string; weight: number; hasChecks: boolean }>;
    grading: { mode: 'steps' | 'checks'; maxScore: number };
  } | null;
  steps: Record<string, string>;
  stepProgress: StepProgress | null;
}

export interface StepProgress { ticked: number; total: number; percent: number; score: number; maxScore: number }

export type LabEvent =
  | { type: 'hello' }
  | { type: 'progress'; instanceId: string; progress: Progress }
  | { type: 'state'; instanceId: string; state: InstanceState; reason?: string }
  | { type: 'machines'; instanceId: string; machines: Record<string, { phase: MachinePhase }> }
  | { type: 'expiry-warning'; instanceId: string; expiresAt: string }
  | { type: 'steps'; instanceId: string; steps: Record<string, string> }
  | { type: 'check'; instanceId: string; stepId: string; passed: boolean; hint?: string; at: string };
