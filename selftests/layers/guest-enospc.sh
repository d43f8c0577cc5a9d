#!/bin/bash
# A sandbox fills its writable layer: the guest's write fails with ENOSPC
# (ext4 inside the guest, not an I/O error from the host) and the layer image
# the clone came from is unchanged.
#
# Uses build/bin/rund-helper run with a 16 MiB layer image on an XFS loop
# mount of its own. Exit 0 on pass, 4 when a sandbox cannot be started here
# (no guest kernel, initramfs or image: run scripts/setup.sh), 1 on failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$repo/build}
helper=$BUILD/bin/rund-helper

skip() { echo "SKIP: $*"; exit 4; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root for a loop mount"
[ -x "$helper" ] || skip "$helper not built"
for f in /var/lib/rund/kernel/vmlinux /var/lib/rund/kernel/initramfs.cpio \
	 /var/lib/rund/images/debian.erofs; do
	[ -e "$f" ] || skip "$f is missing; run scripts/setup.sh"
done

work=$(mktemp -d /tmp/rund-test-enospc.XXXXXX)
loop=
cleanup() {
	mountpoint -q "$work/xfs" && umount "$work/xfs"
	[ -n "$loop" ] && losetup -d "$loop"
	rm -rf "$work"
}
trap cleanup EXIT

truncate -s 512M "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img" || fail "mkfs.xfs failed"
loop=$(losetup --find --show "$work/xfs.img") || fail "losetup failed"
mkdir "$work/xfs"
mount "$loop" "$work/xfs" || fail "mount $loop failed"

layer=$work/xfs/tiny.ext4
"$helper" layer create "$layer" --size 16 || fail "layer create failed"
before=$(sha256sum < "$layer")

# 64 MiB into a 16 MiB layer: /var/tmp is on the overlay whose upper
# directory is on the writable layer (/tmp is a tmpfs in the guest).
"$helper" run --layer "$layer" --timeout 120 --json-fd 3 -- \
	sh -c 'dd if=/dev/zero of=/var/tmp/fill bs=1M count=64 2>&1; echo "dd-status=$?"' \
	>"$work/out" 2>"$work/err" 3>"$work/result.json"
status=$?
cat "$work/out"
sed 's/^/stderr: /' "$work/err"
sed 's/^/result: /' "$work/result.json"

[ "$status" -eq 0 ] || fail "rund-helper run exited with $status, expected the shell's 0"
grep -q 'No space left on device' "$work/out" || fail "dd did not report ENOSPC"
grep -q 'dd-status=1' "$work/out" || fail "dd did not fail with status 1"
if grep -qi 'I/O error' "$work/out"; then
	fail "the guest saw an I/O error instead of ENOSPC"
fi

after=$(sha256sum < "$layer")
[ "$before" = "$after" ] || fail "layer image changed: $before before, $after after"
"$helper" layer check "$layer" >/dev/null || fail "layer check rejects the image after the run"
echo "PASS: guest write failed with ENOSPC, layer image unchanged (sha256 ${before%% *})"
