#!/usr/bin/env bash
# Builds the default guest image "lab-tiny" from installed Debian packages only (no downloads):
#   vmlinuz        the kernel of linux-image-amd64 (from /boot)
#   vmlinux        the same kernel uncompressed (ELF, PVH entry), when it can be extracted: boots faster
#   initramfs.gz   busybox-static + the virtio/ext4/fw_cfg modules it needs, and our init (below)
#   disk.qcow2     a small ext4 base disk the guest mounts at /home (each machine boots a
#                  copy-on-write overlay over it, so "reset" = a new overlay)
# Usage: build-guest-image.sh <output dir>   (need_guest_image in lib.sh calls it, stamped by hash)
#
# The guest reads its per-machine settings at boot from the QEMU fw_cfg file opt/lab/config
# (never from the kernel command line, so passwords do not show up in `ps`):
#   hostname=alpha
#   ip=10.10.0.11/24             address on the lab network (the NIC whose MAC starts 52:54:00)
#   user=student / pass=...      login created at boot (password hashed in the guest)
#   host=beta 10.10.0.12         one line per machine of the lab, for /etc/hosts
#   egress=1                     a second NIC (MAC 52:54:01:…) on QEMU user networking with a default route
# and optionally opt/lab/userdata: a script (starting with #!) run as root in the background at boot.
# Consoles: login on ttyS0 (serial, the "console" channel) and on tty1 (VGA text, the "vnc" channel).
#   agenttoken=...               the check agent's token (src/backends/guest/lab-agent.sh)
# Check agent: the shared lab-agent.sh serving the virtio-serial port named "lab.agent".
# On boot it prints "lab-guest: ready <hostname>" on ttyS0.
set -euo pipefail
out="${1:?usage: build-guest-image.sh <output dir>}"
kver="$(ls /lib/modules | sort -V | tail -n1)"
kernel="/boot/vmlinuz-$kver"
[ -r "$kernel" ] || { echo "no readable kernel $kernel (install linux-image-amd64)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "no /bin/busybox (install busybox-static)" >&2; exit 1; }
file /bin/busybox 2>/dev/null | grep -q static || ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || { echo "/bin/busybox is not static (install busybox-static)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,home,var/log,usr/bin,usr/sbin,lib/modules,www}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
  case "$a" in busybox) ;; *) ln -sf busybox "$root/bin/$a" ;; esac
done
# ping/traceroute for the unprivileged lab user: a setuid copy of busybox (its built-in rules drop
# root for every applet that does not need it; no /etc/busybox.conf, which made applets of the
# plain busybox crash); /etc/profile makes `ping` etc. call that copy (the shell would otherwise
# run its own, unprivileged applet).
cp /bin/busybox "$root/bin/busybox-suid"
chmod 4755 "$root/bin/busybox-suid"
cat >"$root/etc/profile" <<'PROFILE'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PS1='\u@\h:\w\$ '
if [ "$(id -u)" != 0 ]; then
  for c in ping ping6 traceroute traceroute6 arping; do eval "$c() { /bin/busybox-suid $c \"\$@\"; }"; done
fi
cd "$HOME" 2>/dev/null
PROFILE
for a in init getty login halt poweroff reboot mdev insmod modprobe ifconfig route; do ln -sf ../bin/busybox "$root/sbin/$a"; done
ln -sf bin/busybox "$root/init"

# Kernel modules, dependencies first (resolved from modules.dep), decompressed for busybox insmod.
moddir="/lib/modules/$kver"
# bochs: the DRM driver of QEMU's std VGA. With it the kernel's framebuffer console (and tty1's login)
# is on the screen the Desktop tab shows; without it that screen keeps the BIOS's last text forever
# (the PVH entry of vmlinux never sets up the VGA text mode).
wanted="virtio_pci virtio_blk virtio_net virtio_console ext4 qemu_fw_cfg crc32c_generic bochs"
declare -A seen=()
order=()
add_mod() { # $1 = path relative to $moddir
  local rel="$1" deps d
  [ -n "${seen[$rel]:-}" ] && return 0
  seen[$rel]=1
  deps="$(grep -E "^${rel}:" "$moddir/modules.dep" | cut -d: -f2)"
  for d in $deps; do add_mod "$d"; done
  order+=("$rel")
}
for m in $wanted; do
  rel="$(grep -E "/${m}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)"
  [ -n "$rel" ] || { echo "kernel module $m not found in $moddir" >&2; exit 1; }
  add_mod "$rel"
