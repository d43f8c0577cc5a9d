#!/bin/bash
# Tests of the pre-patched guest kernel (guest/rund-prepatch.py). Images for
# 1 and 2 vCPUs must boot without a patch write. A function runs with the
# stock kernel and with the image, with and without the skips. Kernel text is
# byte-identical after a pre-patched and a normal boot, pre-boot template
# clones share their text, and a launch that does not match the image is
# refused. Pre-boot templates made by `rund-helper template create --kind
# preboot` boot fresh clones that share the image. TAP output; exit 0 pass,
# 1 fail.
#
# RUND_KERNEL names the guest kernel (default: the installed one, or the
# build's when the installed one predates the patches in patches/).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
STATE=${RUND_STATE_DIR:-/var/lib/rund}
HELPER=$BUILD/bin/rund-helper
TOOL=$ROOT/guest/rund-prepatch.py
export RUND_INITRD=${RUND_INITRD:-$STATE/kernel/initramfs.cpio}
PATCH_LOG='boot-time text patching'
TMP=$(mktemp -d /tmp/rund-test-prepatch.XXXXXX)
# rund-helper templates of this run
P=preboot-test-$$
S=preboot-test-snap-$$
OLD=preboot-test-old-$$

cleanup() {
	local t
	for t in "$P" "$P-2" "$P-normal" "$P-pre-patched" "$S" "$OLD"; do
		"$HELPER" template delete "$t" >/dev/null 2>&1
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

ntest=0
nfail=0
ok() { ntest=$((ntest + 1)); echo "ok $ntest - $1"; }
not_ok() {
	ntest=$((ntest + 1))
	nfail=$((nfail + 1))
	echo "not ok $ntest - $1"
	shift
	for line in "$@"; do echo "#   $line"; done
}

echo "TAP version 13"

KERNEL=${RUND_KERNEL:-$STATE/kernel/vmlinux}
if [ -z "${RUND_KERNEL:-}" ] && ! grep -qa "$PATCH_LOG" "$KERNEL" 2>/dev/null &&
	grep -qa "$PATCH_LOG" "$BUILD/guest-kernel/vmlinux" 2>/dev/null; then
	echo "# $KERNEL predates patches/; using $BUILD/guest-kernel/vmlinux"
	KERNEL=$BUILD/guest-kernel/vmlinux
fi
if ! grep -qa "$PATCH_LOG" "$KERNEL" 2>/dev/null; then
	echo "Bail out! $KERNEL is missing or lacks the patches in patches/; run scripts/setup.sh"
	exit 1
fi
if ! make -s -C user BUILD="$BUILD" >"$TMP/build.log" 2>&1; then
	cat "$TMP/build.log"
	echo "Bail out! rund-helper does not build"
	exit 1
fi
# A private copy: a kernel rebuild during the run must not change it.
cp "$KERNEL" "$TMP/vmlinux"
KERNEL=$TMP/vmlinux

# 1. Images for both vCPU counts. The build boots each image and fails
# unless it logs zero patch writes and finds every gap page poisoned.
for n in 1 2; do
	if "$TOOL" build --kernel "$KERNEL" --vcpus "$n" --out "$TMP/vmlinux.pp$n" >"$TMP/build-$n.log" 2>&1 &&
		grep -q "verify: boot-time patching 0 writes" "$TMP/build-$n.log"; then
		ok "prepatch build $n vCPU boots without writes"
	else
		not_ok "prepatch build $n vCPU boots without writes" "$(tail -5 "$TMP/build-$n.log")"
	fi
done

if grep -qx "vcpus=1" "$TMP/vmlinux.pp1.prepatch" 2>/dev/null &&
	grep -qx "cpu=default" "$TMP/vmlinux.pp1.prepatch" &&
	grep -qx "accel=tcg" "$TMP/vmlinux.pp1.prepatch"; then
	ok "sidecar records vcpus cpu accel"
else
	not_ok "sidecar records vcpus cpu accel" "$(cat "$TMP/vmlinux.pp1.prepatch" 2>&1)"
fi

# 2. A function runs with each variant, 1 vCPU (the run default).
run_variant() {
	local name=$1 kernel=$2 append=$3 out rc
	out=$(RUND_KERNEL=$kernel RUND_KERNEL_APPEND=$append timeout 120 "$HELPER" run -- \
		/bin/sh -c 'echo "ran $(uname -r)"; grep -o "rund.patch_skip=off" /proc/cmdline; exit 7' 2>&1)
	rc=$?
	if [ "$rc" = 7 ] && grep -q "^ran " <<<"$out" &&
		{ [ -z "$append" ] || grep -q "rund.patch_skip=off" <<<"$out"; }; then
		ok "run function variant $name"
	else
		not_ok "run function variant $name" "exit $rc, expected 7" "$out"
	fi
}
run_variant "a (stock, skips off)" "$KERNEL" "rund.patch_skip=off"
run_variant "b (pre-patched, skips off)" "$TMP/vmlinux.pp1" "rund.patch_skip=off"
run_variant "c (pre-patched)" "$TMP/vmlinux.pp1" ""

# 3. Mismatched launches are refused before QEMU starts.
refused() {
	local name=$1 expect=$2 out rc
	shift 2
	out=$(timeout 60 env "$@" /bin/true 2>&1)
	rc=$?
	if [ "$rc" = 125 ] && grep -q "pre-patched for" <<<"$out" && grep -q -- "$expect" <<<"$out"; then
		ok "$name"
	else
		not_ok "$name" "exit $rc, expected 125 and a message with '$expect'" "$out"
	fi
}
refused "mismatch vcpus 2 refused" "this launch has 2 vCPU" \
	RUND_KERNEL="$TMP/vmlinux.pp1" "$HELPER" run --vcpus 2 --
refused "mismatch vcpus 1 refused" "Launch with --vcpus 2" \
	RUND_KERNEL="$TMP/vmlinux.pp2" "$HELPER" run --vcpus 1 --
refused "mismatch cmdline option refused" "this launch has .* with .*nosmp;" \
	RUND_KERNEL="$TMP/vmlinux.pp1" RUND_KERNEL_APPEND=nosmp "$HELPER" run --
cp "$TMP/vmlinux.pp1.prepatch" "$TMP/saved.prepatch"
sed -i 's/^cpu=default$/cpu=host/' "$TMP/vmlinux.pp1.prepatch"
refused "mismatch cpu model refused" "CPU model host" RUND_KERNEL="$TMP/vmlinux.pp1" "$HELPER" run --
cp "$TMP/saved.prepatch" "$TMP/vmlinux.pp1.prepatch"

# 4. Kernel text is byte-identical after a normal and a pre-patched boot,
# both at the stop point and at the agent's ready point of pre-boot template
# clones. A pre-patched clone keeps all its text shared.
RUND_HELPER=$HELPER python3 - "$TOOL" "$KERNEL" "$TMP" "$P" >"$TMP/py.out" 2>&1 <<'EOF'
import importlib.util, os, sys, tempfile

tool, kernel, tmp, prefix = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("pp", tool)
pp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pp)
syms = pp.kernel_symbols(kernel)


