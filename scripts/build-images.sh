#!/bin/bash
# Build the default sandbox images from Debian packages.
#
#   scripts/build-images.sh [--force]
#
# 1. $BUILD/images/debian-bookworm.tar: a Debian bookworm root file system made
#    by mmdebstrap (minbase plus the packages below) from deb.debian.org. It is
#    cached and made again only when the package list or the mmdebstrap options
#    change, or with --force.
# 2. /var/lib/rund/images/debian.erofs: that tree as an LZ4-compressed EROFS
#    image, the read-only lower layer of every sandbox. The guest kernel reads
#    it with CONFIG_EROFS_FS_ZIP (guest/kernel.config).
# 3. /var/lib/rund/layers/debian.ext4: the empty ext4 file system that each
#    sandbox's writable layer is cloned from. The guest agent makes upper/ and
#    work/ for overlayfs in its root directory. Written without holes or
#    unwritten ranges, because FICLONE takes longer the more extents it copies.
#
# Environment: RUND_LAYER_SIZE_MB  size of the writable layer (default 256)
#              RUND_DEBIAN_MIRROR  instead of http://deb.debian.org/debian
#              RUND_STATE_DIR      instead of /var/lib/rund (for tests)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
STATE=${RUND_STATE_DIR:-/var/lib/rund}
MIRROR=${RUND_DEBIAN_MIRROR:-http://deb.debian.org/debian}
LAYER_MB=${RUND_LAYER_SIZE_MB:-256}

SUITE=bookworm
PACKAGES=python3-minimal
MMDEBSTRAP_OPTS=(--variant=minbase --include="$PACKAGES" --mode=root --format=tar)
# lz4hc writes the LZ4 format with a better ratio than lz4, and the guest
# reads both with the same decompressor. mkfs.erofs 1.5 offers only these two.
EROFS_OPTS=(-zlz4hc)
# No journal: a layer lives as long as its sandbox and is thrown away after,
# so crash consistency buys nothing, and journal writes would turn cloned
# blocks private. Inode tables are written now (lazy_itable_init=0) so that
# the guest does not start ext4lazyinit and write them in every sandbox.
# nodiscard keeps mke2fs from punching holes into the preallocated file.
EXT4_OPTS=(-q -F -t ext4 -O ^has_journal -m 0 -L rund-layer
	-E root_owner=0:0,lazy_itable_init=0,nodiscard)

TARBALL=$BUILD/images/debian-$SUITE.tar
EROFS=$STATE/images/debian.erofs
LAYER=$STATE/layers/debian.ext4

force=0
case ${1:-} in
"") ;;
--force) force=1 ;;
*) echo "build-images: unknown argument '$1'; usage: $0 [--force]" >&2; exit 2 ;;
esac

die() {
	echo "build-images: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root, files owned by other users)"
case $LAYER_MB in
'' | *[!0-9]*) die "invalid RUND_LAYER_SIZE_MB '$LAYER_MB'; use a size in MiB such as 256" ;;
esac
[ "$LAYER_MB" -ge 16 ] || die "RUND_LAYER_SIZE_MB '$LAYER_MB' is too small; use at least 16"
for tool in mmdebstrap mkfs.erofs mkfs.ext4 filefrag fallocate; do
	command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done

mkdir -p "$BUILD/images" "$STATE/images" "$STATE/layers"

# 1. Root file system tarball.
tar_key=$(echo "$SUITE $MIRROR ${MMDEBSTRAP_OPTS[*]}" | sha256sum | cut -d' ' -f1)
if [ "$force" = 1 ] || [ ! -f "$TARBALL" ] || [ "$(cat "$TARBALL.key" 2>/dev/null)" != "$tar_key" ]; then
	echo "build-images: running mmdebstrap $SUITE ($PACKAGES) from $MIRROR"
	rm -f "$TARBALL.key"
	if ! mmdebstrap --quiet "${MMDEBSTRAP_OPTS[@]}" "$SUITE" "$TARBALL.tmp" "$MIRROR"; then
		rm -f "$TARBALL.tmp"
		die "mmdebstrap failed; check that $MIRROR is reachable"
	fi
	mv "$TARBALL.tmp" "$TARBALL"
	echo "$tar_key" >"$TARBALL.key"
