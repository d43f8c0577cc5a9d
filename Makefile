# rund top-level build.
#
#   make            module, rund-helper, BPF tools and guest agent
#   make setup      install packages, build everything, prepare /var/lib/rund
#   make demo       setup, then run a Python function in a sandbox
#   make check      every test (installs what it needs)
#
# Build products go to $(BUILD); kbuild keeps its objects next to kmod/.

BUILD ?= $(CURDIR)/build
# Debian's 6.1 headers; override with KDIR=/path/to/kernel/build.
KDIR ?= $(firstword $(wildcard /usr/src/linux-headers-6.1.*-amd64))

export BUILD

.PHONY: all deps kmod user bpf guest guest-kernel images setup demo check clean

all: kmod user bpf guest

deps:
	scripts/install-deps.sh

kmod:
	@test -n "$(KDIR)" || { echo "kmod: no kernel headers found; run 'make deps' or set KDIR" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules
	mkdir -p $(BUILD)/kmod && cp kmod/rund.ko $(BUILD)/kmod/

user:
	$(MAKE) -C user

bpf:
	$(MAKE) -C user/bpf

guest:
	$(MAKE) -C guest

guest-kernel:
	scripts/build-guest-kernel.sh

images:
	scripts/build-images.sh

setup:
	scripts/setup.sh

demo: setup
	scripts/demo.sh

check:
	scripts/check.sh

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C user clean
	-$(MAKE) -C user/bpf clean
	-$(MAKE) -C guest clean
	rm -rf $(BUILD)/bin $(BUILD)/obj $(BUILD)/kmod
