/**
 * Real QEMU guests for the stand-in, through the project's QemuRunner: the guest image (lab-tiny:
 * kernel, initramfs, /home base disk, built by scripts/build-guest-image.sh into
 * $LAB_TOOLS_DIR/images) with a copy-on-write overlay per VMI, its VNC display and serial console
 * on unix sockets under the stand-in's work dir. KVM when it really works, TCG otherwise.
 *
 * Two NICs: the lab network (a QEMU socket multicast segment on 127.0.0.1, one per namespace, so
 * the VMs of one lab reach each other at their VMI addresses and other labs' VMs cannot), and QEMU
 * user networking (restricted: no way out) at GUEST_IP, through which the VMI `portforward`
 * subresource reaches the guest (host forwards, forwardPort) as virt-handler reaches into the
 * pod. The user data cloud-init would apply runs as lab-tiny's boot script (opt/lab/userdata,
 * cloudInit.ts).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { defaultToolsDir } from '../../../src/config.js';
import { QemuRunner } from '../../../src/backends/qemu/QemuRunner.js';
import { detectAccel } from '../../../src/backends/qemu/kvm.js';
import type { Guest, GuestRequest, GuestRuntime, LabNetwork } from './guests.js';
import { writeSeedDisk } from '../../../src/backends/qemu/seedDisk.js';
import type { GuestOptions } from '../../../src/backends/qemu/QemuRunner.js';
import { LabSegment } from './labSegment.js';
import { ContainerDiskPuller, pullable } from './containerDisks.js';

const run = promisify(execFile);
const QEMU = 'qemu-system-x86_64';
/** The guest's address on QEMU user networking (its default DHCP address). */
const GUEST_IP = '10.0.2.15';
/** QemuRunner names NIC i's netdev "n<i>": the lab segment is n0, user networking n1. */
const POD_NETDEV = 'n1';
/**
 * MAC prefixes. lab-tiny configures its 52:54:00 NIC from fw_cfg (`ip=`): that is the user-mode
 * one (GUEST_IP, no blackholed gateway: forwarded connections come from it); the lab NIC is set up
 * by the boot script the stand-in writes.
 */
const POD_MAC = '52:54:00';
const LAB_MAC = '52:54:02';

/**
 * A multicast group and port per lab namespace, random like the QEMU backend's (other runs on this
 * host use the same loopback), with the stand-in's DHCP and DNS on it (labSegment.ts).
 */
function segmentAllocator(log: Logger): (lab: LabNetwork) => Promise<{ group: string; port: number }> {
  const segments = new Map<string, { group: string; port: number; service: Promise<LabSegment> }>();
  return async (lab) => {
    let s = segments.get(lab.segment);
    if (!s) {
      let addr: { group: string; port: number };
      do {
        const b = randomBytes(4);
        addr = { group: `230.${b[0]}.${b[1]}.${b[2]}`, port: 20000 + (b.readUInt16BE(2) % 20000) };
      } while ([...segments.values()].some((o) => o.group === addr.group && o.port === addr.port));
      const service = new LabSegment({ ...addr, gateway: lab.gateway, netmask: prefixMask(lab.prefixLength), search: lab.search }, log.child({ segment: lab.segment }));
      s = { ...addr, service: service.start().then(() => service) };
      segments.set(lab.segment, s);
    }
    const fqdn = (h: LabNetwork['hosts'][number]) => (h.subdomain ? [`${h.hostname}.${h.subdomain}.${lab.segment}.svc.cluster.local`] : []);
    (await s.service).setHosts(lab.hosts.map((h) => ({ mac: macFor(LAB_MAC, h.ip), ip: h.ip, names: fqdn(h) })));
    return { group: s.group, port: s.port };
  };
}

function prefixMask(bits: number): string {
  const n = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((sh) => (n >>> sh) & 255).join('.');
}

/**
 * A QEMU user-network host forward 127.0.0.1:<free port> → guest:<port>, added to the running
 * guest (HMP hostfwd_add; "restrict=on" does not affect explicit forwards). The free port is found
 * by binding port 0 and releasing it; a lost race is retried.
 */
async function addHostForward(qmp: { execute<T>(cmd: string, args?: Record<string, unknown>): Promise<T> }, guestPort: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const hostPort = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `hostfwd_add ${POD_NETDEV} tcp:127.0.0.1:${hostPort}-${GUEST_IP}:${guestPort}` });
    if (!out.trim()) return hostPort;
    if (attempt >= 3) throw new Error(`hostfwd_add for guest port ${guestPort}: ${out.trim()}`);
  }
}