fi

# 2. EROFS image. mkfs.erofs 1.5 reads only a directory, so the tarball is
#    unpacked into a scratch tree first.
erofs_key=$( (cat "$TARBALL.key"; stat -c '%s %Y' "$TARBALL"; echo "${EROFS_OPTS[*]}") | sha256sum | cut -d' ' -f1)
if [ "$force" = 1 ] || [ ! -f "$EROFS" ] || [ "$(cat "$EROFS.key" 2>/dev/null)" != "$erofs_key" ]; then
	tree=$(mktemp -d "$BUILD/images/rootfs.XXXXXX")
	trap 'rm -rf "$tree"' EXIT
	tar -xf "$TARBALL" -C "$tree" --numeric-owner -p

	# The agent mounts proc, sysfs, devtmpfs and tmpfs on these before it
	# runs the function.
	for dir in proc sys dev tmp usr/bin/python3; do
		[ -e "$tree/$dir" ] || die "$TARBALL has no /$dir; the sandbox needs it (rebuild with --force)"
	done

	echo "build-images: writing $EROFS (${EROFS_OPTS[*]})"
	rm -f "$EROFS.key"
	mkfs.erofs --quiet "${EROFS_OPTS[@]}" "$EROFS.tmp" "$tree" || die "mkfs.erofs failed on $tree"
	mv "$EROFS.tmp" "$EROFS"
	echo "$erofs_key" >"$EROFS.key"
	rm -rf "$tree"
	trap - EXIT
fi

# 3. Writable-layer image. Formatted in place on XFS, a 256 MiB image ended
#    up in 38 extents, mostly unwritten ranges between the written metadata.
#    So it is formatted in a scratch file under $BUILD and then copied block
#    by block into a preallocated file on the layer file system. That leaves
#    every block written and the file in one extent when space allows.
#    Its stamp is a dot file, which `rund-helper layer list` does not show.
layer_key=$(echo "copied $LAYER_MB ${EXT4_OPTS[*]}" | sha256sum | cut -d' ' -f1)
LAYER_STAMP=$(dirname "$LAYER")/.$(basename "$LAYER").key
if [ -f "$LAYER.key" ]; then
	# Stamp of an older setup, next to the image.
	mv -f "$LAYER.key" "$LAYER_STAMP"
fi
if [ "$force" = 1 ] || [ ! -f "$LAYER" ] || [ "$(cat "$LAYER_STAMP" 2>/dev/null)" != "$layer_key" ]; then
	echo "build-images: writing $LAYER (${LAYER_MB} MiB ext4)"
	scratch=$BUILD/images/layer.ext4
	rm -f "$LAYER_STAMP" "$LAYER.tmp" "$scratch"
	truncate -s "${LAYER_MB}M" "$scratch"
	mkfs.ext4 "${EXT4_OPTS[@]}" "$scratch" || die "mkfs.ext4 failed on $scratch"

	fallocate -l "${LAYER_MB}MiB" "$LAYER.tmp" || die "failed to allocate ${LAYER_MB} MiB for $LAYER.tmp; free space on $STATE/layers"
	dd if="$scratch" of="$LAYER.tmp" bs=1M conv=notrunc,fsync status=none || die "failed to copy $scratch to $LAYER.tmp"
	rm -f "$scratch"
	mv "$LAYER.tmp" "$LAYER"
	echo "$layer_key" >"$LAYER_STAMP"
fi

extents=$(filefrag "$LAYER" | sed -n 's/.*: \([0-9]*\) extents\? found/\1/p')
echo "build-images: $EROFS is $(du -h --apparent-size "$EROFS" | cut -f1)B, $LAYER is ${LAYER_MB} MiB in ${extents:-?} extent(s)"
if [ "${extents:-0}" -gt 16 ]; then
	echo "build-images: warning: $LAYER has $extents extents, so every clone of it is slower; run $0 --force when $STATE/layers has free contiguous space" >&2
fi
