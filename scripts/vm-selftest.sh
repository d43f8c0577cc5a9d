#!/bin/bash
# Run guest selftests inside a throwaway QEMU TCG guest and report TAP.
#
#   scripts/vm-selftest.sh KERNEL_IMAGE MODULES_DIR TESTS_DIR...
#
# KERNEL_IMAGE  bzImage or vmlinuz to boot.
# MODULES_DIR   the kernel's /lib/modules/<version> tree (with modules.dep, or
#               one that depmod can index), or "-" for a kernel with
#               everything built in.
# TESTS_DIR     one directory per test suite. Each is copied to
#               /tests/<basename> in the guest; every executable regular file
#               at its top level is a test, run in name order from that
#               directory as root. A test prints TAP and exits 0 (pass),
#               4 (skip) or anything else (fail). Other files are data.
#
# Environment:
#   RUND_KO            rund.ko built for KERNEL_IMAGE; loaded before the tests
#                      and exported to them as RUND_KO=/rund.ko.
#   RUND_VM_MODULES    modules to load, in order, with their dependencies from
#                      modules.dep (default: "loop crc32c_generic xfs virtio_pci
#                      virtio_blk"); built-in ones are skipped.
#   RUND_VM_TIMEOUT    seconds before a hung guest counts as failed (600).
#   RUND_VM_MEM        guest memory in MiB (1024); RUND_VM_CPUS (2).
#   RUND_VM_DISK_MB    size of a scratch virtio disk, /dev/vda in the guest (256).
#   RUND_VM_ENV        extra "NAME=value ..." exported to every test.
#   RUND_VM_LOG        where to keep the serial console log.
#
# The guest mounts proc, sysfs, devtmpfs, tmpfs on /tmp and cgroup2 on
# /sys/fs/cgroup; tests mount anything else they need (v1 hierarchies).
# After the tests the guest's dmesg is searched for WARN, BUG, Oops, KASAN and
# lockdep reports; any report fails the run. Exit status: 0 when every test
# passed or skipped and dmesg is clean, 1 otherwise.
set -euo pipefail

usage() {
	sed -n '2,4p' "$0" >&2
	exit 2
}

[ $# -ge 3 ] || usage
KERNEL=$1
MODDIR=$2
shift 2
TEST_DIRS=("$@")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
TIMEOUT=${RUND_VM_TIMEOUT:-600}
MEM=${RUND_VM_MEM:-1024}
CPUS=${RUND_VM_CPUS:-2}
DISK_MB=${RUND_VM_DISK_MB:-256}
MODULES=${RUND_VM_MODULES:-loop crc32c_generic xfs virtio_pci virtio_blk}
BUSYBOX=/bin/busybox
QEMU=qemu-system-x86_64

for tool in "$QEMU" cpio gzip; do
	command -v "$tool" >/dev/null || { echo "vm-selftest: $tool not found; run scripts/install-deps.sh" >&2; exit 1; }
done
[ -r "$KERNEL" ] || { echo "vm-selftest: kernel image $KERNEL not found" >&2; exit 1; }
# A static binary has no program interpreter; the initramfs has no libc.
if [ ! -x "$BUSYBOX" ] || readelf -l "$BUSYBOX" | grep -q "INTERP"; then
	echo "vm-selftest: $BUSYBOX is missing or not the static busybox; install busybox-static" >&2
	exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rund-vm-selftest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
INITRD=$WORK/initramfs
mkdir -p "$INITRD"/{bin,dev,proc,sys,tmp,tests,lib/modules}
cp "$BUSYBOX" "$INITRD/bin/busybox"

# Modules, dependencies first, listed in /modules.load in load order.
: >"$INITRD/modules.load"
if [ "$MODDIR" != "-" ]; then
	[ -d "$MODDIR" ] || { echo "vm-selftest: modules directory $MODDIR not found" >&2; exit 1; }
	if [ ! -e "$MODDIR/modules.dep" ]; then
		base=$(dirname "$(dirname "$MODDIR")")
		depmod -b "$(dirname "$base")" "$(basename "$MODDIR")"
	fi
	declare -A loaded=()
	add_module() {
		local rel=$1 dep deps
		[ -n "${loaded[$rel]:-}" ] && return 0
		deps=$(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$MODDIR/modules.dep")
		for dep in $deps; do
			add_module "$dep"
		done
		loaded[$rel]=1
		local name
		name=$(basename "$rel")
		name=${name%.xz}
		name=${name%.zst}
		case "$rel" in
		*.xz) xz -dc "$MODDIR/$rel" >"$INITRD/lib/modules/$name" ;;
		*.zst) zstd -qdc "$MODDIR/$rel" >"$INITRD/lib/modules/$name" ;;
		*) cp "$MODDIR/$rel" "$INITRD/lib/modules/$name" ;;
		esac
		echo "$name" >>"$INITRD/modules.load"
	}
	for m in $MODULES; do
		rel=$(awk -F: -v m="$m" '{ n = $1; sub(".*/", "", n); sub("\\.ko.*", "", n); gsub("-", "_", n); if (n == m) { print $1; exit } }' "$MODDIR/modules.dep")
		if [ -n "$rel" ]; then
			add_module "$rel"
		elif ! grep -qE "/${m//_/[-_]}\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
			echo "vm-selftest: module $m is neither in modules.dep nor built in; tests needing it will fail" >&2
		fi
	done
