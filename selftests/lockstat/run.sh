#!/bin/bash
# Host tests of rund-lockstat (TAP output).
#
# A burst of cgroup mkdir/rmdir in the test's own subtree runs under the tool
# and must show wait in cgroup code paths, while an idle period of the same
# length must show at most 1% of that wait. Both runs filter on the test's own
# cgroup2 directory, so other work on the machine does not count. Invalid
# options must be rejected with a message, and a command's exit status must
# pass through. The tool's overhead on the burst is measured and printed,
# never asserted.
#
# Exit: 0 all passed, 4 the kernel lacks BTF or the contention tracepoints
# (a failure under CI=true), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-$PWD/build}
TOOL=$BUILD/bin/rund-lockstat
BURST=scripts/lockstat-cgroup-burst.py
NAME=rund-test-lockstat-$$
V2_ROOT=/sys/fs/cgroup/unified
V2=$V2_ROOT/$NAME
BURST_WORKERS=6		# three per core on the 2-core development machines
BURST_SECONDS=3
OVERHEAD_OPS=4000	# sandboxes per worker in each overhead run
EXIT_USAGE=64
EXIT_UNSUPPORTED=69

TMP=$(mktemp -d /tmp/rund-test-lockstat.XXXXXX)
test_count=0
failures=0

sleeper=

