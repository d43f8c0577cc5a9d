#!/bin/bash
# Install every Debian package that building, testing and running rund needs.
# Idempotent: packages already present are left alone. Needs root and Debian 12.
set -euo pipefail

PACKAGES=(
	# toolchain and kernel build
	build-essential pkg-config bc bison flex libelf-dev libssl-dev dwarves
	cpio xz-utils zstd kmod rsync
	linux-headers-amd64 linux-source-6.1
	# userspace libraries
	libnl-3-dev libnl-genl-3-dev libjson-c-dev
	# BPF tools
	libbpf-dev bpftool clang llvm
	# virtual machines and images
	qemu-system-x86 mmdebstrap debian-archive-keyring erofs-utils
	xfsprogs e2fsprogs util-linux busybox-static
	# benchmarks and plots
	gnuplot-nox python3
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root (apt-get install)" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