fi

if [ -n "${RUND_KO:-}" ]; then
	cp "$RUND_KO" "$INITRD/rund.ko"
fi

for dir in "${TEST_DIRS[@]}"; do
	[ -d "$dir" ] || { echo "vm-selftest: test directory $dir not found" >&2; exit 1; }
	cp -a "$dir" "$INITRD/tests/$(basename "$dir")"
done

cat >"$INITRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
export RUND_KO=/rund.ko ${RUND_VM_ENV:-}
echo "RUND-GUEST-START \$(uname -r)"
for m in \$(cat /modules.load); do
	insmod /lib/modules/\$m || echo "RUND-SETUP-FAIL insmod \$m"
done
if [ -e /rund.ko ]; then
	insmod /rund.ko || echo "RUND-SETUP-FAIL insmod rund.ko"
fi
for suite in /tests/*; do
	for t in \$(ls "\$suite"); do
		[ -f "\$suite/\$t" ] && [ -x "\$suite/\$t" ] || continue
		echo "RUND-TEST-BEGIN \$(basename \$suite)/\$t"
		start=\$(cut -d' ' -f1 /proc/uptime)
		(cd "\$suite" && "./\$t")
		rc=\$?
		echo "RUND-TEST-END \$(basename \$suite)/\$t rc=\$rc start=\$start end=\$(cut -d' ' -f1 /proc/uptime)"
	done
done
echo "RUND-DMESG-BEGIN"
dmesg | grep -E 'WARNING:|BUG:|Oops|KASAN|circular locking|recursive locking|inconsistent lock|lock held when returning|sleeping function|general protection|Kernel panic|UBSAN|refcount_t' | sed 's/^/RUND-DMESG-REPORT /'
echo "RUND-DMESG-END"
dmesg >/tmp/dmesg.txt
echo "RUND-FULL-DMESG-BEGIN"
cat /tmp/dmesg.txt
echo "RUND-FULL-DMESG-END"
echo "RUND-GUEST-DONE"
# QEMU runs with -no-reboot, so a reboot ends it; poweroff needs ACPI, which a small kernel may lack.
reboot -f
EOF
chmod +x "$INITRD/init"

(cd "$INITRD" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.cpio.gz"
truncate -s "${DISK_MB}M" "$WORK/disk.img"

LOG=${RUND_VM_LOG:-$WORK/console.log}
mkdir -p "$(dirname "$LOG")"
echo "vm-selftest: booting $KERNEL under TCG (log: $LOG)" >&2
set +e
timeout --foreground -k 10 "$TIMEOUT" "$QEMU" -M q35 -accel tcg -cpu max -smp "$CPUS" -m "$MEM" \
	-nographic -no-reboot -nodefaults -serial stdio \
	-kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=4 rdinit=/init" \
	-drive "file=$WORK/disk.img,format=raw,if=virtio" >"$LOG" 2>&1
qemu_rc=$?
set -e

# Print the TAP and markers, not the full dmesg dump.
sed -n '/RUND-FULL-DMESG-BEGIN/q;p' "$LOG" | tr -d '\r'

fail=0
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
	echo "vm-selftest: FAIL: the guest did not finish within $TIMEOUT s" >&2
	fail=1
elif ! grep -q "RUND-GUEST-DONE" "$LOG"; then
	echo "vm-selftest: FAIL: the guest stopped before the end of the tests (QEMU exit $qemu_rc)" >&2
	fail=1
fi
if grep -q "RUND-SETUP-FAIL" "$LOG"; then
	echo "vm-selftest: FAIL: guest setup: $(grep RUND-SETUP-FAIL "$LOG" | tr -d '\r' | tr '\n' ' ')" >&2
	fail=1
fi
nr_tests=$(grep -c "RUND-TEST-END" "$LOG" || true)
if [ "$nr_tests" -eq 0 ]; then
	echo "vm-selftest: FAIL: no test ran" >&2
	fail=1
fi
while read -r line; do
	rc=$(echo "$line" | sed -n 's/.* rc=\([0-9]*\).*/\1/p')
	name=$(echo "$line" | awk '{print $2}')
	case "$rc" in
	0) ;;
	4) echo "vm-selftest: $name skipped" >&2 ;;
	*) echo "vm-selftest: FAIL: $name exited $rc" >&2; fail=1 ;;
	esac
done < <(grep "RUND-TEST-END" "$LOG" | tr -d '\r')
if grep -q "^not ok" <(tr -d '\r' <"$LOG"); then
	echo "vm-selftest: FAIL: TAP has 'not ok' lines" >&2
	fail=1
fi
if grep -q "RUND-DMESG-REPORT" "$LOG"; then
	echo "vm-selftest: FAIL: the guest kernel log has reports:" >&2
	grep "RUND-DMESG-REPORT" "$LOG" | tr -d '\r' >&2
	fail=1
fi
exit "$fail"
