#!/bin/sh
# Guest side of the /dev/rund tests, for busybox sh inside a test guest.
#
# Runs bin/module_test, then bin/guest-cli.sh, with a reflink XFS and a tmpfs. When /mnt/xfs is not
# already an XFS mount (guest.sh makes one), it writes xfs.img.gz, an empty
# XFS made on the host with reflink=1 (its size in bytes in xfs.img.size),
# to /dev/vda if that disk is large enough, or else to a loop device over a file on /tmp, and mounts it.
# Exit status: 0 when both passed (TAP on stdout).
cd "$(dirname "$0")" || exit 1

xfs=/mnt/xfs
loop=
made_mount=
if ! grep -q " $xfs xfs " /proc/mounts; then
	need=$(cat xfs.img.size 2>/dev/null)
	have=$(( $(cat /sys/block/vda/size 2>/dev/null || echo 0) * 512 ))
	if [ -z "$need" ]; then
		echo "guest-module: xfs.img.size is missing"
		exit 1
	fi
	if [ "$have" -ge "$need" ]; then
		dev=/dev/vda
		zcat xfs.img.gz > "$dev" || exit 1
	else
		zcat xfs.img.gz > /tmp/rund-layers-xfs.img || exit 1
		loop=$(losetup -f) && losetup "$loop" /tmp/rund-layers-xfs.img || exit 1
		dev=$loop
	fi
	mkdir -p "$xfs"
	mount -t xfs "$dev" "$xfs" || exit 1
	made_mount=1
fi
mkdir -p /mnt/tmp
grep -q " /mnt/tmp tmpfs " /proc/mounts || mount -t tmpfs tmpfs /mnt/tmp

RUND_LAYER_XFS=$xfs RUND_LAYER_TMPFS=/mnt/tmp ./bin/module_test
status=$?
# The rund-helper layer commands, when the directory has a static rund-helper.
if [ -e bin/guest-cli.sh ]; then
	sh bin/guest-cli.sh "$xfs" /mnt/tmp || status=1
fi

if [ -n "$made_mount" ]; then
	umount "$xfs"
	[ -n "$loop" ] && losetup -d "$loop" && rm -f /tmp/rund-layers-xfs.img
fi
exit $status
