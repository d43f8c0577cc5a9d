#!/bin/bash
# Host tests of the cgroupfs pool backend (librund and rund-helper pool).
#
# Builds rund-helper and pool_test (kselftest harness extracted from Debian's
# linux-source-6.1 into $BUILD/kselftest), then runs every test on the host's
# v1 per-controller hierarchies and on its cgroup2 mount. Each test makes its
# cgroups under rund-test-pooluser-<pid>-* and its state under /run; the trap
# below removes whatever a crashed or timed-out test left behind.
#
# RUND_TEST_CYCLES sets the acquire/release cycles per worker of the
# concurrency tests (default 10000). The module backend is then tested in a
# QEMU guest with rund.ko ($RUND_KO, default $BUILD/kmod/rund.ko) on the
# layouts in RUND_POOL_GUEST_LAYOUTS (default "v2 v1").
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
SRC_TAR=/usr/src/linux-source-6.1.tar.xz
HARNESS_DIR=$BUILD/kselftest
PREFIX="rund-test-pooluser-$$"

if [ "$(id -u)" -ne 0 ]; then
	echo "pool-user: must run as root to create cgroups" >&2
	exit 4
fi

cleanup() {
	local d pid
	for d in /sys/fs/cgroup/*/"$PREFIX"-*; do
		[ -d "$d" ] || continue
		# children before parents; kill what is left inside first
		while read -r sub; do
			if [ -f "$sub/cgroup.kill" ]; then
				echo 1 > "$sub/cgroup.kill" 2>/dev/null
			elif [ -f "$sub/cgroup.procs" ]; then
				while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$sub/cgroup.procs"
			fi
			for _ in 1 2 3 4 5 6 7 8 9 10; do
				rmdir "$sub" 2>/dev/null && break
				sleep 0.05
			done
		done < <(find "$d" -depth -type d)
	done
	rm -rf /run/"$PREFIX"-*
	leftover=$(ls -d /sys/fs/cgroup/*/"$PREFIX"-* 2>/dev/null)
	[ -z "$leftover" ] || echo "pool-user: could not remove: $leftover" >&2
}
trap cleanup EXIT

# Build rund-helper and librund.
make -s -C user BUILD="$BUILD" >/dev/null || { echo "pool-user: building rund-helper failed" >&2; exit 1; }

# The kselftest harness comes from the kernel source package, never from this repository.
if [ ! -f "$HARNESS_DIR/kselftest_harness.h" ]; then
	if [ ! -f "$SRC_TAR" ]; then
		echo "pool-user: $SRC_TAR is missing; run scripts/install-deps.sh (package linux-source-6.1)" >&2
		exit 1
	fi
	mkdir -p "$HARNESS_DIR"
	tmp=$(mktemp -d "$HARNESS_DIR/.extract.XXXXXX")
	tar -xJf "$SRC_TAR" -C "$tmp" --strip-components=4 \
		linux-source-6.1/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.1/tools/testing/selftests/kselftest.h || exit 1
	mv -f "$tmp"/kselftest.h "$tmp"/kselftest_harness.h "$HARNESS_DIR"/
	rmdir "$tmp"
fi

mkdir -p "$BUILD/selftests"
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -I"$HARNESS_DIR" -Iuser/lib -Ikmod/uapi \
	$(pkg-config --cflags libnl-genl-3.0) \
	-o "$BUILD/selftests/pool_test" selftests/pool-user/pool_test.c \
	"$BUILD/lib/librund.a" $(pkg-config --libs libnl-genl-3.0 json-c) -lpthread ||
	{ echo "pool-user: building pool_test failed" >&2; exit 1; }

echo "# pool-user: the co-mounted v1 layout cannot be built on this host (its controllers are"
echo "# bound to one hierarchy each and are never remounted); the module's guest tests cover it."

