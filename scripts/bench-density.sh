#!/bin/bash
# Host memory per idle sandbox: template clones vs cold boots.
#
#   scripts/bench-density.sh [--counts "1 10 50 100 200"] [--cold-counts "1 10 50"]
#                            [--budget MIB [--max N]] [--out DIR]
#
# For each count N it starts N idle sandboxes, 10 at a time. Each runs a
# line echo (`sh -c 'echo up; while read -r l; do echo "$l"; done'`) with
# its stdin on a FIFO that the script keeps open. The script waits until
# every one has printed "up", lets them settle for 5 s, sends every sandbox
# a line and counts those that echo it within 10 s ("answered"). Then it
# reads, for every QEMU process, PSS and
# USS (Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup, and for
# clones the guest RAM copied on write (the Anonymous pages of the mapping of
# the template file in /proc/PID/smaps). With one clone, the template pages
# it alone maps count as private in its USS. The rund-helper process that waits for
# each sandbox is measured too. Then it ends the sandboxes by killing their
# rund-helper processes (QEMU has PR_SET_PDEATHSIG) and checks that all N
# were still running at the end. MemAvailable before and after start gives
# a node-level figure per sandbox as well.
#
# The sandboxes get slots of a private cgroupfs pool (memory controller
# only, under a cgroup named rund-test-density-PID, removed at the end), so
# the memory charged to each slot (memory.current on v2,
# memory.usage_in_bytes on v1) is reported per sandbox too.
#
# --budget MIB: after the counts, start template clones 10 at a time until
# the node's MemAvailable has dropped by MIB, a sandbox stops echoing, or
# --max sandboxes (default 1000) run; report the largest count that stayed
# within the budget with every sandbox echoing its line.
#
# Under TCG an idle guest costs little CPU now that its tick stops when idle
# (NO_HZ_IDLE, docs/guest.md), but starting clones does: choose --counts
# and --max for the machine.
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
POOL_NAME=rund-test-density-$$
SETTLE=5
BUDGET=
MAX=1000

while [ $# -gt 0 ]; do
	case $1 in
	--counts) COUNTS=$2; shift 2 ;;
	--cold-counts) COLD_COUNTS=$2; shift 2 ;;
	--budget) BUDGET=$2; shift 2 ;;
	--max) MAX=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	*) echo "bench-density: unknown argument '$1'; usage: $0 [--counts \"1 10 50 100 200\"] [--cold-counts \"1 10 50\"] [--budget MIB [--max N]] [--out DIR]" >&2; exit 2 ;;
	esac
done
for v in ${BUDGET:+"$BUDGET"} "$MAX"; do
	[[ $v =~ ^[1-9][0-9]{0,6}$ ]] || { echo "bench-density: invalid number '$v' for --budget or --max: expected 1 to 9999999" >&2; exit 2; }