done
: >"$root/lib/modules/load-order"
for rel in "${order[@]}"; do
  base="$(basename "$rel")"; name="${base%%.ko*}.ko"
  case "$base" in
    *.ko.xz) xz -dc "$moddir/$rel" >"$root/lib/modules/$name" ;;
    *.ko.zst) zstd -qdc "$moddir/$rel" >"$root/lib/modules/$name" ;;
    *.ko.gz) gzip -dc "$moddir/$rel" >"$root/lib/modules/$name" ;;
    *) cp "$moddir/$rel" "$root/lib/modules/$name" ;;
  esac
  echo "$name" >>"$root/lib/modules/load-order"
done

# e2fsck and resize2fs (from e2fsprogs, with the shared libraries they need): /home grows to the
# machine's disk size at boot when the lab asks for a bigger disk than the base.
copy_with_libs() {
  local bin="$1" lib
  mkdir -p "$root/usr/sbin"
  cp "$bin" "$root/usr/sbin/"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}
copy_with_libs /sbin/e2fsck
copy_with_libs /sbin/resize2fs

cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/rc
ttyS0::respawn:/sbin/getty -l /sbin/lablogin -L 115200 ttyS0 vt100
tty1::respawn:/sbin/getty -l /sbin/lablogin 38400 tty1
::respawn:/bin/sh /etc/lab-agent.sh port
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF

# Terminals (xterm.js, noVNC keyboards) send CR for Enter. getty maps CR to NL only for the user
# name it read itself; login's password prompt would wait for a NL forever. Map it for the session.
cat >"$root/sbin/lablogin" <<'EOF'
#!/bin/sh
stty icrnl onlcr 2>/dev/null
exec /sbin/login "$@"
EOF
chmod 755 "$root/sbin/lablogin"

cat >"$root/etc/rc" <<'EOF'
#!/bin/sh
# Boot: mounts, modules, settings from fw_cfg, network, users, /home.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </lib/modules/load-order
cfg=/sys/firmware/qemu_fw_cfg/by_name/opt/lab/config/raw
hostname=lab; ip=; user=student; pass=; egress=0; agenttoken=
: >/tmp/hosts
if [ -r "$cfg" ]; then
  while IFS='=' read -r k v; do
    case "$k" in
      hostname) hostname="$v" ;;
      ip) ip="$v" ;;
      user) user="$v" ;;
      pass) pass="$v" ;;
      egress) egress="$v" ;;
      agenttoken) agenttoken="$v" ;;
      host) echo "${v#* } ${v%% *}" >>/tmp/hosts ;;
    esac
  done <"$cfg"
fi
hostname "$hostname"
mkdir -p /etc/lab-agent
(umask 077; printf '%s\n' "$agenttoken" >/etc/lab-agent/token)
agenttoken=
echo "$hostname" >/etc/hostname
{ echo "127.0.0.1 localhost"; cat /tmp/hosts; } >/etc/hosts
rm -f /tmp/hosts
ip link set lo up
nic_by_mac() { for n in /sys/class/net/*; do case "$(cat "$n/address")" in "$1"*) echo "${n##*/}"; return ;; esac; done; }
labnic="$(nic_by_mac 52:54:00:)"
if [ -n "$labnic" ] && [ -n "$ip" ]; then ip link set "$labnic" up; ip addr add "$ip" dev "$labnic"; fi
if [ "$egress" = 1 ]; then
  enic="$(nic_by_mac 52:54:01:)"
  if [ -n "$enic" ]; then
    ip link set "$enic" up; ip addr add 10.0.2.15/24 dev "$enic"; ip route add default via 10.0.2.2
    # QEMU user networking maps 10.0.2.2 to the host's loopback (the tool, its database): never reachable
    ip route add blackhole 10.0.2.2/32
    echo "nameserver 10.0.2.3" >/etc/resolv.conf
  fi
