#!/bin/bash
# Start latency of rund sandboxes: cold boot vs template restore vs template
# restore in a pre-started VMM.
#
#   scripts/bench-start.sh [--concurrency "1 10 50"] [--runs N] [--out DIR]
#                          [--no-pool] [--extra-mode NAME:VAR=VALUE]...
#
# For each mode (cold: `run --no-template`, template: `run --template NAME
# --no-vmm-pool`, template+pool: `run --template NAME` with
# `rund-helper vmm-pool serve --size C` running, refilled to C before each
# burst; --no-pool leaves that mode out)
# and each concurrency C it starts bursts of C sandboxes at once, each running
# `true`, until at least N samples are collected (default 30; a 50-way burst
# is one burst). Latency is launch to function running: the sum of the phases
# up to function_start in `run --json-fd`. CPU time per start is the user +
# system time of rund-helper and its QEMU child (/usr/bin/time), divided by
# the starts. A pooled QEMU is the child of the pool's owner, so for
# template+pool the CPU time of the owner and of the QEMU processes it reaped
# during the bursts is added (/proc/PID/stat). A pooled start that found no
# VMM ready starts QEMU on demand and counts as a miss (column "miss").
# Modes alternate burst by burst so that background load hits
# all alike. --extra-mode adds a template mode run with one more environment
# variable, for example template-tb4:RUND_TCG_TB_MIB=4.
#
# Phases: handoff is taking a pooled VMM and swapping its writable layer in
# (vmm_handoff + layer_swap), restore is up to the clone resumed, identity is the agent's
# clock, entropy and name fixups, agent is the writable layer mounted (for a
# cold boot: the whole boot), fn_start is RUN to the function started.
#
# Output: DIR/start-MODE-C.csv (one row per start: latency and phases),
# DIR/summary.txt (median, p99, per-phase medians, CPU per start, starts per
# second per core) and docs/bench-start-cdf.png (gnuplot CDF).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
HELPER=$BUILD/bin/rund-helper
CONC="1 10 50"
RUNS=30
OUT=$BUILD/bench-start
PNG=$ROOT/docs/bench-start-cdf.png
NAME=rund-bench-start-$$
MODES="cold template template+pool"
POOL_MAX=50
SERVE_PID=
declare -A MODE_ENV=()

while [ $# -gt 0 ]; do
	case $1 in
	--concurrency) CONC=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--png) PNG=$2; shift 2 ;;
	--no-pool) MODES="cold template"; shift ;;
	--extra-mode)
		case $2 in
		*:*=*) MODES="$MODES ${2%%:*}"; MODE_ENV[${2%%:*}]=${2#*:} ;;
		*) echo "bench-start: invalid --extra-mode '$2': expected NAME:VAR=VALUE" >&2; exit 2 ;;
		esac
		shift 2 ;;
	*) echo "bench-start: unknown argument '$1'; usage: $0 [--concurrency \"1 10 50\"] [--runs N] [--out DIR] [--png FILE]" >&2; exit 2 ;;
	esac
done

[ -x "$HELPER" ] || { echo "bench-start: $HELPER not found; run 'make -C user' first" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "bench-start: gnuplot not found; run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/start-*.csv "$OUT"/cpu-*.txt "$OUT"/pool.log

stop_pool() {
	[ -n "$SERVE_PID" ] || return 0
	kill -TERM "$SERVE_PID" 2>/dev/null || true
	wait "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=
}
cleanup() { stop_pool; "$HELPER" template delete "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "bench-start: creating template $NAME"
"$HELPER" template create "$NAME" >"$OUT/template.txt"
grep -E '^(boot|qemu)' "$OUT/template.txt" | sed 's/^/bench-start:   /'

# start_pool C: serve the template from a pool of min(C, POOL_MAX) VMMs.
start_pool() {
	POOL_SIZE=$(( $1 < POOL_MAX ? $1 : POOL_MAX ))
	"$HELPER" vmm-pool serve --template "$NAME" --size "$POOL_SIZE" 2>>"$OUT/pool.log" &
	SERVE_PID=$!
	pool_wait_full
}

# pool_wait_full: wait until every VMM of the pool is ready (60 s at most).
pool_wait_full() {
	local i ready
	for i in $(seq 1 600); do
		ready=$("$HELPER" vmm-pool status --socket "/run/rund/vmm/$NAME.sock" --json 2>/dev/null |
			grep -o '"ready":[0-9]*' | cut -d: -f2 || true)
		[ "${ready:-0}" -ge "$POOL_SIZE" ] && return 0
		sleep 0.1
	done
	echo "bench-start: the VMM pool has ${ready:-no} of $POOL_SIZE VMMs ready after 60 s" >&2
}

# pool_cpu: CPU seconds of the pool's owner and its reaped children.
pool_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13 + $14 + $15) / hz }' "/proc/$SERVE_PID/stat"
}

