#!/bin/bash
# Per-sandbox cgroup cost in a TCG guest booting Debian's 6.1 kernel with
# rund.ko: per-sandbox mkdir + limits + fork + cgroup.procs write + kill +
# rmdir (v2-base) against the module pool's acquire + clone3 into the slot +
# release (v2-pool). Prints a Markdown table; the guest console log is kept
# in build/test-logs/kmod/bench.console.
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
# Needs what selftests/kmod/run.sh builds first (Debian kernel under build/,
# build/kmod-build/debian/kmod/rund.ko). SIZES and THREADS override the
# sandbox counts ("200 1000") and thread counts ("1 2 4 8").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${1:-3}
SIZES=${SIZES:-200 1000}
THREADS=${THREADS:-1 2 4 8}
KDIR=${KDIR:-$(ls -d /usr/src/linux-headers-6.1.*-amd64 | head -n1)}
version=${KDIR##*/linux-headers-}
image=$BUILD/debian-kernel/root/boot/vmlinuz-$version
ko=$BUILD/kmod-build/debian/kmod/rund.ko
[ -e "$image" ] && [ -e "$ko" ] || { echo "bench-cgroup-guest: run selftests/kmod/run.sh first to build $image and $ko" >&2; exit 1; }

dir=$BUILD/guest-tests/kmod-bench
rm -rf "$dir"
mkdir -p "$dir" "$BUILD/test-logs/kmod"
make -s -C selftests/kmod BUILD="$BUILD" >/dev/null
gcc -O2 -Wall -I/usr/include/libnl3 -pthread -o "$dir/bench-cgroup-guest.bin" scripts/bench-cgroup-guest.c \
	"$BUILD/kmod-tests/rund_nl.o" -static -lnl-genl-3 -lnl-3 -lpthread 2>&1 | grep -v "statically linked\|libnl_3_la" >&2 || true
# The guest runner executes every executable file in the directory, so only
# "run" is executable; it copies the binary out and makes it executable there.
chmod -x "$dir/bench-cgroup-guest.bin"
LOCKSTAT=${LOCKSTAT:-0}
if [ "$LOCKSTAT" = 1 ]; then
	make -s -C user/bpf BUILD="$BUILD" >/dev/null
	# shellcheck disable=SC2046 # pkg-config prints several words
	gcc -static -o "$dir/lockstat.bin" "$BUILD"/obj/bpf/lockstat.o "$BUILD"/obj/bpf/lockstat_report.o \
		"$BUILD"/obj/bpf/ksyms.o $(pkg-config --static --libs libbpf json-c) -lelf -lz -lm 2>&1 |
		grep -v "statically linked" >&2 || true
	chmod -x "$dir/lockstat.bin"
fi
{
	echo '#!/bin/sh'
	echo 'cp bench-cgroup-guest.bin /tmp/bench && chmod +x /tmp/bench || exit 1'
	[ "$LOCKSTAT" = 1 ] && echo 'cp lockstat.bin /tmp/lockstat && chmod +x /tmp/lockstat || exit 1'
	for n in $SIZES; do
		for t in $THREADS; do
			if [ "$LOCKSTAT" = 1 ]; then
				for m in v2-base v2-pool; do
					echo "/tmp/lockstat -j -n 0 -s 0 -o /tmp/ls.json -- /tmp/bench $n $t $ROUNDS $m || exit 1"
					echo "echo LOCKSTAT-BEGIN $m $n $t; cat /tmp/ls.json; echo; echo LOCKSTAT-END"
				done
			else
				echo "/tmp/bench $n $t $ROUNDS || exit 1"
			fi
		done
	done
} >"$dir/run"
chmod +x "$dir/run"

log=$BUILD/test-logs/kmod/bench.console
RUND_KO=$ko RUND_VM_TIMEOUT=${RUND_VM_TIMEOUT:-1800} RUND_VM_LOG=$log \
	scripts/vm-selftest.sh "$image" "$BUILD/debian-kernel/root/lib/modules/$version" "$dir" >/dev/null

echo "kernel $version (Debian), QEMU TCG, $(nproc) host CPUs, $ROUNDS rounds per row, $(date -u +%Y-%m-%d)"
echo
echo "| sandboxes | threads | mode | median µs | p99 µs | setup median µs | teardown median µs | median ratio to v2-base | p99 ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
tr -d '\r' <"$log" | awk '$1 == "BENCH" {
	key = $3 " " $4
	if ($2 == "v2-base") { bm[key] = $5; bp[key] = $6 }
	r1 = bm[key] ? sprintf("%.2f×", bm[key] / $5) : "-"
	r2 = bp[key] ? sprintf("%.2f×", bp[key] / $6) : "-"
	printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $3, $4, $2, $5, $6, $7, $8, r1, r2
}'

[ "$LOCKSTAT" = 1 ] || exit 0
echo
echo "Kernel lock wait per mode (rund-lockstat in the guest, whole system, all rounds):"
echo
echo "| sandboxes | threads | mode | lock wait ms | in cgroup code ms | waits | ratio to v2-base | top lock |"
echo "|---|---|---|---|---|---|---|---|"
tr -d '\r' <"$log" | python3 -c '
import json, sys
base = {}
key, buf = None, []
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("LOCKSTAT-BEGIN "):
        key, buf = line.split()[1:], []
    elif line == "LOCKSTAT-END" and key:
        mode, n, t = key
        rep = json.loads("".join(buf))
        cg = sum(c["total_ns"] for lock in rep["locks"] for c in lock["callers"]
                 if any(f.startswith(("cgroup", "css_")) for f in c["stack"]))
        top = rep["locks"][0] if rep["locks"] else None
        name = "-"
        if top:
            name = top["symbol"] or (("likely " + top["inferred_name"]) if top["inferred_name"] else top["address"])
        total = rep["total_ns"] / 1e6
        if mode == "v2-base":
            base[(n, t)] = total
        ratio = "%.2f" % (total / base[(n, t)]) if base.get((n, t)) else "-"
        print("| %s | %s | %s | %.1f | %.1f | %d | %s | %s |" % (n, t, mode, total, cg / 1e6, rep["total_count"], ratio, name))
        key = None
    elif key is not None:
        buf.append(line)
'
