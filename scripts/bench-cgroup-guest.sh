#!/bin/bash
# Per-sandbox cgroup cost in TCG guests booting Debian's 6.1 kernel with
# rund.ko. scripts/bench-cgroup-guest.c has the modes: a spawn-only floor,
# per-sandbox mkdir + limits + fork + cgroup.procs write + kill + rmdir
# (base), the module pool (pool) and librund's cgroupfs pool (upool). Each
# runs in bursts and in a sustained loop, on cgroup v2, on v2 remounted with
# favordynmods (v2fdm) and on one co-mounted v1 hierarchy (v1). The v2 and
# v1 modes boot one guest each, because a v1 hierarchy cannot take
# controllers that v2 has enabled. Prints a Markdown table. The guest
# console logs are kept under $OUT/test-logs/kmod/.
#
#   scripts/bench-cgroup-guest.sh [ROUNDS]
#   LOCKSTAT=1 scripts/bench-cgroup-guest.sh [ROUNDS]
#
# With LOCKSTAT=1 each mode runs on its own under rund-lockstat (linked
# statically for the guest, CO-RE against the guest kernel's BTF), and a
# second table gives the kernel lock wait of each mode: total, the part in
# stacks with a cgroup* or css_* frame, and the top lock. Tracing covers the
# whole guest, so the pool's own kernel work (its drain worker) counts too.
#
# Needs what selftests/kmod/run.sh builds first (Debian kernel under $BUILD,
# $BUILD/kmod-build/debian/kmod/rund.ko). Environment:
#   SIZES     sandbox counts ("200 1000"); "1000:1" runs that size for 1
#             round instead of ROUNDS
#   THREADS   thread counts ("1 2 4 8")
#   GUESTS    guests to boot ("v2 v1")
#   MODES_V2, MODES_V1  the modes of each guest (defaults below)
#   OUT       where the binaries and console logs go (default $BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-$BUILD}
ROUNDS=${1:-3}
SIZES=${SIZES:-200 1000}
THREADS=${THREADS:-1 2 4 8}
GUESTS=${GUESTS:-v2 v1}
MODES_V2=${MODES_V2:-v2-floor v2-base v2-pool v2-upool v2fdm-base v2fdm-pool v2fdm-upool \
v2-floor-sustained v2-base-sustained v2-pool-sustained v2-upool-sustained}
MODES_V1=${MODES_V1:-v1-floor v1-base v1-pool v1-upool v1-base-sustained v1-pool-sustained v1-upool-sustained}
LOCKSTAT=${LOCKSTAT:-0}
KDIR=${KDIR:-$(ls -d /usr/src/linux-headers-6.1.*-amd64 | head -n1)}
version=${KDIR##*/linux-headers-}
image=$BUILD/debian-kernel/root/boot/vmlinuz-$version
ko=$BUILD/kmod-build/debian/kmod/rund.ko
[ -e "$image" ] && [ -e "$ko" ] || { echo "bench-cgroup-guest: run selftests/kmod/run.sh first to build $image and $ko" >&2; exit 1; }
for g in $GUESTS; do
	case "$g" in
	v2 | v1) ;;
	*) echo "bench-cgroup-guest: unknown guest '$g' in GUESTS (expected v2 and/or v1)" >&2; exit 2 ;;
	esac
done

bin=$OUT/guest-tests/kmod-bench-bin
rm -rf "$bin"
mkdir -p "$bin" "$OUT/test-logs/kmod"
gcc -O2 -Wall -std=gnu11 -Iuser/lib -Ikmod/uapi -I/usr/include/libnl3 -pthread -o "$bin/bench-cgroup-guest.bin" \
	scripts/bench-cgroup-guest.c selftests/kmod/rund_nl.c user/lib/pool.c user/lib/pool_cgroupfs.c \
	user/lib/pool_netlink.c user/lib/error.c -static -lnl-genl-3 -lnl-3 -lpthread >"$bin/build.log" 2>&1 ||
	{ cat "$bin/build.log" >&2; echo "bench-cgroup-guest: building the benchmark failed" >&2; exit 1; }
if [ "$LOCKSTAT" = 1 ]; then
	make -s -C user/bpf BUILD="$BUILD" >/dev/null
	# shellcheck disable=SC2046 # pkg-config prints several words
	gcc -static -o "$bin/lockstat.bin" "$BUILD"/obj/bpf/lockstat.o "$BUILD"/obj/bpf/lockstat_report.o \
		"$BUILD"/obj/bpf/ksyms.o $(pkg-config --static --libs libbpf json-c) -lelf -lz -lm 2>&1 |
		grep -v "statically linked" >&2 || true
fi