def report(name, good, *why):
    print(f"{'ok' if good else 'not ok'} - {name}")
    if not good:
        for line in why:
            print(f"#   {line}")


def pages_differ(a, b, start, end, base):
    """Page numbers in [start, end) where a and b (both from base) differ."""
    return [hex(base + p) for p in range((start - base) & ~4095, end - base, 4096)
            if a[max(p, start - base):min(p + 4096, end - base)] !=
            b[max(p, start - base):min(p + 4096, end - base)]]


cmdline = pp.production_cmdline().replace(" quiet", "") + " loglevel=7"
for n in (1, 2):
    image = os.path.join(tmp, f"vmlinux.pp{n}")
    try:
        normal, _, _, _ = pp.capture(kernel, os.environ["RUND_INITRD"], n, cmdline, 128, 120)
        pre, _, _, _ = pp.capture(image, os.environ["RUND_INITRD"], n, cmdline, 128, 120)
    except pp.Failure as e:
        report(f"text identical at stop {n} vCPU", False, str(e))
        continue
    base = syms["_text"]
    text = pages_differ(normal, pre, syms["_text"], syms["_etext"], base)
    report(f"text identical at stop {n} vCPU", not text, f"pages differ: {text[:10]}")
    ro = pages_differ(normal, pre, syms["__start_rodata"], syms["__start_ro_after_init"], base) + \
        pages_differ(normal, pre, syms["__end_ro_after_init"], syms["__end_rodata"], base)
    report(f"rodata identical at stop {n} vCPU", not ro, f"pages differ: {ro[:10]}")

