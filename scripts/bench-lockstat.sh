#!/bin/bash
# Record kernel lock wait during a benchmark with rund-lockstat.
#
#   scripts/bench-lockstat.sh [OPTIONS] -- COMMAND [ARG...]
#       Run any benchmark command under rund-lockstat (system-wide) and print
#       its lock wait: total, the part in cgroup code, and the top locks. The
#       command's exit status is passed through.
#
#   scripts/bench-lockstat.sh [OPTIONS]
#       Compare lock wait of the per-sandbox cgroup baseline (mkdir, attach a
#       process, rmdir in each v1 hierarchy) with the cgroup pool
#       (rund-helper pool acquire/attach/release, cgroupfs backend), in
#       alternating runs, and print a Markdown table for docs/benchmarks.md.
#
#   scripts/bench-lockstat.sh --cgroup-bench [OPTIONS]
#       The same for the modes of scripts/bench-cgroup.c (v1-base, v1-pool,
#       v2-procs, v2-clone, v2-pool, spawn), which drive the pool through
#       librund from one process.
#
# Options:
#   --runs N      runs per workload, alternating (default 3)
#   --workers N   worker processes (threads with --cgroup-bench) per burst (default 4)
#   --ops N       sandboxes per worker (default 100)
#   --keep DIR    keep every JSON report in DIR
#
# Wait "in cgroup code" is the wait of stacks with a frame named cgroup* or
# css_*: the cgroup core, its v1 interface and the css work items that finish
# an rmdir. Tracing is system-wide, so other work on the machine is included.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-$PWD/build}
TOOL=$BUILD/bin/rund-lockstat
HELPER=$BUILD/bin/rund-helper
BURST=scripts/lockstat-cgroup-burst.py
POOL_CONTROLLERS=memory,cpu,pids,freezer	# what rund-helper pool init uses by default
runs=3
workers=4
ops=100
keep=
cgroup_bench=0

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

positive() {
	if ! [[ $2 =~ ^[1-9][0-9]{0,6}$ ]]; then
		echo "bench-lockstat: invalid $1 '$2': expected an integer from 1 to 9999999" >&2
		exit 64
	fi
}

while [ $# -gt 0 ]; do
	case $1 in
	--runs) positive --runs "${2:-}"; runs=$2; shift 2 ;;
	--workers) positive --workers "${2:-}"; workers=$2; shift 2 ;;
	--ops) positive --ops "${2:-}"; ops=$2; shift 2 ;;
	--keep) keep=${2:?--keep needs a directory}; shift 2 ;;
	--cgroup-bench) cgroup_bench=1; shift ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	*) echo "bench-lockstat: unknown option '$1'; see --help" >&2; exit 64 ;;
	esac
done

if [ ! -x "$TOOL" ]; then
	echo "bench-lockstat: $TOOL not found: run 'make bpf' first" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/rund-bench-lockstat.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -z "$keep" ] || mkdir -p "$keep"

# Prints "total_ms cgroup_ms waits top-lock" for one JSON report.
summarize() {
	python3 - "$1" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
cgroup_ns = sum(c["total_ns"] for lock in report["locks"] for c in lock["callers"]
                if any(f.startswith(("cgroup", "css_")) for f in c["stack"]))
top = report["locks"][0] if report["locks"] else None
name = "-"
if top:
    name = top["symbol"] or (f"likely {top['inferred_name']}" if top["inferred_name"] else top["address"])
print(f"{report['total_ns'] / 1e6:.1f} {cgroup_ns / 1e6:.1f} {report['total_count']} {name}")
EOF
}

# --- any command ---------------------------------------------------------------

