#!/bin/bash
# Build the sandbox guest kernel from Debian's linux-source-6.1.
#
#   scripts/build-guest-kernel.sh [--force]
#
# 1. Extracts /usr/src/linux-source-6.1.tar.xz to $BUILD/src/ and applies the
#    patches listed in patches/series. The tree is extracted again whenever the
#    tarball, the series or a listed patch changes (checksum stamp).
# 2. Configures $BUILD/guest-kernel/ out of tree: tinyconfig, then
#    guest/kernel.config merged with scripts/kconfig/merge_config.sh, then
#    checks that every option of the fragment kept its value.
# 3. Builds vmlinux (ELF with the PVH entry note, booted by QEMU directly) and
#    bzImage with -j$(nproc). When neither the sources nor the fragment changed
#    and both images exist, it does nothing; --force runs make regardless.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
TARBALL=${RUND_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
FRAGMENT=$ROOT/guest/kernel.config
SERIES=$ROOT/patches/series
SRC=$BUILD/src/linux-source-6.1
OUT=$BUILD/guest-kernel

force=0
case ${1:-} in
"") ;;
--force) force=1 ;;
*) echo "build-guest-kernel: unknown argument '$1'; usage: $0 [--force]" >&2; exit 2 ;;
esac

die() {
	echo "build-guest-kernel: $*" >&2
	exit 1
}

[ -r "$TARBALL" ] || die "kernel source $TARBALL not found; install linux-source-6.1 (scripts/install-deps.sh)"
[ -r "$FRAGMENT" ] || die "config fragment $FRAGMENT not found"
[ -r "$SERIES" ] || die "patch series $SERIES not found"

# Patch names from the series, without comments and blank lines.
patches=()
while read -r line; do
	line=${line%%#*}
	line=$(echo "$line" | xargs)
	[ -n "$line" ] || continue
	[ -r "$ROOT/patches/$line" ] || die "patch '$line' listed in $SERIES not found in $ROOT/patches/"
	patches+=("$line")
done <"$SERIES"

start=$(date +%s)

# The source stamp covers the tarball identity, the series and every patch.
src_sum=$({
	stat -c '%n %s %Y' "$TARBALL"
	sha256sum "$SERIES"
	for p in "${patches[@]}"; do sha256sum "$ROOT/patches/$p"; done
} | sha256sum | cut -d' ' -f1)

# Files changed by the patches, as "sha256 mtime path" lines, so that a fresh
# tree can give unchanged files their old modification time back.
list_patched_files() {
	local p
	for p in "${patches[@]}"; do
		sed -n 's|^+++ b/||p' "$ROOT/patches/$p"
	done
}

if [ "$(cat "$SRC/.rund-src-stamp" 2>/dev/null)" != "$src_sum" ]; then
	echo "build-guest-kernel: extracting $TARBALL to $BUILD/src/"
	old_manifest=$BUILD/src/.rund-patched-files.old
	mkdir -p "$BUILD/src"
	if [ -f "$SRC/.rund-patched-files" ]; then
		cp "$SRC/.rund-patched-files" "$old_manifest"
	else
		: >"$old_manifest"
	fi
	rm -rf "$SRC" "$OUT/.rund-build-stamp"
	mkdir -p "$BUILD/src"
	tar -xJf "$TARBALL" -C "$BUILD/src"
	[ -d "$SRC" ] || die "$TARBALL did not contain linux-source-6.1/"
	for p in "${patches[@]}"; do
		echo "build-guest-kernel: applying $p"
		patch -d "$SRC" -p1 --batch --forward --quiet <"$ROOT/patches/$p" ||
			die "patch $p does not apply to $TARBALL; refresh it"
	done

	# tar restores the tarball's old modification times, so make rebuilds
	# only what the patches touch. A file that a patch changes the same
	# way as before gets its old time back and rebuilds nothing. A file
	# that changed, or that a dropped patch no longer changes, gets the
	# current time so that its objects are rebuilt.
	while read -r sum mtime path; do
		if [ -f "$SRC/$path" ] && [ "$(sha256sum <"$SRC/$path" | cut -d' ' -f1)" = "$sum" ]; then
			touch -d "@$mtime" "$SRC/$path"
		elif [ -f "$SRC/$path" ]; then
			touch "$SRC/$path"
		fi
	done <"$old_manifest"
	rm -f "$old_manifest"
	list_patched_files | sort -u | while read -r path; do
		echo "$(sha256sum <"$SRC/$path" | cut -d' ' -f1) $(stat -c %Y "$SRC/$path") $path"
	done >"$SRC/.rund-patched-files"
	echo "$src_sum" >"$SRC/.rund-src-stamp"
fi

# The configuration is regenerated only when the sources or the fragment
# changed, so that an unchanged .config keeps make incremental.
cfg_sum=$(cat "$SRC/.rund-src-stamp" "$FRAGMENT" | sha256sum | cut -d' ' -f1)
mkdir -p "$OUT"
if [ "$(cat "$OUT/.rund-config-stamp" 2>/dev/null)" != "$cfg_sum" ] || [ ! -f "$OUT/.config" ]; then
	echo "build-guest-kernel: configuring $OUT (tinyconfig + guest/kernel.config)"
	# merge_config.sh warns about every choice the fragment overrides, which
	# is expected; its output is shown only when it fails.
	log=$OUT/kconfig.log
	{
		make -s -C "$SRC" O="$OUT" tinyconfig &&
			(cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$OUT" "$OUT/.config" "$FRAGMENT") &&
			make -s -C "$SRC" O="$OUT" olddefconfig
	} >"$log" 2>&1 || { cat "$log" >&2; die "configuration failed; see $log"; }

	# Kconfig silently drops options whose dependencies are not met.
	dropped=()
	while read -r line; do
		case $line in
		CONFIG_*=*)
			grep -qxF "$line" "$OUT/.config" || dropped+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$OUT/.config" || echo unset))")
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -q "^$opt=" "$OUT/.config"; then
				dropped+=("$line (got: $(grep "^$opt=" "$OUT/.config"))")
			fi
			;;
		esac
	done <"$FRAGMENT"
	if [ "${#dropped[@]}" -gt 0 ]; then
		printf 'build-guest-kernel: Kconfig did not keep these options of %s:\n' "$FRAGMENT" >&2
		printf '  %s\n' "${dropped[@]}" >&2
		die "add the missing dependencies to the fragment"
	fi
	echo "$cfg_sum" >"$OUT/.rund-config-stamp"
fi

build_sum=$(cat "$OUT/.rund-config-stamp" | sha256sum | cut -d' ' -f1)
if [ "$force" = 0 ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/arch/x86/boot/bzImage" ] &&
	[ "$(cat "$OUT/.rund-build-stamp" 2>/dev/null)" = "$build_sum" ]; then
	echo "build-guest-kernel: $OUT/vmlinux is up to date"
	exit 0
fi

echo "build-guest-kernel: building in $OUT with -j$(nproc)"
make -s -C "$SRC" O="$OUT" -j"$(nproc)" vmlinux bzImage
cp "$OUT/arch/x86/boot/bzImage" "$OUT/bzImage"

# QEMU boots vmlinux through its PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18).
if ! readelf -n "$OUT/vmlinux" | grep -q 'Xen.*0x00000012'; then
	die "$OUT/vmlinux has no PVH entry note; check CONFIG_PVH"
fi
echo "$build_sum" >"$OUT/.rund-build-stamp"
echo "build-guest-kernel: built $OUT/vmlinux and $OUT/bzImage in $(( $(date +%s) - start )) s"