done
[ -x "$HELPER" ] || { echo "bench-density: $HELPER not found; run 'make -C user' first" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/run.XXXXXX")
declare -a helpers=() fifo_fds=()

stop_all() {
	local p fd
	for fd in "${fifo_fds[@]}"; do exec {fd}>&-; done
	fifo_fds=()
	for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${helpers[@]}"; do wait "$p" 2>/dev/null || true; done
	helpers=()
}
cleanup() {
	stop_all
	"$HELPER" template delete "$NAME" >/dev/null 2>&1 || true
	"$HELPER" pool destroy --force >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private pool, so that every sandbox has a memory cgroup of its own.
max_n=$MAX
for n in $COUNTS $COLD_COUNTS; do [ "$n" -gt "$max_n" ] && max_n=$n; done
export RUND_POOL_BACKEND=cgroupfs RUND_POOL_STATE_DIR=$WORK/pool
"$HELPER" pool init --name "$POOL_NAME" --size $((max_n + 10)) --controllers memory >/dev/null

# Memory charged to the cgroup of process PID in the memory controller, in KiB.
cgroup_memory_kb() {
	local pid=$1 line rel mnt
	line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' "/proc/$pid/cgroup" 2>/dev/null | head -n1)
	if [ -n "$line" ]; then
		rel=${line#*:*:}
		mnt=$(findmnt -n -o TARGET -t cgroup -O memory | head -n1)
		[ -n "$mnt" ] && awk '{ printf "%d", $1 / 1024 }' "$mnt$rel/memory.usage_in_bytes" 2>/dev/null
		return 0
	fi
	rel=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
	mnt=$(findmnt -n -o TARGET -t cgroup2 | head -n1)
	[ -n "$mnt" ] && [ -f "$mnt$rel/memory.current" ] && awk '{ printf "%d", $1 / 1024 }' "$mnt$rel/memory.current"
	return 0
}

"$HELPER" template create "$NAME" >"$OUT/template.txt"
MEM=$(sed -n 's/^memory file: *\([^ ]*\) .*/\1/p' "$OUT/template.txt")
[ -n "$MEM" ] || { echo "bench-density: no memory file in the template output" >&2; exit 1; }

mem_available_kb() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }

# start_sandboxes MODE FROM TO: start sandboxes FROM..TO, 10 at a time.
start_sandboxes() {
	local mode=$1 from=$2 to=$3 i fd args
	if [ "$mode" = cold ]; then args=(--no-template); else args=(--template "$NAME"); fi
	for i in $(seq "$from" "$to"); do
		mkfifo "$WORK/in.$i"
		"$HELPER" run "${args[@]}" --timeout 3600 -- sh -c 'echo up; while read -r l; do echo "$l"; done' \
			<"$WORK/in.$i" >"$WORK/out.$i" 2>"$WORK/err.$i" &
		helpers+=($!)
		# Holding the FIFO open keeps the sandbox's stdin from reaching EOF.
		exec {fd}>"$WORK/in.$i"
		fifo_fds+=("$fd")
		if [ $((i % 10)) = 0 ] || [ "$i" = "$to" ]; then
			# Wait for this batch before starting the next.
			for _ in $(seq 1 600); do
				[ "$(cat "$WORK"/out.* 2>/dev/null | grep -c '^up$')" -ge "$i" ] && break
				sleep 0.2
			done
		fi
	done
}

# ping_all TAG: send every sandbox a line; print how many echoed it within 10 s.
ping_all() {
	local tag=$1 i n=${#fifo_fds[@]} got=0
	for i in $(seq 0 $((n - 1))); do
		echo "ping-$tag-$((i + 1))" >&"${fifo_fds[$i]}" 2>/dev/null || true
	done
	for _ in $(seq 1 50); do
		got=0
		for i in $(seq 1 "$n"); do
			grep -qx "ping-$tag-$i" "$WORK/out.$i" 2>/dev/null && got=$((got + 1))
		done
		[ "$got" -ge "$n" ] && break
		sleep 0.2
	done
	echo "$got"
}

# measure MODE N: start N idle sandboxes and print one result row.
measure() {
	local mode=$1 n=$2 avail0 avail1 answered
	rm -f "$WORK"/out.* "$WORK"/in.*
	avail0=$(mem_available_kb)
	start_sandboxes "$mode" 1 "$n"
	up=$(cat "$WORK"/out.* 2>/dev/null | grep -c '^up$' || true)
	sleep "$SETTLE"
	avail1=$(mem_available_kb)
	answered=$(ping_all "$mode-$n")

	local qpids="" hp p
	for hp in "${helpers[@]}"; do
		for p in $(cat "/proc/$hp"/task/*/children 2>/dev/null); do qpids="$qpids $p"; done
	done
	# PSS, USS of QEMU and of the helper; guest RAM copied on write; slot memory.
	local stats
	stats=$(
		for p in $qpids; do
			awk '/^Pss:/ { pss = $2 } /^Private_(Clean|Dirty):/ { uss += $2 } END { printf "q %d %d\n", pss, uss }' "/proc/$p/smaps_rollup" 2>/dev/null
			awk -v m="$MEM" '$0 ~ "^[0-9a-f]+-" { inmap = index($0, m) > 0 } inmap && /^Anonymous:/ { s += $2 } END { printf "g %d\n", s }' "/proc/$p/smaps" 2>/dev/null
			echo "c $(cgroup_memory_kb "$p")"
		done
		for hp in "${helpers[@]}"; do
			awk '/^Pss:/ { pss = $2 } /^Private_(Clean|Dirty):/ { uss += $2 } END { printf "h %d %d\n", pss, uss }' "/proc/$hp/smaps_rollup" 2>/dev/null
		done
	)
	local alive=0
	for hp in "${helpers[@]}"; do kill -0 "$hp" 2>/dev/null && alive=$((alive + 1)); done
	echo "$stats" | awk -v mode="$mode" -v n="$n" -v up="$up" -v alive="$alive" -v ans="$answered" -v a0="$avail0" -v a1="$avail1" '
		$1 == "q" { qp += $2; qu += $3; qn++ }
		$1 == "g" { g += $2; gn++ }
		$1 == "c" && NF == 2 { c += $2; cn++ }
		$1 == "h" { hp += $2; hu += $3; hn++ }
		END {
			printf "%-8s %4d %4d %5d %8d %9.1f %9.1f %9.1f %9s %9.1f %9.1f %10.1f\n", mode, n, up, alive, ans,
				qn ? qp / qn / 1024 : 0, qn ? qu / qn / 1024 : 0,
				gn ? g / gn / 1024 : 0, cn ? sprintf("%.1f", c / cn / 1024) : "-",
				hn ? hp / hn / 1024 : 0, hn ? hu / hn / 1024 : 0, n ? (a0 - a1) / n / 1024 : 0
		}'
	stop_all
	sleep 2
}

# budget: start clones until MemAvailable fell by BUDGET MiB or one stops echoing.
budget() {
	local avail0 used n=0 step answered best=0 why="reached --max $MAX"
	rm -f "$WORK"/out.* "$WORK"/in.*
	avail0=$(mem_available_kb)
	while [ "$n" -lt "$MAX" ]; do
		step=$((n + 10 > MAX ? MAX : n + 10))
		start_sandboxes template $((n + 1)) "$step"
		n=$step
		sleep "$SETTLE"
		used=$(( (avail0 - $(mem_available_kb)) / 1024 ))
		answered=$(ping_all "budget-$n")
		if [ "$answered" -lt "$n" ]; then
			why="at $n sandboxes only $answered answered within 10 s"
			break
		fi
		if [ "$used" -gt "$BUDGET" ]; then
			why="at $n sandboxes MemAvailable had dropped by $used MiB"
			break
		fi
		best=$n
		echo "budget: all $n sandboxes echoed their line, MemAvailable down $used MiB" >&2
	done
	stop_all
	echo "budget $BUDGET MiB: $best idle template clones answered within it ($why)"
}

# Not in a pipeline: the helpers array must stay in this shell for cleanup.
{
	echo "per idle sandbox, MiB (mean): qemu_pss qemu_uss guest_cow slot_mem helper_pss helper_uss node(MemAvailable drop)"
	printf "%-8s %4s %4s %5s %8s %9s %9s %9s %9s %9s %9s %10s\n" mode n up alive answered qemu_pss qemu_uss guest_cow slot_mem helper_pss helper_uss node
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
if [ -n "$BUDGET" ]; then
	budget >>"$OUT/density.txt"
	tail -1 "$OUT/density.txt"
fi
