#!/bin/bash
# Private kernel pages per clone with and without a pre-patched kernel.
#
#   scripts/bench-prepatch.sh [--clones N] [--kernel VMLINUX] [--cold-agent]
#
# Builds images pre-patched for 1 and 2 vCPUs from VMLINUX (default: the
# guest kernel build, $BUILD/guest-kernel/vmlinux) with guest/rund-prepatch.py,
# then runs scripts/bench-prepatch.py: for each vCPU count, pre-boot
# templates (rund-helper template create --kind preboot) of (a) the stock
# vmlinux, (b) the pre-patched image with rund.patch_skip=off and (c) the
# pre-patched image with the skips, N clones each (default 50) started one
# after the other and measured together at the agent's ready point. Prints a Markdown table. --cold-agent gives every clone
# a reflink copy of the layer image so that the agent takes its normal path
# (mount the layer, then READY) instead of the template guest path.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
kernel=$BUILD/guest-kernel/vmlinux
clones=50
layer_args=()

while [ $# -gt 0 ]; do
	case $1 in
	--clones) clones=${2:?--clones needs a number}; shift 2 ;;
	--kernel) kernel=${2:?--kernel needs a path}; shift 2 ;;
	--cold-agent) layer_args=(--layer-dir /var/lib/rund/layers); shift ;;
	*) echo "bench-prepatch: unknown argument '$1'; usage: $0 [--clones N] [--kernel VMLINUX] [--cold-agent]" >&2; exit 2 ;;
	esac
done
case $clones in
'' | *[!0-9]* | 0) echo "bench-prepatch: invalid --clones '$clones'; give a positive number" >&2; exit 2 ;;
esac
[ -r "$kernel" ] || { echo "bench-prepatch: kernel $kernel not found; run scripts/build-guest-kernel.sh" >&2; exit 1; }
export RUND_HELPER=$BUILD/bin/rund-helper
[ -x "$RUND_HELPER" ] || { echo "bench-prepatch: $RUND_HELPER not found; run make" >&2; exit 1; }

work=$(mktemp -d /tmp/rund-bench-prepatch.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A private copy, so that a rebuild during the run changes nothing.
cp "$kernel" "$work/vmlinux"
for n in 1 2; do
	"$ROOT/guest/rund-prepatch.py" build --kernel "$work/vmlinux" --vcpus "$n" \
		--out "$work/vmlinux.prepatched-$n" >&2
done

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
	"kernel $(sha256sum <"$work/vmlinux" | cut -c1-12), $clones clones per row${layer_args:+, normal agent path}"
"$ROOT/scripts/bench-prepatch.py" --stock "$work/vmlinux" --clones "$clones" "${layer_args[@]}" \
	--prepatched 1="$work/vmlinux.prepatched-1" 2="$work/vmlinux.prepatched-2"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
