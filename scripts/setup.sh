#!/bin/bash
# Prepare this machine to build, test and run rund: `make setup`, and the
# first step of `make demo` and `make check`.
#
# Installs packages, builds every component and the guest kernel, makes
# /var/lib/rund/layers an XFS directory with reflink, builds the Debian and
# layer images and installs the guest kernel and agent initramfs under
# /var/lib/rund/kernel/. Every step is idempotent and skips work that is
# already done, so a re-run with nothing changed takes seconds. Prints one line
# per step with its duration; a step's output goes to $BUILD/setup-logs/ and
# its last lines are shown when it fails. Needs root on Debian 12.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$ROOT/build}
STATE=${RUND_STATE_DIR:-/var/lib/rund}
LOGDIR=$BUILD/setup-logs

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: must run as root (packages, loop mount, /var/lib/rund)" >&2
	exit 1
fi
mkdir -p "$LOGDIR"
setup_start=$(date +%s%N)

# Run one step, "step NAME COMMAND...", logging its output and timing it.
step() {
	local name=$1
	shift
	local log=$LOGDIR/$name.log
	local start=$(date +%s%N)

	if "$@" >"$log" 2>&1; then
		printf 'setup: %-16s ok    %6s s\n' "$name" "$(elapsed "$start")"
		return 0
	fi
	printf 'setup: %-16s FAIL  %6s s (log: %s)\n' "$name" "$(elapsed "$start")" "$log" >&2
	tail -n 25 "$log" | sed 's/^/    /' >&2
	exit 1
}

elapsed() {
	awk -v start="$1" -v now="$(date +%s%N)" 'BEGIN { printf "%.1f", (now - start) / 1e9 }'
}

# Copy $1 to $2 unless $2 already has the same contents.
install_file() {
	if cmp -s "$1" "$2"; then
		echo "$2 is up to date"
		return 0
	fi
	install -D -m 0644 "$1" "$2.tmp"
	mv "$2.tmp" "$2"
	echo "installed $1 as $2"
}

install_guest() {
	install_file "$BUILD/guest-kernel/vmlinux" "$STATE/kernel/vmlinux"
	if [ -f "$BUILD/guest/initramfs.cpio" ]; then
		install_file "$BUILD/guest/initramfs.cpio" "$STATE/kernel/initramfs.cpio"
	else
		echo "no $BUILD/guest/initramfs.cpio to install (built by 'make guest')"
	fi
}

step install-deps "$ROOT/scripts/install-deps.sh"
for target in kmod user bpf guest; do
	step "make-$target" make -C "$ROOT" "$target"
done
step guest-kernel "$ROOT/scripts/build-guest-kernel.sh"
step layers-xfs "$ROOT/scripts/setup-xfs.sh"
step images "$ROOT/scripts/build-images.sh"
step install-guest install_guest

printf 'setup: %-16s ok    %6s s\n' total "$(elapsed "$setup_start")"
