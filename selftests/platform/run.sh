#!/bin/bash
# Platform tests: the guest kernel configuration, the XFS layer directory, and
# a TCG boot of the installed guest kernel. The booted guest mounts the Debian
# EROFS image and a clone of the ext4 layer image, joins them with overlayfs
# and runs Python there. TAP output; exit 0 pass, 1 fail.
#
# RUND_KERNEL, RUND_IMAGE and RUND_LAYER_IMAGE point the suite at other files.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
STATE=${RUND_STATE_DIR:-/var/lib/rund}
FRAGMENT=$ROOT/guest/kernel.config
CONFIG=$BUILD/guest-kernel/.config
KERNEL=${RUND_KERNEL:-$STATE/kernel/vmlinux}
IMAGE=${RUND_IMAGE:-$STATE/images/debian.erofs}
LAYER=${RUND_LAYER_IMAGE:-$STATE/layers/debian.ext4}
LAYERS=$STATE/layers

TMP=$(mktemp -d /tmp/rund-test-platform.XXXXXX)
CLONE=
cleanup() {
	rm -rf "$TMP"
	[ -z "$CLONE" ] || rm -f "$CLONE"
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

# 1. Every option of the fragment kept its value in the built configuration.
if [ ! -f "$CONFIG" ]; then
	not_ok "guest kernel .config exists" "$CONFIG not found; run scripts/build-guest-kernel.sh"
else
	while read -r line; do
		case $line in
		CONFIG_*=*)
			if grep -qxF "$line" "$CONFIG"; then
				ok "config $line"
			else
				not_ok "config $line" "found: $(grep -E "^(# )?${line%%=*}[= ]" "$CONFIG" || echo unset)"
			fi
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -q "^$opt=" "$CONFIG"; then
				not_ok "config $opt off" "found: $(grep "^$opt=" "$CONFIG")"
			else
				ok "config $opt off"
			fi
			;;
		esac
	done <"$FRAGMENT"
fi

# 2. The layer directory is XFS with reflink, and the layer image is one
#    unfragmented file there.
if [ "$(stat -f -c %T "$LAYERS" 2>/dev/null)" = xfs ]; then
	ok "$LAYERS is on XFS"
else
	not_ok "$LAYERS is on XFS" "file system type: $(stat -f -c %T "$LAYERS" 2>&1); run scripts/setup-xfs.sh"
fi
if xfs_info "$(findmnt -n -o TARGET --target "$LAYERS")" 2>/dev/null | grep -q 'reflink=1'; then
	ok "$LAYERS has reflink=1"
else
	not_ok "$LAYERS has reflink=1" "xfs_info shows no reflink=1 for the file system of $LAYERS"
fi
extents=$(filefrag "$LAYER" 2>/dev/null | sed -n 's/.*: \([0-9]*\) extents\? found/\1/p')
if [ -n "$extents" ] && [ "$extents" -le 16 ]; then
	ok "layer image has $extents extent(s)"
else
	not_ok "layer image has at most 16 extents" "filefrag $LAYER: ${extents:-failed}; run scripts/build-images.sh --force"
fi

# 3. Boot the guest kernel under TCG with a busybox /init that checks the
#    images and prints one "RUND-CHECK <name> ok|fail" line per check.
boot_checks=(virtio-port erofs-mount erofs-python ext4-mount ext4-write overlay-mount python-run python-socketpair)
boot_failed() {
	local check
	for check in "${boot_checks[@]}"; do not_ok "guest $check" "$@"; done
}

# The TSC frequency that the guest would otherwise calibrate, in kHz.
host_tsc_khz() {
	local mhz
	mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz.*/\1/p' | head -n1)
	[ -n "$mhz" ] || mhz=$(sed -n 's/^cpu MHz[[:space:]]*: \([0-9.]*\)/\1/p' /proc/cpuinfo | head -n1)
	awk -v mhz="$mhz" 'BEGIN { printf "%d", mhz * 1000 }'
}

make_initramfs() {
	local dir=$TMP/initramfs
	mkdir -p "$dir"/{bin,dev,proc,sys,ro,rw,newroot}
	cp /bin/busybox "$dir/bin/busybox" || return 1
	cat >"$dir/init" <<'INIT'
#!/bin/busybox sh
# Guest side of selftests/platform: each check prints one result line. The
# lines go through /dev/kmsg because the kernel writes its log to the console
# before it reboots, while output still queued on the tty can be lost.
bb=/bin/busybox
report() {
	echo "$*" >/dev/kmsg
}
check() {
	name=$1
	shift
	if "$@" >/tmp.out 2>&1; then
		report "RUND-CHECK $name ok"
	else
		report "RUND-CHECK $name fail: $($bb head -c 300 /tmp.out | $bb tr '\n' ' ')"
	fi
}
$bb mount -t devtmpfs dev /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
check virtio-port $bb sh -c "$bb cat /sys/class/virtio-ports/*/name | $bb grep -qx org.rund.platform"
check erofs-mount $bb mount -t erofs -o ro /dev/vda /ro
check erofs-python $bb test -x /ro/usr/bin/python3
check ext4-mount $bb mount -t ext4 /dev/vdb /rw
check ext4-write $bb sh -c "echo rund-layer-write > /rw/probe && $bb sync && $bb grep -qx rund-layer-write /rw/probe"
$bb mkdir -p /rw/upper /rw/work
check overlay-mount $bb mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work overlay /newroot
$bb mount -t proc proc /newroot/proc
check python-run $bb chroot /newroot /usr/bin/python3 -c 'print(sum(range(10)))'
check python-socketpair $bb chroot /newroot /usr/bin/python3 -c 'import socket; a, b = socket.socketpair(); a.send(b"x"); assert b.recv(1) == b"x"'
report "$($bb chroot /newroot /usr/bin/python3 -c 'print("RUND-PYTHON", sum(range(10)))')"
report RUND-CHECK-DONE
$bb reboot -f
INIT
	chmod 0755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc -R 0:0 --quiet) >"$TMP/initramfs.cpio"
}

