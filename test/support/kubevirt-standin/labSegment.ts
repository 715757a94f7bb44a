/**
 * The stand-in's pod network services on a lab segment (a QEMU socket multicast segment: one raw
 * Ethernet frame per UDP datagram), played by the stand-in itself at the segment's gateway address
 * <prefix>.1:
 *   - DHCP, as KubeVirt's virt-launcher serves it to a VM: the VMI's address for the guest's MAC,
 *     the cluster DNS server, and the search path KubeVirt builds (`<subdomain>.<ns>.svc.cluster.local`
 *     first, then the pod's: `<ns>.svc.cluster.local svc.cluster.local cluster.local`); no router
 *     (lab segments lead nowhere);
 *   - DNS (A records), as the cluster DNS answers for the lab's headless Service:
 *     `<host>.<subdomain>.<ns>.svc.cluster.local` for every VM of the namespace;
 *   - ARP for the gateway address, so guests can reach the two services above.
 * Nothing else: frames between guests pass untouched.
 */
import dgram from 'node:dgram';
import type { Logger } from 'pino';

const GATEWAY_MAC = Buffer.from([0x52, 0x54, 0x00, 0xfe, 0xfe, 0xfe]);
const BROADCAST = Buffer.alloc(6, 0xff);

export interface SegmentHost {
  mac: string;
  ip: string;
  /** DNS names (fully qualified, without the final dot) that resolve to ip. */
  names: string[];
}

export interface SegmentConfig {
  group: string;
  port: number;
  gateway: string;
  netmask: string;
  search: string[];
}

const ipBytes = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number));
const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
const macStr = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) + (b[i + 1] ?? 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

function ipv4Udp(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4); // checksum 0: none (allowed over IPv4)
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, udp, payload]);
}

