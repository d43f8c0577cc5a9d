#!/bin/bash
# Tests of VM templates: `rund-helper template` and `rund-helper run` clones
# against the installed guest kernel, agent initramfs and images
# (scripts/setup.sh), plus host-side tests of the restore against a fake QMP
# peer (restore_test.c). TAP output; exit 0 pass, 4 skip, 1 fail.
#
# Every clone test first checks that the sandbox really was restored: the
# guest's uptime is larger than the time since its launch. The clock test
# waits until its template is more than 2 minutes old.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
HELPER=$BUILD/bin/rund-helper
IMAGE=${RUND_IMAGE:-/var/lib/rund/images/debian.erofs}
LAYER=${RUND_LAYER_IMAGE:-/var/lib/rund/layers/debian.ext4}
export RUND_KERNEL=${RUND_KERNEL:-/var/lib/rund/kernel/vmlinux}
export RUND_INITRD=${RUND_INITRD:-/var/lib/rund/kernel/initramfs.cpio}
CLONES=${RUND_TEMPLATE_TEST_CLONES:-50}
# Seconds the template guests run before they are saved. A clone's uptime
# starts from the template's, so this is the margin of the restore check
# below against slow clone starts on a loaded machine.
SETTLE=${RUND_TEMPLATE_TEST_SETTLE:-5}
TMP=$(mktemp -d /tmp/rund-test-templates.XXXXXX)
T=rund-test-templates-$$
T2=rund-test-templates-del-$$