# Pre-boot template clones at the agent's ready point, 1 vCPU.
ranges = pp.kernel_ranges(kernel)
texts = {}
for label, k in (("normal", kernel), ("pre-patched", os.path.join(tmp, "vmlinux.pp1"))):
    try:
        meta = pp.template_create(f"{prefix}-{label}", k, os.environ["RUND_INITRD"], 1,
                                  "rund.template=1", 128)
        d = tempfile.mkdtemp(dir=tmp)
        c = pp.Clone(meta, d)
        try:
            c.wait_ready(120)
            pages = pp.ram_pages(c.proc.pid, meta["memory_path"], ranges)
            c.qmp.cmd("stop")
            raw = os.path.join(d, "text.bin")
            c.qmp.cmd("pmemsave", val=pp.phys(syms["_text"]),
                      size=syms["_etext"] - syms["_text"], filename=raw)
            with open(raw, "rb") as f:
                texts[label] = f.read()
        finally:
            c.kill()
            pp.template_delete(meta)
    except pp.Failure as e:
        report(f"pre-boot clone {label} ready", False, str(e))
        continue
    report(f"pre-boot clone {label} ready", True)
    if label == "pre-patched":
        report("pre-patched clone text shared", pages["text"] == 0,
               f"{pages['text']} private text pages, expected 0")
        report("pre-patched clone rodata ro_after_init only",
               pages["rodata"] == pages["ro_after_init"],
               f"{pages['rodata']} private rodata pages, {pages['ro_after_init']} in ro_after_init")
if len(texts) == 2:
    diff = pages_differ(texts["normal"], texts["pre-patched"], syms["_text"], syms["_etext"],
                        syms["_text"])
    report("text identical at ready point", not diff, f"pages differ: {diff[:10]}")
EOF
rc=$?
# The Python part prints "ok - NAME" or "not ok - NAME" and "#" detail lines.
nchecks=0
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "${line#ok - }"; nchecks=$((nchecks + 1)) ;;
	"not ok - "*) not_ok "${line#not ok - }"; nchecks=$((nchecks + 1)) ;;
	*) echo "# $line" ;;
	esac
done <"$TMP/py.out"
if [ "$rc" != 0 ] || [ "$nchecks" -lt 7 ]; then
	not_ok "text and clone checks completed" "python exit $rc, $nchecks of at least 7 checks ran"
fi

# 5. Pre-boot templates made by rund-helper from the 1-vCPU image: clones
# boot fresh from the template's memory file, share its pages, and keep the
# pre-patch launch check at create and clone time.
fcmp() { awk "BEGIN { exit !(($1) $2 ($3)) }"; }
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name" "$why"; fi
	why=
}
why=
export RUND_KERNEL=$TMP/vmlinux.pp1
if ! "$HELPER" template create "$P" --kind preboot --json >"$TMP/pb.json" 2>"$TMP/pb.err"; then
	not_ok "template create --kind preboot" "$(cat "$TMP/pb.err")"