export async function createGuestRuntime(o: { workDir: string; log: Logger; imageDir?: string; puller?: ContainerDiskPuller }): Promise<GuestRuntime> {
  const images = o.imageDir ?? path.join(defaultToolsDir(), 'images');
  let seq = 0;
  const segmentOf = segmentAllocator(o.log);
  const puller = o.puller ?? new ContainerDiskPuller(path.join(o.workDir, 'containerdisks'), o.log);
  return {
    async boot(req: GuestRequest): Promise<Guest> {
      const image = await resolveImage(req, images, puller, o.log);
      const accel = await detectAccel({ setting: 'auto', qemuBin: QEMU, kernel: image.kernel, log: o.log });
      // Short directory names: unix socket paths are limited to 107 bytes.
      const runDir = path.join(o.workDir, `g${++seq}`);
      fs.mkdirSync(runDir, { recursive: true });
      // a DataVolume's file is the VM's own disk (kept across boots); a containerDisk gets a fresh overlay
      const disk = req.disk?.file ?? path.join(runDir, 'disk.qcow2');
      if (!req.disk) await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', image.diskFormat, '-b', image.disk, disk]);
      const segment = await segmentOf(req.lab);
      const labNic = { mac: macFor(LAB_MAC, req.lab.ip), netdev: `socket,mcast=${segment.group}:${segment.port},localaddr=127.0.0.1` };
      const podNic = { mac: macFor(POD_MAC, req.lab.ip), netdev: 'user,restrict=on' };
      const specific = image.cloudInit ? await cloudImageOptions(req, image, runDir, labNic.mac, podNic.mac) : labTinyOptions(req, image, runDir);
      const g = await QemuRunner.start({
        runDir, name: req.key.replace('/', '_'), qemuBin: QEMU, accel,
        memoryMiB: req.memoryMiB, cpus: req.cpus, disk,
        nics: [labNic, podNic],
        vnc: req.graphics, agent: false, log: o.log,
        ...specific,
      });
      o.log.info({ key: req.key, pid: g.pid, accel }, 'qemu.started');
      const exited = g.exited.then(() => {
        if (process.env.LAB_K8S_KEEP !== '1') fs.rmSync(runDir, { recursive: true, force: true });
        return { code: 0 as number | null, signal: null as string | null };
      });
      let stopping: Promise<void> | undefined;
      // guest port → host port of its forward on 127.0.0.1 (added on first use, over QMP/HMP)
      const forwards = new Map<number, Promise<number>>();
      let shots = 0;
      return {
        forwardPort(guestPort: number): Promise<number> {
          let p = forwards.get(guestPort);
          if (!p) {
            p = addHostForward(g.qmp, guestPort);
            forwards.set(guestPort, p);
            p.catch(() => forwards.delete(guestPort));
          }
          return p;
        },
        async screenshot(): Promise<Buffer> {
          // as libvirt's virDomainScreenshot does it: a QMP screendump (PNG: QEMU ≥ 7.1), read and removed
          const file = path.join(runDir, `screen-${++shots}.png`);
          try {
            await g.qmp.execute('screendump', { filename: file, format: 'png' }, 10_000);
            return fs.readFileSync(file);
          } finally {
            fs.rmSync(file, { force: true });
          }
        },
        pid: g.pid,
        vncSocket: g.vncSocket,
        serialSocket: g.consoleSocket,
        consoleLog: g.consoleLog,
        exited,
        pause: async () => { await g.qmp.execute('stop'); },
        resume: async () => { await g.qmp.execute('cont'); },
        kill: () => g.kill(),
        stop() {
          stopping ??= (async () => {
            await g.stop(5000);
            await exited;
          })();
          return stopping;
        },
      };
    },
  };
}

