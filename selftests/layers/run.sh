#!/bin/bash
# Writable-layer tests, TAP output.
#
#   host_test          librund clones on loop-mounted filesystems of this suite's own:
#                      XFS with reflink, XFS with reflink=0, ext4
#   cli_*              rund-helper layer create, check and list on the same mounts
#   module_test        /dev/rund in a QEMU TCG guest (guest.sh) booting Debian's 6.1 kernel
#   guest_enospc       a guest fills its layer: ENOSPC, image unchanged (guest-enospc.sh)
#
# Needs root (loop devices and mounts). Exit 0 when every test passed, 4 when the
# suite could not run at all, 1 otherwise. Under CI=true a test that cannot run fails.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export BUILD=${BUILD:-$repo/build}
helper=$BUILD/bin/rund-helper
out=$BUILD/selftests/layers
kdir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | head -n1)

ntest=0
nfail=0
nskip=0

ok() { ntest=$((ntest + 1)); echo "ok $ntest $1"; }
not_ok() { ntest=$((ntest + 1)); nfail=$((nfail + 1)); echo "not ok $ntest $1${2:+ # $2}"; }
skip() {
	ntest=$((ntest + 1))
	if [ "${CI:-}" = true ]; then
		nfail=$((nfail + 1))
		echo "not ok $ntest $1 # cannot run under CI: $2"
	else
		nskip=$((nskip + 1))
		echo "ok $ntest $1 # SKIP $2"
	fi
}
# Indent a child's output as TAP diagnostics.
diag() { sed 's/^/# /'; }

echo "TAP version 13"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root for loop devices and mounts"
	exit 4
fi
for tool in mkfs.xfs mkfs.ext4 losetup gcc tar; do
	if ! command -v "$tool" >/dev/null; then
		echo "1..0 # SKIP $tool not found; run scripts/install-deps.sh"
		exit 4
	fi
done

# Build: rund-helper, the kselftest harness from the kernel source, the test programs.
mkdir -p "$out/include"
if ! make -s -C "$repo/user" BUILD="$BUILD" >"$out/build.log" 2>&1; then
	echo "1..0 # SKIP building rund-helper failed; see $out/build.log"
	diag < "$out/build.log"
	exit 1
fi
if [ ! -e "$out/include/kselftest_harness.h" ]; then
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$out/include" --strip-components=4 \
		linux-source-6.1/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.1/tools/testing/selftests/kselftest.h || {
		echo "1..0 # SKIP cannot extract the kselftest harness from /usr/src/linux-source-6.1.tar.xz"
		exit 1
	}
fi
cflags=(-O2 -g -Wall -D_GNU_SOURCE -I"$out/include" -I"$repo/user/lib" -I"$repo/kmod/uapi")
# The guest directory: run-module-test (the entry point, for guest.sh or any
# runner that executes a directory's top-level executables), bin/module_test
# and an empty reflink XFS image for guests that have no XFS of their own.
guest_dir=$out/guest
mkdir -p "$guest_dir/bin"
if ! gcc "${cflags[@]}" -o "$out/host_test" "$here/host_test.c" \
	"$repo/user/lib/layer.c" "$repo/user/lib/error.c" >"$out/build.log" 2>&1 ||
   ! gcc -static "${cflags[@]}" -o "$guest_dir/bin/module_test" "$here/module_test.c" \
	"$repo/user/lib/layer.c" "$repo/user/lib/error.c" >>"$out/build.log" 2>&1; then
	echo "1..0 # SKIP building the test programs failed"
	diag < "$out/build.log"
	exit 1
fi
install -m 0755 "$here/guest-module.sh" "$guest_dir/run-module-test"
install -m 0644 "$here/guest-cli.sh" "$guest_dir/bin/guest-cli.sh"
# The guest has no shared libraries: link a static rund-helper for it.
if ! make -s -C "$repo/user" BUILD="$out/static" CC="gcc -static" \
	LDLIBS="$(pkg-config --static --libs libnl-genl-3.0 json-c) -lpthread" \
	>"$out/static.log" 2>&1 ||
   ! install -m 0755 "$out/static/bin/rund-helper" "$guest_dir/bin/rund-helper"; then
	echo "1..0 # SKIP linking a static rund-helper failed; see $out/static.log"
	diag < "$out/static.log"
	exit 1