# burst MODE C: start C sandboxes at once, append their rows to the CSV and
# their CPU time to cpu-MODE-C.txt.
burst() {
	local mode=$1 c=$2 i dir
	local -a args envs=()
	case $mode in
	cold) args=(--no-template) ;;
	template+pool) args=(--template "$NAME"); pool_wait_full; pool_cpu >"$OUT/pool-cpu0" ;;
	*) args=(--template "$NAME" --no-vmm-pool) ;;
	esac
	[ -n "${MODE_ENV[$mode]:-}" ] && envs=("${MODE_ENV[$mode]}")
	dir=$(mktemp -d "$OUT/burst.XXXXXX")
	local t0 t1
	t0=$(date +%s.%N)
	local -a pids=()
	for i in $(seq 1 "$c"); do
		env "${envs[@]}" /usr/bin/time -f '%U %S' -o "$dir/$i.time" \
			"$HELPER" run "${args[@]}" --json-fd 3 -- true 3>"$dir/$i.json" >/dev/null 2>"$dir/$i.err" &
		pids+=($!)
	done
	# Not a bare wait: the pool's owner is a child of this script too.
	wait "${pids[@]}"
	t1=$(date +%s.%N)
	if [ "$mode" = template+pool ]; then
		# Reaped QEMUs' CPU is the owner's once the owner has reaped them.
		sleep 0.2
		echo "$(cat "$OUT/pool-cpu0") $(pool_cpu)" | awk '{ print $2 - $1 }' >>"$OUT/cpu-extra-$mode-$c.txt"
	fi
	for i in $(seq 1 "$c"); do
		if ! grep -q '"status":0' "$dir/$i.json"; then
			echo "bench-start: a $mode start failed: $(cat "$dir/$i.json" "$dir/$i.err" | head -3)" >&2
			continue
		fi
		# latency = layer + vmm_handoff + layer_swap + spawn + restore + identity
		#           + agent_ready + function_start
		miss=0
		[ "$mode" = template+pool ] && grep -q '"vmm":"on-demand"' "$dir/$i.json" && miss=1
		sed -e 's/.*"timings_ms":{//' -e 's/}.*$//' "$dir/$i.json" | tr ',' '\n' | awk -F: -v mode="$mode" -v c="$c" -v miss="$miss" '
			{ gsub(/"/, "", $1); v[$1] = $2 }
			END {
				ho = v["vmm_handoff"] + v["layer_swap"]
				lat = v["layer"] + ho + v["spawn"] + v["restore"] + v["identity"] + v["agent_ready"] + v["function_start"]
				printf "%s,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d\n", mode, c, lat, v["layer"], v["spawn"],
					v["restore"], v["identity"], v["agent_ready"], v["function_start"], ho, miss
			}' >>"$OUT/start-$mode-$c.csv"
		cat "$dir/$i.time" >>"$OUT/cpu-$mode-$c.txt"
	done
	echo "$t0 $t1 $c" >>"$OUT/wall-$mode-$c.txt"
	rm -rf "$dir"
}

for c in $CONC; do
	for mode in $MODES; do rm -f "$OUT/wall-$mode-$c.txt"; done
	case " $MODES " in *" template+pool "*) start_pool "$c" ;; esac
	n=0
	while [ $n -lt "$RUNS" ]; do
		for mode in $MODES; do burst "$mode" "$c"; done
		n=$((n + c))
	done
	stop_pool
	echo "bench-start: concurrency $c done ($n starts per mode)"