if [ $# -gt 0 ]; then
	status=0
	"$TOOL" -j -n 0 -s 0 -o "$tmp/report.json" -- "$@" || status=$?
	if [ -s "$tmp/report.json" ]; then
		read -r total_ms cgroup_ms waits top <<<"$(summarize "$tmp/report.json")"
		echo "lock wait during '$*': ${total_ms} ms total, ${cgroup_ms} ms in cgroup code," \
			"$waits waits; top lock: $top"
		[ -z "$keep" ] || cp "$tmp/report.json" "$keep/"
	fi
	exit "$status"
fi

# --- baseline vs pool --------------------------------------------------------------

name=rund-test-lockstat-bench-$$
trap 'rm -rf "$tmp" /run/"$name"' EXIT

# Workload specs: key|label|baseline key. run_workload KEY RUN runs one burst.
workloads=()
if [ "$cgroup_bench" = 1 ]; then
	bench_bin=$BUILD/bench/bench-lockstat-cgroup
	make -s -C user BUILD="$BUILD" >/dev/null
	mkdir -p "$BUILD/bench"
	# The same build as scripts/bench-cgroup.sh, into a file of its own.
	# shellcheck disable=SC2046 # pkg-config prints several words
	cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Iuser/lib -Ikmod/uapi \
		$(pkg-config --cflags libnl-genl-3.0) -o "$bench_bin" \
		scripts/bench-cgroup.c "$BUILD/lib/librund.a" \
		$(pkg-config --libs libnl-genl-3.0 json-c) -lpthread
	sandboxes=$((workers * ops))
	workloads=(
		"spawn|spawn: fork and kill, no cgroup|spawn"
		"v1-base|v1-base: mkdir in 8 v1 hierarchies, limits, 8 cgroup.procs writes, rmdir|v1-base"
		"v1-pool|v1-pool: pool acquire (4 renames), launcher moves itself in, release|v1-base"
		"v2-procs|v2-procs: cgroup2 mkdir, cgroup.procs write, rmdir|v2-procs"
		"v2-clone|v2-clone: cgroup2 mkdir, clone3(CLONE_INTO_CGROUP), rmdir|v2-procs"
		"v2-pool|v2-pool: pool acquire, clone3(CLONE_INTO_CGROUP), release|v2-procs"
	)
	run_workload() {
		local key=$1 run=$2

		"$TOOL" -j -n 0 -s 0 -o "$tmp/$key-$run.json" -- \
			"$bench_bin" "$key" "$sandboxes" "$workers" "$name" >"$tmp/$key-$run.out" || return 1
		# The wall time is the tool's traced period, which is the command's run time.
		python3 -c 'import json, re, sys
fields = dict(re.findall(r"(\w+)=([0-9.]+)", open(sys.argv[1]).read()))
print(json.dumps({"seconds": None, "sandboxes": int(sys.argv[2]),
                  "median_us": float(fields.get("median_us", 0)), "p99_us": float(fields.get("p99_us", 0)),
                  "pool_lost_claims": 0}))' "$tmp/$key-$run.out" "$sandboxes" >"$tmp/$key-$run.burst"
	}
else
	if [ ! -x "$HELPER" ]; then
		echo "bench-lockstat: $HELPER not found: run 'make user' first" >&2
		exit 1
	fi
	all_v1=$(for d in /sys/fs/cgroup/*; do
		[ -L "$d" ] && continue
		[ "$(stat -f -c %T "$d")" = cgroupfs ] || continue
		case ${d##*/} in systemd|unified) continue ;; esac
		echo "${d##*/}"
	done | paste -sd, -)
	declare -A burst_args=(
		[mkdir-pool-set]="--mode mkdir --attach --hierarchies $POOL_CONTROLLERS"
		[mkdir-all-v1]="--mode mkdir --attach --hierarchies $all_v1"
		[pool]="--mode pool --helper $HELPER"
	)
	workloads=(
		"mkdir-pool-set|mkdir+attach+rmdir, 4 hierarchies (the pool's)|mkdir-pool-set"
		"mkdir-all-v1|mkdir+attach+rmdir, all $(tr -cd , <<<"$all_v1,"| wc -c) v1 hierarchies|mkdir-pool-set"
		"pool|pool acquire+attach+release via rund-helper (cgroupfs)|mkdir-pool-set"
	)
	run_workload() {
		local key=$1 run=$2

		# shellcheck disable=SC2086 # the arguments are split on purpose
		"$TOOL" -j -n 0 -s 0 -o "$tmp/$key-$run.json" -- \
			"$BURST" --name "$name" --workers "$workers" --ops "$ops" \
			${burst_args[$key]} >"$tmp/$key-$run.burst"
	}
fi

for run in $(seq 1 "$runs"); do
	for spec in "${workloads[@]}"; do
		key=${spec%%|*}
		if ! run_workload "$key" "$run"; then
			echo "bench-lockstat: run $run of $key failed; see the messages above" >&2
			exit 1
		fi
		echo "# run $run $key: $(cat "$tmp/$key-$run.burst")" >&2
	done
