#!/bin/bash
# Make /var/lib/rund/layers a directory on XFS with reflink, where writable
# layers are cloned with FICLONE.
#
#   scripts/setup-xfs.sh            set up (idempotent, also after a reboot)
#   scripts/setup-xfs.sh --remove   unmount the loop-mounted file system and
#                                   detach its loop device; keeps the image file
#
# When the directory already sits on XFS with reflink=1, nothing is done.
# Otherwise a sparse image file, /var/lib/rund/layers.xfs, is made once with
# `mkfs.xfs -m reflink=1` and loop-mounted on the directory.
#
# Environment: RUND_LAYERS_SIZE   size of a new image file (default 16G, any
#                                 size that truncate(1) accepts)
#              RUND_STATE_DIR     instead of /var/lib/rund (for tests)
set -euo pipefail

STATE=${RUND_STATE_DIR:-/var/lib/rund}
LAYERS=$STATE/layers
IMAGE=$STATE/layers.xfs
SIZE=${RUND_LAYERS_SIZE:-16G}

die() {
	echo "setup-xfs: $*" >&2
	exit 1
}

# Succeed when the file system holding $1 is XFS with reflink enabled.
has_reflink() {
	[ "$(stat -f -c %T "$1")" = xfs ] || return 1
	xfs_info "$(findmnt -n -o TARGET --target "$1")" 2>/dev/null | grep -q 'reflink=1'
}

# Print the loop devices backed by the image file, one per line.
image_loops() {
	[ -e "$IMAGE" ] || return 0
	losetup -n -O NAME -j "$IMAGE"
}

remove() {
	if findmnt -n --mountpoint "$LAYERS" >/dev/null; then
		source=$(findmnt -n -o SOURCE --mountpoint "$LAYERS")
		if ! image_loops | grep -qxF "$source"; then
			die "$LAYERS is a mount of $source, not of $IMAGE; leaving it alone"
		fi
		umount "$LAYERS" || die "failed to unmount $LAYERS; close files open under it (fuser -m $LAYERS) and retry"
		echo "setup-xfs: unmounted $LAYERS"
	fi
	for loop in $(image_loops); do
		losetup -d "$loop" || die "failed to detach $loop from $IMAGE"
		echo "setup-xfs: detached $loop"
	done
	echo "setup-xfs: $IMAGE kept; delete it by hand to drop every layer image"
}

case ${1:-} in
"") ;;
--remove) remove; exit 0 ;;
*) echo "setup-xfs: unknown argument '$1'; usage: $0 [--remove]" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (creates loop devices and mounts)"
for tool in mkfs.xfs xfs_info losetup findmnt; do
	command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done

mkdir -p "$LAYERS"
if has_reflink "$LAYERS"; then
	echo "setup-xfs: $LAYERS is on XFS with reflink"
	exit 0
fi

if findmnt -n --mountpoint "$LAYERS" >/dev/null; then
	die "$LAYERS is a mount of $(findmnt -n -o SOURCE,FSTYPE --mountpoint "$LAYERS" | xargs) without XFS reflink; unmount it and run $0 again"
fi
if [ -n "$(ls -A "$LAYERS")" ]; then
	die "$LAYERS is not empty and not on XFS with reflink; move its files away (mounting over them would hide them) and run $0 again"
fi

if [ ! -e "$IMAGE" ]; then
	truncate -s "$SIZE" "$IMAGE.tmp" || die "invalid RUND_LAYERS_SIZE '$SIZE'; use a size such as 16G"
	if ! mkfs.xfs -q -m reflink=1 -L rund-layers "$IMAGE.tmp"; then
		rm -f "$IMAGE.tmp"
		die "mkfs.xfs failed on $IMAGE.tmp"
	fi
	mv "$IMAGE.tmp" "$IMAGE"
	echo "setup-xfs: created $IMAGE ($SIZE, sparse)"
fi

loop=$(image_loops | head -n1)
if [ -z "$loop" ]; then
	loop=$(losetup --find --show "$IMAGE") || die "failed to attach $IMAGE to a loop device"
fi
mount -t xfs "$loop" "$LAYERS" || die "failed to mount $loop ($IMAGE) on $LAYERS; check 'dmesg' and 'xfs_repair -n $IMAGE'"

has_reflink "$LAYERS" || die "$IMAGE is mounted on $LAYERS but has no reflink; delete the image (after '$0 --remove') to make a new one"
echo "setup-xfs: mounted $IMAGE ($loop) on $LAYERS with reflink"
