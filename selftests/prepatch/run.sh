#!/bin/bash
# Tests of the pre-patched guest kernel (guest/rund-prepatch.py). Images for
# 1 and 2 vCPUs must boot without a patch write. A function runs with the
# stock kernel and with the image, with and without the skips. Kernel text is
# byte-identical after a pre-patched and a normal boot, pre-boot template
# clones share their text, and a launch that does not match the image is
# refused. TAP output; exit 0 pass, 1 fail.
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
MEMDIR=/dev/shm/rund-test-prepatch-$$

cleanup() {
	rm -rf "$TMP" "$MEMDIR"
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
python3 - "$TOOL" "$KERNEL" "$TMP" "$MEMDIR" >"$TMP/py.out" 2>&1 <<'EOF'
import importlib.util, os, sys, tempfile

tool, kernel, tmp, memdir = sys.argv[1:5]
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
for label, k, extra in (("normal", kernel, ""), ("pre-patched", os.path.join(tmp, "vmlinux.pp1"), "")):
    cmd = pp.production_cmdline(template_guest=True)
    try:
        meta = pp.template_create(os.path.join(tmp, f"tpl-{label}"), memdir, k,
                                  os.environ["RUND_INITRD"], 1, cmd, 128, pp.DEFAULT_IMAGE)
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
            os.unlink(meta["memory_path"])
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

echo "1..$ntest"
[ "$nfail" = 0 ]
