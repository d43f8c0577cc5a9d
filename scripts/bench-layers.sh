#!/bin/bash
# Benchmark writable-layer creation: copy with fsync vs FICLONE vs the
# module's pre-made clones, 200 layers at 1 and 8 threads, median and p99.
#
#   scripts/bench-layers.sh [--host-only | --guest-only]
#
# Host part: copy-fsync, copy and reflink on an XFS loop mount of its own
# (the host kernel cannot load modules). Guest part: copy-fsync, reflink and
# module inside a QEMU TCG guest booting Debian's 6.1 kernel with rund.ko
# loaded (selftests/layers/guest.sh), so the module's figures have their
# baselines from the same run. The module runs use K = 8, below the burst of
# 200, so refills are part of what is measured; a run of 1000 layers gives the
# sustained rate. Paced guest runs (one request per INTERVAL_US in total)
# show the hand-out latency when the refill keeps up. Results go to stdout and
# $BUILD/bench/layers.txt.
#
# Environment: BUILD (default build/), COUNT (default 200), SUSTAINED (1000),
# INTERVAL_US (2000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$repo/build}
COUNT=${COUNT:-200}
SUSTAINED=${SUSTAINED:-1000}
INTERVAL_US=${INTERVAL_US:-2000}
out=$BUILD/bench
results=$out/layers.txt
host=1
guest=1

case ${1:-} in
"") ;;
--host-only) guest=0 ;;
--guest-only) host=0 ;;
*) echo "usage: $0 [--host-only | --guest-only]" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "bench-layers: must run as root (loop mounts)" >&2; exit 1; }

mkdir -p "$out/guest"
gcc -static -O2 -Wall -D_GNU_SOURCE -I"$repo/kmod/uapi" -o "$out/guest/layer_bench" \
	"$repo/selftests/layers/layer_bench.c" -lpthread
: > "$results"

log() { echo "$*" | tee -a "$results"; }

log "# bench-layers $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs, $(uname -r) host kernel"
log "# commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$host" = 1 ]; then
	work=$(mktemp -d /tmp/rund-bench-layers.XXXXXX)
	loop=
	cleanup() {
		mountpoint -q "$work/xfs" && umount "$work/xfs"
		[ -n "$loop" ] && losetup -d "$loop"
		rm -rf "$work"
	}
	trap cleanup EXIT
	truncate -s 8G "$work/xfs.img"
	mkfs.xfs -q -m reflink=1 "$work/xfs.img"
	loop=$(losetup --find --show "$work/xfs.img")
	mkdir "$work/xfs"
	mount "$loop" "$work/xfs"

	log "## host: XFS (reflink=1) on a loop device backed by a sparse file on $(stat -f -c %T "$work")"
	for method in copy-fsync copy reflink; do
		for threads in 1 8; do
			cmd=("$out/guest/layer_bench" --dir "$work/xfs" --method "$method"
			     --threads "$threads" --count "$COUNT")
			log "host: $("${cmd[@]}")"
		done
	done
	log "host: $("$out/guest/layer_bench" --dir "$work/xfs" --method reflink --threads 8 --count "$SUSTAINED") (sustained)"
	cleanup
	trap - EXIT
fi

if [ "$guest" = 1 ]; then
	cat > "$out/guest/bench.sh" <<EOF
for m in copy-fsync reflink module; do
	for t in 1 8; do
		echo "guest: \$(./layer_bench --dir /mnt/xfs --method \$m --threads \$t --count $COUNT --depth 8)"
	done
done
for m in reflink module; do
	for t in 1 8; do
		echo "guest: \$(./layer_bench --dir /mnt/xfs --method \$m --threads \$t --count $COUNT --depth 8 --interval-us $INTERVAL_US) (paced)"
	done
done
echo "guest: \$(./layer_bench --dir /mnt/xfs --method reflink --threads 8 --count $SUSTAINED) (sustained)"
echo "guest: \$(./layer_bench --dir /mnt/xfs --method module --threads 8 --count $SUSTAINED --depth 8) (sustained)"
EOF
	log "## guest: QEMU TCG (no KVM), Debian 6.1 kernel, 2 vCPUs, XFS (reflink=1) on virtio-blk"
	if ! RUND_GUEST_XFS_SIZE=8G "$repo/selftests/layers/guest.sh" -t 1800 "$out/guest" \
		'sh ./bench.sh' >"$out/guest.log" 2>&1; then
		cat "$out/guest.log" >&2
		echo "bench-layers: the guest run failed; its output is above" >&2
		exit 1
	fi
	grep '^guest: ' "$out/guest.log" | tee -a "$results"
fi
log "# load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-layers: results in $results"
