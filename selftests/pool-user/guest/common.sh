# Shared by the module-backend guest tests (sourced, not run): TAP helpers
# and one pass over every rund-helper pool verb with --backend module.
H=/tests/pool/bin/rund-helper
n=0
failed=0

check() {
	desc=$1; shift
	n=$((n + 1))
	out=$("$@" 2>&1); rc=$?
	if [ $rc -eq 0 ]; then echo "ok $n $desc"; else echo "not ok $n $desc (exit $rc)"; failed=1; fi
	echo "$out" | sed 's/^/# /'
}

# check_fail PATTERN DESC CMD...: CMD must fail with a message matching PATTERN.
check_fail() {
	want=$1; shift; desc=$1; shift
	n=$((n + 1))
	out=$("$@" 2>&1); rc=$?
	if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$want"; then
		echo "ok $n $desc"
	else
		echo "not ok $n $desc (exit $rc)"; failed=1
	fi
	echo "$out" | sed 's/^/# /'
}

# lifecycle LAYOUT NAME FILES: one pass over every verb on one layout.
lifecycle() {
	layout=$1 name=$2 limits=$3
	check "$layout: init" $H pool init --backend module --layout "$layout" --name "$name" --size 4 \
		--controllers memory,pids,cpu
	check "$layout: acquire with limits" $H pool acquire sb1 --backend module --memory 64 --pids 10 \
		--cpu-quota 50000
	check "$layout: limits in the cgroup files" sh -c "cat $limits | grep -c -E '^(67108864|10|50000.*)\$' | grep -qx 3"
	sleep 1000 &
	sp=$!
	check "$layout: attach" $H pool attach sb1 $sp --backend module
	check "$layout: show" $H pool show sb1 --backend module --json
	check "$layout: list" $H pool list --backend module
	check_fail "acquire 'sb1'" "$layout: duplicate id rejected" $H pool acquire sb1 --backend module
	check_fail "release 'nope'" "$layout: unknown id rejected" $H pool release nope --backend module
	check "$layout: release" $H pool release sb1 --backend module
	sleep 0.5
	n=$((n + 1))
	if kill -9 $sp 2>/dev/null; then
		echo "not ok $n $layout: release killed the process (it was still alive 0.5 s later)"
		failed=1
		wait $sp
	else
		wait $sp; rc=$?
		if [ $rc -eq 137 ]; then echo "ok $n $layout: release killed the process"; else echo "not ok $n $layout: process exit $rc"; failed=1; fi
	fi
	check "$layout: stats" $H pool stats --backend module
	check "$layout: resize" $H pool resize --size 6 --backend module
	check "$layout: bound claim from a CLI" $H pool acquire sb-bound --bound --backend module
	check_fail "show 'sb-bound'" "$layout: bound claim released with its socket" $H pool show sb-bound --backend module
	check "$layout: one-shot claim" $H pool acquire sb2 --backend module
	sleep 0.2 &
	sp=$!
	$H pool attach sb2 $sp --backend module >/dev/null 2>&1
	wait $sp
	sleep 1
	check_fail "show 'sb2'" "$layout: emptied one-shot claim released" $H pool show sb2 --backend module
	check "$layout: auto picks the module" sh -c "$H pool list | grep -q 'backend module'"
	$H pool monitor --backend module --json --count 3 --timeout-ms 5000 >/tmp/events 2>&1 &
	mp=$!
	sleep 0.5
	$H pool acquire sb-ev --backend module >/dev/null 2>&1
	$H pool release sb-ev --backend module >/dev/null 2>&1
	wait $mp
	sed 's/^/# event: /' /tmp/events
	check "$layout: acquire event" grep -q '"sandbox_id":"sb-ev".*"event":"acquired"' /tmp/events
	check "$layout: release event" grep -q '"sandbox_id":"sb-ev".*"event":"released"' /tmp/events
	check "$layout: destroy" $H pool destroy --backend module
}

