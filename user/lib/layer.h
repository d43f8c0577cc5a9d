/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writable layers: anonymous copy-on-write clones of a layer image.
 *
 * A layer image is an ext4 filesystem image written once, unfragmented, on an
 * XFS filesystem with reflink. Each sandbox gets a clone of it as an open
 * descriptor of an unlinked file (O_TMPFILE + FICLONE), so the clone's space
 * returns by itself when the last descriptor closes. When the rund module is
 * loaded and the image is registered with it, a clone comes from the
 * module's pool of ready clones instead.
 */
#ifndef RUND_LAYER_H
#define RUND_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define RUND_LAYER_DIR "/var/lib/rund/layers"
#define RUND_LAYER_DEFAULT_IMAGE RUND_LAYER_DIR "/debian.ext4"
#define RUND_LAYER_DEVICE "/dev/rund"

/*
 * Maximum extents of a layer image that `layer check` accepts. A
 * reflink clone costs time per extent: 4 extents clone in about 33 us, 1,923
 * extents in 27-61 ms (XFS, 64 MiB image). An image written by `layer create`
 * on a healthy filesystem has a handful.
 */
#define RUND_LAYER_MAX_EXTENTS 32

enum rund_layer_source {
	RUND_LAYER_SOURCE_MODULE,	/* pre-made clone from the module's pool */
	RUND_LAYER_SOURCE_REFLINK,	/* O_TMPFILE + FICLONE in userspace */
	RUND_LAYER_SOURCE_COPY,		/* O_TMPFILE + full copy (no reflink) */
};

/* Copy the image when its filesystem has no reflink, instead of failing. */
#define RUND_LAYER_ALLOW_COPY 0x1
/* Do not ask the module even when /dev/rund exists. */
#define RUND_LAYER_NO_MODULE 0x2

/*
 * Create an anonymous writable clone of image_path and return an O_RDWR,
 * O_CLOEXEC descriptor of it, or -errno with a message in err. The source
 * used is stored in *used (may be NULL). The layer filesystem must have at
 * least the image's size free, which is what one layer can grow to.
 */
int rund_layer_clone(const char *image_path, unsigned int flags,
		     enum rund_layer_source *used, struct rund_error *err);

const char *rund_layer_source_name(enum rund_layer_source source);

/* Features of the filesystem that contains a layer directory. */
struct rund_layer_fs {
	char type[16];		/* "xfs", "ext4", "tmpfs", or the magic in hex */
	bool is_xfs;
	bool reflink;		/* FICLONE works between two files there */
	bool tmpfile;		/* O_TMPFILE works there */
	uint64_t size_bytes;
	uint64_t free_bytes;	/* available to unprivileged writers */
};

/* Probe the filesystem of directory dir by cloning an empty O_TMPFILE file. */
int rund_layer_fs_probe(const char *dir, struct rund_layer_fs *fs,
			struct rund_error *err);

/*
 * Return 0 when dir is on XFS with reflink, else -EOPNOTSUPP with a message
 * that names the fix.
 */
int rund_layer_require_reflink(const char *dir, struct rund_error *err);

/* Count the extents of the file open at fd with FIEMAP. */
int rund_layer_count_extents(int fd, unsigned int *extents,
			     struct rund_error *err);

/* Space of the layer filesystem as seen by a start. */
struct rund_layer_space {
	uint64_t image_bytes;	/* apparent size: the most one layer can use */
	uint64_t free_bytes;	/* usable: the smaller of the two below when on a loop device */
	uint64_t size_bytes;
	uint64_t layers_fit;	/* free_bytes / image_bytes */
	uint64_t fs_free_bytes;	/* free on the layer filesystem itself */
	/*
	 * When the layer filesystem is a loop device, its backing file and
	 * the free space of the filesystem holding that file: a sparse
	 * backing file can run out of room before the layer filesystem does.
	 */
	char backing_file[256];
	uint64_t backing_free_bytes;
};

/*
 * Report the layer filesystem's space for image_path, and fail with -ENOSPC
 * when not even one fully written layer would fit.
 */
int rund_layer_space(const char *image_path, struct rund_layer_space *space,
		     struct rund_error *err);

/* Module fast path (/dev/rund); every call needs root. */

/* Open /dev/rund; -ENOENT with a message when the module is not loaded. */
int rund_layer_module_open(struct rund_error *err);

/* Register image_path with the module and return its id (1 or more). */
int rund_layer_module_register(int devfd, const char *image_path,
			       struct rund_error *err);

int rund_layer_module_unregister(int devfd, uint32_t id,
				 struct rund_error *err);

int rund_layer_module_set_depth(int devfd, uint32_t id, uint32_t depth,
				struct rund_error *err);

/*
 * Take a clone of image id from the module (image_fd names the image when
 * id is 0) and return its descriptor. *pooled is set to whether it came from
 * the pool (may be NULL).
 */
int rund_layer_module_clone(int devfd, uint32_t id, int image_fd,
			    bool *pooled, struct rund_error *err);

#endif /* RUND_LAYER_H */