fi
# users: root locked, the lab user with the given password (hashed here)
hash='!'
[ -n "$pass" ] && hash="$(mkpasswd -m sha512 -- "$pass")"
pass=
{ echo "root:!:0:0:root:/root:/bin/sh"; echo "$user:$hash:1000:1000:$user:/home/$user:/bin/sh"; } >/etc/passwd
{ echo "root:x:0:"; echo "$user:x:1000:"; } >/etc/group
chmod 644 /etc/passwd
if [ -b /dev/vda ]; then
  # grow the file system to the disk (the overlay may be bigger than the base disk)
  blocks=$(od -An -tu4 -j 1028 -N 4 /dev/vda | tr -d ' ')
  logbs=$(od -An -tu4 -j 1048 -N 4 /dev/vda | tr -d ' ')
  devbytes=$(( $(cat /sys/block/vda/size) * 512 ))
  if [ -n "$blocks" ] && [ "$devbytes" -gt $(( blocks * (1024 << logbs) + 16777216 )) ]; then
    /usr/sbin/e2fsck -f -p /dev/vda >/dev/null 2>&1
    /usr/sbin/resize2fs /dev/vda >/dev/null 2>&1 || echo "lab-guest: could not grow /home" >/dev/ttyS0
  fi
  mount -t ext4 /dev/vda /home || echo "lab-guest: could not mount /home" >/dev/ttyS0
fi
mkdir -p "/home/$user"
chown 1000:1000 "/home/$user"
echo "Welcome to $hostname (lab-tiny). Log in as $user." >/etc/issue
# the lab's user data: a script (#!...) run once per boot as root, in the background, after the network
ud=/sys/firmware/qemu_fw_cfg/by_name/opt/lab/userdata/raw
if [ -r "$ud" ] && [ "$(head -c 2 "$ud")" = '#!' ]; then
  cp "$ud" /run/userdata && chmod 700 /run/userdata
  (cd /root && /run/userdata </dev/null >/var/log/userdata.log 2>&1) &
fi
echo "lab-guest: ready $hostname" >/dev/ttyS0
EOF

# The check agent: the one script both backends use (src/backends/guest/lab-agent.sh), serving the
# virtio-serial port "lab.agent" here (init respawns it); /usr/local/sbin/lab-agent is the same
# script for listeners that run one request per connection.
agent_src="${LAB_AGENT_SCRIPT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/backends/guest/lab-agent.sh}"
[ -r "$agent_src" ] || { echo "no agent script $agent_src" >&2; exit 1; }
mkdir -p "$root/usr/local/sbin" "$root/etc/lab-agent"
cp "$agent_src" "$root/etc/lab-agent.sh"
cp "$agent_src" "$root/usr/local/sbin/lab-agent"
chmod 755 "$root/etc/lab-agent.sh" "$root/usr/local/sbin/lab-agent"
chmod 755 "$root/etc/rc"
echo "<html><body><h1>lab-tiny</h1></body></html>" >"$root/www/index.html"

mkdir -p "$out.tmp"
cp "$kernel" "$out.tmp/vmlinuz"
# The uncompressed ELF kernel boots through its PVH entry (QEMU -kernel vmlinux): no real-mode setup
# and no in-guest xz decompression, which halves the CPU a TCG boot costs. Optional: vmlinuz works too.
if grep -q '^CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null; then
  off="$(grep -abo $'\xfd7zXZ' "$kernel" | head -n1 | cut -d: -f1 || true)"
  if [ -n "$off" ] && tail -c +$((off + 1)) "$kernel" | xz -dc >"$out.tmp/vmlinux" 2>/dev/null || [ -s "$out.tmp/vmlinux" ]; then
    head -c 4 "$out.tmp/vmlinux" | grep -q ELF || rm -f "$out.tmp/vmlinux"
  else
    rm -f "$out.tmp/vmlinux"
  fi
fi
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$out.tmp/initramfs.gz"
# /home base disk: 256 MiB ext4 (journal; group descriptor checksums instead of metadata_csum, so
# growing it initializes no inode tables), empty but for lost+found
truncate -s 256M "$work/home.raw"
mkfs.ext4 -q -F -L home -O ^metadata_csum,uninit_bg -E lazy_itable_init=1 "$work/home.raw" >/dev/null
qemu-img convert -f raw -O qcow2 "$work/home.raw" "$out.tmp/disk.qcow2"
chmod 444 "$out.tmp/disk.qcow2"
echo "kernel=$kver" >"$out.tmp/IMAGE"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "guest image built in $out ($(du -sh "$out" | cut -f1))" >&2
