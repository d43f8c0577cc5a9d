/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Writable-layer fast path: ioctls on the root-only misc device /dev/rund.
 *
 * The module keeps a pool of open-but-unlinked reflink clones per registered
 * layer image and hands one out as a new file descriptor. Every structure has
 * reserved fields that must be zero; the module rejects anything else with
 * EINVAL so they can gain a meaning later.
 */
#ifndef _UAPI_RUND_LAYER_H
#define _UAPI_RUND_LAYER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define RUND_DEVICE_NAME "rund"
#define RUND_LAYER_IOC_MAGIC 0xd5

/* Pool depth (K) a newly registered image starts with, and the accepted range. */
#define RUND_LAYER_DEPTH_DEFAULT 4
#define RUND_LAYER_DEPTH_MAX 64
/* Registered images per module instance. */
#define RUND_LAYER_IMAGES_MAX 64

/**
 * struct rund_layer_register - register a layer image (RUND_LAYER_IOC_REGISTER)
 * @fd: descriptor of the image (a regular file opened for reading); the
 *	module takes its own reference and keeps it until unregister or unload
 * @id: out: image id, 1 or more
 * @reserved: must be zero
 *
 * The image's directory must accept O_TMPFILE and its filesystem must
 * support reflink. Registering the same inode twice fails with EEXIST.
 */
struct rund_layer_register {
	__s32 fd;
	__u32 id;
	__u64 reserved[2];
};

/**
 * struct rund_layer_depth - set the pool depth K of an image (RUND_LAYER_IOC_SET_DEPTH)
 * @id: image id
 * @depth: clones kept ready, 1 to RUND_LAYER_DEPTH_MAX
 * @reserved: must be zero
 */
struct rund_layer_depth {
	__u32 id;
	__u32 depth;
	__u64 reserved;
};

/**
 * struct rund_layer_clone - take a clone (RUND_LAYER_IOC_CLONE)
 * @id: image id, or 0 to name the image by @image_fd
 * @image_fd: with @id 0, a descriptor of a registered image; ignored otherwise
 * @fd: out: read-write descriptor (O_CLOEXEC) of an unlinked clone, which
 *	belongs to the caller alone and stays valid after the module unloads
 * @flags: out: RUND_LAYER_CLONE_POOLED when the clone came from the pool,
 *	0 when the pool was empty and the clone was made on the spot
 * @reserved: must be zero
 */
struct rund_layer_clone {
	__u32 id;
	__s32 image_fd;
	__s32 fd;
	__u32 flags;
	__u64 reserved;
};

#define RUND_LAYER_CLONE_POOLED 0x1

/**
 * struct rund_layer_stats - counters of one image (RUND_LAYER_IOC_STATS)
 * @id: in: image id, or with RUND_LAYER_STATS_NEXT the lowest id to consider;
 *	out: the id reported
 * @flags: in: RUND_LAYER_STATS_NEXT to report the first image whose id is
 *	@id or more (ENOENT when there is none), for walking every image
 * @depth: out: pool depth K
 * @pooled: out: clones ready in the pool now
 * @dev: out: device of the image (new_encode_dev() encoding, as stat's st_dev)
 * @ino: out: inode number of the image
 * @handed_out: out: clones handed out, from the pool or made on the spot
 * @refills: out: clones the background worker added to the pool
 * @misses: out: requests that found the pool empty
 * @errors: out: clones that failed (on the spot or in the background)
 * @reserved: must be zero on input
 */
struct rund_layer_stats {
	__u32 id;
	__u32 flags;
	__u32 depth;
	__u32 pooled;
	__u64 dev;
	__u64 ino;
	__u64 handed_out;
	__u64 refills;
	__u64 misses;
	__u64 errors;
	__u64 reserved[2];
};

#define RUND_LAYER_STATS_NEXT 0x1

#define RUND_LAYER_IOC_REGISTER _IOWR(RUND_LAYER_IOC_MAGIC, 1, struct rund_layer_register)
#define RUND_LAYER_IOC_UNREGISTER _IOW(RUND_LAYER_IOC_MAGIC, 2, __u32)
#define RUND_LAYER_IOC_SET_DEPTH _IOW(RUND_LAYER_IOC_MAGIC, 3, struct rund_layer_depth)
#define RUND_LAYER_IOC_CLONE _IOWR(RUND_LAYER_IOC_MAGIC, 4, struct rund_layer_clone)
#define RUND_LAYER_IOC_STATS _IOWR(RUND_LAYER_IOC_MAGIC, 5, struct rund_layer_stats)

#endif /* _UAPI_RUND_LAYER_H */