cleanup() {
	local pid
	for pid in $(jobs -p); do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	"$HELPER" template delete "$T" >/dev/null 2>&1
	"$HELPER" template delete "$T2" >/dev/null 2>&1
	declare -F vp_cleanup >/dev/null && vp_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

ntest=0
nfail=0
nskip=0
ok() { ntest=$((ntest + 1)); echo "ok $ntest - $1"; }
not_ok() { ntest=$((ntest + 1)); nfail=$((nfail + 1)); echo "not ok $ntest - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
skip() { ntest=$((ntest + 1)); nskip=$((nskip + 1)); echo "ok $ntest - $1 # SKIP $2"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name" "${why:-}"; fi; why=; }
why=

echo "TAP version 13"

if ! make -s -C user BUILD="$BUILD" >"$TMP/build.log" 2>&1; then
	cat "$TMP/build.log"
	echo "Bail out! rund-helper does not build"
	exit 1
fi
KSFT=$BUILD/kselftest-templates
if [ ! -f "$KSFT/kselftest_harness.h" ]; then
	mkdir -p "$KSFT/src"
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$KSFT/src" --wildcards \
		'*/tools/testing/selftests/kselftest*.h' || { echo "Bail out! cannot extract the kselftest harness"; exit 1; }
	cp "$KSFT"/src/*/tools/testing/selftests/kselftest*.h "$KSFT/"
	rm -rf "$KSFT/src"
fi
if ! cc -O2 -g -Wall -Wno-format-overflow -D_GNU_SOURCE -I"$KSFT" -Iuser/lib \
	-o "$BUILD/bin/templates-restore-test" selftests/templates/restore_test.c \
	"$BUILD/lib/librund.a" $(pkg-config --libs libnl-genl-3.0 json-c) >"$TMP/cc.log" 2>&1; then
	cat "$TMP/cc.log"
	echo "Bail out! restore_test.c does not build"
	exit 1
fi

# A QEMU without x-ignore-shared, a foreign vCPU model: fake QMP peer.
if "$BUILD/bin/templates-restore-test" >"$TMP/restore.log" 2>&1; then
	ok "restore against a fake QMP peer ($(grep -c '^ok' "$TMP/restore.log") cases)"
else
	not_ok "restore against a fake QMP peer" "$(grep -E '^not ok|^# ' "$TMP/restore.log" | head -20)"
fi

missing=
for f in "$RUND_KERNEL" "$RUND_INITRD" "$IMAGE" "$LAYER"; do
	[ -r "$f" ] || missing="$missing $f"
done
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86_64"
if [ -n "$missing" ]; then
	skip "template VMs" "missing:$missing (run scripts/setup.sh)"
	echo "1..$ntest"
	[ "${CI:-}" = true ] && exit 1
	exit $((nfail ? 1 : 0))
fi

now() { date +%s.%N; }
# fcmp A OP B: floating-point comparison; A and B may be sums like "5.2 - 1".
fcmp() { awk "BEGIN { exit !(($1) $2 ($3)) }"; }

# clone OUT -- CMD...: run CMD in a clone of $T; output in OUT, JSON in OUT.json,
# launch time in OUT.t0.
clone() {
	local out=$1; shift
	now >"$out.t0"
	"$HELPER" run --template "$T" --json-fd 3 "$@" >"$out" 2>"$out.err" 3>"$out.json"
	echo $? >"$out.rc"
}

# Every probe starts with these two lines: guest uptime, guest clock.
HEAD='cat /proc/uptime; date +%s.%N'

# restored OUT [NAME]: the guest's uptime when it printed it exceeds the time
# since launch, so the guest did not boot in this run. The guest's clock
# (the clone's fixup) dates the print. A guest clock before the launch, as in
# a cold boot without the fixup, fails the check too.
restored() {
	local out=$1 name=${2:-$T} up gt t0
	up=$(sed -n 1p "$out" | cut -d' ' -f1)
	gt=$(sed -n 2p "$out")
	t0=$(cat "$out.t0")
	if ! grep -q '"template":"'"$name"'"' "$out.json"; then
		why="not started from $name: $(cat "$out.json" "$out.err" | head -5)"
		return 1
	fi
	if ! fcmp "${gt:-0}" ">" "$t0" || ! fcmp "${up:-0}" ">" "$gt - $t0"; then
		why="guest uptime ${up:-none} s at guest time ${gt:-none}, launched at $t0"
		return 1
	fi
}

# 1. Create.
created_at=$(date +%s)
if "$HELPER" template create "$T" --image "$IMAGE" --layer "$LAYER" --settle "$SETTLE" --json >"$TMP/create.json" 2>"$TMP/create.err"; then
	ok "template create"
else
	not_ok "template create" "$(cat "$TMP/create.err")"
	echo "Bail out! no template to test with"
	exit 1
fi
# json-c writes "/" as "\/".
MEM=$(grep -o '"memory_path": *"[^"]*"' "$TMP/create.json" | cut -d'"' -f4 | sed 's|\\/|/|g')
check "memory file is on tmpfs" test "$(stat -f -c %T "$MEM" 2>/dev/null)" = tmpfs
"$HELPER" template list >"$TMP/list" 2>&1
check "template list shows it" grep -q "^$T " "$TMP/list"
"$HELPER" template show "$T" --json >"$TMP/show.json" 2>&1
check "template show reports it usable" grep -q '"usable":true' "$TMP/show.json"
sum_before=$(sha256sum "$MEM" | cut -d' ' -f1)

# 2. Two clones at once: restored, sharing the template's pages, with
# different random bytes and boot ids.
probe="$HEAD"'; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; cat /proc/sys/kernel/random/boot_id; hostname; sleep 2'
clone "$TMP/a" -- sh -c "$probe" &
clone "$TMP/b" -- sh -c "$probe" &
# While both run, look at their QEMU processes' mapping of the memory file.
shared_kb=
for _ in $(seq 1 60); do
	sleep 0.1
	pids=$(grep -l "$MEM" /proc/[0-9]*/maps 2>/dev/null | cut -d/ -f3)
	[ "$(echo "$pids" | wc -w)" -ge 2 ] || continue
	shared_kb=$(for p in $pids; do
		# tmpfs pages count as dirty: shared = Shared_Clean + Shared_Dirty.
		awk -v m="$MEM" '$0 ~ "^[0-9a-f]+-" { inmap = index($0, m) > 0 } inmap && /^Shared_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$p/smaps"
	done | sort -n | head -1)
	break
done
wait
why="no two QEMU processes mapping $MEM found, or no shared pages (min shared ${shared_kb:-none} kB)"
check "clones share the template's pages" fcmp "${shared_kb:-0}" ">" 1024
for c in a b; do
	check "clone $c exits 0" test "$(cat "$TMP/$c.rc")" = 0
	check "clone $c was restored from the template" restored "$TMP/$c"
done
rnd_a=$(sed -n 3p "$TMP/a"); rnd_b=$(sed -n 3p "$TMP/b")
why="a: '$rnd_a' b: '$rnd_b'"
check "clones read different /dev/urandom bytes" test -n "$rnd_a" -a ${#rnd_a} = 64 -a "$rnd_a" != "$rnd_b"
bid_a=$(sed -n 4p "$TMP/a"); bid_b=$(sed -n 4p "$TMP/b")
why="a: '$bid_a' b: '$bid_b'"
check "clones have different boot ids" test -n "$bid_a" -a "$bid_a" != "$bid_b"
why="a: '$(sed -n 5p "$TMP/a")' b: '$(sed -n 5p "$TMP/b")'"
check "clones have their own hostnames" test "$(sed -n 5p "$TMP/a")" != "$(sed -n 5p "$TMP/b")"

# 3. Isolation: a clone's writes to its layer, /tmp and RAM are its own.
clone "$TMP/w" -- sh -c "$HEAD"'; echo secret-$$ >/marker; echo secret >/tmp/marker; sleep 3' &
sleep 1.5
clone "$TMP/r" -- sh -c "$HEAD"'; ls /marker /tmp/marker 2>&1 | wc -l; cat /marker 2>/dev/null || echo absent'
wait
check "writing clone was restored" restored "$TMP/w"
check "reading clone was restored" restored "$TMP/r"
why="reader saw: $(tail -1 "$TMP/r")"
check "one clone's writes do not reach another" test "$(tail -1 "$TMP/r")" = absent

# 4. The memory file stays unchanged after many clones ran and wrote to RAM.
nrestored=0
nbad=0
for i in $(seq 1 "$CLONES"); do
	clone "$TMP/m$i" -- sh -c "$HEAD"'; dd if=/dev/urandom of=/dev/shm/fill bs=64k count=64 2>/dev/null; echo x >/written; sync' &
	if [ $((i % 2)) = 0 ]; then wait; fi
done
wait
for i in $(seq 1 "$CLONES"); do
	if restored "$TMP/m$i" && [ "$(cat "$TMP/m$i.rc")" = 0 ]; then
		nrestored=$((nrestored + 1))
	else
		nbad=$((nbad + 1))
		[ $nbad -le 3 ] && echo "# clone m$i: rc $(cat "$TMP/m$i.rc"): $why $(head -3 "$TMP/m$i.err")"
	fi
done
why="$nrestored of $CLONES clones restored and exited 0"
check "$CLONES clones restored and wrote" test "$nrestored" = "$CLONES"
why="sha256 before $sum_before, after $(sha256sum "$MEM" | cut -d' ' -f1)"
check "memory file unchanged after $CLONES clones" test "$(sha256sum "$MEM" | cut -d' ' -f1)" = "$sum_before"

# 5. Mismatches are rejected with a message that names them.
"$HELPER" run --template "$T" --memory 256 -- true >/dev/null 2>"$TMP/mm.err"
rc=$?
why="exit $rc: $(cat "$TMP/mm.err")"
check "other memory size rejected" eval '[ $rc = 125 ] && grep -q "does not match.*memory" "$TMP/mm.err"'
"$HELPER" run --template "$T" --vcpus 2 -- true >/dev/null 2>"$TMP/mv.err"
rc=$?
why="exit $rc: $(cat "$TMP/mv.err")"
check "other vCPU count rejected" eval '[ $rc = 125 ] && grep -q "does not match.*vCPUs" "$TMP/mv.err"'
cp "$RUND_INITRD" "$TMP/initramfs.cpio"
RUND_INITRD=$TMP/initramfs.cpio "$HELPER" run --template "$T" -- true >/dev/null 2>"$TMP/mi.err"
rc=$?
why="exit $rc: $(cat "$TMP/mi.err")"
check "other agent initramfs rejected" eval '[ $rc = 125 ] && grep -q "does not match.*initramfs" "$TMP/mi.err"'
"$HELPER" run --template "$T" --no-template -- true >/dev/null 2>"$TMP/both.err"
rc=$?
why="exit $rc: $(cat "$TMP/both.err")"
check "--template with --no-template rejected" eval '[ $rc = 125 ] && grep -q "exclude each other" "$TMP/both.err"'
"$HELPER" run --template "no-such-template-$$" -- true >/dev/null 2>"$TMP/nf.err"
rc=$?
why="exit $rc: $(cat "$TMP/nf.err")"
check "unknown template rejected" eval '[ $rc = 125 ] && grep -q "not found" "$TMP/nf.err"'

# A start that names no template restores a matching one (on a shared
# machine another session's newer template may be the one).
now >"$TMP/def.t0"
"$HELPER" run --json-fd 3 -- sh -c "$HEAD" >"$TMP/def" 2>"$TMP/def.err" 3>"$TMP/def.json"
def_name=$(grep -o '"template":"[^"]*"' "$TMP/def.json" | cut -d'"' -f4)
why="no template used: $(cat "$TMP/def.json" "$TMP/def.err" | head -3)"
check "start without --template restores a match" test -n "$def_name"
[ -n "$def_name" ] && check "default start was restored" restored "$TMP/def" "$def_name"

# 6. Deleting a template leaves running clones alone; new starts fail clearly.
if "$HELPER" template create "$T2" --image "$IMAGE" --layer "$LAYER" --settle "$SETTLE" >/dev/null 2>"$TMP/c2.err"; then
	now >"$TMP/d.t0"
	"$HELPER" run --template "$T2" --json-fd 3 -- sh -c "$HEAD"'; sleep 3; dd if=/dev/zero of=/dev/shm/z bs=1M count=16 2>/dev/null; echo alive' \
		>"$TMP/d" 2>"$TMP/d.err" 3>"$TMP/d.json" &
	dpid=$!
	sleep 1.5
	"$HELPER" template delete "$T2" 2>"$TMP/del.err"
	check "template delete while a clone runs" test $? = 0
	wait $dpid
	rc=$?
	why="exit $rc: $(tail -2 "$TMP/d") $(head -3 "$TMP/d.err")"
	check "deleted template's clone was restored" restored "$TMP/d" "$T2"
	check "running clone unaffected by delete" eval '[ $rc = 0 ] && [ "$(tail -1 "$TMP/d")" = alive ] && grep -q "\"template\":\"$T2\"" "$TMP/d.json"'
	"$HELPER" run --template "$T2" -- true >/dev/null 2>"$TMP/d2.err"
	rc=$?
	why="exit $rc: $(cat "$TMP/d2.err")"
	check "start from a deleted template fails clearly" eval '[ $rc = 125 ] && grep -q "template .$T2. not found" "$TMP/d2.err"'
else
	not_ok "template create for the delete test" "$(cat "$TMP/c2.err")"
fi

# A delete between a start's template check and QEMU's start leaves the
# start without the memory file. The start must fail, not restore onto a new
# file of zeros. Removing only the memory file simulates that race.
if "$HELPER" template create "$T2" --image "$IMAGE" --layer "$LAYER" --settle "$SETTLE" >/dev/null 2>"$TMP/c3.err"; then
	mem2=$("$HELPER" template show "$T2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_path"])')
	rm -f "$mem2"
	"$HELPER" run --template "$T2" -- true >/dev/null 2>"$TMP/d3.err"
	rc=$?
	why="exit $rc, memory file ${mem2:-?} $( [ -e "$mem2" ] && echo re-created || echo absent): $(cat "$TMP/d3.err")"
	check "start without the memory file fails" eval '[ $rc = 125 ] && [ -n "$mem2" ] && [ ! -e "$mem2" ] && grep -q "memory file" "$TMP/d3.err"'
	"$HELPER" template delete "$T2" >/dev/null 2>&1
else
	not_ok "template create for the memory file test" "$(cat "$TMP/c3.err")"
fi

# 7. Cold boot on request.
"$HELPER" run --no-template --json-fd 3 -- true 2>/dev/null 3>"$TMP/cold.json"
why="$(cat "$TMP/cold.json")"
check "--no-template boots cold" grep -q '"template":null' "$TMP/cold.json"

# A start that matches no template boots cold and reports the reason.
"$HELPER" run --memory 192 --json-fd 3 -- true 2>/dev/null 3>"$TMP/nomatch.json"
why="$(cat "$TMP/nomatch.json")"
check "no match: cold boot says why" eval 'grep -q "\"template\":null" "$TMP/nomatch.json" && grep -q "\"template_note\":\"no template matches this sandbox; the newest: template .* does not match this sandbox: " "$TMP/nomatch.json"'

# The pool of pre-started VMMs; runs while the template ages for the clock test.
. selftests/templates/vmmpool.sh

# 8. Clock: a clone of a template older than 2 minutes reads the host's time.
age=$(($(date +%s) - created_at))
if [ $age -lt 125 ]; then
	echo "# waiting $((125 - age)) s until the template is older than 2 minutes"
	sleep $((125 - age))
fi
clone "$TMP/clk" -- sh -c "$HEAD"
host_t1=$(stat -c %.9Y "$TMP/clk.rc")
host_t0=$(cat "$TMP/clk.t0")
guest_t=$(sed -n 2p "$TMP/clk")
check "clock clone was restored" restored "$TMP/clk"
why="guest $guest_t, host launch $host_t0, end $host_t1, template made at $created_at"
check "clone clock within 1 s of the host (template older than 2 min)" \
	eval 'fcmp "$guest_t" ">=" "$host_t0 - 1" && fcmp "$guest_t" "<=" "$host_t1 + 1" && fcmp "$host_t0 - $created_at" ">" 120'

echo "1..$ntest"
[ $nfail -eq 0 ] || exit 1
exit 0
