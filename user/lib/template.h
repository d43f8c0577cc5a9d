/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VM templates: a guest saved once, so that sandboxes start by restoring it.
 * A snapshot template contains a guest booted to the agent's ready point,
 * and a clone resumes it there. A pre-boot template contains guest RAM with
 * the kernel loaded and no instruction run. A clone boots it from the reset
 * vector with its own clock and entropy, and shares the kernel's pages (all
 * of its text with a pre-patched kernel, see prepatch.h).
 *
 * A template contains the guest RAM as a file on tmpfs (memory-backend-file,
 * share=on while it is made) and the device state written by QEMU's
 * migration with the x-ignore-shared capability, which leaves the RAM out of
 * the stream. A clone maps the same file private (share=off), so every clone
 * shares the template's pages until it writes them, and never changes the
 * file. The guest in the template has the read-only image mounted and its
 * hot files read. The writable-layer device is there with a placeholder
 * backend, and the agent mounts the clone's own layer after the restore.
 *
 * A clone's QEMU is started on demand, or taken from a pool of VMMs
 * started ahead of time for its template (vmmpool.h).
 *
 * Layout: RUND_TEMPLATE_DIR/<name>/template.json (what a clone must match)
 * and state (device state); the memory file is RUND_TEMPLATE_MEMORY_DIR/
 * <name>.<suffix>.mem, a new file for every create so that deleting or
 * remaking a template never touches the memory of running clones.
 */
#ifndef RUND_TEMPLATE_H
#define RUND_TEMPLATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "qmp.h"
#include "vm.h"

#define RUND_TEMPLATE_DIR "/var/lib/rund/templates"
#define RUND_TEMPLATE_MEMORY_DIR "/dev/shm/rund/templates"
#define RUND_TEMPLATE_NAME_MAX 64
/*
 * template.json format: 1 for snapshot templates, which older rund versions
 * read too ("kind" absent means a snapshot), 2 for pre-boot templates, which
 * older versions must reject rather than restore as a snapshot.
 */
#define RUND_TEMPLATE_FORMAT_SNAPSHOT 1
#define RUND_TEMPLATE_FORMAT 2

enum rund_template_kind {
	RUND_TEMPLATE_SNAPSHOT,		/* booted to the agent's ready point */
	RUND_TEMPLATE_PREBOOT,		/* kernel loaded, not started */
};

/* Return the name of kind: "snapshot" or "preboot". */
const char *rund_template_kind_name(enum rund_template_kind kind);
/* Parse a kind name into *kind. Returns 0, or -EINVAL for any other name. */
int rund_template_kind_parse(const char *name, enum rund_template_kind *kind);

/* Identity of a file as stat(2) reports it: a change means other content. */
struct rund_file_id {
	uint64_t dev, ino, size;
	int64_t mtime_ns;
};

/*
 * Everything a clone must share with its template. A difference in any field
 * can make the restored guest misbehave silently (another kernel, another
 * RAM size, devices at other addresses, a TSC running at another rate), so
 * rund_template_check() rejects the clone instead.
 */
struct rund_template_match {
	char qemu[PATH_MAX];		/* resolved QEMU binary */
	struct rund_file_id qemu_id;
	char qemu_version[64];		/* from query-version */
	char accel[8];			/* "tcg" or "kvm" */
	char kernel[PATH_MAX];
	struct rund_file_id kernel_id;	/* compared for pre-boot templates only */
	char kernel_build_id[64];	/* hex NT_GNU_BUILD_ID of the vmlinux */
	char initrd[PATH_MAX];
	struct rund_file_id initrd_id;
	char cmdline[RUND_VM_CMDLINE_MAX];	/* guest kernel command line */
	char cpu_model[64];		/* QOM type of vCPU 0 */
	unsigned int vcpus;
	unsigned int memory_mib;
	char devices[256];		/* device layout, in bus order */
	unsigned long tsc_khz;		/* host TSC frequency */
	char image[PATH_MAX];		/* read-only image, cached in guest RAM */
	struct rund_file_id image_id;
	uint64_t layer_size;		/* size of every clone's writable layer */
};

struct rund_template {
	char name[RUND_TEMPLATE_NAME_MAX + 1];
	enum rund_template_kind kind;
	char dir[PATH_MAX];
	char memory_path[PATH_MAX];
	char state_path[PATH_MAX];
	char layer_image[PATH_MAX];	/* image whose clones the template expects */
	int64_t created_ns;		/* CLOCK_REALTIME at the snapshot */
	double boot_ms;			/* launch to the agent's READY, 0 for pre-boot */
	double save_ms;			/* stop to migration completed */
	uint64_t state_bytes;
	uint64_t memory_bytes;		/* tmpfs blocks the memory file uses */
	struct rund_template_match match;
};

