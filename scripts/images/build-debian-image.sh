#!/usr/bin/env bash
# Builds a Debian guest image from Debian's package repository with mmdebstrap (no prebuilt image):
#   disk.qcow2     a bootable disk: MBR (syslinux) + partition 1 FAT "LABBOOT" (syslinux, kernel,
#                  initrd) + partition 2 ext4 "lab-root" (the system; cloud-init grows it to the disk)
#   vmlinuz, initrd.img   the same kernel and initrd, for booting directly (QEMU -kernel/-initrd)
#   vmlinux        the kernel uncompressed (ELF, PVH entry), when it can be extracted: a faster TCG boot
#   image.json     name, version, kernel version, the kernel command line, package list, sizes
# The guest takes its identity from a cloud-init NoCloud seed (a CIDATA disk); without one it still
# boots to a login prompt on ttyS0 and tty1.
# Usage: build-debian-image.sh <image name> <output dir>   (need_image in lib.sh calls it, by recipe hash)
set -euo pipefail
# the whole script is read before it runs: editing it (or a checkout) during a build cannot break the build
{
name="${1:?usage: build-debian-image.sh <image name> <output dir>}"
out="${2:?usage: build-debian-image.sh <image name> <output dir>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIRROR="${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# the recipe and the recipes it builds on (BASE=...), base first
chain=() n="$name"
while [ -n "$n" ]; do
  [ -f "$here/$n.recipe" ] || { echo "no recipe for image $n ($here/$n.recipe)" >&2; exit 2; }
  chain=("$n" "${chain[@]}")
  n="$(sed -n 's/^BASE=//p' "$here/$n.recipe")"
done
for n in "${chain[@]}"; do source "$here/$n.recipe"; done
version="$(basename "$out")"; version="${version##*-}"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/lab-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
t0=$SECONDS
# before the kernel is installed: its initramfs gets only the recipe's modules
cat >"$work/essential-hook.sh" <<HOOK
set -e
mkdir -p "\$1/etc/initramfs-tools/conf.d" "\$1/usr/share/initramfs-tools/modules.d"
printf '%s\\n' MODULES=list COMPRESS=zstd >"\$1/etc/initramfs-tools/conf.d/lab-guest.conf"
printf '%s\\n' ${INITRAMFS_MODULES[*]} >"\$1/usr/share/initramfs-tools/modules.d/lab-guest"
HOOK
echo "building $name: mmdebstrap $SUITE (${#PACKAGES[@]} packages and their dependencies)" >&2
# documentation and translations are left out (copyright files stay); mmdebstrap reads its sources
# from the arguments, never from stdin (it would, were none given and stdin not a terminal)
mmdebstrap --variant=minbase --mode=root --format=directory \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --aptopt='Acquire::Retries "3"' \
  --essential-hook="sh $work/essential-hook.sh \"\$1\"" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  "$SUITE" "$root" \
  "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" </dev/null
t_strap=$((SECONDS - t0))
customize "$root"

kver="$(ls "$root/lib/modules" | sort -V | tail -n1)"
[ -r "$root/boot/vmlinuz-$kver" ] && [ -r "$root/boot/initrd.img-$kver" ] || { echo "no kernel/initrd for $kver in the tree" >&2; exit 1; }
lsinitramfs "$root/boot/initrd.img-$kver" >"$work/initrd.list"
for m in virtio_blk ext4; do
  grep -q "/$m\.ko" "$work/initrd.list" || { echo "the initramfs has no $m module ($(wc -l <"$work/initrd.list") files in it)" >&2; exit 1; }
done
mkdir -p "$work/out"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/out/initrd.img"
if grep -q '^CONFIG_PVH=y' "$root/boot/config-$kver" 2>/dev/null; then
  off="$(grep -abo $'\xfd7zXZ' "$work/out/vmlinuz" | head -n1 | cut -d: -f1 || true)"
  if [ -n "$off" ]; then tail -c +$((off + 1)) "$work/out/vmlinuz" | xz -dc >"$work/out/vmlinux" 2>/dev/null || true; fi
  head -c 4 "$work/out/vmlinux" 2>/dev/null | grep -q ELF || rm -f "$work/out/vmlinux"
fi
# net.ifnames=0: eth0, eth1… in NIC order on every backend, so instructions can name them;
# quiet: boot messages cost CPU time on an emulated screen and students need only the login prompt
cmdline="root=LABEL=lab-root rw net.ifnames=0 quiet console=tty0 console=ttyS0,115200n8"

# partition 1: FAT with syslinux (installed through mtools: no loop device, no mount)
boot_mib=128
mkfs.fat -n LABBOOT -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mmd -i "$work/boot.img" ::/syslinux
syslinux --install --directory /syslinux "$work/boot.img"
mdir -a -i "$work/boot.img" ::/syslinux/ldlinux.c32 >/dev/null || { echo "syslinux did not install" >&2; exit 1; }
printf 'DEFAULT debian\nPROMPT 0\nTIMEOUT 0\nLABEL debian\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND %s\n' "$cmdline" >"$work/syslinux.cfg"
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::/syslinux/syslinux.cfg
mcopy -i "$work/boot.img" "$work/out/vmlinuz" "$work/out/initrd.img" ::/
# partition 2: ext4 made from the tree (mke2fs -d keeps owners, modes and file capabilities)
truncate -s "$DISK_SIZE" "$work/disk.raw"
total_mib=$(( $(stat -c %s "$work/disk.raw") / 1048576 ))
root_mib=$((total_mib - 1 - boot_mib))
printf 'label: dos\nstart=1MiB, size=%sMiB, type=c, bootable\nstart=%sMiB, type=83\n' "$boot_mib" $((1 + boot_mib)) | sfdisk -q "$work/disk.raw"
dd if="$work/boot.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
mkfs.ext4 -q -F -L lab-root -d "$root" -E offset=$(( (1 + boot_mib) * 1048576 )) "$work/disk.raw" "$((root_mib))M"
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$work/out/disk.qcow2"
rm -f "$work/disk.raw" "$work/boot.img"
chmod 444 "$work/out/"*

tree_mib=$(du -sm "$root" | cut -f1)
qcow_mib=$(( $(stat -c %s "$work/out/disk.qcow2") / 1048576 ))
pkgs="$(chroot "$root" dpkg-query -W -f='${Package}=${Version}\n' | sort)"
python3 - "$work/out/image.json" <<PY
import json, sys
json.dump({
  "name": "$name", "version": "$version", "suite": "$SUITE", "kernelVersion": "$kver",
  "disk": "disk.qcow2", "kernel": "vmlinuz", "initrd": "initrd.img",
  "vmlinux": "vmlinux" if "$(test -f "$work/out/vmlinux" && echo y)" else None,
  "cmdline": "$cmdline", "rootLabel": "lab-root",
  "diskVirtualSize": "$DISK_SIZE", "diskMiB": $qcow_mib, "treeMiB": $tree_mib,
  "buildSeconds": {"mmdebstrap": $t_strap, "total": $((SECONDS - t0))},
  "packages": """$pkgs""".split(),
}, open(sys.argv[1], "w"), indent=1)
PY
rm -rf "$out"
mv "$work/out" "$out"
echo "built $name in $((SECONDS - t0)) s (mmdebstrap $t_strap s): tree $tree_mib MiB, disk.qcow2 $qcow_mib MiB, in $out" >&2
exit
}