else
	ok "template create --kind preboot"
	MEM=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["memory_path"])' "$TMP/pb.json")
	sum_before=$(sha256sum "$MEM" | cut -d' ' -f1)
	"$HELPER" template list >"$TMP/pb.list" 2>&1
	why=$(cat "$TMP/pb.list")
	check "template list shows the kind" grep -Eq "^$P +preboot " "$TMP/pb.list"
	"$HELPER" template show "$P" >"$TMP/pb.show" 2>&1
	"$HELPER" template show "$P" --json >"$TMP/pb.show.json" 2>&1
	why=$(cat "$TMP/pb.show" "$TMP/pb.show.json")
	check "template show shows the kind and usable" eval 'grep -q "^kind: *preboot$" "$TMP/pb.show" &&
		grep -q "\"kind\": *\"preboot\"" "$TMP/pb.show.json" && grep -q "\"usable\": *true" "$TMP/pb.show.json"'

	# Two clones at once, each printing uptime, urandom bytes, boot id and
	# sandbox id, then sleeping while their QEMU processes are inspected.
	probe='cat /proc/uptime; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; cat /proc/sys/kernel/random/boot_id; echo "$RUND_SANDBOX_ID"; sleep 3; exit 7'
	for c in a b; do
		(date +%s.%N >"$TMP/pb-$c.t0"
		 timeout 120 "$HELPER" run --template "$P" --json-fd 3 -- sh -c "$probe" \
			>"$TMP/pb-$c" 2>"$TMP/pb-$c.err" 3>"$TMP/pb-$c.json"
		 echo $? >"$TMP/pb-$c.rc"
		 date +%s.%N >"$TMP/pb-$c.t1") &
	done
	pids=
	for _ in $(seq 1 100); do
		sleep 0.1
		pids=$(grep -l "$MEM" /proc/[0-9]*/maps 2>/dev/null | cut -d/ -f3)
		[ "$(echo "$pids" | wc -w)" -ge 2 ] && break
	done
	# Wait until both guests run their function, then read their mappings.
	for _ in $(seq 1 100); do
		[ -s "$TMP/pb-a" ] && [ -s "$TMP/pb-b" ] && break
		sleep 0.1
	done
	shared_kb=$(for p in $pids; do
		awk -v m="$MEM" '$0 ~ "^[0-9a-f]+-" { inmap = index($0, m) > 0 } inmap && /^Shared_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$p/smaps"
	done | sort -n | head -1)
	python3 - "$TOOL" "$KERNEL" "$MEM" $pids >"$TMP/pb-pages" 2>&1 <<'PY'
import importlib.util, sys

spec = importlib.util.spec_from_file_location("pp", sys.argv[1])
pp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pp)
ranges = pp.kernel_ranges(sys.argv[2])
for pid in sys.argv[4:]:
    print(pp.ram_pages(int(pid), sys.argv[3], ranges)["text"])