fi
if [ ! -e "$guest_dir/xfs.img.gz" ]; then
	# 320 MiB: mkfs.xfs refuses filesystems under 300 MB.
	truncate -s 320M "$guest_dir/xfs.img" &&
		mkfs.xfs -q -m reflink=1 "$guest_dir/xfs.img" &&
		stat -c %s "$guest_dir/xfs.img" > "$guest_dir/xfs.img.size" &&
		gzip -1 "$guest_dir/xfs.img" || {
		rm -f "$guest_dir"/xfs.img*
		echo "1..0 # SKIP cannot make the guest's XFS image"
		exit 1
	}
fi

# Filesystems of this suite's own, torn down on exit.
work=$(mktemp -d /tmp/rund-test-layers.XXXXXX)
mounts=()
loops=()
cleanup() {
	local m l
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
	for l in "${loops[@]}"; do losetup -d "$l"; done
	rm -rf "$work"
}
trap cleanup EXIT

# mount_fs NAME SIZE MKFS-COMMAND...: make a sparse image, attach and mount it at $work/NAME.
mount_fs() {
	local name=$1 size=$2 loop
	shift 2
	truncate -s "$size" "$work/$name.img" &&
		"$@" "$work/$name.img" >/dev/null &&
		loop=$(losetup --find --show "$work/$name.img") || return 1
	loops+=("$loop")
	mkdir -p "$work/$name"
	mount "$loop" "$work/$name" || return 1
	mounts+=("$work/$name")
}
if ! mount_fs xfs 1G mkfs.xfs -q -m reflink=1 ||
   ! mount_fs xfs-noreflink 320M mkfs.xfs -q -m reflink=0 ||
   ! mount_fs ext4 64M mkfs.ext4 -q -F; then
	echo "1..0 # SKIP cannot make and mount the loop filesystems under $work"
	exit 1
fi
xfs=$work/xfs
noreflink=$work/xfs-noreflink
ext4=$work/ext4

# --- host_test: the library on the three filesystems -------------------------
if RUND_TEST_XFS=$xfs RUND_TEST_XFS_NOREFLINK=$noreflink RUND_TEST_EXT4=$ext4 \
	"$out/host_test" >"$work/host_test.log" 2>&1; then
	diag < "$work/host_test.log"
	if grep -q '^ok .* # SKIP' "$work/host_test.log" && [ "${CI:-}" = true ]; then
		not_ok host_test "a test skipped under CI"
	else
		ok host_test
	fi
else
	diag < "$work/host_test.log"
	not_ok host_test
fi

