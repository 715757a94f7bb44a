/**
 * What the stand-in needs from a guest runtime: boot a VMI's guest, pause/resume it, stop it,
 * and the unix sockets of its VNC display and serial console. The real implementation boots QEMU
 * through the project's QemuRunner (qemuGuests.ts).
 */

export interface GuestRequest {
  /** "<namespace>/<name>" of the VMI; unique among running guests. */
  key: string;
  /** containerDisk image of the VMI's first disk, mapped to a guest image name (e.g. "lab-tiny"). */
  image: string;
  cpus: number;
  memoryMiB: number;
}

export interface Guest {
  readonly pid: number | undefined;
  readonly vncSocket: string;
  readonly serialSocket: string;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Power off (and kill if it does not go); resolves once the process is gone. */
  stop(): Promise<void>;
  /** Resolves when the guest process has exited, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

export interface GuestRuntime {
  boot(req: GuestRequest): Promise<Guest>;
}

/** KubeVirt's quantities ("128Mi", "1Gi", "512M") in MiB. */
export function quantityToMiB(q: string | number | undefined, fallback: number): number {
  if (q === undefined) return fallback;
  if (typeof q === 'number') return Math.ceil(q / 2 ** 20);
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q.trim());
  if (!m) return fallback;
  const n = Number(m[1]);
  const mult: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.ceil((n * (m[2] ? mult[m[2]]! : 1)) / 2 ** 20);
}
