# Tests of the pool of pre-started VMMs (rund-helper vmm-pool), sourced by
# run.sh after its template $T exists: uses its helpers (check, clone,
# restored) and TAP counters. The pool's VMMs are born in slots of a cgroup
# pool of its own (rund-test-vmmpool-<pid>, cgroupfs backend, own state
# directory), so that the test can see every slot return to idle.

VP_SOCK=/run/rund/vmm/$T.sock
VP_NAME=rund-test-vmmpool-$$
VP_STATE=/run/$VP_NAME
VP_PID=
VP_OLD_STATE=${RUND_POOL_STATE_DIR-}
VP_OLD_BACKEND=${RUND_POOL_BACKEND-}

vp_cleanup() {
	[ -n "$VP_PID" ] && kill -KILL "$VP_PID" 2>/dev/null && wait "$VP_PID" 2>/dev/null
	VP_PID=
	if [ -d "$VP_STATE" ]; then
		RUND_POOL_STATE_DIR=$VP_STATE "$HELPER" pool destroy --force >/dev/null 2>&1
		rm -rf "$VP_STATE"
	fi
	if [ -n "$VP_OLD_STATE" ]; then export RUND_POOL_STATE_DIR=$VP_OLD_STATE; else unset RUND_POOL_STATE_DIR; fi
	if [ -n "$VP_OLD_BACKEND" ]; then export RUND_POOL_BACKEND=$VP_OLD_BACKEND; else unset RUND_POOL_BACKEND; fi
}

# vp_status KEY: one number from the pool's status.
vp_status() {
	"$HELPER" vmm-pool status --socket "$VP_SOCK" --json 2>/dev/null | grep -o "\"$1\":[0-9]*" | cut -d: -f2
}

# vp_wait_ready N: wait up to 20 s until N VMMs are ready.
vp_wait_ready() {
	local i
	for i in $(seq 1 200); do
		[ "$(vp_status ready)" = "$1" ] && return 0
		sleep 0.1
	done
	why="pool has $(vp_status ready) ready after 20 s, expected $1: $(tail -3 "$TMP/vp-serve.log")"
	return 1
}

# vp_pooled OUT: the start used a pooled VMM born in a slot of the test's pool.
vp_pooled() {
	if ! grep -q '"vmm":"pool"' "$1.json"; then
		why="not from the pool: $(cat "$1.json" "$1.err" | head -3)"
		return 1
	fi
	if ! grep -q "\"path\":\"[^\"]*$VP_NAME" "$1.json"; then
		why="pooled VMM not in a slot of $VP_NAME: $(cat "$1.json")"
		return 1
	fi
}

# vp_request BYTES: send raw bytes to the pool, print its reply.
vp_request() {
	python3 - "$VP_SOCK" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(sys.argv[2].encode())
s.settimeout(5)
print(s.recv(9000).decode())
EOF
}

echo "# VMM pool"
export RUND_POOL_STATE_DIR=$VP_STATE
if "$HELPER" pool init --backend cgroupfs --name "$VP_NAME" --size 10 >"$TMP/vp-init.log" 2>&1; then
	VP_SLOTS=1
else
	echo "# no cgroup pool for the VMM pool test ($(head -1 "$TMP/vp-init.log")): VMMs run without slots"
	VP_SLOTS=
	export RUND_POOL_BACKEND=none
fi
[ -z "$VP_SLOTS" ] && vp_pooled() { grep -q '"vmm":"pool"' "$1.json" || { why="not from the pool: $(cat "$1.json" "$1.err" | head -3)"; return 1; }; }

"$HELPER" vmm-pool serve --template "$T" --size 2 2>"$TMP/vp-serve.log" &
VP_PID=$!
check "vmm-pool serve fills the pool" vp_wait_ready 2

# Two clones at once from the pool: restored, each writing its own layer.
clone "$TMP/vpw" -- sh -c "$HEAD"'; echo pooled-$$ >/marker; sync; cat /marker; sleep 2' &
bg=$!
sleep 0.5
clone "$TMP/vpr" -- sh -c "$HEAD"'; cat /marker 2>/dev/null || echo absent'
wait $bg
for c in vpw vpr; do
	check "pooled clone $c used a pooled VMM in its own slot" vp_pooled "$TMP/$c"
	check "pooled clone $c was restored from the template" restored "$TMP/$c"
done
why="writer printed: $(sed -n 3p "$TMP/vpw")"
check "pooled clone's write lands in its own layer" eval 'sed -n 3p "$TMP/vpw" | grep -q "^pooled-"'
why="reader saw: $(tail -1 "$TMP/vpr")"
check "one pooled clone's writes do not reach another" test "$(tail -1 "$TMP/vpr")" = absent
grep -o '"timings_ms":{[^}]*}' "$TMP/vpr.json" | sed 's/^/# pooled start /'

check "pool refills to 2 after hand-overs" vp_wait_ready 2
why="handoffs $(vp_status handoffs)"
check "pool counts its hand-overs" test "$(vp_status handoffs)" -ge 2

