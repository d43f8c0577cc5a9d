#!/bin/bash
# Build the debug guest kernel for the module selftests (lockdep, KASAN,
# DEBUG_ATOMIC_SLEEP) from Debian's linux-source-6.1.
#
#   scripts/build-debug-kernel.sh
#
# Sources are extracted once into build/src/linux-6.1-debug/, objects go to
# build/debug-kernel/ (out-of-tree, incremental). The config is tinyconfig plus
# selftests/kmod/config. Prints the bzImage path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
TARBALL=/usr/src/linux-source-6.1.tar.xz
SRC=$BUILD/src/linux-6.1-debug
OUT=$BUILD/debug-kernel
FRAGMENT=$ROOT/selftests/kmod/config
JOBS=${JOBS:-$(nproc)}

if [ ! -r "$TARBALL" ]; then
	echo "build-debug-kernel: $TARBALL not found; install linux-source-6.1 (scripts/install-deps.sh)" >&2
	exit 1
fi

if [ ! -e "$SRC/.extracted" ]; then
	echo "build-debug-kernel: extracting $TARBALL into $SRC" >&2
	rm -rf "$SRC"
	mkdir -p "$SRC"
	tar -xJf "$TARBALL" -C "$SRC" --strip-components=1
	touch "$SRC/.extracted"
fi

mkdir -p "$OUT"
# Regenerate the config only when the fragment changed, so rebuilds stay incremental.
if [ ! -e "$OUT/.config" ] || [ "$FRAGMENT" -nt "$OUT/.config" ]; then
	make -s -C "$SRC" O="$OUT" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" "$OUT/.config" "$FRAGMENT" >/dev/null
	make -s -C "$SRC" O="$OUT" olddefconfig >/dev/null
	missing=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=y)
			if ! grep -qx "$line" "$OUT/.config"; then
				echo "build-debug-kernel: $line did not survive olddefconfig" >&2
				missing=1
			fi
			;;
		esac
	done <"$FRAGMENT"
	if [ "$missing" -ne 0 ]; then
		echo "build-debug-kernel: fix the dependencies in $FRAGMENT" >&2
		exit 1
	fi
fi

start=$(date +%s)
make -s -C "$SRC" O="$OUT" -j"$JOBS" bzImage modules
echo "build-debug-kernel: built in $(( $(date +%s) - start )) s" >&2
echo "$OUT/arch/x86/boot/bzImage"