/* Options of rund_template_create(). */
struct rund_template_create_opts {
	const char *name;
	enum rund_template_kind kind;
	const char *image;		/* read-only EROFS image */
	const char *layer_image;	/* writable-layer image: only its size is used */
	const char *kernel;
	const char *initrd;
	unsigned int memory_mib;
	unsigned int vcpus;
	unsigned int timeout_s;		/* boot deadline */
	unsigned int settle_s;		/* snapshot: keep running this long at the ready point */
	bool replace;			/* delete a template of the same name first */
	int console_fd;			/* guest console copy, -1: dropped */
};

/* Check a template name: 1-64 of [A-Za-z0-9_.-], not starting with '.'. */
int rund_template_name_check(const char *name, struct rund_error *err);

/*
 * Boot a guest to the agent's ready point (a snapshot), or only load its
 * kernel and stop before the first instruction (pre-boot), with its RAM in a
 * new memory file on tmpfs, save its device state with x-ignore-shared, stop
 * QEMU and publish the template under opts->name. A pre-boot template of a
 * pre-patched kernel is refused like a cold boot when the kernel was patched
 * for another CPU model or vCPU count. Fails with -EEXIST when the name is
 * taken (unless opts->replace), -EOPNOTSUPP when QEMU lacks x-ignore-shared
 * or the memory backend is not a shared, named file. Nothing is left behind
 * on failure.
 */
int rund_template_create(const struct rund_template_create_opts *opts,
			 struct rund_template *tmpl, struct rund_error *err);

/* Read RUND_TEMPLATE_DIR/<name>/template.json; -ENOENT when there is none. */
int rund_template_load(const char *name, struct rund_template *tmpl,
		       struct rund_error *err);

/*
 * Call fn for every template that loads, in name order. Templates that fail
 * to load are reported through bad (may be NULL) and skipped.
 */
int rund_template_foreach(int (*fn)(const struct rund_template *tmpl, void *arg),
			  void (*bad)(const char *name, const struct rund_error *e, void *arg),
			  void *arg, struct rund_error *err);

/*
 * Remove a template. Running clones are not affected, because each one maps
 * the memory file private and keeps it open until it ends.
 */
int rund_template_delete(const char *name, struct rund_error *err);

/* Settings of a sandbox about to start, filled by rund_template_want(). */
struct rund_template_want {
	const char *image;
	const char *kernel;
	const char *initrd;
	unsigned int memory_mib;
	unsigned int vcpus;
	uint64_t layer_size;
};

/*
 * Compare a template with the sandbox described by want on this host: QEMU
 * binary and version, accelerator, kernel path and build id, initramfs,
 * command line, vCPUs, memory, device layout, TSC frequency, read-only image
 * and layer size. A pre-boot template contains the kernel file's bytes, so
 * the file must be unchanged and its pre-patch record must accept the launch
 * (-EINVAL as for a cold boot). Returns 0, or -ESTALE with a message naming
 * the first difference and the fix. The vCPU model is checked after QEMU
 * starts, in rund_template_restore().
 */
int rund_template_check(const struct rund_template *tmpl,
			const struct rund_template_want *want, struct rund_error *err);

/*
 * Find a template that rund_template_check() accepts for want: the newest
 * snapshot template, or when none matches, the newest pre-boot template.
 * Returns 0 with it in *tmpl, or -ENOENT.
 */
int rund_template_find(const struct rund_template_want *want,
		       struct rund_template *tmpl, struct rund_error *err);

/*
 * Restore a clone in the QEMU process started with rund_vm_start() from the
 * template's configuration (cfg->memory_path = tmpl->memory_path,
 * memory_share false, incoming true, and for a pre-boot template boot_files
 * with the template's kernel and initramfs): check x-ignore-shared and the
 * vCPU model, load the device state and resume the guest. A snapshot clone
 * then waits for rund_template_personalize(); a pre-boot clone boots as a
 * cold boot does and sends READY. q is connected to the QEMU's QMP socket.
 * Timing in *restore_ms (may be NULL).
 */
int rund_template_restore(const struct rund_template *tmpl, struct rund_qmp *q,
			  int timeout_ms, double *restore_ms, struct rund_error *err);

/*
 * Hand a restored guest its identity (sandbox id, hostname, a fresh boot id,
 * the host's CLOCK_REALTIME and 64 bytes of entropy from getrandom) and ask
 * it to mount its writable layer, then wait for the agent's two ACKs.
 * agent_fd is the host end of the agent port, in blocking or non-blocking
 * mode.
 */
int rund_template_personalize(int agent_fd, const char *sandbox_id, const char *hostname,
			      int timeout_ms, struct rund_error *err);

/* The two halves of rund_template_personalize(), for callers that time them. */
int rund_template_send_identity(int agent_fd, const char *sandbox_id, const char *hostname,
				int timeout_ms, struct rund_error *err);
int rund_template_wait_ack(int agent_fd, const char *what, int timeout_ms,
			   struct rund_error *err);

/*
 * Fill the host-side fields of m that do not need a running QEMU, with the
 * guest command line of a template of kind.
 */
int rund_template_match_fill(struct rund_template_match *m, enum rund_template_kind kind,
			     const struct rund_template_want *want, struct rund_error *err);

#endif /* RUND_TEMPLATE_H */