done
[ -z "$keep" ] || cp "$tmp"/*.json "$tmp"/*.burst "$keep/"

python3 - "$tmp" "$runs" "$workers" "$ops" "${workloads[@]}" <<'EOF'
import json, statistics, sys
tmp, runs, workers, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
specs = [spec.split("|") for spec in sys.argv[5:]]
order = [key for key, _, _ in specs]
labels = {key: label for key, label, _ in specs}
baselines = {key: baseline for key, _, baseline in specs}
# Operation of a stack in cgroup code, from the frames that reveal it.
categories = (
    ("attach", ("cgroup1_procs_write", "__cgroup1_procs_write", "cgroup_procs_write",
                "__cgroup_procs_write", "cgroup_attach_lock", "cgroup_attach_task")),
    ("mkdir/rmdir", ("cgroup_mkdir", "cgroup_rmdir", "css_killed_work_fn", "css_release_work_fn",
                     "css_free_rwork_fn", "cgroup_destroy_locked")),
    ("rename", ("cgroup1_rename",)),
)


def category(stack):
    names = [frame.split("+")[0].split(".")[0] for frame in stack]
    if not any(n.startswith(("cgroup", "css_")) for n in names):
        return None
    for label, functions in categories:
        if any(n in functions for n in names):
            return label
    return "other"


rows = {}
for workload in order:
    runs_data = []
    top, lost = {}, 0
    for run in range(1, runs + 1):
        report = json.load(open(f"{tmp}/{workload}-{run}.json"))
        burst = json.load(open(f"{tmp}/{workload}-{run}.burst"))
        split = {"attach": 0, "mkdir/rmdir": 0, "rename": 0, "other": 0}
        for lock in report["locks"]:
            for caller in lock["callers"]:
                label = category(caller["stack"])
                if label:
                    split[label] += caller["total_ns"]
        runs_data.append(dict(total=report["total_ns"], cgroup=sum(split.values()), split=split,
                              seconds=burst["seconds"] or report["duration_s"], sandboxes=burst["sandboxes"],
                              median_us=burst["median_us"], p99_us=burst["p99_us"]))
        lost += burst["pool_lost_claims"]
        for lock in report["locks"][:3]:
            name = lock["symbol"] or (f"likely {lock['inferred_name']}" if lock["inferred_name"]
                                      else f"{lock['class']} {lock['address']}")
            top[name] = top.get(name, 0) + lock["total_ns"]
    median = lambda key: statistics.median(r[key] for r in runs_data)
    rows[workload] = dict(
        total=median("total"), cgroup=median("cgroup"), seconds=median("seconds"),
        median_us=statistics.median(r["median_us"] for r in runs_data),
        p99_us=statistics.median(r["p99_us"] for r in runs_data),
        sandboxes=median("sandboxes"),
        cgroup_max=max(r["cgroup"] for r in runs_data),
        split={k: statistics.median(r["split"][k] for r in runs_data) for k in runs_data[0]["split"]},
        top=sorted(top, key=top.get, reverse=True)[:2], lost=lost)

print(f"{runs} runs per workload, alternating; {workers} workers x {ops} sandboxes; medians over runs.\n")
print("| workload | wall s | per sandbox median us (p99) | wait in cgroup code, ms (max of runs) "
      "| cgroup wait per sandbox, us | vs baseline | attach ms | mkdir/rmdir ms | rename ms | other ms "
      "| all waits ms | top locks |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for workload in order:
    r = rows[workload]
    base = rows[baselines[workload]]
    ratio = f"{r['cgroup'] / base['cgroup']:.2f}" if base["cgroup"] else "-"
    split = r["split"]
    print(f"| {labels[workload]} | {r['seconds']:.2f} | {r['median_us']:.0f} ({r['p99_us']:.0f}) "
          f"| {r['cgroup'] / 1e6:.1f} ({r['cgroup_max'] / 1e6:.1f}) "
          f"| {r['cgroup'] / r['sandboxes'] / 1e3:.0f} | {ratio} ({baselines[workload]}) "
          f"| {split['attach'] / 1e6:.1f} | {split['mkdir/rmdir'] / 1e6:.1f} | {split['rename'] / 1e6:.1f} "
          f"| {split['other'] / 1e6:.1f} | {r['total'] / 1e6:.1f} | {', '.join(r['top'])} |")
lost = sum(r["lost"] for r in rows.values())
if lost:
    print(f"\nThe pool returned {lost} claims to idle before their release; those sandboxes were "
          "retried and the retries are included above.")
EOF
