#!/bin/bash
# Run commands inside a QEMU TCG guest booting Debian's 6.1 kernel with
# rund.ko loaded and a reflink XFS mounted at /mnt/xfs.
#
# usage: guest.sh [-t SECONDS] DIR COMMAND...
#
# DIR contains the static programs and files to copy into the guest's /opt.
# COMMAND runs in /opt under busybox sh; its output is printed and the
# script exits with its status. The guest sees:
#   /mnt/xfs   a fresh XFS made with reflink=1 on a virtio-blk disk
#   /mnt/tmp   a tmpfs, a filesystem without reflink
#   RUND_KO    path of rund.ko inside the guest, for reloading after rmmod
# Kernel warnings, lockdep and KASAN reports in the guest's dmesg fail the run.
#
# Environment:
#   BUILD               build directory (default <repo>/build)
#   RUND_KO             module to load (default $BUILD/kmod/rund.ko)
#   RUND_GUEST_XFS_SIZE size of the XFS disk (default 512M)
#   RUND_GUEST_KERNEL   a kernel with xfs, virtio_blk and loop built in, such as
#                       the debug kernel of scripts/build-debug-kernel.sh (build
#                       rund.ko against it); default: Debian's 6.1 kernel
#   DEBIAN_KERNEL_ROOT  the unpacked linux-image package with its modules
#                       (default $BUILD/debian-kernel/root, downloaded when missing)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$repo/build}
RUND_KO=${RUND_KO:-$BUILD/kmod/rund.ko}
DEBIAN_KERNEL_ROOT=${DEBIAN_KERNEL_ROOT:-$BUILD/debian-kernel/root}
timeout_s=300

if [ "${1:-}" = -t ]; then
	timeout_s=$2
	shift 2
fi
if [ $# -lt 2 ]; then
	echo "usage: guest.sh [-t SECONDS] DIR COMMAND..." >&2
	exit 2
fi
payload=$1
shift

# Unpack Debian's kernel package matching the installed headers, once.
if [ -z "${RUND_GUEST_KERNEL:-}" ] && [ ! -d "$DEBIAN_KERNEL_ROOT/lib/modules" ]; then
	headers=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | head -n1)
	pkg=linux-image-${headers#/usr/src/linux-headers-}
	if [ -z "$headers" ]; then
		echo "guest.sh: no /usr/src/linux-headers-*-amd64 to pick the kernel version from" >&2
		exit 4
	fi
	mkdir -p "$DEBIAN_KERNEL_ROOT"
	if ! (cd "$(dirname "$DEBIAN_KERNEL_ROOT")" && apt-get download -q "$pkg" >"$DEBIAN_KERNEL_ROOT.log" 2>&1 &&
	      dpkg-deb -x "$(ls "${pkg}"_*.deb | head -n1)" "$DEBIAN_KERNEL_ROOT"); then
		cat "$DEBIAN_KERNEL_ROOT.log" >&2
		echo "guest.sh: cannot download and unpack $pkg into $DEBIAN_KERNEL_ROOT" >&2
		exit 4
	fi
fi

kver=$(ls "$DEBIAN_KERNEL_ROOT/lib/modules" 2>/dev/null | head -n1 || true)
vmlinuz=${RUND_GUEST_KERNEL:-$DEBIAN_KERNEL_ROOT/boot/vmlinuz-$kver}
for f in "$vmlinuz" "$RUND_KO" /bin/busybox; do
	if [ ! -e "$f" ]; then
		echo "guest.sh: missing $f (run 'make kmod' and the guest selftest setup)" >&2
		exit 4
	fi
done

work=$(mktemp -d /tmp/rund-layers-guest.XXXXXX)
trap '[ -n "${RUND_GUEST_KEEP:-}" ] || rm -rf "$work"' EXIT

# Modules in dependency order: depmod -n prints modules.dep without writing it.
moddir="$DEBIAN_KERNEL_ROOT/lib/modules/$kver"
mods=()
add_mod() {
	local m=$1 dep
	for have in "${mods[@]}"; do
		[ "$have" = "$m" ] && return 0
	done
	for dep in $(awk -v m="$m:" '$1 == m { $1 = ""; print }' "$work/modules.dep"); do
		add_mod "$dep"
	done
	mods+=("$m")
}
# crc32c_generic is loaded by name through the crypto API, not by a symbol.
# A kernel given by RUND_GUEST_KERNEL has all of them built in.
if [ -z "${RUND_GUEST_KERNEL:-}" ]; then
	depmod -b "$DEBIAN_KERNEL_ROOT" -n "$kver" 2>/dev/null > "$work/modules.dep"
	for m in kernel/crypto/crc32c_generic.ko kernel/fs/xfs/xfs.ko \
		 kernel/drivers/block/virtio_blk.ko kernel/drivers/virtio/virtio_pci.ko \
		 kernel/drivers/block/loop.ko; do
		add_mod "$m"
	done
fi

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,mnt/xfs,mnt/tmp,lib/modules,opt}
cp /bin/busybox "$root/bin/busybox"
for m in "${mods[@]}"; do
	cp "$moddir/$m" "$root/lib/modules/"
