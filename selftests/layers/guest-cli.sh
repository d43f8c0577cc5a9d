#!/bin/sh
# rund-helper layer register, depth, stats, list and unregister against the
# loaded module, in busybox sh inside a test guest. Called by guest-module.sh
# with the XFS and tmpfs directories; prints TAP and exits 1 on any failure.
xfs=$1
tmp=$2
helper=./bin/rund-helper
n=0
failed=0

# check NAME WANT-STATUS PATTERN COMMAND...
check() {
	name=$1 want=$2 pattern=$3
	shift 3
	n=$((n + 1))
	"$@" > "$tmp/cli.out" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		sed 's/^/# /' "$tmp/cli.out"
		echo "not ok $n $name # exit $rc, expected $want"
		failed=1
	elif [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/cli.out"; then
		sed 's/^/# /' "$tmp/cli.out"
		echo "not ok $n $name # output lacks /$pattern/"
		failed=1
	else
		echo "ok $n $name"
	fi
}

echo "TAP version 13"
img=$xfs/cli.ext4
dd if=/dev/zero of="$img" bs=1M count=16 2>/dev/null
dd if=/dev/zero of="$tmp/cli.ext4" bs=1M count=1 2>/dev/null

check register_prints_id 0 '^[0-9]+$' "$helper" layer register "$img" --depth 3
id=$(cat "$tmp/cli.out")
check stats_shows_depth 0 "^ +$id .* 3 " "$helper" layer stats
check stats_json 0 "\"id\":$id,.*\"depth\":3" "$helper" layer stats --json
check depth_zero_rejected 125 'accepted: 1 to 64' "$helper" layer depth "$id" 0
check depth_huge_rejected 125 'accepted: 1 to 64' "$helper" layer depth "$id" 100000
check depth_set 0 '' "$helper" layer depth "$id" 5
check stats_shows_new_depth 0 "\"depth\":5" "$helper" layer stats --json
check register_twice_rejected 125 'already registered' "$helper" layer register "$img"
check list_shows_module_id 0 "^cli\.ext4 .* $id\$" "$helper" layer list --dir "$xfs"
check register_tmpfs_rejected 125 'no reflink or O_TMPFILE' "$helper" layer register "$tmp/cli.ext4"
check register_missing_rejected 125 "open layer image '$xfs/none.ext4'" "$helper" layer register "$xfs/none.ext4"
check unregister 0 '' "$helper" layer unregister "$id"
check unregister_twice_rejected 125 "unregister layer image $id" "$helper" layer unregister "$id"
check unregister_invalid_id_rejected 125 "invalid image id 'x'" "$helper" layer unregister x

rm -f "$img" "$tmp/cli.ext4" "$tmp/cli.out"
echo "1..$n"
exit $failed