# --- rund-helper layer create/check/list ---------------------------------------
# expect NAME STATUS PATTERN COMMAND...: run COMMAND, want exit STATUS and PATTERN in its output.
expect() {
	local name=$1 want=$2 pattern=$3 rc
	shift 3
	"$@" >"$work/cmd.log" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		diag < "$work/cmd.log"
		not_ok "$name" "exit $rc, expected $want: $*"
	elif [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$work/cmd.log"; then
		diag < "$work/cmd.log"
		not_ok "$name" "output lacks /$pattern/"
	else
		ok "$name"
	fi
}
# json_field FILE KEY: print one top-level field of a JSON object.
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

expect cli_create_on_xfs 0 'created .*ext4, 32 MiB' "$helper" layer create "$xfs/a.ext4" --size 32
expect cli_check_accepts_created 0 ': ok, ext4, 32 MiB' "$helper" layer check "$xfs/a.ext4"
"$helper" layer check --json "$xfs/a.ext4" >"$work/check.json" 2>/dev/null
extents=$(json_field "$work/check.json" extents 2>/dev/null || echo "?")
if [ "$extents" != "?" ] && [ "$extents" -le 4 ]; then
	ok "cli_created_image_unfragmented"
else
	not_ok "cli_created_image_unfragmented" "extents: $extents, expected at most 4"
fi
expect cli_create_existing_rejected 125 'already exists' "$helper" layer create "$xfs/a.ext4" --size 32
expect cli_create_size_zero_rejected 125 "invalid --size '0'" "$helper" layer create "$xfs/b.ext4" --size 0
expect cli_create_size_text_rejected 125 "invalid --size '12x'" "$helper" layer create "$xfs/b.ext4" --size 12x
expect cli_list_shows_image 0 '^a\.ext4 +32 +[0-9]+ +yes' "$helper" layer list --dir "$xfs"
"$helper" layer list --json --dir "$xfs" >"$work/list.json" 2>/dev/null
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["reflink"] and [i for i in d["images"] if i["name"]=="a.ext4" and i["ext4"]]' "$work/list.json" 2>/dev/null; then
	ok cli_list_json
else
	diag < "$work/list.json"
	not_ok cli_list_json
fi

for fs in ext4:"$ext4":ext4 noreflink:"$noreflink":"xfs without reflink"; do
	IFS=: read -r tag dir type <<<"$fs"
	before=$(ls -A "$dir" | wc -l)
	expect "cli_create_on_${tag}_rejected" 125 "is on $type, not on XFS with reflink.*setup-xfs.sh" \
		"$helper" layer create "$dir/a.ext4" --size 16
	after=$(ls -A "$dir" | wc -l)
	if [ "$before" -eq "$after" ]; then
		ok "cli_create_on_${tag}_left_nothing"
	else
		not_ok "cli_create_on_${tag}_left_nothing" "$before entries before, $after after"
	fi
done

# A real ext4 image on the filesystem without reflink: check must reject the filesystem.
cp "$xfs/a.ext4" "$ext4/copy.ext4"
expect cli_check_on_ext4_rejected 125 'not on XFS with reflink' "$helper" layer check "$ext4/copy.ext4"
expect cli_check_missing_rejected 125 "open layer image '$xfs/none.ext4'" "$helper" layer check "$xfs/none.ext4"
expect cli_check_not_ext4_rejected 125 'not an ext4 image' "$helper" layer check "$work/xfs.img"

# A deliberately fragmented image: two files grown in turns with direct I/O,
# so that their extents interleave, then formatted in place.
for i in $(seq 0 63); do
	xfs_io -f -d -c "pwrite -q $((i * 131072)) 128k" "$xfs/frag.ext4" &&
		xfs_io -f -d -c "pwrite -q $((i * 131072)) 128k" "$xfs/frag-other" || break
done
mkfs.ext4 -q -F -E nodiscard -O ^has_journal "$xfs/frag.ext4" >/dev/null 2>&1
expect cli_check_fragmented_rejected 125 'is fragmented: [0-9]+ extents \(max 32\)' \
	"$helper" layer check "$xfs/frag.ext4"
rm -f "$xfs/frag.ext4" "$xfs/frag-other"

# --- module tests in a guest -----------------------------------------------------
# The module comes from `make kmod`; RUND_KO names another build.
ko=${RUND_KO:-$BUILD/kmod/rund.ko}
if [ -z "${RUND_KO:-}" ] && [ -n "$kdir" ] && [ -e "$repo/kmod/Kbuild" ]; then
	make -s -C "$repo" kmod >"$work/kmod.log" 2>&1 || { diag < "$work/kmod.log"; }
fi
if [ ! -e "$ko" ]; then
	skip module_test "$ko not built (make kmod)"
else
	RUND_KO=$ko "$here/guest.sh" -t 900 "$guest_dir" ./run-module-test >"$work/module.log" 2>&1
	rc=$?
	diag < "$work/module.log"
	case $rc in
	0) ok module_test ;;
	4) skip module_test "$(tail -n1 "$work/module.log")" ;;
	*) not_ok module_test ;;
	esac
fi

# --- a guest filling its layer -------------------------------------------------
if [ ! -x "$here/guest-enospc.sh" ]; then
	not_ok guest_enospc "guest-enospc.sh is missing"
elif "$here/guest-enospc.sh" >"$work/enospc.log" 2>&1; then
	diag < "$work/enospc.log"
	ok guest_enospc
else
	rc=$?
	diag < "$work/enospc.log"
	if [ "$rc" -eq 4 ]; then
		skip guest_enospc "$(tail -n1 "$work/enospc.log")"
	else
		not_ok guest_enospc
	fi
fi

echo "1..$ntest"
echo "# layers: $((ntest - nfail - nskip)) passed, $nfail failed, $nskip skipped"
[ "$nfail" -eq 0 ]