# The guest runner executes every executable file in a test directory, so
# only "run" is executable. It copies the binaries out and makes them
# executable there.
write_run() {
	local modes=$1 s n r t m
	echo '#!/bin/sh'
	echo 'cp bench-cgroup-guest.bin /tmp/bench && chmod +x /tmp/bench || exit 1'
	# A soft lockup panics the guest, which then ends, instead of hanging
	# until the timeout; the console shows every kernel message, traces too.
	echo 'dmesg -n 8; echo 1 >/proc/sys/kernel/softlockup_panic'
	[ "$LOCKSTAT" = 1 ] && echo 'cp lockstat.bin /tmp/lockstat && chmod +x /tmp/lockstat || exit 1'
	echo 'rc=0'
	for s in $SIZES; do
		n=${s%%:*}
		r=$ROUNDS
		[ "$s" = "$n" ] || r=${s#*:}
		for t in $THREADS; do
			# One run per row interleaves the modes' rounds; under
			# rund-lockstat each mode needs a run of its own.
			if [ "$LOCKSTAT" != 1 ]; then
				echo "/tmp/bench $n $t $r $modes || rc=1"
				continue
			fi
			for m in $modes; do
				echo "/tmp/lockstat -j -n 0 -s 0 -o /tmp/ls.json -- /tmp/bench $n $t $r $m || rc=1"
				echo "echo LOCKSTAT-BEGIN $m $n $t; cat /tmp/ls.json; echo; echo LOCKSTAT-END"
			done
		done
	done
	echo 'exit $rc'
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
logs=()
failed=0
for g in $GUESTS; do
	dir=$OUT/guest-tests/kmod-bench-$g
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$bin"/*.bin "$dir/"
	chmod -x "$dir"/*.bin
	if [ "$g" = v2 ]; then modes=$MODES_V2; else modes=$MODES_V1; fi
	write_run "$modes" >"$dir/run"
	chmod +x "$dir/run"
	log=$OUT/test-logs/kmod/bench-$g.console
	logs+=("$log")
	RUND_KO=$ko RUND_VM_TIMEOUT=${RUND_VM_TIMEOUT:-5400} RUND_VM_LOG=$log \
		scripts/vm-selftest.sh "$image" "$BUILD/debian-kernel/root/lib/modules/$version" "$dir" >/dev/null ||
		{ echo "bench-cgroup-guest: the $g guest failed; its rows may be missing (console: $log)" >&2; failed=1; }
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo "kernel $version (Debian), QEMU TCG, $(nproc) host CPUs, sizes:rounds ${SIZES// /, } (default $ROUNDS rounds), $(date -u +%Y-%m-%d)," \
	"host load average $load_start at the start, $load_end at the end"
echo
echo "| sandboxes | threads | mode | median µs | p99 µs | setup median µs | teardown median µs | sandboxes/s | claim retries | auto-released | median ratio to base | p99 ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# The ratio compares with the base mode of the same layout and kind of run
# (v2fdm-pool with v2fdm-base, v1-pool-sustained with v1-base-sustained).
cat "${logs[@]}" 2>/dev/null | tr -d '\r' | awk '$1 == "BENCH" { line[++nr] = $0 }
function basekey(mode, n, t,    p, k) {
	k = split(mode, p, "-")
	return p[1] "-base" (k > 2 ? "-" p[3] : "") " " n " " t
}
END {
	for (i = 1; i <= nr; i++) {
		split(line[i], f, " ")
		if (f[2] ~ /-base/) { bm[f[2] " " f[3] " " f[4]] = f[5]; bp[f[2] " " f[3] " " f[4]] = f[6] }
	}
	for (i = 1; i <= nr; i++) {
		split(line[i], f, " ")
		key = basekey(f[2], f[3], f[4])
		r1 = bm[key] ? sprintf("%.2f×", bm[key] / f[5]) : "-"
		r2 = bp[key] ? sprintf("%.2f×", bp[key] / f[6]) : "-"
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[3], f[4], f[2], f[5], f[6], f[7], f[8], f[9], f[10], f[11], r1, r2
	}
}'

if [ "$LOCKSTAT" = 1 ]; then
	echo
	echo "Kernel lock wait per mode (rund-lockstat in the guest, whole system, all rounds):"
	echo
	echo "| sandboxes | threads | mode | lock wait ms | in cgroup code ms | waits | ratio to base | top lock |"
	echo "|---|---|---|---|---|---|---|---|"
	cat "${logs[@]}" 2>/dev/null | tr -d '\r' | python3 -c '
import json, sys
rows, key, buf = [], None, []
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("LOCKSTAT-BEGIN "):
        key, buf = line.split()[1:], []
    elif line == "LOCKSTAT-END" and key:
        try:
            rows.append((key, json.loads("".join(buf))))
        except ValueError:
            print("bench-cgroup-guest: no lock report for %s" % " ".join(key), file=sys.stderr)
        key = None
    elif key is not None:
        buf.append(line)

def base_of(mode):
    p = mode.split("-")
    return "-".join([p[0], "base"] + p[2:])

base = {(m, n, t): rep["total_ns"] for (m, n, t), rep in rows}
for (mode, n, t), rep in rows:
    cg = sum(c["total_ns"] for lock in rep["locks"] for c in lock["callers"]
             if any(f.startswith(("cgroup", "css_")) for f in c["stack"]))
    top = rep["locks"][0] if rep["locks"] else None
    name = "-"
    if top:
        name = top["symbol"] or (("likely " + top["inferred_name"]) if top["inferred_name"] else top["address"])
    b = base.get((base_of(mode), n, t))
    ratio = "%.2f" % (rep["total_ns"] / b) if b else "-"
    print("| %s | %s | %s | %.1f | %.1f | %d | %s | %s |" % (n, t, mode, rep["total_ns"] / 1e6, cg / 1e6,
          rep["total_count"], ratio, name))
'
fi
exit "$failed"