if [ ! -f "$KERNEL" ] || [ ! -f "$IMAGE" ] || [ ! -f "$LAYER" ]; then
	boot_failed "missing $KERNEL, $IMAGE or $LAYER; run scripts/setup.sh"
elif ! make_initramfs; then
	boot_failed "cannot build the test initramfs (busybox-static installed?)"
elif ! CLONE=$(mktemp "$LAYERS/rund-test-platform.XXXXXX") || ! cp --reflink=always "$LAYER" "$CLONE"; then
	boot_failed "cannot clone $LAYER with reflink in $LAYERS"
else
	# QEMU exits on the guest's reboot (reboot=t, -no-reboot); the timeout
	# catches a guest that hangs.
	timeout -k 5 90 qemu-system-x86_64 \
		-M microvm,acpi=off -accel tcg -cpu max -smp 2 -m 256 \
		-global virtio-mmio.force-legacy=false \
		-kernel "$KERNEL" -initrd "$TMP/initramfs.cpio" \
		-append "console=ttyS0 reboot=t panic=-1 tsc_early_khz=$(host_tsc_khz) noapictimer no_timer_check printk.devkmsg=on" \
		-drive "id=ro,file=$IMAGE,format=raw,if=none,readonly=on" -device virtio-blk-device,drive=ro \
		-drive "id=rw,file=$CLONE,format=raw,if=none" -device virtio-blk-device,drive=rw \
		-device virtio-serial-device -chardev null,id=port \
		-device virtserialport,chardev=port,name=org.rund.platform \
		-no-reboot -nographic -nodefaults -serial stdio </dev/null >"$TMP/console.log" 2>&1
	rc=$?
	tr -d '\r' <"$TMP/console.log" | sed -n 's/^\[ *[0-9.]*\] //p' >"$TMP/console.txt"
	if [ "$rc" -eq 0 ] && grep -q '^RUND-CHECK-DONE' "$TMP/console.txt"; then
		ok "guest boots and QEMU exits on reboot"
	else
		not_ok "guest boots and QEMU exits on reboot" "qemu exit status $rc" "$(tail -n 15 "$TMP/console.txt")"
	fi
	for check in "${boot_checks[@]}"; do
		result=$(grep "^RUND-CHECK $check " "$TMP/console.txt")
		case $result in
		"RUND-CHECK $check ok") ok "guest $check" ;;
		"") not_ok "guest $check" "no result line on the console" ;;
		*) not_ok "guest $check" "$result" ;;
		esac
	done
	if grep -qx 'RUND-PYTHON 45' "$TMP/console.txt"; then
		ok "guest python computes sum(range(10)) = 45"
	else
		not_ok "guest python computes sum(range(10)) = 45" "$(grep RUND-PYTHON "$TMP/console.txt" || echo 'no output')"
	fi
	if grep -q 'rund-layer-write' "$LAYER" 2>/dev/null; then
		not_ok "guest writes stay in the clone" "the file written by the guest appears in $LAYER"
	else
		ok "guest writes stay in the clone"
	fi
