#!/bin/bash
# Host memory per idle sandbox: template clones vs cold boots.
#
#   scripts/bench-density.sh [--counts "1 10 50 100 200"] [--cold-counts "1 10 50"] [--out DIR]
#
# For each count N it starts N idle sandboxes (`run -- sh -c 'echo up; exec
# sleep 3600'`), 10 at a time, waits until every one has printed "up",
# lets them settle for 5 s and then reads, for every QEMU process, PSS and
# USS (Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup, and for
# clones the guest RAM copied on write (the Anonymous pages of the mapping of
# the template file in /proc/PID/smaps). With one clone, the template pages
# it alone maps count as private in its USS. The rund-helper process that waits for
# each sandbox is measured too. Then it ends the sandboxes by killing their
# rund-helper processes (QEMU has PR_SET_PDEATHSIG) and checks that all N
# were still running at the end. MemAvailable before and after start gives
# a node-level figure per sandbox as well.
#
# Under TCG every idle guest keeps ticking (the guest kernel has a periodic
# 250 Hz tick), about 2% of a host core each, so on a small machine the
# largest counts saturate the CPU; choose --counts for the machine.
#
# Output: DIR/density.txt (one row per mode and count).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
HELPER=$BUILD/bin/rund-helper
COUNTS="1 10 50 100 200"
COLD_COUNTS="1 10 50"
OUT=$BUILD/bench-density
NAME=rund-bench-density-$$
SETTLE=5

while [ $# -gt 0 ]; do
	case $1 in
	--counts) COUNTS=$2; shift 2 ;;
	--cold-counts) COLD_COUNTS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	*) echo "bench-density: unknown argument '$1'; usage: $0 [--counts \"1 10 50 100 200\"] [--cold-counts \"1 10 50\"] [--out DIR]" >&2; exit 2 ;;
	esac
done
[ -x "$HELPER" ] || { echo "bench-density: $HELPER not found; run 'make -C user' first" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/run.XXXXXX")
declare -a helpers=()

stop_all() {
	local p
	for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${helpers[@]}"; do wait "$p" 2>/dev/null || true; done
	helpers=()
}
cleanup() {
	stop_all
	"$HELPER" template delete "$NAME" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$HELPER" template create "$NAME" >"$OUT/template.txt"
MEM=$(sed -n 's/^memory file: *\([^ ]*\) .*/\1/p' "$OUT/template.txt")
[ -n "$MEM" ] || { echo "bench-density: no memory file in the template output" >&2; exit 1; }

mem_available_kb() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }

# measure MODE N: start N idle sandboxes and print one result row.
measure() {
	local mode=$1 n=$2 i args avail0 avail1
	if [ "$mode" = cold ]; then args=(--no-template); else args=(--template "$NAME"); fi
	rm -f "$WORK"/out.*
	avail0=$(mem_available_kb)
	for i in $(seq 1 "$n"); do
		"$HELPER" run "${args[@]}" --timeout 3600 -- sh -c 'echo up; exec sleep 3600' \
			>"$WORK/out.$i" 2>"$WORK/err.$i" &
		helpers+=($!)
		if [ $((i % 10)) = 0 ]; then
			# Wait for this batch before starting the next.
			for _ in $(seq 1 600); do
				[ "$(cat "$WORK"/out.* 2>/dev/null | grep -c '^up$')" -ge "$i" ] && break
				sleep 0.2
			done
		fi
	done
	for _ in $(seq 1 1200); do
		[ "$(cat "$WORK"/out.* 2>/dev/null | grep -c '^up$')" -ge "$n" ] && break
		sleep 0.2
	done
	up=$(cat "$WORK"/out.* 2>/dev/null | grep -c '^up$' || true)
	sleep "$SETTLE"
	avail1=$(mem_available_kb)

	local qpids="" hp p
	for hp in "${helpers[@]}"; do
		for p in $(cat "/proc/$hp/task/$hp/children" 2>/dev/null); do qpids="$qpids $p"; done
	done
	# PSS, USS of QEMU and of the helper; guest RAM copied on write.
	local stats
	stats=$(
		for p in $qpids; do
			awk '/^Pss:/ { pss = $2 } /^Private_(Clean|Dirty):/ { uss += $2 } END { printf "q %d %d\n", pss, uss }' "/proc/$p/smaps_rollup" 2>/dev/null
			awk -v m="$MEM" '$0 ~ "^[0-9a-f]+-" { inmap = index($0, m) > 0 } inmap && /^Anonymous:/ { s += $2 } END { printf "g %d\n", s }' "/proc/$p/smaps" 2>/dev/null
		done
		for hp in "${helpers[@]}"; do
			awk '/^Pss:/ { pss = $2 } /^Private_(Clean|Dirty):/ { uss += $2 } END { printf "h %d %d\n", pss, uss }' "/proc/$hp/smaps_rollup" 2>/dev/null
		done
	)
	local alive=0
	for hp in "${helpers[@]}"; do kill -0 "$hp" 2>/dev/null && alive=$((alive + 1)); done
	echo "$stats" | awk -v mode="$mode" -v n="$n" -v up="$up" -v alive="$alive" -v a0="$avail0" -v a1="$avail1" '
		$1 == "q" { qp += $2; qu += $3; qn++ }
		$1 == "g" { g += $2; gn++ }
		$1 == "h" { hp += $2; hu += $3; hn++ }
		END {
			printf "%-8s %4d %4d %5d %9.1f %9.1f %9.1f %9.1f %9.1f %10.1f\n", mode, n, up, alive,
				qn ? qp / qn / 1024 : 0, qn ? qu / qn / 1024 : 0,
				gn ? g / gn / 1024 : 0, hn ? hp / hn / 1024 : 0,
				hn ? hu / hn / 1024 : 0, n ? (a0 - a1) / n / 1024 : 0
		}'
	stop_all
	sleep 2
}

# Not in a pipeline: the helpers array must stay in this shell for cleanup.
{
	echo "per idle sandbox, MiB (mean): qemu_pss qemu_uss guest_cow helper_pss helper_uss node(MemAvailable drop)"
	printf "%-8s %4s %4s %5s %9s %9s %9s %9s %9s %10s\n" mode n up alive qemu_pss qemu_uss guest_cow helper_pss helper_uss node
} >"$OUT/density.txt"
cat "$OUT/density.txt"
for n in $COUNTS; do
	measure template "$n" >>"$OUT/density.txt"
	tail -1 "$OUT/density.txt"
done
for n in $COLD_COUNTS; do
	measure cold "$n" >>"$OUT/density.txt"
	tail -1 "$OUT/density.txt"
done