# Bad CLI input needs no pool: check a few messages without one.
H="$BUILD/bin/rund-helper"
fails=0
expect_fail() {
	local want=$1; shift
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" -ne 125 ] || ! grep -q -- "$want" <<<"$out"; then
		echo "not ok cli: '$*' gave $rc: $out"; fails=$((fails + 1))
	else
		echo "ok cli: '$*' -> $out"
	fi
}
expect_fail "invalid --backend 'kernel'" "$H" pool list --backend kernel
expect_fail "invalid --size '7x'" "$H" pool init --size 7x
expect_fail "invalid --layout 'v3'" "$H" pool init --layout v3
expect_fail "unknown controller 'cpuacct'" "$H" pool init --controllers memory,cpuacct
expect_fail "no cgroupfs pool is initialised" "$H" pool list --backend cgroupfs --state /run/"$PREFIX"-none
expect_fail "family 'rund' is not registered" "$H" pool list --backend module
expect_fail "longer than 256 bytes" "$H" pool init --backend cgroupfs --state /run/"$PREFIX"-none \
	--layout v2 --name "$(printf 'n%.0s' $(seq 300))"
expect_fail "must be an absolute path" "$H" pool list --backend cgroupfs --state relative/dir
expect_fail "invalid --lease-ms '50'" "$H" pool init --lease-ms 50
expect_fail "expected 2 arguments, got 1" "$H" pool attach sb-x
[ ! -e /run/"$PREFIX"-none ] || { echo "not ok cli: a rejected init left /run/$PREFIX-none"; fails=$((fails + 1)); }

RUND_TEST_PREFIX="$PREFIX" RUND_HELPER="$H" "$BUILD/selftests/pool_test"
rc=$?
[ "$fails" -eq 0 ] || rc=1

# The module backend: a static rund-helper drives rund.ko in a QEMU guest
# booting Debian's 6.1 kernel, once on cgroup2 and once on a co-mounted v1
# hierarchy (separate boots: a controller cannot move to v1 once cgroup2 used it).
KO=${RUND_KO:-$BUILD/kmod/rund.ko}
DEBIAN_KERNEL_ROOT=${DEBIAN_KERNEL_ROOT:-$BUILD/debian-kernel/root}
guest_missing=""
if [ ! -d "$DEBIAN_KERNEL_ROOT/lib/modules" ]; then
	headers=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | head -n1)
	pkg=linux-image-${headers#/usr/src/linux-headers-}
	mkdir -p "$DEBIAN_KERNEL_ROOT"
	if [ -z "$headers" ] || ! (cd "$(dirname "$DEBIAN_KERNEL_ROOT")" &&
		apt-get download -q "$pkg" >"$DEBIAN_KERNEL_ROOT.log" 2>&1 &&
		dpkg-deb -x "$(ls "${pkg}"_*.deb | head -n1)" "$DEBIAN_KERNEL_ROOT"); then
		guest_missing="Debian's kernel package $pkg could not be unpacked into $DEBIAN_KERNEL_ROOT"
	fi
fi
[ -f "$KO" ] || guest_missing="no $KO ('make kmod' builds it)"
if [ -n "$guest_missing" ]; then
	if [ "${CI:-}" = true ]; then
		echo "not ok pool-user guest: $guest_missing"
		rc=1
	else
		echo "# SKIP module backend guest tests: $guest_missing"
	fi
else
	kver=$(ls "$DEBIAN_KERNEL_ROOT/lib/modules" | head -n1)
	objs=$(ls "$BUILD"/obj/user/*.o)
	for layout in ${RUND_POOL_GUEST_LAYOUTS:-v2 v1}; do
		stage="$BUILD/pool-user-guest/$layout/pool"
		rm -rf "$stage"
		mkdir -p "$stage/bin"
		cp selftests/pool-user/guest/common.sh selftests/pool-user/guest/"$layout"/* "$stage"/
		gcc -static -o "$stage/bin/rund-helper" $objs "$BUILD/lib/librund.a" \
			-lnl-genl-3 -lnl-3 -ljson-c -lpthread -lm 2>"$stage.link.log" ||
			{ cat "$stage.link.log" >&2; echo "not ok pool-user guest $layout: static link failed"; rc=1; continue; }
		echo "# module backend, $layout layout, in a guest"
		if ! RUND_KO="$KO" RUND_VM_TIMEOUT=300 scripts/vm-selftest.sh \
			"$DEBIAN_KERNEL_ROOT/boot/vmlinuz-$kver" "$DEBIAN_KERNEL_ROOT/lib/modules/$kver" "$stage"; then
			echo "not ok pool-user guest $layout"
			rc=1
		else
			echo "ok pool-user guest $layout"
		fi
	done
fi
exit $rc