fi

# 4. Skipping writes that are already in place (rund.patch_skip, on by
#    default) must leave the same kernel text after boot as writing them all.
#    Each guest idles after boot while QMP saves its text from _text to
#    _etext. The two copies are compared, for 1 and 2 vCPUs.
dump_text() {
	local out=$1 vcpus=$2 cmdline=$3 monitor=$TMP/monitor.$$ addr len
	local dir=$TMP/idle

	addr=$(nm "$KERNEL" | awk '$3 == "_text" { print $1 }')
	len=$(nm "$KERNEL" | awk '$3 == "_etext" { print $1 }')
	[ -n "$addr" ] && [ -n "$len" ] || { echo "no _text or _etext symbol in $KERNEL"; return 1; }
	# The kernel is linked at __START_KERNEL_map + physical address.
	len=$((0x$len - 0x$addr))
	addr=$((0x$addr - 0xffffffff80000000))

	mkdir -p "$dir/bin" "$dir/dev"
	cp /bin/busybox "$dir/bin/busybox" || return 1
	printf '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\necho RUND-IDLE >/dev/kmsg\nexec /bin/busybox sleep 600\n' >"$dir/init"
	chmod 0755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc -R 0:0 --quiet) >"$TMP/idle.cpio"

	# A log left from the previous boot would announce this one as ready.
	rm -f "$out" "$monitor" "$TMP/idle.log"
	timeout -k 5 120 qemu-system-x86_64 \
		-M microvm,acpi=off -accel tcg -cpu max -smp "$vcpus" -m 128 \
		-kernel "$KERNEL" -initrd "$TMP/idle.cpio" \
		-append "console=ttyS0 reboot=t panic=-1 tsc_early_khz=$(host_tsc_khz) noapictimer no_timer_check printk.devkmsg=on $cmdline" \
		-qmp "unix:$monitor,server=on,wait=off" \
		-no-reboot -display none -nodefaults -serial "file:$TMP/idle.log" </dev/null &
	local qemu=$! i
	for i in $(seq 1 900); do
		grep -q RUND-IDLE "$TMP/idle.log" 2>/dev/null && break
		kill -0 "$qemu" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q RUND-IDLE "$TMP/idle.log" 2>/dev/null; then
		kill "$qemu" 2>/dev/null
		wait "$qemu"
		echo "guest did not reach init: $(tail -n 3 "$TMP/idle.log" 2>/dev/null | tr '\r\n' '  ')"
		return 1
	fi
	# QMP runs commands in order, so quit comes after the save.
	python3 - "$monitor" "$addr" "$len" "$out" <<'PY'
import json, socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
save = {"execute": "pmemsave", "arguments": {
    "val": int(sys.argv[2]), "size": int(sys.argv[3]), "filename": sys.argv[4]}}
for cmd in ({"execute": "qmp_capabilities"}, save, {"execute": "quit"}):
    sock.sendall(json.dumps(cmd).encode() + b"\n")
replies = b""
while True:
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        break
    if not data:
        break
    replies += data
if b'"error"' in replies:
    sys.exit("QMP error: " + replies.decode(errors="replace"))
PY
	wait "$qemu"
	[ -s "$out" ] || { echo "QEMU saved no guest memory to $out"; return 1; }
}

for vcpus in 1 2; do
	name="kernel text same with rund.patch_skip on and off, $vcpus vCPU(s)"
	if ! err=$(dump_text "$TMP/text-skip.$vcpus" "$vcpus" "" 2>&1); then
		not_ok "$name" "$err"
	elif ! err=$(dump_text "$TMP/text-noskip.$vcpus" "$vcpus" rund.patch_skip=off 2>&1); then
		not_ok "$name" "$err"
	elif cmp -s "$TMP/text-skip.$vcpus" "$TMP/text-noskip.$vcpus"; then
		ok "$name"
	else
		not_ok "$name" "$(cmp -l "$TMP/text-skip.$vcpus" "$TMP/text-noskip.$vcpus" | wc -l) bytes differ" \
			"$(cmp "$TMP/text-skip.$vcpus" "$TMP/text-noskip.$vcpus")"
	fi
done

echo "1..$ntest"
[ "$nfail" -eq 0 ]
