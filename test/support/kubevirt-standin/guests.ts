/**
 * What the stand-in needs from a guest runtime: boot a VMI's guest, pause/resume it, stop it,
 * and the unix sockets of its VNC display and serial console. The real implementation boots QEMU
 * through the project's QemuRunner (qemuGuests.ts).
 */
import YAML from 'yaml';

export interface GuestRequest {
  /** "<namespace>/<name>" of the VMI; unique among running guests. */
  key: string;
  /** containerDisk image of the VMI's first disk: pulled from a loopback registry, else mapped to a guest image name (e.g. "lab-tiny"). */
  image: string;
  /** The containerDisk's `path` (the disk file in the image; default: the one file in /disk). */
  containerDiskPath?: string;
  /** The containerDisk's `imagePullPolicy` (default: Always for :latest or no tag, else IfNotPresent). */
  imagePullPolicy?: string;
  cpus: number;
  memoryMiB: number;
  /** A VGA display on VNC (KubeVirt: domain.devices.autoattachGraphicsDevice, default true). */
  graphics: boolean;
  /** From cloud-init NoCloud user data (hostname, user/password), like the real guest would apply it. */
  hostname: string;
  user?: string;
  password?: string;
  /** What cloud-init would run at boot (write_files, runcmd, scripts: cloudInit.ts), as one root script. */
  userScript?: string;
  /**
   * The lab network, as the cluster network looks from a lab VM: one segment per namespace (the
   * guests of one lab share it, other labs cannot reach it), the VMI's address on it, and the
   * names the cluster DNS would resolve for the lab's machines (`beta`, `beta.lab`).
   */
  lab: LabNetwork;
  /** The VMI's NoCloud data, for images with cloud-init (lab-tiny gets login/userScript instead). */
  cloudInit: { instanceId: string; hostname: string; userData?: string; networkData?: string };
  /** A DataVolume root disk: boot from this file (kept after the guest stops) and this guest image's kernel; else a fresh overlay of `image`. */
  disk?: { file: string; imageDir: string };
}

/** A VMI's place on its lab segment (controller.ts: labNetwork). */
export interface LabNetwork {
  /** The namespace: one segment each. */
  segment: string;
  ip: string;
  prefixLength: number;
  /** The segment's gateway address (the stand-in's DHCP and DNS) and the guest's DNS search path. */
  gateway: string;
  search: string[];
  /** Every VM of the namespace (this one included). */
  hosts: Array<{ ip: string; hostname: string; subdomain?: string }>;
}

export interface Guest {
  readonly pid: number | undefined;
  readonly vncSocket: string;
  readonly serialSocket: string;
  /** Every byte the serial console printed (what libvirt's serial log file holds); absent without a console. */
  readonly consoleLog?: string;
  /** A TCP port on 127.0.0.1 connected to the guest's `guestPort` (its network, like KubeVirt's portforward). */
  forwardPort(guestPort: number): Promise<number>;
  /** What the VGA display shows, as a PNG (the screenshot subresource); absent when the runtime has no display. */
  screenshot?(): Promise<Buffer>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Power off (and kill if it does not go); resolves once the process is gone. */
  stop(): Promise<void>;
  /** SIGKILL now; resolves when the process is gone. */
  kill(): Promise<void>;
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

/**
 * The part of cloud-init's #cloud-config the lab-tiny guest can apply: hostname, and the login from
 * top-level `user`/`password`, or the first of `users` with `plain_text_passwd` or its text
 * password in `chpasswd.users`.
 */
export function cloudConfigLogin(userData: string | undefined): { hostname?: string; user?: string; password?: string } {
  if (!userData || !/^#cloud-config/.test(userData)) return {};
  let doc: unknown;
  try { doc = YAML.parse(userData); } catch { return {}; }
  if (!doc || typeof doc !== 'object') return {};
  const d = doc as { hostname?: unknown; user?: unknown; password?: unknown; users?: unknown; chpasswd?: { users?: unknown } };
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
  const first = Array.isArray(d.users) ? (d.users.find((u) => u && typeof u === 'object') as { name?: unknown; plain_text_passwd?: unknown } | undefined) : undefined;
  const user = str(d.user) ?? (typeof d.user === 'object' && d.user ? str((d.user as { name?: unknown }).name) : undefined) ?? str(first?.name);
  // chpasswd.users (cloud-init ≥ 22.2): [{ name, password, type: text }]
  const chpasswd = Array.isArray(d.chpasswd?.users) ? (d.chpasswd.users as Array<{ name?: unknown; password?: unknown; type?: unknown }>) : [];
  const fromChpasswd = chpasswd.find((u) => str(u.name) === user && (u.type === undefined || u.type === 'text'));
  const password = str(d.password) ?? str(first?.plain_text_passwd) ?? str(fromChpasswd?.password);
  return { hostname: str(d.hostname), ...(user ? { user } : {}), ...(password ? { password } : {}) };
}
