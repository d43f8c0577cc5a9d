#!/bin/bash
# End-to-end tests of `rund-helper run` against the installed guest kernel,
# agent initramfs and images (scripts/setup.sh), plus the host-side unit test
# of the agent frame parser. TAP output; exit 0 pass, 4 skip, 1 fail.
#
# RUND_KERNEL, RUND_INITRD, RUND_IMAGE and RUND_LAYER_IMAGE point the suite
# at other files, for example a kernel still being worked on.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
HELPER=$BUILD/bin/rund-helper
IMAGE=${RUND_IMAGE:-/var/lib/rund/images/debian.erofs}
LAYER=${RUND_LAYER_IMAGE:-/var/lib/rund/layers/debian.ext4}
export RUND_KERNEL=${RUND_KERNEL:-/var/lib/rund/kernel/vmlinux}
export RUND_INITRD=${RUND_INITRD:-/var/lib/rund/kernel/initramfs.cpio}
# The signal and timeout tests look for QEMU among the helper's children.
# A pooled QEMU is the child of `rund-helper vmm-pool serve` instead, so this
# suite turns the VMM pool off. selftests/templates tests the pool.
export RUND_VMM_POOL=off
TMP=$(mktemp -d /tmp/rund-e2e.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

ntest=0
nfail=0
nskip=0
ok() { ntest=$((ntest + 1)); echo "ok $ntest - $1"; }
not_ok() { ntest=$((ntest + 1)); nfail=$((nfail + 1)); echo "not ok $ntest - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
skip() { ntest=$((ntest + 1)); nskip=$((nskip + 1)); echo "ok $ntest - $1 # SKIP $2"; }

echo "TAP version 13"

# Build the helper and the parser unit test with the kselftest harness from
# Debian's kernel source.
if ! make -s -C user BUILD="$BUILD" >"$TMP/build.log" 2>&1; then
	cat "$TMP/build.log"
	echo "Bail out! rund-helper does not build"
	exit 1
fi
KSFT=$BUILD/kselftest-e2e
if [ ! -f "$KSFT/kselftest_harness.h" ]; then
	mkdir -p "$KSFT/src"
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$KSFT/src" --wildcards \
		'*/tools/testing/selftests/kselftest*.h' || { echo "Bail out! cannot extract the kselftest harness"; exit 1; }
	cp "$KSFT"/src/*/tools/testing/selftests/kselftest*.h "$KSFT/"
	rm -rf "$KSFT/src"
fi
if ! cc -O2 -g -Wall -D_GNU_SOURCE -I"$KSFT" -Iuser/lib -o "$BUILD/bin/e2e-proto-test" \
	selftests/e2e/proto_test.c "$BUILD/lib/librund.a" $(pkg-config --libs libnl-genl-3.0 json-c) \
	>"$TMP/cc.log" 2>&1; then
	cat "$TMP/cc.log"
	echo "Bail out! the parser unit test does not build"
	exit 1
fi

if "$BUILD/bin/e2e-proto-test" >"$TMP/proto.log" 2>&1; then
	ok "frame parser and spawn unit tests ($(grep -c '^ok' "$TMP/proto.log") cases)"
else
	not_ok "frame parser and spawn unit tests" "$(grep -E '^not ok|#' "$TMP/proto.log" | head -20)"
fi

# Option errors need no VM.
expect_usage_error() {
	local name=$1 want=$2; shift 2
	local out rc
	out=$("$HELPER" run "$@" 2>&1 </dev/null); rc=$?
	if [ "$rc" -eq 125 ] && grep -qF -- "$want" <<<"$out"; then
		ok "$name"
	else
		not_ok "$name" "exit $rc, expected 125 and a message with '$want'" "output: $out"
	fi
}
expect_usage_error "memory not a number" "invalid --memory value 'abc'" --memory abc -- true
expect_usage_error "vcpus out of range" "invalid --vcpus value '0'" --vcpus 0 -- true
expect_usage_error "timeout trailing junk" "invalid --timeout value '5s'" --timeout 5s -- true
expect_usage_error "env without equals" "invalid --env 'FOO'" --env FOO -- true
expect_usage_error "relative workdir" "invalid --workdir 'tmp'" --workdir tmp -- true
expect_usage_error "no command" "no command given"
expect_usage_error "missing image names path" "$TMP/none.erofs" --image "$TMP/none.erofs" -- true

missing=()
for f in "$RUND_KERNEL" "$RUND_INITRD" "$IMAGE" "$LAYER"; do
	[ -r "$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
	reason="missing ${missing[*]} (run scripts/setup.sh)"
	if [ "${CI:-}" = true ]; then
		not_ok "sandbox files installed" "$reason"
		echo "1..$ntest"
		exit 1
	fi
	echo "# SKIP sandbox tests: $reason"
	echo "1..$ntest"
	[ "$nfail" -eq 0 ] || exit 1
	exit 4
fi

# --allow-copy keeps the suite running where the layer directory has no
# reflink; the layers suite tests the reflink path itself.
RUN=("$HELPER" run --image "$IMAGE" --layer "$LAYER" --allow-copy --timeout 60)

# QEMU processes whose parent is the given PID.
qemu_children() {
	local pid=$1 c
	for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" != "" ] && case $(cat /proc/"$c"/comm) in qemu*) echo "$c" ;; esac
	done
}

# Run the helper, keeping stdout, stderr and status in $TMP/{out,err} and $rc.
sandbox() {
	"${RUN[@]}" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
}

sandbox -- python3 -c 'import sys; print("to stdout"); print("to stderr", file=sys.stderr); sys.exit(3)' </dev/null
if [ "$rc" -eq 3 ] && [ "$(cat "$TMP/out")" = "to stdout" ] && grep -qx "to stderr" "$TMP/err"; then
	ok "stdout, stderr and exit status come back"
else
	not_ok "stdout, stderr and exit status come back" "exit $rc (want 3)" "stdout: $(cat "$TMP/out")" "stderr: $(cat "$TMP/err")"
fi

sandbox -- /bin/sh -c 'kill -9 $$' </dev/null
[ "$rc" -eq 137 ] && ok "SIGKILL of the function gives 137" || not_ok "SIGKILL of the function gives 137" "exit $rc" "$(cat "$TMP/err")"

sandbox -- /bin/sh -c 'kill -TERM $$' </dev/null
[ "$rc" -eq 143 ] && ok "SIGTERM of the function gives 143" || not_ok "SIGTERM of the function gives 143" "exit $rc" "$(cat "$TMP/err")"

echo "hello world" | "${RUN[@]}" -- python3 -c 'import sys; print(sys.stdin.read()[::-1])' >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/out")" = "$(printf '\ndlrow olleh')" ]; then
	ok "stdin is forwarded"
else
	not_ok "stdin is forwarded" "exit $rc" "stdout: $(cat "$TMP/out")" "stderr: $(cat "$TMP/err")"
fi

sandbox -- /bin/sh -c 'cat; echo "eof seen"' </dev/null
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/out")" = "eof seen" ]; then
	ok "stdin at EOF reaches the function"
else
	not_ok "stdin at EOF reaches the function" "exit $rc" "stdout: $(cat "$TMP/out")" "$(cat "$TMP/err")"
fi

sandbox --env GREETING="hi there" --env EMPTY= --workdir /usr/lib -- \
	/bin/sh -c 'printf "[%s]" "$@"; echo; echo "$GREETING|$EMPTY|$(pwd)"' zero "a b" "" 'c"d'
want=$(printf '[a b][][c"d]\nhi there||/usr/lib')
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/out")" = "$want" ]; then
	ok "argv with spaces, env and cwd are passed"
else
	not_ok "argv with spaces, env and cwd are passed" "exit $rc" "stdout: $(cat "$TMP/out")" "want: $want" "stderr: $(cat "$TMP/err")"
fi

"${RUN[@]}" --json-fd 3 -- /bin/sh -c 'echo "$RUND_SANDBOX_ID"' </dev/null >"$TMP/out" 2>"$TMP/err" 3>"$TMP/json"
rc=$?
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sandbox_id"])' "$TMP/json" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ -n "$id" ] && [ "$(cat "$TMP/out")" = "$id" ]; then
	ok "the function sees its sandbox id in RUND_SANDBOX_ID"
else
	not_ok "the function sees its sandbox id in RUND_SANDBOX_ID" "exit $rc" "stdout: $(cat "$TMP/out")" "json id: '$id'" "$(cat "$TMP/err")"
fi

sandbox --env RUND_SANDBOX_ID=chosen -- /bin/sh -c 'env | grep -c "^RUND_SANDBOX_ID="; echo "$RUND_SANDBOX_ID"' </dev/null
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/out")" = "$(printf '1\nchosen')" ]; then
	ok "an --env RUND_SANDBOX_ID replaces the sandbox id"
else
	not_ok "an --env RUND_SANDBOX_ID replaces the sandbox id" "exit $rc" "stdout: $(cat "$TMP/out")" "$(cat "$TMP/err")"
fi

sandbox -- no-such-command-rund </dev/null
if [ "$rc" -eq 127 ] && grep -q "no-such-command-rund" "$TMP/err"; then
	ok "missing command gives 127"
else
	not_ok "missing command gives 127" "exit $rc" "$(cat "$TMP/err")"
fi

sandbox -- /etc/passwd </dev/null
[ "$rc" -eq 126 ] && ok "non-executable file gives 126" || not_ok "non-executable file gives 126" "exit $rc" "$(cat "$TMP/err")"

sandbox --workdir /no/such/dir -- true </dev/null
if [ "$rc" -eq 125 ] && grep -q "/no/such/dir" "$TMP/err"; then
	ok "missing workdir gives 125 naming it"
else
	not_ok "missing workdir gives 125 naming it" "exit $rc" "$(cat "$TMP/err")"
fi

head -c 4194304 /dev/urandom >"$TMP/corrupt.erofs"
"$HELPER" run --image "$TMP/corrupt.erofs" --layer "$LAYER" --allow-copy --timeout 60 -- true \
	</dev/null >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 125 ] && grep -q "mount" "$TMP/err"; then
	ok "corrupt image gives 125 with the mount error"
else
	not_ok "corrupt image gives 125 with the mount error" "exit $rc" "$(cat "$TMP/err")"
fi

# A guest that dies before its agent runs: an initramfs without /init makes
# the kernel panic, panic=-1 reboots and QEMU ends without EXIT.
printf 'not a cpio archive' >"$TMP/broken.cpio"
RUND_INITRD="$TMP/broken.cpio" "${RUN[@]}" -- true </dev/null >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 125 ] && grep -q "last console lines" "$TMP/err" && grep -qi "panic" "$TMP/err"; then
	ok "guest crash gives 125 with the console tail"
else
	not_ok "guest crash gives 125 with the console tail" "exit $rc" "$(tail -5 "$TMP/err")"
fi

sum_before=$(sha256sum "$LAYER" | cut -d' ' -f1)
sandbox -- /bin/sh -c 'echo changed >/etc/rund-e2e; dd if=/dev/zero of=/rund-e2e.big bs=1M count=8 2>/dev/null; sync; cat /etc/rund-e2e' </dev/null
sum_after=$(sha256sum "$LAYER" | cut -d' ' -f1)
if [ "$rc" -eq 0 ] && [ "$(cat "$TMP/out")" = changed ] && [ "$sum_before" = "$sum_after" ]; then
	ok "writes in the sandbox do not reach the layer image"
else
	not_ok "writes in the sandbox do not reach the layer image" "exit $rc, sums $sum_before $sum_after" "$(cat "$TMP/err")"
fi

# 20 MB of random output on stdout and 1 MiB on stderr; the function
# appends the checksums of both to stderr, and the host compares.
gen='import sys, os, hashlib
out, err = os.urandom(20000000), os.urandom(1048576)
sys.stdout.buffer.write(out)
sys.stderr.buffer.write(err)
sys.stderr.write("\nSUMS %s %s\n" % (hashlib.sha256(out).hexdigest(), hashlib.sha256(err).hexdigest()))'
sandbox -- python3 -c "$gen" </dev/null
want=$(tail -n 1 "$TMP/err")
got="SUMS $(sha256sum <"$TMP/out" | cut -d' ' -f1) $(head -c 1048576 "$TMP/err" | sha256sum | cut -d' ' -f1)"
if [ "$rc" -eq 0 ] && [ "$want" = "$got" ]; then
	ok "20 MB stdout and 1 MiB stderr arrive intact"
else
	not_ok "20 MB stdout and 1 MiB stderr arrive intact" "exit $rc, got $(stat -c %s "$TMP/out") bytes on stdout" "guest: $want" "host:  $got"
fi

# A guest that never finishes: the timeout kills QEMU.
"$HELPER" run --image "$IMAGE" --layer "$LAYER" --allow-copy --timeout 4 --json-fd 3 -- sleep 600 \
	</dev/null >"$TMP/out" 2>"$TMP/err" 3>"$TMP/json"
rc=$?
qpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["qemu_pid"])' "$TMP/json" 2>/dev/null)
if [ "$rc" -eq 125 ] && grep -q "timed out after 4 s" "$TMP/err" && [ -n "$qpid" ] && [ "$qpid" -gt 0 ] &&
	! kill -0 "$qpid" 2>/dev/null; then
	ok "timeout gives 125 and kills QEMU"
else
	not_ok "timeout gives 125 and kills QEMU" "exit $rc, qemu pid '$qpid'" "$(cat "$TMP/err")"
fi

# Signals to the helper mid-run: QEMU must be gone afterwards.
signal_test() {
	local sig=$1 want=$2 pid qpids="" i rc
	"${RUN[@]}" -- sleep 600 </dev/null >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	for i in $(seq 100); do
		qpids=$(qemu_children "$pid")
		[ -n "$qpids" ] && break
		sleep 0.1
	done
	sleep 1
	kill -"$sig" "$pid"
	wait "$pid"
	rc=$?
	for i in $(seq 20); do
		alive=""
		for q in $qpids; do kill -0 "$q" 2>/dev/null && alive="$alive $q"; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	if [ -n "$qpids" ] && [ -z "$alive" ] && [ "$rc" -eq "$want" ]; then
		ok "SIG$sig of the helper leaves no QEMU (exit $rc)"
	else
		not_ok "SIG$sig of the helper leaves no QEMU" "exit $rc (want $want), qemu '$qpids', alive after 2 s '$alive'" "$(cat "$TMP/err")"
		for q in $alive; do kill -9 "$q" 2>/dev/null; done
	fi
}
signal_test TERM 143
signal_test INT 130
signal_test KILL 137

# The helper keeps no state on disk: no socket or directory per sandbox.
leftover=$(find /run/rund -mindepth 1 -maxdepth 1 -regextype egrep -regex '.*/[0-9a-f]{16}' 2>/dev/null | head -5)
if [ -z "$leftover" ]; then
	ok "no sandbox state left under /run/rund"
else
	not_ok "no sandbox state left under /run/rund" "$leftover"
fi

echo "1..$ntest"
[ "$nfail" -eq 0 ]
