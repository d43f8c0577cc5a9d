/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MicroVM launcher: QEMU -M microvm command line, accelerator choice and
 * the process spawn (clone3 with CLONE_VM|CLONE_VFORK, optionally straight
 * into a cgroup with CLONE_INTO_CGROUP).
 */
#ifndef RUND_VM_H
#define RUND_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "agent_proto.h"
#include "error.h"

#define RUND_KERNEL_DIR "/var/lib/rund/kernel"
#define RUND_DEFAULT_KERNEL RUND_KERNEL_DIR "/vmlinux"
#define RUND_DEFAULT_INITRD RUND_KERNEL_DIR "/initramfs.cpio"
#define RUND_QEMU_FULL "qemu-system-x86_64"
#define RUND_QEMU_MICROVM "qemu-system-x86_64-microvm"

enum rund_accel {
	RUND_ACCEL_TCG,
	RUND_ACCEL_KVM,
};

const char *rund_accel_name(enum rund_accel accel);

/*
 * Pick KVM when /dev/kvm returns 12 for KVM_GET_API_VERSION, can create a
 * VM and a vCPU, and no failed KVM boot is recorded; otherwise pick TCG.
 * RUND_ACCEL=tcg or RUND_ACCEL=kvm in the environment forces the choice.
 * *why receives a short reason for TCG.
 */
enum rund_accel rund_accel_detect(const char **why);

/*
 * /dev/kvm can pass every probe and still fail to run a real guest (a nested
 * hypervisor that rejects some guest state). The launcher records such a
 * failure here; rund_accel_detect() then picks TCG until the file is
 * removed or the host reboots (/run is a tmpfs).
 */
#define RUND_KVM_UNUSABLE_FILE "/run/rund/kvm-unusable"
/* Boot id of the host boot whose /dev/kvm passed the probe (VM and vCPU created). */
#define RUND_KVM_PROBED_FILE "/run/rund/kvm-probed"
void rund_accel_mark_kvm_unusable(const char *reason);

/* Process spawn for the VMM. */
struct rund_spawn_opts {
	const char *path;		/* executable, searched in PATH */
	char *const *argv;
	const int *keep_fds;		/* descriptors the child keeps, same numbers */
	int nkeep;
	int stdin_fd, stdout_fd, stderr_fd;	/* -1: /dev/null */
	int cgroup_fd;			/* cgroup2 directory for CLONE_INTO_CGROUP, -1 none */
	bool cgroup_fallback;		/* spawn outside the cgroup when the kernel refuses it */
};

struct rund_spawn_result {
	pid_t pid;
	int pidfd;			/* becomes readable when the child exits */
	bool in_cgroup;			/* CLONE_INTO_CGROUP was used */
};

/*
 * Start opts->path with PR_SET_PDEATHSIG(SIGKILL), default signal
 * dispositions, an empty signal mask and only the listed descriptors. Returns
 * 0 once the child has called execve (CLONE_VFORK) or -errno; an execve
 * failure is reported here, not as a child exit.
 */
int rund_spawn(const struct rund_spawn_opts *opts, struct rund_spawn_result *res,
	       struct rund_error *err);

struct rund_vm_config {
	const char *kernel;		/* vmlinux (PVH entry) */
	const char *initrd;		/* agent initramfs */
	int image_fd;			/* read-only EROFS image, O_RDONLY */
	int layer_fd;			/* writable ext4 layer, O_RDWR */
	int agent_fd;			/* QEMU's end of the agent socket pair */
	int qmp_fd;			/* QEMU's end of the QMP socket pair */
	int console_fd;			/* QEMU's end of the serial console socket pair */
	int stderr_fd;			/* QEMU's stderr, -1: /dev/null */
	unsigned int memory_mib;
	unsigned int vcpus;
	int cgroup_fd;			/* see struct rund_spawn_opts */
	bool cgroup_fallback;
	/* Templates (template.h); all zero for a cold boot. */
	const char *memory_path;	/* guest RAM in this file, NULL: anonymous */
	bool memory_share;		/* map it shared (making a template) or private */
	bool incoming;			/* -incoming defer: wait for migrate-incoming */
	bool template_guest;		/* rund.template=1: agent stops at its ready point */
	unsigned long long layer_placeholder;	/* >0: null-co layer of this size, no layer_fd */
	/*
	 * Pre-boot templates: pass -kernel, -initrd and -append with incoming
	 * too (the firmware reads them through fw_cfg when the clone boots),
	 * and start_paused (-S) stops the VM before its first instruction.
	 */
	bool boot_files;
	bool start_paused;
};

/* Guest devices in bus order; a template and its clones must agree on it. */
#define RUND_VM_DEVICE_LAYOUT \
	"serial:console,virtio-blk:image,virtio-blk:layer,virtio-serial:" RUND_AGENT_PORT_NAME
#define RUND_VM_CMDLINE_MAX 512

/* Host TSC frequency in kHz from /proc/cpuinfo, 0 when unknown. */
unsigned long rund_host_tsc_khz(void);

/* Write the guest kernel command line rund_vm_start() passes for accel. */
void rund_vm_cmdline(enum rund_accel accel, bool template_guest, char *buf, size_t size);

struct rund_vm {
	pid_t pid;
	int pidfd;
	enum rund_accel accel;
	const char *accel_reason;	/* why TCG was chosen, NULL under KVM */
	const char *qemu;		/* binary that was started */
	bool in_cgroup;
};

/* Build the QEMU command line for cfg and start it. */
int rund_vm_start(const struct rund_vm_config *cfg, struct rund_vm *vm, struct rund_error *err);

struct rund_pool_launch;

/*
 * Start QEMU with rund_vm_start() in the cgroup slot of launch: on the
 * launcher thread that a v1 slot needs, directly otherwise.
 */
int rund_vm_start_in_slot(struct rund_pool_launch *launch, const struct rund_vm_config *cfg,
			  struct rund_vm *vm, struct rund_error *err);

/*
 * Wait up to timeout_ms for QEMU to exit, then SIGKILL it and reap it.
 * Returns the wait status. Closes vm->pidfd.
 */
int rund_vm_reap(struct rund_vm *vm, int timeout_ms);

#endif /* RUND_VM_H */