done
cp "$RUND_KO" "$root/lib/modules/rund.ko"
cp -a "$payload"/. "$root/opt/"
printf '%s\n' "$@" > "$root/opt/.command"

{
	echo '#!/bin/busybox sh'
	echo '/bin/busybox --install -s /bin'
	echo 'export PATH=/bin RUND_KO=/lib/modules/rund.ko'
	echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev'
	echo 'mount -t tmpfs tmp /mnt/tmp'
	for m in "${mods[@]}"; do
		echo "insmod /lib/modules/$(basename "$m") || echo 'guest: insmod $(basename "$m") failed'"
	done
	echo 'insmod /lib/modules/rund.ko || echo "guest: insmod rund.ko failed"'
	echo 'i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done'
	echo 'mount -t xfs /dev/vda /mnt/xfs || echo "guest: mount /dev/vda failed"'
	echo 'cd /opt'
	echo 'echo RUND-GUEST-START'
	echo 'sh -c "$(cat /opt/.command | tr "\n" " ")"'
	echo 'status=$?'
	# Kernel warnings, lockdep and KASAN reports fail the run even when the command passed.
	echo "if dmesg | grep -E 'WARNING:|BUG:|Oops|KASAN|circular locking|recursive locking|inconsistent lock|lock held when returning|sleeping function|refcount_t'; then"
	echo '	echo "guest: kernel reported a problem (above)"; [ $status -eq 0 ] && status=1'
	echo 'fi'
	echo 'echo "RUND-GUEST-EXIT $status"'
	# With -no-reboot QEMU exits on a reboot, also on kernels without ACPI power-off.
	echo 'umount /mnt/xfs; reboot -f'
} > "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initramfs.cpio"

truncate -s "${RUND_GUEST_XFS_SIZE:-512M}" "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img"

# Under TCG the guest can hang calibrating its TSC on a loaded host; give it the host's rate.
khz=$(awk '/^cpu MHz/ { printf "%d", $4 * 1000; exit }' /proc/cpuinfo)

status=0
timeout "$timeout_s" qemu-system-x86_64 -M q35 -accel tcg -m 1024 -smp 2 \
	-nographic -no-reboot -nic none -kernel "$vmlinuz" -initrd "$work/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 tsc_early_khz=${khz:-2000000}" \
	-drive "file=$work/xfs.img,format=raw,if=none,id=xfs,cache=unsafe" \
	-device virtio-blk-pci,drive=xfs \
	> "$work/console.log" 2>&1 || status=$?
# Print what follows the start marker: the command's output and kernel messages.
tr -d '\r' < "$work/console.log" | sed -n '/RUND-GUEST-START$/,${/RUND-GUEST-/!p}'
if [ "$status" -ne 0 ]; then
	echo "guest.sh: qemu exited with status $status (124: timed out after ${timeout_s}s)" >&2
	exit 1
fi
code=$(tr -d '\r' < "$work/console.log" | sed -n 's/^RUND-GUEST-EXIT \([0-9]*\)$/\1/p' | tail -n1)
if [ -z "$code" ]; then
	echo "guest.sh: the guest did not report an exit status" >&2
	exit 1
fi
exit "$code"
