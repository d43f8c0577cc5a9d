#!/bin/bash
# Run every rund test suite: `make check`.
#
# Installs packages, builds everything, prepares /var/lib/rund (scripts/setup.sh),
# then runs each selftests/<suite>/run.sh in name order. A suite exits 0 when it
# passed, 4 (KSFT_SKIP) when it could not run at all, anything else on failure.
# Under CI (CI=true) a skipped suite counts as a failure: only single tests that
# need a working KVM may skip there, and the suites handle that themselves.
# Set RUND_SUITES="e2e layers" to run only some suites.
set -uo pipefail
cd "$(dirname "$0")/.."

LOGDIR=build/test-logs
mkdir -p "$LOGDIR"

if ! scripts/setup.sh; then
	echo "check: setup failed; see the output above" >&2
	exit 1
fi

if [ -n "${RUND_SUITES:-}" ]; then
	suites=()
	for s in $RUND_SUITES; do suites+=("selftests/$s/run.sh"); done
else
	suites=(selftests/*/run.sh)
fi

declare -a passed=() skipped=() failed=()
for runner in "${suites[@]}"; do
	name=$(basename "$(dirname "$runner")")
	if [ ! -x "$runner" ]; then
		echo "check: $runner is missing or not executable" >&2
		failed+=("$name")
		continue
	fi
	echo "=== suite $name ==="
	start=$(date +%s)
	"$runner" 2>&1 | tee "$LOGDIR/$name.log"
	rc=${PIPESTATUS[0]}
	echo "=== suite $name: exit $rc after $(( $(date +%s) - start )) s ==="
	case $rc in
	0) passed+=("$name") ;;
	4) if [ "${CI:-}" = true ]; then
		echo "check: suite $name skipped under CI, which counts as a failure" >&2
		failed+=("$name")
	   else
		skipped+=("$name")
	   fi ;;
	*) failed+=("$name") ;;
	esac
done

echo
echo "passed:  ${passed[*]:-none}"
echo "skipped: ${skipped[*]:-none}"
echo "failed:  ${failed[*]:-none}"
echo "logs in $LOGDIR/"
[ "${#failed[@]}" -eq 0 ]