/** A MAC from the guest's lab address (unique on its segment); lab-tiny finds its NICs by prefix. */
function macFor(prefix: string, ip: string): string {
  return `${prefix}:${ip.split('.').slice(1).map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
}

interface StandInImage {
  dir: string;
  disk: string;
  diskFormat: 'qcow2' | 'raw';
  kernel: string;
  initrd: string;
  cmdline: string;
  /** A cloud image (image.json: Debian): cloud-init from a NoCloud seed disk; else lab-tiny (fw_cfg settings). */
  cloudInit: boolean;
}

/**
 * The guest image for a VMI. A containerDisk on a registry of this host's loopback is pulled
 * (containerDisks.ts) and its disk is the one the guest boots (under a fresh overlay); the kernel
 * and initrd come from the local image its title label names (else its repository's last path
 * segment): the stand-in boots them directly, the way lab-tiny has to boot and the fast way under
 * TCG, where KubeVirt would boot the disk's own boot loader. Any other reference is mapped to a local
 * image by its last path segment ("registry/x/debian-12:tag" → images/debian-12) and boots that
 * image's disk; a DataVolume boots its own file. lab-tiny when the name is unknown here (logged).
 */
async function resolveImage(req: GuestRequest, images: string, puller: ContainerDiskPuller, log: Logger): Promise<StandInImage> {
  const pulled = !req.disk && pullable(req.image)
    ? await puller.disk(req.image, { ...(req.containerDiskPath ? { path: req.containerDiskPath } : {}), ...(req.imagePullPolicy ? { policy: req.imagePullPolicy } : {}) })
    : undefined;
  const byName = (pulled?.title ?? (req.image.split('/').pop() ?? '').replace(/[:@].*$/, '')).replace(/[^a-z0-9._-]/gi, '_');
  let dir = req.disk?.imageDir ?? path.join(images, byName || 'lab-tiny');
  const usable = (d: string) => fs.existsSync(path.join(d, 'image.json')) || fs.existsSync(path.join(d, 'initramfs.gz'));
  if (!usable(dir)) {
    if (pulled) throw new Error(`containerDisk ${req.image}: no local image "${byName}" to take its kernel from`);
    log.info({ key: req.key, image: req.image }, 'qemu.image.unknown; booting lab-tiny');
    dir = path.join(images, 'lab-tiny');
  }
  const image = localImage(fs.realpathSync(dir), images);
  return pulled ? { ...image, disk: pulled.file, diskFormat: pulled.format } : image;
}

function localImage(dir: string, images: string): StandInImage {
  const manifest = path.join(dir, 'image.json');
  if (fs.existsSync(manifest)) {
    const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { disk: string; kernel: string; vmlinux?: string | null; initrd: string; cmdline?: string };
    // the uncompressed kernel boots faster under TCG
    return { dir, disk: path.join(dir, m.disk), diskFormat: 'qcow2', kernel: path.join(dir, m.vmlinux ?? m.kernel), initrd: path.join(dir, m.initrd), cmdline: m.cmdline ?? '', cloudInit: true };
  }
  const kernel = path.join(dir, 'vmlinuz');
  if (!fs.existsSync(kernel)) throw new Error(`guest image lab-tiny not found under ${images} (scripts/setup-test.sh builds it)`);
  return { dir, disk: path.join(dir, 'disk.qcow2'), diskFormat: 'qcow2', kernel, initrd: path.join(dir, 'initramfs.gz'), cmdline: '', cloudInit: false };
}

/** lab-tiny: no cloud-init; its settings (login, lab address, names) and the user data as a boot script over fw_cfg. */
function labTinyOptions(req: GuestRequest, image: StandInImage, runDir: string): Pick<GuestOptions, 'kernel' | 'initrd' | 'fwCfg'> {
  const config = path.join(runDir, 'config');
  const line = (v: string): string => v.replace(/[\r\n]/g, '');
  // ip: GUEST_IP on the user-mode NIC, where host forwards (portforward) reach it; host: the lab's names
  const names = (h: LabNetwork['hosts'][number]) => [h.hostname, ...(h.subdomain ? [`${h.hostname}.${h.subdomain}`] : [])];
  const hosts = req.lab.hosts.flatMap((h) => names(h).map((n) => `host=${line(n)} ${line(h.ip)}\n`)).join('');
  fs.writeFileSync(config, `hostname=${line(req.hostname).slice(0, 63)}\nuser=${line(req.user ?? 'student')}\npass=${line(req.password ?? 'student')}\nip=${GUEST_IP}/24\n${hosts}`, { mode: 0o600 });
  // the lab NIC at the VMI address first (the pod network is up before anything in the guest runs), then what cloud-init would do
  const labNic = [
    '#!/bin/sh',
    `for n in /sys/class/net/*; do case "$(cat "$n/address")" in ${LAB_MAC}:*) ip link set "\${n##*/}" up && ip addr add ${req.lab.ip}/${req.lab.prefixLength} dev "\${n##*/}" ;; esac; done`,
  ].join('\n');
  const script = req.userScript ? `${labNic}\n${req.userScript.replace(/^#![^\n]*\n/, '')}` : `${labNic}\n`;
  const fwCfg: Record<string, string> = { 'opt/lab/config': config, 'opt/lab/userdata': path.join(runDir, 'userdata') };
  fs.writeFileSync(fwCfg['opt/lab/userdata']!, script, { mode: 0o600 });
  return { kernel: image.kernel, initrd: image.initrd, fwCfg };
}

/**
 * A cloud image with the NoCloud seed as virt-launcher builds it: a "cidata" ISO holding the VMI's
 * user-data and network-config as given and KubeVirt's own meta-data (JSON: instance-id from the
 * VM's firmware UUID, local-hostname). When the VMI has no network data, the stand-in's guest has
 * a NIC a real pod network would not (the portforward one), so the seed configures both: eth0 (the
 * lab segment) by DHCP — what KubeVirt's default gives — and eth1 at GUEST_IP.
 */
async function cloudImageOptions(req: GuestRequest, image: StandInImage, runDir: string, labMac: string, podMac: string): Promise<Pick<GuestOptions, 'kernel' | 'initrd' | 'append' | 'drives'>> {
  const seed = path.join(runDir, 'seed.iso');
  const ci = req.cloudInit;
  const networkConfig = ci.networkData ?? [
    'version: 1',
    'config:',
    `  - {type: physical, name: eth0, mac_address: "${labMac}", subnets: [{type: dhcp}]}`,
    `  - {type: physical, name: eth1, mac_address: "${podMac}", subnets: [{type: static, address: ${GUEST_IP}/24}]}`,
    '',
  ].join('\n');
  await writeSeedDisk({ metaData: JSON.stringify({ 'instance-id': ci.instanceId, 'local-hostname': ci.hostname }), userData: ci.userData ?? '', networkConfig }, seed);
  return { kernel: image.kernel, initrd: image.initrd, append: image.cmdline, drives: [{ file: seed, format: 'raw', readonly: true }] };
}