cleanup() {
	local dir

	if [ -n "$sleeper" ]; then
		kill "$sleeper" 2>/dev/null
	fi
	# The burst script removes its own cgroups. This catches an interrupted run.
	for dir in /sys/fs/cgroup/*/"$NAME"; do
		[ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() {
	test_count=$((test_count + 1))
	echo "ok $test_count - $1"
}

not_ok() {
	test_count=$((test_count + 1))
	failures=$((failures + 1))
	echo "not ok $test_count - $1"
}

check() {
	local name=$1

	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# Skips one test, which counts as a failure under CI.
skip() {
	if [ "${CI:-}" = true ]; then
		not_ok "$1 # needs $2, which CI machines must have"
	else
		test_count=$((test_count + 1))
		echo "ok $test_count - $1 # SKIP $2"
	fi
}

skip_all() {
	echo "# $1"
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - rund-lockstat runs on this kernel # $1"
		echo "1..1"
		exit 1
	fi
	echo "1..0 # SKIP $1"
	exit 4
}

# Prints a field of a JSON report, or "error" when the file cannot be read.
json_field() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" \
		2>/dev/null || echo error
}

# Command prefix that runs the rest inside the test's cgroup2 directory, so
# that the -c "$V2" filter matches it. The tool executes the prefix, so it
# cannot be a shell function.
# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
IN_TEST_CGROUP=(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$V2")

# --- prerequisites ---------------------------------------------------------

[ "$(id -u)" -eq 0 ] || skip_all "must run as root (BPF and cgroup writes)"
command -v python3 >/dev/null || skip_all "python3 is missing (scripts/install-deps.sh installs it)"

if [ ! -x "$TOOL" ]; then
	echo "# building rund-lockstat into $BUILD"
	if ! make -s -C user/bpf BUILD="$BUILD" >"$TMP/build.log" 2>&1; then
		sed 's/^/# /' "$TMP/build.log"
		[ -r /sys/kernel/btf/vmlinux ] || skip_all "kernel BTF /sys/kernel/btf/vmlinux is missing (CONFIG_DEBUG_INFO_BTF=n)"
		echo "not ok 1 - rund-lockstat builds"
		echo "1..1"
		exit 1
	fi
fi

"$TOOL" -d 0.2 -o /dev/null 2>"$TMP/probe.err"
rc=$?
if [ "$rc" -eq "$EXIT_UNSUPPORTED" ]; then
	skip_all "rund-lockstat cannot trace here: $(head -n 1 "$TMP/probe.err")"
fi
check "tool attaches to the contention tracepoints (exit $rc)" [ "$rc" -eq 0 ]
if [ "$rc" -ne 0 ]; then
	sed 's/^/# /' "$TMP/probe.err"
fi

# --- invalid options --------------------------------------------------------

# Each case: the arguments, then a string the error message must contain.
invalid_cases=(
	"-d abc|'abc'"
	"-d -1|'-1'"
	"-d 0|'0'"
	"-d 1e400|'1e400'"
	"-p 12x|'12x'"
	"-p 0|'0'"
	"-t -5|'-5'"
	"-n -3|'-3'"
	"-n 1.5|'1.5'"
	"-s 99999999999999999999|'99999999999999999999'"
	"-D 99|'99'"
	"-S bogus|'bogus'"
	"-k mutexx|'mutexx'"
	"-k mutex,,spin|'mutex,,spin'"
	"-L 0xzz|'0xzz'"
	"-L no_such_lock_symbol|'no_such_lock_symbol'"
	"-c /sys/fs/cgroup/pids|cgroup v1"
	"-c /nonexistent-rund-cgroup|'/nonexistent-rund-cgroup'"
	"--bogus-option|bogus-option"
	"-d 1 -- true|cannot be combined"
	"-p 1 -t 1|cannot be combined"
)
for entry in "${invalid_cases[@]}"; do
	args=${entry%%|*}
	expected=${entry#*|}
	# shellcheck disable=SC2086 # the arguments are split on purpose
	"$TOOL" $args -o /dev/null >/dev/null 2>"$TMP/invalid.err"
	rc=$?
	if [ "$rc" -eq "$EXIT_USAGE" ] && grep -qF -- "$expected" "$TMP/invalid.err"; then
		ok "rejects $args"
	else
		not_ok "rejects $args (exit $rc, expected $EXIT_USAGE and a message with $expected)"
		sed 's/^/# /' "$TMP/invalid.err"
	fi
done

# --- command form -----------------------------------------------------------

"$TOOL" -o /dev/null -- sh -c 'exit 7' 2>/dev/null
rc=$?
check "passes the command's exit status (7, got $rc)" [ "$rc" -eq 7 ]

"$TOOL" -o /dev/null -- sh -c 'kill -KILL $$' 2>/dev/null
rc=$?
check "reports a killed command as 128+9 (got $rc)" [ "$rc" -eq 137 ]

"$TOOL" -o /dev/null -- /nonexistent-rund-command 2>"$TMP/notfound.err"
rc=$?
check "missing command exits 127 (got $rc)" [ "$rc" -eq 127 ]
check "missing command is named in the message" grep -qF "/nonexistent-rund-command" "$TMP/notfound.err"

# --- burst and idle period --------------------------------------------------

if [ ! -d /sys/fs/cgroup/pids ] || [ ! -f "$V2_ROOT/cgroup.procs" ]; then
	skip "cgroup burst tests" "a v1 pids hierarchy and cgroup2 at $V2_ROOT"
	echo "1..$test_count"
	[ "$failures" -eq 0 ]
	exit
fi
mkdir "$V2"

"$TOOL" -c "$V2" -j -n 0 -s 0 -o "$TMP/burst.json" -- \
	"${IN_TEST_CGROUP[@]}" "$BURST" --name "$NAME" --workers "$BURST_WORKERS" --seconds "$BURST_SECONDS" \
	>"$TMP/burst.out" 2>"$TMP/burst.err"
rc=$?
check "burst under the tool exits 0 (got $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || sed 's/^/# /' "$TMP/burst.err"
echo "# burst: $(cat "$TMP/burst.out")"

burst_ns=$(json_field "$TMP/burst.json" total_ns)
burst_s=$(json_field "$TMP/burst.json" duration_s)
echo "# burst wait: $burst_ns ns over $burst_s s"
check "burst reports non-zero wait" python3 -c 'import sys; sys.exit(not int(sys.argv[1]) > 0)' "$burst_ns"

check "burst wait is attributed to cgroup code" python3 - "$TMP/burst.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
cgroup_ns = sum(c["total_ns"] for lock in report["locks"] for c in lock["callers"]
                if any(frame.startswith("cgroup_") for frame in c["stack"]))
print(f"# wait in stacks through cgroup_ functions: {cgroup_ns} of {report['total_ns']} ns")
sys.exit(0 if cgroup_ns > 0 else 1)
EOF

check "cgroup_mutex is named (symbol or inferred)" python3 - "$TMP/burst.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for lock in report["locks"]:
    if (lock["symbol"] or "").startswith("cgroup_mutex") or lock["inferred_name"] == "cgroup_mutex":
        print(f"# cgroup_mutex: {lock['address']}, {lock['total_ns']} ns, "
              f"inferred from {lock['inferred_from']}, symbol {lock['symbol']}")
        sys.exit(0)
sys.exit(1)
EOF

idle_seconds=$(python3 -c 'import sys; print(round(float(sys.argv[1]), 2))' "$burst_s" 2>/dev/null || echo "$BURST_SECONDS")
"$TOOL" -c "$V2" -j -n 0 -o "$TMP/idle.json" -- "${IN_TEST_CGROUP[@]}" sleep "$idle_seconds"
rc=$?
idle_ns=$(json_field "$TMP/idle.json" total_ns)
echo "# idle wait: $idle_ns ns over $idle_seconds s"
check "idle period exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "idle wait is at most 1% of the burst's" \
	python3 -c 'import sys; sys.exit(not 0 <= int(sys.argv[1]) * 100 <= int(sys.argv[2]))' \
	"$idle_ns" "$burst_ns"

# --- filters ----------------------------------------------------------------

"$TOOL" -c "$V2" -k spin,rwsem -j -n 0 -s 0 -o "$TMP/class.json" -- \
	"${IN_TEST_CGROUP[@]}" "$BURST" --name "$NAME" --workers "$BURST_WORKERS" --seconds 1 >/dev/null
check "class filter keeps only spin and rwsem waits" python3 - "$TMP/class.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
classes = {c["class"] for lock in report["locks"] for c in lock["callers"]}
print(f"# classes seen: {sorted(classes)}")
sys.exit(0 if classes and all(c == "spin" or c.startswith("rwsem") for c in classes) else 1)
EOF

"$TOOL" -c "$V2" -C 'cgroup_kn_lock_live' -j -n 0 -s 0 -o "$TMP/caller.json" -- \
	"${IN_TEST_CGROUP[@]}" "$BURST" --name "$NAME" --workers "$BURST_WORKERS" \
	--seconds "$BURST_SECONDS" >/dev/null
check "caller filter keeps only matching stacks" python3 - "$TMP/caller.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
stacks = [c["stack"] for lock in report["locks"] for c in lock["callers"]]
matching = [s for s in stacks if any(f.startswith("cgroup_kn_lock_live+") for f in s)]
print(f"# {len(matching)} of {len(stacks)} stacks match, {report['filtered_count']} waits left out")
sys.exit(0 if stacks and len(matching) == len(stacks) else 1)
EOF

# A process that only sleeps waits for no lock, however busy the rest of the machine is.
sleep 60 &
sleeper=$!
"$TOOL" -p "$sleeper" -j -n 0 -o "$TMP/pid.json" -- \
	"$BURST" --name "$NAME" --workers "$BURST_WORKERS" --seconds 1 >/dev/null
kill "$sleeper"
wait "$sleeper" 2>/dev/null
sleeper=
pid_ns=$(json_field "$TMP/pid.json" total_ns)
echo "# wait of the sleeping process during a burst: $pid_ns ns"
check "pid filter leaves out other processes" \
	python3 -c 'import sys; sys.exit(not 0 <= int(sys.argv[1]) * 100 <= int(sys.argv[2]))' \
	"$pid_ns" "$burst_ns"

# All locks (-n 0): under load, cgroup_mutex is not always among the top few.
"$TOOL" -c "$V2" -n 0 -s 2 -H -o "$TMP/text.out" -- \
	"${IN_TEST_CGROUP[@]}" "$BURST" --name "$NAME" --workers "$BURST_WORKERS" \
	--seconds "$BURST_SECONDS" >/dev/null
check "text report has a header" grep -q "^Lock contention over" "$TMP/text.out"
check "text report has a histogram" grep -q "distribution" "$TMP/text.out"
if [ "$(json_field "$TMP/burst.json" kallsyms_data_symbols)" = False ]; then
	check "text report marks inferred names" grep -q "likely cgroup_mutex (inferred from caller" "$TMP/text.out"
else
	check "text report names cgroup_mutex" grep -q "cgroup_mutex" "$TMP/text.out"
fi
sed -n '1,12s/^/# /p' "$TMP/text.out"

# --- overhead (measured, not asserted) ---------------------------------------

# Alternate runs without and with the tool. The figure is the burst's own wall time.
for run in 1 2 3 4 5; do
	"$BURST" --name "$NAME" --workers "$BURST_WORKERS" --ops "$OVERHEAD_OPS" >>"$TMP/plain.jsonl"
	"$TOOL" --bpf-stats -j -o "$TMP/traced-$run.json" -- "$BURST" --name "$NAME" \
		--workers "$BURST_WORKERS" --ops "$OVERHEAD_OPS" >>"$TMP/traced.jsonl"
done
python3 - "$TMP/plain.jsonl" "$TMP/traced.jsonl" "$TMP"/traced-*.json <<'EOF'
import json, statistics, sys
plain = [json.loads(line)["seconds"] for line in open(sys.argv[1])]
traced = [json.loads(line)["seconds"] for line in open(sys.argv[2])]
stats = [json.load(open(path))["bpf_stats"] for path in sys.argv[3:]]
runs = sum(s["runs"] for s in stats)
print(f"# overhead: {runs} BPF program runs, {sum(s['run_ns'] for s in stats) / max(runs, 1):.0f} ns "
      "per run on average (--bpf-stats)")
print(f"# overhead: burst of {json.loads(open(sys.argv[1]).readline())['sandboxes']} mkdir/rmdir, "
      f"median {statistics.median(plain):.3f} s without the tool, "
      f"{statistics.median(traced):.3f} s with it (system-wide), "
      f"ratio {statistics.median(traced) / statistics.median(plain):.2f}")
EOF
check "overhead runs completed" [ "$(wc -l <"$TMP/traced.jsonl")" -eq 5 ]
check "--bpf-stats counts program runs" python3 - "$TMP"/traced-*.json <<'EOF'
import json, sys
stats = [json.load(open(path)).get("bpf_stats") for path in sys.argv[1:]]
sys.exit(0 if stats and all(s and s["runs"] > 0 and s["run_ns"] > 0 for s in stats) else 1)
EOF

rmdir "$V2" 2>/dev/null
echo "1..$test_count"
[ "$failures" -eq 0 ]
