#!/bin/bash
# rund.ko selftests: build the module for two guest kernels, build the static
# test binaries, and run them in QEMU TCG guests (scripts/vm-selftest.sh).
#
#   selftests/kmod/run.sh
#
# Kernels: Debian's 6.1 (the linux-image .deb matching the installed headers,
# fetched with apt-get download and unpacked into build/, never installed) and
# a debug kernel from linux-source-6.1 with lockdep, KASAN and
# DEBUG_ATOMIC_SLEEP (scripts/build-debug-kernel.sh, config fragment in
# selftests/kmod/config). Each pool layout boots its own guest, because a v1
# controller whose cgroups once existed in one hierarchy stays bound to it.
#
# Environment: KDIR (Debian headers), RUND_KMOD_KERNELS ("debian debug"),
# RUND_KMOD_LAYOUTS ("v2 v1 v1split"), RUND_STRESS_CYCLES (overrides the
# per-kernel stress counts below).
#
# Exit: 0 pass, 4 whole-suite skip (never under CI=true), 1 failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
KDIR=${KDIR:-$(ls -d /usr/src/linux-headers-6.1.*-amd64 2>/dev/null | head -n1)}
KERNELS=${RUND_KMOD_KERNELS:-debian debug}
LAYOUTS=${RUND_KMOD_LAYOUTS:-v2 v1 v1split}
LOGDIR=$BUILD/test-logs/kmod
mkdir -p "$LOGDIR"

skip() {
	echo "kmod: SKIP: $*" >&2
	if [ "${CI:-}" = true ]; then
		echo "kmod: CI=true does not allow this suite to skip" >&2
		exit 1
	fi
	exit 4
}

fail() {
	echo "kmod: FAIL: $*" >&2
	exit 1
}

# Stress cycles per thread (8 threads): 10,000 on v2 and co-mounted v1 with
# Debian's kernel.
# A v1 claim renames its directories and a v1 drain freezes, lists and
# signals, once per hierarchy in the split layout. KASAN and lockdep slow
# every cgroup write further. Those runs use fewer cycles so that the suite
# stays within a few minutes; docs/pool.md has the timings.
stress_cycles() {
	if [ -n "${RUND_STRESS_CYCLES:-}" ]; then
		echo "$RUND_STRESS_CYCLES"
		return
	fi
	case "$1/$2" in
	debian/v2 | debian/v1) echo 10000 ;;
	debian/v1split) echo 2000 ;;
	debug/v2) echo 1000 ;;
	debug/v1) echo 200 ;;
	debug/v1split) echo 100 ;;
	esac
}

[ -n "$KDIR" ] && [ -d "$KDIR" ] || skip "no Debian 6.1 kernel headers in /usr/src; run scripts/install-deps.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing; run scripts/install-deps.sh"
[ -x /bin/busybox ] || skip "/bin/busybox missing; install busybox-static"

version=$(basename "$KDIR")
version=${version#linux-headers-}

# Debian's kernel image for the same version as the headers.
debian_kernel() {
	local dir=$BUILD/debian-kernel
	local image=$dir/root/boot/vmlinuz-$version
	if [ ! -e "$image" ]; then
		mkdir -p "$dir"
		(cd "$dir" && apt-get download "linux-image-$version" >&2) ||
			return 1
		dpkg-deb -x "$dir"/linux-image-"$version"_*.deb "$dir/root" || return 1
	fi
	if [ ! -e "$dir/root/lib/modules/$version/modules.dep" ]; then
		depmod -b "$dir/root" "$version" || return 1
	fi
	echo "$image"
}

# Builds rund.ko against $1 in a private copy of the sources, so that the
# objects of different kernels never mix; prints the module path.
build_module() {
	local kdir=$1 name=$2
	local dir=$BUILD/kmod-build/$name
	mkdir -p "$dir"
	rsync -a --delete "$ROOT/Kbuild" "$dir/" &&
		rsync -a --delete --exclude '*.o' --exclude '*.ko' --exclude '*.cmd' "$ROOT/kmod" "$dir/" ||
		return 1
	make -s -C "$kdir" M="$dir" modules >&2 || return 1
	echo "$dir/kmod/rund.ko"
}

start=$(date +%s)
make -s -C selftests/kmod BUILD="$BUILD" >&2 || fail "building the test binaries failed"

for layout in $LAYOUTS; do
	rm -rf "$BUILD/guest-tests/kmod-$layout"
	mkdir -p "$BUILD/guest-tests/kmod-$layout"
	cp "$BUILD/kmod-tests/kmod-pool-$layout" "$BUILD/guest-tests/kmod-$layout/"
done

failed=()
for kernel in $KERNELS; do
	case "$kernel" in
	debian)
		t0=$(date +%s)
		image=$(debian_kernel) || fail "cannot fetch linux-image-$version with apt-get download"
		ko=$(build_module "$KDIR" debian) || fail "building rund.ko against $KDIR failed"
		moddir=$BUILD/debian-kernel/root/lib/modules/$version
		;;
	debug)
		t0=$(date +%s)
		image=$(scripts/build-debug-kernel.sh | tail -n1) || fail "building the debug kernel failed"
		echo "kmod: debug kernel ready after $(( $(date +%s) - t0 )) s" >&2
		ko=$(build_module "$BUILD/debug-kernel" debug) || fail "building rund.ko against the debug kernel failed"
		moddir=-
		;;
	*)
		fail "unknown kernel '$kernel' in RUND_KMOD_KERNELS (expected debian or debug)"
		;;
	esac

	for layout in $LAYOUTS; do
		cycles=$(stress_cycles "$kernel" "$layout")
		echo "=== kmod: $kernel kernel, $layout layout, stress $cycles cycles x 8 threads ==="
		t1=$(date +%s)
		if RUND_KO=$ko RUND_VM_ENV="RUND_STRESS_CYCLES=$cycles" RUND_VM_TIMEOUT=${RUND_VM_TIMEOUT:-1200} \
			RUND_VM_LOG="$LOGDIR/$kernel-$layout.console" \
			scripts/vm-selftest.sh "$image" "$moddir" "$BUILD/guest-tests/kmod-$layout"; then
			echo "=== kmod: $kernel/$layout passed in $(( $(date +%s) - t1 )) s ==="
		else
			echo "=== kmod: $kernel/$layout FAILED after $(( $(date +%s) - t1 )) s (console: $LOGDIR/$kernel-$layout.console) ==="
			failed+=("$kernel/$layout")
		fi
	done
done

echo "kmod: finished in $(( $(date +%s) - start )) s"
if [ "${#failed[@]}" -ne 0 ]; then
	fail "${failed[*]}"
fi
exit 0