# A waiting VMM that dies is replaced.
victim=$("$HELPER" vmm-pool status --socket "$VP_SOCK" --json | grep -o '"pid":[0-9]*,"state":"ready"' | head -1 | cut -d: -f2 | cut -d, -f1)
if [ -n "$victim" ]; then
	kill -KILL "$victim"
	sleep 0.3
	check "killed pooled VMM is replaced" vp_wait_ready 2
	why="replaced $(vp_status replaced), victim $victim still listed"
	check "pool reports the replacement" eval '[ "$(vp_status replaced)" -ge 1 ] && ! "$HELPER" vmm-pool status --socket "$VP_SOCK" --json | grep -q "\"pid\":$victim,"'
else
	not_ok "killed pooled VMM is replaced" "no ready member found"
fi

# A bad request gets a clear error, and the pool goes on serving.
reply=$(vp_request 'not json{' 2>&1)
why="reply: $reply"
check "bad request gets a clear error" eval 'echo "$reply" | grep -q "\"reason\":\"bad-request\".*not one JSON object"'
reply=$(vp_request '{"op":"take","template":"'"$T"'","memory":"/dev/shm/other.mem"}' 2>&1)
why="reply: $reply"
check "request for another template version is refused" eval 'echo "$reply" | grep -q "\"reason\":\"mismatch\""'
clone "$TMP/vpb" -- sh -c "$HEAD"
check "pool serves after bad requests" vp_pooled "$TMP/vpb"

# More starts at once than ready VMMs: the rest start QEMU on demand.
vp_wait_ready 2 >/dev/null
bgs=
for i in 1 2 3 4 5; do clone "$TMP/vpe$i" -- sh -c "$HEAD" & bgs="$bgs $!"; done
wait $bgs
nod=0; nbad=0
for i in 1 2 3 4 5; do
	grep -q '"vmm":"on-demand".*no VMM ready' "$TMP/vpe$i.json" && nod=$((nod + 1))
	{ [ "$(cat "$TMP/vpe$i.rc")" = 0 ] && restored "$TMP/vpe$i"; } || nbad=$((nbad + 1))
done
why="$nod of 5 on demand, $nbad failed or not restored; misses $(vp_status misses): $(cat "$TMP"/vpe*.json | head -c 600)"
check "starts beyond an empty pool fall back to on-demand QEMU" eval '[ $nod -ge 1 ] && [ $nbad = 0 ]'

# A pool that does not reply is skipped after the request times out.
vp_wait_ready 2 >/dev/null
kill -STOP "$VP_PID"
clone "$TMP/vps" -- sh -c "$HEAD"
kill -CONT "$VP_PID"
why="$(cat "$TMP/vps.json" "$TMP/vps.err" | head -3)"
check "stuck pool: start falls back to on-demand QEMU" eval '[ "$(cat "$TMP/vps.rc")" = 0 ] && grep -q "\"vmm\":\"on-demand\"" "$TMP/vps.json" && restored "$TMP/vps"'

"$HELPER" run --template "$T" --no-vmm-pool --json-fd 3 -- true 2>/dev/null 3>"$TMP/vpn.json"
why="$(cat "$TMP/vpn.json")"
check "--no-vmm-pool starts QEMU on demand" grep -q '"vmm":"on-demand"' "$TMP/vpn.json"

# SIGTERM: lent VMMs finish, waiting ones end, slots and socket go.
vp_wait_ready 2 >/dev/null
clone "$TMP/vpt" -- sh -c "$HEAD"'; sleep 2; echo finished' &
bg=$!
sleep 1
kill -TERM "$VP_PID"
wait $bg
for _ in $(seq 1 100); do kill -0 "$VP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$VP_PID" 2>/dev/null; then
	not_ok "vmm-pool serve exits on SIGTERM" "still running 10 s after SIGTERM"
else
	wait "$VP_PID"
	rc=$?
	VP_PID=
	why="exit $rc: $(tail -3 "$TMP/vp-serve.log")"
	check "vmm-pool serve exits 0 on SIGTERM" test $rc = 0
fi
why="$(cat "$TMP/vpt.json" "$TMP/vpt.err" | head -3)"
check "sandbox lent at SIGTERM runs to its end" eval '[ "$(cat "$TMP/vpt.rc")" = 0 ] && [ "$(tail -1 "$TMP/vpt")" = finished ] && vp_pooled "$TMP/vpt"'
# QEMU gets the memory file as a descriptor: look for it in maps and fds.
left=0
for p in $(pgrep -f -- "^qemu-system"); do
	if grep -qF -- "$MEM" "/proc/$p/maps" 2>/dev/null || ls -l "/proc/$p/fd" 2>/dev/null | grep -qF -- "$MEM"; then
		left=$((left + 1))
	fi
done
why="$left QEMU processes of the template left"
check "no pooled QEMU left after SIGTERM" test "$left" = 0
why="$VP_SOCK still exists"
check "no socket left after SIGTERM" test ! -e "$VP_SOCK"
if [ -n "$VP_SLOTS" ]; then
	claimed=$("$HELPER" pool stats --json | grep -o '"claimed":[0-9]*' | cut -d: -f2)
	why="$claimed slots still claimed"
	check "no cgroup slot claimed after SIGTERM" test "$claimed" = 0
fi
vp_cleanup
