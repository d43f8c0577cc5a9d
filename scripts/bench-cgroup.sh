#!/bin/bash
# Per-sandbox cgroup cost on the host: plain cgroups vs the cgroupfs pool.
#
#   scripts/bench-cgroup.sh [--quick]
#
# Builds scripts/bench-cgroup.c against librund, then for 200 and 1000
# sandboxes from 1 and 8 threads measures setup + teardown per sandbox:
#   v1-base   mkdir in each of the host's 8 v1 hierarchies + memory and pids
#             limits + fork + 8 cgroup.procs writes; kill, reap, 8 rmdirs
#   v1-pool   pool acquire (4 renames + the same limits) + a launcher that
#             moves itself into the slot; release (freeze, kill, thaw,
#             reset, rename back)
#   v2-procs  mkdir on the cgroup2 mount + fork + cgroup.procs write; rmdir
#   v2-clone  mkdir + clone3(CLONE_INTO_CGROUP); rmdir
#   v2-pool   pool acquire + clone3(CLONE_INTO_CGROUP) into the slot; release
#   spawn     fork and kill without any cgroup: the floor under every mode
# then a sustained churn (teardowns overlapping claims), then lone starts
# after a 2 s idle pause (5 each). Prints markdown tables
# with the median, p99 and the ratio to the baseline of the same run.
# Cgroups are named rund-bench-<pid> and removed at exit.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
NAME="rund-bench-$$"
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-cgroup: must run as root to create cgroups" >&2
	exit 1
fi

cleanup() {
	local d
	for d in /sys/fs/cgroup/*/"$NAME" /sys/fs/cgroup/*/"$NAME"/*; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf /run/"$NAME"
}
trap cleanup EXIT

make -s -C user BUILD="$BUILD" >/dev/null || { echo "bench-cgroup: build failed" >&2; exit 1; }
mkdir -p "$BUILD/bench"
cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Iuser/lib -Ikmod/uapi \
	$(pkg-config --cflags libnl-genl-3.0) -o "$BUILD/bench/bench-cgroup" \
	scripts/bench-cgroup.c "$BUILD/lib/librund.a" \
	$(pkg-config --libs libnl-genl-3.0 json-c) -lpthread || exit 1
B="$BUILD/bench/bench-cgroup"

# field NAME LINE: the value of NAME=... in a result line
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

sizes="200 1000"
threads="1 8"
idle_runs=5
if [ "$QUICK" = 1 ]; then sizes=200; idle_runs=2; fi

echo "kernel $(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| sandboxes | threads | mode | median µs | p99 µs | setup median µs | teardown median µs | median ratio to baseline | p99 ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in $sizes; do
	for t in $threads; do
		declare -A med=() p99=()
		for m in spawn v1-base v1-pool v2-procs v2-clone v2-pool; do
			line=$("$B" "$m" "$n" "$t" "$NAME") || { echo "bench-cgroup: $m failed" >&2; exit 1; }
			med[$m]=$(field median_us "$line")
			p99[$m]=$(field p99_us "$line")
			case $m in
			v1-pool) base=v1-base ;;
			v2-clone|v2-pool) base=v2-procs ;;
			*) base=$m ;;
			esac
			echo "| $n | $t | $m | ${med[$m]} | ${p99[$m]} | $(field setup_median_us "$line") | $(field teardown_median_us "$line") | $(ratio "${med[$base]}" "${med[$m]}")× ($base) | $(ratio "${p99[$base]}" "${p99[$m]}")× |"
		done
	done
done

echo
echo "Sustained churn: 4 live sandboxes per thread, the oldest replaced per step, so teardowns and"
echo "the pool's drains overlap other threads' claims (per step: one setup + one teardown):"
echo
echo "| steps | threads | mode | median µs | p99 µs | wall ms | median ratio | p99 ratio | wall ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in 1000; do
	for t in $threads; do
		declare -A med=() p99=() wall=()
		for m in v1-base v1-pool v2-procs v2-clone v2-pool; do
			line=$("$B" "$m" "$n" "$t" "$NAME" sustained) || { echo "bench-cgroup: $m sustained failed" >&2; exit 1; }
			med[$m]=$(field median_us "$line")
			p99[$m]=$(field p99_us "$line")
			wall[$m]=$(field wall_ms "$line")
			case $m in
			v1-pool) base=v1-base ;;
			v2-clone|v2-pool) base=v2-procs ;;
			*) base=$m ;;
			esac
			echo "| $n | $t | $m | ${med[$m]} | ${p99[$m]} | ${wall[$m]} | $(ratio "${med[$base]}" "${med[$m]}")× ($base) | $(ratio "${p99[$base]}" "${p99[$m]}")× | $(ratio "${wall[$base]}" "${wall[$m]}")× |"
		done
	done
done

echo
echo "Lone starts after a 2 s idle pause ($idle_runs each; setup only: cgroup + process in it):"
echo
echo "| mode | start median µs | start p99 µs | ratio to baseline |"
echo "|---|---|---|---|"
declare -A idle=()
for m in v1-base v1-pool v2-procs v2-clone v2-pool; do
	line=$("$B" "$m" "$idle_runs" 1 "$NAME" idle) || { echo "bench-cgroup: $m idle failed" >&2; exit 1; }
	idle[$m]=$(field setup_median_us "$line")
	case $m in
	v1-pool) base=v1-base ;;
	v2-clone|v2-pool) base=v2-procs ;;
	*) base=$m ;;
	esac
	echo "| $m | ${idle[$m]} | $(field setup_p99_us "$line") | $(ratio "${idle[$base]}" "${idle[$m]}")× ($base) |"
done