PY
	wait
	why="QEMU processes mapping $MEM: '$pids'; least shared ${shared_kb:-none} kB"
	check "pre-boot clones share the template's pages" eval '[ "$(echo $pids | wc -w)" -ge 2 ] && fcmp "${shared_kb:-0}" ">" 1024'
	why="private kernel text pages per clone: $(tr '\n' ' ' <"$TMP/pb-pages")"
	check "pre-boot clones of the pre-patched image keep their text shared" \
		eval '[ "$(grep -c "^0$" "$TMP/pb-pages")" -ge 2 ] && [ "$(grep -vc "^0$" "$TMP/pb-pages")" = 0 ]'
	for c in a b; do
		up=$(sed -n 1p "$TMP/pb-$c" | cut -d' ' -f1)
		why="exit $(cat "$TMP/pb-$c.rc"): $(cat "$TMP/pb-$c" "$TMP/pb-$c.err" | head -8)"
		check "pre-boot clone $c runs the function and returns its status" \
			eval '[ "$(cat "$TMP/pb-$c.rc")" = 7 ] && [ "$(wc -l <"$TMP/pb-$c")" = 4 ]'
		why="json: $(cat "$TMP/pb-$c.json")"
		check "pre-boot clone $c started from the template" grep -q "\"template\":\"$P\"" "$TMP/pb-$c.json"
		why="uptime ${up:-none} s, launch to end $(awk "BEGIN { print $(cat "$TMP/pb-$c.t1") - $(cat "$TMP/pb-$c.t0") }") s"
		check "pre-boot clone $c booted in this run" fcmp "${up:-999999}" "<" "$(cat "$TMP/pb-$c.t1") - $(cat "$TMP/pb-$c.t0")"
		id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sandbox_id"])' "$TMP/pb-$c.json" 2>/dev/null)
		why="function saw '$(sed -n 4p "$TMP/pb-$c")', sandbox id '$id'"
		check "pre-boot clone $c has its own sandbox id" test -n "$id" -a "$(sed -n 4p "$TMP/pb-$c")" = "$id"
	done
	rnd_a=$(sed -n 2p "$TMP/pb-a"); rnd_b=$(sed -n 2p "$TMP/pb-b")
	why="a: '$rnd_a' b: '$rnd_b'"
	check "pre-boot clones read different /dev/urandom bytes" test ${#rnd_a} = 64 -a "$rnd_a" != "$rnd_b"
	bid_a=$(sed -n 3p "$TMP/pb-a"); bid_b=$(sed -n 3p "$TMP/pb-b")
	why="a: '$bid_a' b: '$bid_b'"
	check "pre-boot clones have different boot ids" test -n "$bid_a" -a "$bid_a" != "$bid_b"
	why="sha256 before $sum_before, after $(sha256sum "$MEM" | cut -d' ' -f1)"
	check "pre-boot memory file unchanged after clones ran" test "$(sha256sum "$MEM" | cut -d' ' -f1)" = "$sum_before"

	# The pre-patch check at clone time: vCPU count and CPU model.
	refused "pre-boot clone with another vCPU count refused" "this launch has 2 vCPU" \
		"$HELPER" run --template "$P" --vcpus 2 --
	cp "$TMP/vmlinux.pp1.prepatch" "$TMP/saved.prepatch"
	sed -i 's/^cpu=default$/cpu=host/' "$TMP/vmlinux.pp1.prepatch"
	refused "pre-boot clone with another CPU model refused" "CPU model host" \
		"$HELPER" run --template "$P" --
	cp "$TMP/saved.prepatch" "$TMP/vmlinux.pp1.prepatch"

	# Without --template a pre-boot template is used when it is the only
	# match, and a matching snapshot template is preferred.
	"$HELPER" run --json-fd 3 -- true 2>"$TMP/pb-def.err" 3>"$TMP/pb-def.json"
	why="$(cat "$TMP/pb-def.json" "$TMP/pb-def.err")"
	check "start without --template boots the only matching pre-boot template" \
		grep -q "\"template\":\"$P\"" "$TMP/pb-def.json"
	if "$HELPER" template create "$S" >/dev/null 2>"$TMP/pb-s.err"; then
		"$HELPER" run --json-fd 3 -- true 2>"$TMP/pb-def2.err" 3>"$TMP/pb-def2.json"
		why="$(cat "$TMP/pb-def2.json" "$TMP/pb-def2.err")"
		check "start without --template prefers a matching snapshot template" \
			grep -q "\"template\":\"$S\"" "$TMP/pb-def2.json"
		# The stock kernel has the image's build id but is another file.
		RUND_KERNEL=$KERNEL "$HELPER" run --template "$S" -- true >/dev/null 2>"$TMP/pb-k.err"
		rc=$?
		why="exit $rc: $(cat "$TMP/pb-k.err")"
		check "template of the pre-patched image refused for the stock kernel" \
			eval '[ $rc = 125 ] && grep -q "guest kernel .* is not the file" "$TMP/pb-k.err"'
	else
		not_ok "snapshot template create for the preference test" "$(cat "$TMP/pb-s.err")"
	fi
	"$HELPER" template delete "$S" >/dev/null 2>&1
fi
"$HELPER" template create "$P-2" --kind preboot --vcpus 2 >/dev/null 2>"$TMP/pb2.err"
rc=$?
why="exit $rc: $(cat "$TMP/pb2.err")"
check "pre-boot template create with another vCPU count refused" \
	eval '[ $rc = 125 ] && grep -q "pre-patched for.*this launch has 2 vCPU" "$TMP/pb2.err" && [ ! -e "/var/lib/rund/templates/$P-2" ]'

# A template.json written before pre-boot templates (format 1, no "kind")
# loads as a snapshot template.
mkdir -p "/var/lib/rund/templates/$OLD"
python3 - "$TMP/pb.json" "/var/lib/rund/templates/$OLD/template.json" "$OLD" <<'PY'
import json, sys

t = json.load(open(sys.argv[1]))
for key in ("kind", "state_path"):
    t.pop(key, None)
t["match"].pop("kernel_file", None)
t.update(format=1, name=sys.argv[3], memory_path="/dev/shm/rund/templates/missing.mem")
json.dump(t, open(sys.argv[2], "w"), indent=1)
PY
"$HELPER" template show "$OLD" >"$TMP/old.show" 2>&1
why=$(cat "$TMP/old.show")
check "format 1 template.json without kind loads as a snapshot" grep -q "^kind: *snapshot$" "$TMP/old.show"
"$HELPER" template list >"$TMP/old.list" 2>&1
why=$(cat "$TMP/old.list")
check "template list shows it as a snapshot" grep -Eq "^$OLD +snapshot " "$TMP/old.list"
"$HELPER" template delete "$OLD" >/dev/null 2>&1
"$HELPER" template delete "$P" >/dev/null 2>&1
unset RUND_KERNEL

echo "1..$ntest"
[ "$nfail" = 0 ]
