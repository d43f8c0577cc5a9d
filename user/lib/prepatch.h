/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pre-patched guest kernels: a vmlinux whose text already contains what
 * boot-time patching writes for one CPU model, accelerator and vCPU count
 * (guest/rund-prepatch.py). Its sidecar file KERNEL.prepatch records that
 * configuration; booting the image with another one runs code patched for
 * other CPU features, or without lock prefixes on several vCPUs.
 */
#ifndef RUND_PREPATCH_H
#define RUND_PREPATCH_H

#include "error.h"

#define RUND_PREPATCH_SUFFIX ".prepatch"

/*
 * Check that a launch may boot kernel: 0 when kernel has no sidecar or the
 * sidecar matches accel ("tcg" or "kvm"), cpu (the -cpu model, "default"
 * when QEMU picks it), vcpus and the CPU-affecting options of cmdline;
 * -EINVAL with a message naming both configurations otherwise, -errno when
 * the sidecar cannot be read.
 */
int rund_prepatch_check(const char *kernel, const char *accel, const char *cpu,
			unsigned int vcpus, const char *cmdline, struct rund_error *err);

#endif