done

# Percentile of a column: pct FILE COL P.
pct() {
	cut -d, -f"$2" "$1" | sort -n | awk -v p="$3" '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }'
}

{
	printf "%-14s %4s %5s %9s %9s %7s %7s %7s %8s %8s %8s %8s %9s %8s %5s\n" mode conc n median_ms p99_ms layer handoff spawn restore identity agent fn_start cpu_ms/st st/s/core miss
	for c in $CONC; do
		for mode in $MODES; do
			f=$OUT/start-$mode-$c.csv
			[ -s "$f" ] || continue
			n=$(wc -l <"$f")
			extra=0
			[ -s "$OUT/cpu-extra-$mode-$c.txt" ] && extra=$(awk '{ s += $1 } END { print s }' "$OUT/cpu-extra-$mode-$c.txt")
			cpu=$(awk -v extra="$extra" '{ s += $1 + $2; n++ } END { printf "%.0f", n ? (s + extra) / n * 1000 : 0 }' "$OUT/cpu-$mode-$c.txt")
			miss=$(awk -F, '{ m += $11 } END { print m + 0 }' "$f")
			# Starts per second per core over whole bursts (2+ concurrent only).
			rate=$(awk -v cores="$(nproc)" '{ s += $3; t += $2 - $1 } END { printf "%.1f", t ? s / t / cores : 0 }' "$OUT/wall-$mode-$c.txt")
			printf "%-14s %4d %5d %9.1f %9.1f %7.1f %7.1f %7.1f %8.1f %8.1f %8.1f %8.1f %9s %8s %5s\n" "$mode" "$c" "$n" \
				"$(pct "$f" 3 50)" "$(pct "$f" 3 99)" "$(pct "$f" 4 50)" "$(pct "$f" 10 50)" "$(pct "$f" 5 50)" \
				"$(pct "$f" 6 50)" "$(pct "$f" 7 50)" "$(pct "$f" 8 50)" "$(pct "$f" 9 50)" "$cpu" "$rate" "$miss"
		done
		cm=$(pct "$OUT/start-cold-$c.csv" 3 50)
		tm=$(pct "$OUT/start-template-$c.csv" 3 50)
		awk -v a="$cm" -v b="$tm" -v c="$c" 'BEGIN { if (b > 0) printf "ratio   %4d cold/template median: %.1fx\n", c, a / b }'
		if [ -s "$OUT/start-template+pool-$c.csv" ]; then
			pm=$(pct "$OUT/start-template+pool-$c.csv" 3 50)
			awk -v a="$cm" -v b="$tm" -v p="$pm" -v c="$c" 'BEGIN { if (p > 0) printf "ratio   %4d cold/template+pool median: %.1fx, template/template+pool: %.2fx\n", c, a / p, b / p }'
		fi
	done
} | tee "$OUT/summary.txt"

# CDF plot: one curve per mode and concurrency.
plot=""
for c in $CONC; do
	for mode in $MODES; do
		f=$OUT/start-$mode-$c.csv
		[ -s "$f" ] || continue
		cut -d, -f3 "$f" | sort -n | awk '{ a[NR] = $1 } END { for (i = 1; i <= NR; i++) print a[i], i / NR }' >"$OUT/cdf-$mode-$c.dat"
		dt=1; [ "$mode" = cold ] && dt=2
		plot="$plot${plot:+, }'$OUT/cdf-$mode-$c.dat' using 1:2 with steps dt $dt lw 2 title '$mode, $c concurrent'"
	done
done
gnuplot <<EOF
set terminal pngcairo size 900,560
set output '$PNG'
set title 'rund start latency, launch to function running (TCG, $(nproc) cores)'
set xlabel 'latency (ms, log scale)'
set ylabel 'fraction of starts'
set logscale x
set key bottom right
set grid
plot $plot
EOF
echo "bench-start: wrote $OUT/summary.txt and $PNG"
