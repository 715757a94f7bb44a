/**
 * A machine restored from a saved running state is a copy of the template guest: same hostname,
 * MAC, address, SSH host keys, machine id, agent token, clock of the moment it was saved, and the
 * kernel random state of that moment. This script, run as root through the check agent right
 * after the restore and before the lab is reported booted, gives it the lab's identity. Values
 * travel as environment variables (never in the script's text).
 *
 * What it cannot make safe (said in the README):
 * - kernel entropy: the restored kernel starts from the template's random state. The vmgenid
 *   device makes the kernel reseed when it sees the new generation ID, and 64 bytes from the
 *   host are written to /dev/urandom, but user-space programs that were already running in the
 *   template (systemd, journald, getty, the agent) keep whatever they had drawn before the save;
 * - boot id (/proc/sys/kernel/random/boot_id) and the machine id known to already-running daemons
 *   stay the template's (the file is renewed for everything started afterwards);
 * - the clock jumps from the save time to now (set here to the host's time); timers and uptime
 *   inside the guest count from the template's boot.
 */
import crypto from 'node:crypto';
import { READY_LINE, etcHosts } from '../guest/cloudInit.js';

export interface Identity {
  hostname: string;
  user?: { name: string; password: string };
  /** The lab NIC (eth0): MAC and address with prefix. */
  mac: string;
  address: string;
  hosts: Array<{ name: string; ip: string }>;
  /** The lab's agent token, replacing the template's. */
  agentToken: string;
  /** The template's lab NIC address (with prefix), replaced in the network configuration. */
  templateAddress: string;
}

const SCRIPT = `set -u
date -u -s "@$LAB_NOW" >/dev/null 2>&1
printf '%s' "$LAB_ENTROPY" >/dev/urandom
hostname "$LAB_HOSTNAME"; printf '%s\\n' "$LAB_HOSTNAME" >/etc/hostname
printf '%s' "$LAB_HOSTS" >/etc/hosts
if [ -n "\${LAB_USER:-}" ]; then
  id -u "$LAB_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$LAB_USER"
  printf '%s:%s\\n' "$LAB_USER" "$LAB_PASSWORD" | chpasswd
fi
ip link set eth0 down && ip link set eth0 address "$LAB_MAC" && ip addr flush dev eth0 && ip addr add "$LAB_ADDRESS" dev eth0 && ip link set eth0 up
# what ifupdown would bring back (until cloud-init rewrites it from the lab's seed at a reboot)
sed -i "s#^\\([[:space:]]*address[[:space:]]*\\)$LAB_TEMPLATE_ADDRESS\\$#\\1$LAB_ADDRESS#" /etc/network/interfaces.d/50-cloud-init 2>/dev/null
rm -f /etc/machine-id && systemd-machine-id-setup >/dev/null 2>&1
(umask 077; printf '%s\\n' "$LAB_AGENT_TOKEN" >/etc/lab-agent/token)
# sshd stops now (it must never answer with the template's keys) and starts with new keys later
systemctl stop ssh.service ssh.socket >/dev/null 2>&1
rm -f /etc/ssh/ssh_host_*
echo "${READY_LINE} $LAB_HOSTNAME" >/dev/ttyS0 2>/dev/null
# in the background, so the lab is ready at once: new prompts with the new name on the serial
# console and the screen, then SSH with its own host keys
setsid sh -c 'systemctl restart serial-getty@ttyS0.service getty@tty1.service; [ -d /etc/ssh ] && ssh-keygen -A && systemctl start ssh.service' </dev/null >/dev/null 2>&1 &
true
`;

/** The script and its environment. */
export function identityCommand(i: Identity, now = Date.now()): { command: string; env: Record<string, string> } {
  const env: Record<string, string> = {
    LAB_NOW: (now / 1000).toFixed(3),
    LAB_ENTROPY: crypto.randomBytes(64).toString('hex'),
    LAB_HOSTNAME: i.hostname,
    LAB_HOSTS: etcHosts(i.hostname, i.hosts),
    LAB_MAC: i.mac,
    LAB_ADDRESS: i.address,
    LAB_AGENT_TOKEN: i.agentToken,
    LAB_TEMPLATE_ADDRESS: i.templateAddress,
  };
  if (i.user) Object.assign(env, { LAB_USER: i.user.name, LAB_PASSWORD: i.user.password });
  return { command: SCRIPT, env };
}