/** RFC 1035 name encoding (also RFC 3397's domain search list, uncompressed). */
function dnsName(name: string): Buffer {
  return Buffer.concat([...name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}

export class LabSegment {
  private sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  private hosts = new Map<string, SegmentHost>();

  constructor(private readonly c: SegmentConfig, private readonly log: Logger) {}

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.bind(this.c.port, () => {
        this.sock.addMembership(this.c.group, '127.0.0.1');
        this.sock.setMulticastInterface('127.0.0.1');
        this.sock.setMulticastLoopback(true);
        resolve();
      });
    });
    this.sock.on('message', (frame) => {
      try {
        this.onFrame(frame);
      } catch (err) {
        this.log.debug({ err: String(err) }, 'segment.frame.unreadable');
      }
    });
  }

  setHosts(hosts: SegmentHost[]): void {
    this.hosts = new Map(hosts.map((h) => [h.mac.toLowerCase(), h]));
  }

  close(): void {
    this.sock.close();
  }

  private send(dstMac: Buffer, type: number, payload: Buffer): void {
    const eth = Buffer.alloc(14);
    dstMac.copy(eth, 0);
    GATEWAY_MAC.copy(eth, 6);
    eth.writeUInt16BE(type, 12);
    this.sock.send(Buffer.concat([eth, payload]), this.c.port, this.c.group);
  }

  private onFrame(f: Buffer): void {
    if (f.length < 14 || f.subarray(6, 12).equals(GATEWAY_MAC)) return;
    const type = f.readUInt16BE(12);
    if (type === 0x0806) return this.onArp(f);
    if (type !== 0x0800 || f[23] !== 17) return;
    const ihl = (f[14]! & 0x0f) * 4;
    const udp = 14 + ihl;
    const dport = f.readUInt16BE(udp + 2);
    const payload = f.subarray(udp + 8, udp + f.readUInt16BE(udp + 4));
    if (dport === 67) this.onDhcp(f.subarray(6, 12), payload);
    else if (dport === 53 && f.subarray(30, 34).equals(ipBytes(this.c.gateway))) this.onDns(f, f.readUInt16BE(udp), payload);
  }

  private onArp(f: Buffer): void {
    const a = f.subarray(14);
    if (a.readUInt16BE(6) !== 1 || !a.subarray(24, 28).equals(ipBytes(this.c.gateway))) return;
    const reply = Buffer.alloc(28);
    a.copy(reply, 0, 0, 6);
    reply.writeUInt16BE(2, 6);
    GATEWAY_MAC.copy(reply, 8);
    ipBytes(this.c.gateway).copy(reply, 14);
    a.copy(reply, 18, 8, 18); // their MAC and IP
    this.send(a.subarray(8, 14), 0x0806, reply);
  }

  private onDhcp(srcMac: Buffer, p: Buffer): void {
    if (p.length < 240 || p[0] !== 1 || p.readUInt32BE(236) !== 0x63825363) return;
    const host = this.hosts.get(macStr(p.subarray(28, 34)));
    if (!host) return;
    let kind = 0;
    for (let i = 240; i < p.length && p[i] !== 255; i += p[i] === 0 ? 1 : 2 + p[i + 1]!) if (p[i] === 53) kind = p[i + 2]!;
    if (kind !== 1 && kind !== 3) return; // DISCOVER → OFFER, REQUEST → ACK
    const bootp = Buffer.alloc(240);
    bootp[0] = 2;
    bootp[1] = 1;
    bootp[2] = 6;
    p.copy(bootp, 4, 4, 8); // xid
    p.copy(bootp, 10, 10, 12); // flags
    ipBytes(host.ip).copy(bootp, 16);
    ipBytes(this.c.gateway).copy(bootp, 20);
    p.copy(bootp, 28, 28, 44); // chaddr
    bootp.writeUInt32BE(0x63825363, 236);
    const opt = (code: number, v: Buffer) => Buffer.concat([Buffer.from([code, v.length]), v]);
    const lease = Buffer.alloc(4);
    lease.writeUInt32BE(86_400);
    const search = Buffer.concat(this.c.search.map(dnsName));
    const options = Buffer.concat([
      opt(53, Buffer.from([kind === 1 ? 2 : 5])),
      opt(54, ipBytes(this.c.gateway)),
      opt(51, lease),
      opt(1, ipBytes(this.c.netmask)),
      opt(6, ipBytes(this.c.gateway)),
      opt(15, Buffer.from(this.c.search[0] ?? 'cluster.local')),
      ...(search.length <= 255 ? [opt(119, search)] : []),
      Buffer.from([255]),
    ]);
    this.send(BROADCAST, 0x0800, ipv4Udp(this.c.gateway, '255.255.255.255', 67, 68, Buffer.concat([bootp, options])));
    if (kind === 3) this.log.info({ mac: macStr(srcMac), ip: host.ip }, 'segment.dhcp.ack');
  }

  private onDns(f: Buffer, sport: number, q: Buffer): void {
    if (q.length < 12 || q.readUInt16BE(4) !== 1) return;
    const labels: string[] = [];
    let i = 12;
    while (i < q.length && q[i] !== 0) {
      labels.push(q.subarray(i + 1, i + 1 + q[i]!).toString('latin1'));
      i += 1 + q[i]!;
    }
    const qEnd = i + 5;
    const qtype = q.readUInt16BE(i + 1);
    const name = labels.join('.').toLowerCase();
    const host = [...this.hosts.values()].find((h) => h.names.includes(name));
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8180 | (host ? 0 : 3), 2); // response, recursion desired+available; NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    const answer = host && qtype === 1;
    header.writeUInt16BE(answer ? 1 : 0, 6);
    const parts = [header, q.subarray(12, qEnd)];
    if (answer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(30, 6);
      rr.writeUInt16BE(4, 10);
      ipBytes(host.ip).copy(rr, 12);
      parts.push(rr);
    }
    const srcIp = `${f[26]}.${f[27]}.${f[28]}.${f[29]}`;
    this.send(f.subarray(6, 12), 0x0800, ipv4Udp(this.c.gateway, srcIp, 53, sport, Buffer.concat(parts)));
  }
}
