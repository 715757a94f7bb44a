/**
 * The LabBackend contract and its value types: the only thing src/labs/ imports from backends.
 * Two implementations: QemuBackend (local VMs) and KubeVirtBackend (one namespace per lab).
 *
 * The lab layer turns a lab definition (src/labs/) into a BackendLabSpec; backends never read
 * lab.yaml themselves. Every method is safe to call again (idempotent) and never adopts
 * resources it did not create.
 */
import type { Duplex } from 'node:stream';

export type BackendKind = 'qemu' | 'kubevirt';

/** A VM disk's size when lab.yaml names none (GiB): KubeVirt requests it; a QEMU overlay grows at most to its image's size. */
export const DEFAULT_DISK_GIB = 10;
export type ChannelKind = 'vnc' | 'console';

/** One machine as a backend needs it. Quantities are plain numbers in fixed units. */
export interface MachineSpec {
  name: string; // DNS-1123 label, unique in the lab
  kind: 'vm' | 'container';
  /** Image reference for this backend (QEMU: a guest image name under the image dir; KubeVirt: containerDisk image, DataVolume source or container image). */
  image: string;
  cpus: number;
  memoryMiB: number;
  diskGiB?: number;
  /** Which channels exist: VMs offer 'vnc' and/or 'console' (serial); containers 'console' (terminal). */
  channels: ChannelKind[];
  /** Credentials applied at boot (generated per instance or fixed by the lab). */
  credentials?: { username: string; password: string };
  /** cloud-init user data, already templated for this instance. */
  userData?: string;
  /** TCP ports the other machines of the lab may reach. Empty = all ports inside the lab. */
  ports?: number[];
}

export interface BackendLabSpec {
  labId: string;
  labVersion: string;
  machines: MachineSpec[];
  network: { internetEgress: boolean };
}

/**
 * What a backend needs to find a lab's resources again. Created once by the lab layer and
 * persisted on the instance (never recomputed from the user): a restart or a template edit can
 * never orphan a running lab.
 */
export interface LabHandle {
  instanceId: string;
  backend: BackendKind;
  /** Backend resource name: a namespace (KubeVirt) or a run-directory name (QEMU). DNS-1123, ≤ 63 chars. */
  name: string;
  /** Bumped on reset-by-recreate, so a terminating old namespace never blocks the new one. */
  generation: number;
}

export type MachineStatus =
  | { phase: 'pending' | 'booting' | 'running' | 'paused' | 'stopped' | 'gone' }
  | { phase: 'failed'; reason: string };

/** Provisioning phases, in order; the lab page shows them as a progress bar. */
export const PROGRESS_PHASES = ['queued', 'network', 'disks', 'machines-starting', 'machines-booted'] as const;
export type ProgressPhase = (typeof PROGRESS_PHASES)[number];

export interface Progress {
  phase: ProgressPhase;
  /** 0..100 for the whole provisioning. */
  percent: number;
  /** For logs and operators, in English; the lab page shows its own words for the phase and the values below. */
  message: string;
  /** While queued for capacity: the lab's place in the queue (1 = next). */
  queuePosition?: number;
  /** Machines booted so far, of all the lab's machines (while they boot). */
  booted?: { done: number; total: number };
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when output was cut at the limit. */
  truncated: boolean;
  timedOut: boolean;
}

/** Options of LabBackend.exec. */
export interface ExecOptions {
  timeoutMs: number;
  /** Per stream (stdout, stderr); backends cap it at 1 MiB. */
  maxOutputBytes: number;
  /**
   * Environment variables for the command (names: [A-Za-z_][A-Za-z0-9_]*). Values filled in from
   * the lab's variables go here, never into the command's text: the guest shell never parses them.
   */
  env?: Record<string, string>;
}

/** Where the other machines of a lab reach one machine, as the backend set it up. */
export interface MachineAddress {
  /** IPv4 address without prefix (QEMU: the lab segment address; KubeVirt: the VMI's pod address). */
  ip: string;
  /** A name that resolves to it inside the lab (QEMU: /etc/hosts; KubeVirt: the headless Service's DNS name). */
  host: string;
}

/**
 * What a backend may run at once and what its labs hold now. Labs that run, are paused or are being
 * provisioned hold capacity; a stopped lab holds none. A limit the operator did not set is absent.
 */
export interface BackendCapacity {
  maxVms?: number;
  /** Memory as the backend reserves it (KubeVirt: guest plus virt-launcher overhead, containers too). */
  maxMemoryMiB?: number;
  usedVms: number;
  usedMemoryMiB: number;
}

export interface LabBackend {
  readonly kind: BackendKind;

  /** Why this backend can never run a lab with these machines (shown to teachers and students), or null. */
  cannotRun?(machines: ReadonlyArray<{ name: string; kind: 'vm' | 'container' }>): string | null;

  /**
   * Capacity in use and its limits, from what the backend already knows (no request). provision()
   * and start() throw CapacityExhausted, before they create or start anything, for a lab that would
   * not fit; LabService then queues the lab and shows its position.
   */
  capacity(): BackendCapacity;

  /** Create (or finish creating) everything for the lab and start it. Idempotent: a second call with the same handle creates nothing new. Resolves when every machine has booted. */
  provision(spec: BackendLabSpec, handle: LabHandle, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<void>;

  /** Status per machine name. A lab that does not exist reports every machine as 'gone' (never throws for that). */
  status(handle: LabHandle): Promise<Record<string, MachineStatus>>;

  /** A raw byte stream: RFB for 'vnc', the serial/terminal bytes for 'console'. Throws NotFound if the machine or channel does not exist. */
  openChannel(handle: LabHandle, machine: string, channel: ChannelKind): Promise<Duplex>;

  /**
   * A small PNG (at most THUMBNAIL_WIDTH wide) of what the machine's screen shows now, taken without
   * a VNC session (QEMU: QMP screendump; KubeVirt: the VMI's vnc/screenshot subresource). Throws
   * NotFound for a machine without a 'vnc' channel, Conflict for one that is not running.
   */
  screenshot?(handle: LabHandle, machine: string): Promise<Buffer>;

  /**
   * The last bytes the machine's console printed (up to `maxBytes`), from what the backend keeps
   * anyway, without opening the console; null when it keeps nothing for this machine.
   */
  consoleHistory?(handle: LabHandle, machine: string, maxBytes: number): Promise<Buffer | null>;

  /** Run a command on a machine out of band (not on the student's console). */
  exec?(handle: LabHandle, machine: string, command: string, opts: ExecOptions): Promise<ExecResult>;

  /**
   * The address of every machine of a provisioned lab, by machine name, as the other machines
   * reach it ({{machines.X.ip}} / {{machines.X.host}} are filled from these). Machines whose
   * address is not known yet are missing. Throws NotFound for a lab that does not exist.
   */
  addresses?(handle: LabHandle): Promise<Record<string, MachineAddress>>;

  pause(handle: LabHandle): Promise<void>;
  resume(handle: LabHandle): Promise<void>;
  /** Stop the machines, keeping their disks (start() boots them again). */
  stop(handle: LabHandle): Promise<void>;
  start(handle: LabHandle): Promise<void>;
  /** Put one machine (or all) back to its image. */
  reset(handle: LabHandle, machine?: string): Promise<void>;
  /** Remove everything; a lab already gone is success. */
  destroy(handle: LabHandle): Promise<void>;

  /** The instance ids of every lab this backend runs (for the reconciler), with their handles. */
  list(): Promise<LabHandle[]>;

  /** For /readyz. */
  ready(): Promise<boolean>;
  /** Release connections, watches and timers (not the labs). */
  close(): Promise<void>;
}
