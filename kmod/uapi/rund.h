/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rund kernel module interface, shared by rund.ko and userspace.
 *
 * The cgroup pool is driven over the generic netlink family RUND_GENL_NAME.
 * Every request carries top-level RUND_A_* attributes. Replies and
 * notifications carry one RUND_A_SLOT nest per slot (RUND_A_SLOT_*) or one
 * RUND_A_STATS nest (RUND_A_STATS_*). Mutating commands need CAP_NET_ADMIN.
 *
 * Compatibility: new commands, attributes and enum values are only appended.
 * RUND_GENL_VERSION changes when the meaning of an existing one changes.
 */
#ifndef _UAPI_LINUX_RUND_H
#define _UAPI_LINUX_RUND_H

#include <linux/types.h>

#define RUND_GENL_NAME		"rund"
#define RUND_GENL_VERSION	1
/* Multicast group that receives RUND_CMD_SLOT_EVENT on every slot state change. */
#define RUND_GENL_MCGRP_EVENTS	"events"

/* Limits enforced by the netlink policies. */
#define RUND_SANDBOX_ID_MAX	63	/* bytes without the NUL: [A-Za-z0-9_.-], not "." or ".." */
#define RUND_PREFIX_MAX		32	/* slot name prefix, same character set */
#define RUND_PATH_MAX		256	/* pool root path, NUL excluded */
#define RUND_POOL_MAX_SLOTS	65536
#define RUND_POOL_MAX_HIERARCHIES 8	/* RUND_LAYOUT_V1_SPLIT: one per controller */
#define RUND_LEASE_MIN_MS	100
#define RUND_LEASE_MAX_MS	3600000
#define RUND_LEASE_DEFAULT_MS	30000
#define RUND_CPU_PERIOD_MIN_US	1000
#define RUND_CPU_PERIOD_MAX_US	1000000
#define RUND_CPU_PERIOD_DEFAULT_US 100000
#define RUND_CPU_QUOTA_MIN_US	1000
#define RUND_CPU_QUOTA_MAX_US	(1000000ULL * 1000)	/* 1000 CPUs at the max period */
#define RUND_MEMORY_MIN_BYTES	(1ULL << 20)
#define RUND_MEMORY_MAX_BYTES	(1ULL << 52)	/* 4 PiB */
#define RUND_PIDS_MIN		1
#define RUND_PIDS_MAX		4194304	/* PID_MAX_LIMIT on 64-bit */
/* Latency histograms: bucket i counts operations that took [2^i, 2^(i+1)) ns, and the last bucket has no upper bound. */
#define RUND_HIST_BUCKETS	32

enum rund_cmd {
	RUND_CMD_UNSPEC,
	RUND_CMD_POOL_INIT,	/* admin: create the pool's slots */
	RUND_CMD_POOL_RESIZE,	/* admin: grow the pool to RUND_A_POOL_SIZE slots */
	RUND_CMD_POOL_DESTROY,	/* admin: remove every slot; EBUSY while any is claimed or draining */
	RUND_CMD_ACQUIRE,	/* admin: claim an idle slot for RUND_A_SANDBOX_ID */
	RUND_CMD_ATTACH,	/* admin: move RUND_A_PID into the sandbox's slot */
	RUND_CMD_RELEASE,	/* admin: kill the sandbox's processes and drain the slot */
	RUND_CMD_SLOT_GET,	/* one slot by RUND_A_SANDBOX_ID or RUND_A_INDEX; dump: all slots */
	RUND_CMD_STATS_GET,	/* pool configuration, counts per state, histograms, failures */
	RUND_CMD_SLOT_EVENT,	/* notification only, on RUND_GENL_MCGRP_EVENTS */
	__RUND_CMD_MAX,
};
#define RUND_CMD_MAX (__RUND_CMD_MAX - 1)

enum rund_layout {
	RUND_LAYOUT_UNSPEC,
	RUND_LAYOUT_V2,		/* cgroup v2: one directory per slot */
	RUND_LAYOUT_V1,		/* v1 with the controllers co-mounted: one directory per slot */
	RUND_LAYOUT_V1_SPLIT,	/* v1, one hierarchy per controller: one directory per hierarchy per slot */
	__RUND_LAYOUT_MAX,
};
#define RUND_LAYOUT_MAX (__RUND_LAYOUT_MAX - 1)

/* Controller bits for RUND_A_POOL_CONTROLLERS and RUND_A_HIER_CONTROLLERS. */
#define RUND_CTRL_MEMORY	(1U << 0)
#define RUND_CTRL_CPU		(1U << 1)
#define RUND_CTRL_PIDS		(1U << 2)
#define RUND_CTRL_FREEZER	(1U << 3)	/* v1 only; required there to kill a slot */
#define RUND_CTRL_ALL		(RUND_CTRL_MEMORY | RUND_CTRL_CPU | RUND_CTRL_PIDS | RUND_CTRL_FREEZER)

enum rund_slot_state {
	RUND_SLOT_IDLE,
	RUND_SLOT_CLAIMED,
	RUND_SLOT_DRAINING,	/* released: processes being killed, limits reset */
	RUND_SLOT_BROKEN,	/* draining failed; kept out of the idle list */
	__RUND_SLOT_STATE_MAX,
};
#define RUND_SLOT_STATE_MAX (__RUND_SLOT_STATE_MAX - 1)

/* RUND_A_ACQUIRE_FLAGS */
#define RUND_ACQUIRE_F_SOCKET_BOUND	(1U << 0)	/* release when the requesting socket closes */
#define RUND_ACQUIRE_F_ALL		RUND_ACQUIRE_F_SOCKET_BOUND

/* Reason for a slot state change (RUND_A_EVENT_REASON). */
enum rund_event_reason {
	RUND_EVENT_UNSPEC,
	RUND_EVENT_ACQUIRED,
	RUND_EVENT_RELEASED,		/* explicit RUND_CMD_RELEASE */
	RUND_EVENT_SOCKET_CLOSED,	/* socket-bound claim whose socket closed */
	RUND_EVENT_EMPTIED,		/* the slot had processes and became empty */
	RUND_EVENT_LEASE_EXPIRED,	/* never populated within the lease */
	RUND_EVENT_IDLE,		/* draining finished, slot back in the idle list */
	RUND_EVENT_DRAIN_FAILED,	/* draining failed, slot marked broken */
	RUND_EVENT_POOL_DESTROYED,
	__RUND_EVENT_MAX,
};
#define RUND_EVENT_MAX (__RUND_EVENT_MAX - 1)

/* Operations with a latency histogram (RUND_A_OPSTAT_OP). */
enum rund_op {
	RUND_OP_ACQUIRE,
	RUND_OP_ATTACH,
	RUND_OP_RELEASE,
	RUND_OP_DRAIN,		/* kill + wait for empty + reset, in the worker */
	__RUND_OP_MAX,
};
#define RUND_OP_MAX (__RUND_OP_MAX - 1)

/* Failure counters (RUND_A_FAIL_KIND). */
enum rund_fail {
	RUND_FAIL_EXHAUSTED,	/* acquire with no idle slot */
	RUND_FAIL_DUPLICATE,	/* acquire of an id already claimed */
	RUND_FAIL_NOT_FOUND,	/* attach/release/get of an unknown id */
	RUND_FAIL_LIMITS,	/* writing a limit file failed */
	RUND_FAIL_RENAME,	/* v1 rename to or from the sandbox id failed */
	RUND_FAIL_ATTACH,	/* writing cgroup.procs failed */
	RUND_FAIL_KILL,
	RUND_FAIL_DRAIN_TIMEOUT,/* processes did not exit in time */
	__RUND_FAIL_MAX,
};
#define RUND_FAIL_MAX (__RUND_FAIL_MAX - 1)

enum rund_attr {
	RUND_A_UNSPEC,
	RUND_A_POOL_LAYOUT,		/* u32, enum rund_layout */
	RUND_A_POOL_ROOT,		/* string: pool root directory (V2 and V1 layouts) */
	RUND_A_POOL_HIERARCHIES,	/* nest of RUND_A_HIER entries (V1_SPLIT layout) */
	RUND_A_POOL_SIZE,		/* u32, 1..RUND_POOL_MAX_SLOTS */
	RUND_A_POOL_PREFIX,		/* string: slot directory prefix, default "slot" */
	RUND_A_POOL_CONTROLLERS,	/* u32, RUND_CTRL_* bits */
	RUND_A_POOL_LEASE_MS,		/* u32: lease of a never-populated claim */
	RUND_A_SANDBOX_ID,		/* string, RUND_SANDBOX_ID_MAX */
	RUND_A_INDEX,			/* u32: slot index (RUND_CMD_SLOT_GET) */
	RUND_A_PID,			/* u32 */
	RUND_A_ACQUIRE_FLAGS,		/* u32, RUND_ACQUIRE_F_* */
	RUND_A_MEMORY_MAX,		/* u64 bytes; absent: unlimited */
	RUND_A_CPU_QUOTA_US,		/* u64 microseconds per period; absent: unlimited */
	RUND_A_CPU_PERIOD_US,		/* u32 microseconds */
	RUND_A_PIDS_MAX,		/* u32; absent: unlimited */
	RUND_A_SLOT,			/* nest: RUND_A_SLOT_* (replies, dumps, events) */
	RUND_A_STATS,			/* nest: RUND_A_STATS_* (stats reply) */
	RUND_A_EVENT_REASON,		/* u32, enum rund_event_reason (events) */
	RUND_A_PAD,
	__RUND_A_MAX,
};
#define RUND_A_MAX (__RUND_A_MAX - 1)

/* One hierarchy of a V1_SPLIT pool, inside RUND_A_POOL_HIERARCHIES. */
enum rund_hier_attr {
	RUND_A_HIER_UNSPEC,
	RUND_A_HIER,			/* nest: RUND_A_HIER_PATH + RUND_A_HIER_CONTROLLERS */
	RUND_A_HIER_PATH,		/* string: pool root directory in that hierarchy */
	RUND_A_HIER_CONTROLLERS,	/* u32, RUND_CTRL_* served by that hierarchy */
	__RUND_A_HIER_MAX,
};
#define RUND_A_HIER_MAX (__RUND_A_HIER_MAX - 1)

enum rund_slot_attr {
	RUND_A_SLOT_UNSPEC,
	RUND_A_SLOT_INDEX,		/* u32 */
	RUND_A_SLOT_STATE,		/* u32, enum rund_slot_state */
	RUND_A_SLOT_SANDBOX_ID,		/* string, claimed slots only */
	RUND_A_SLOT_PATH,		/* string: directory in the first hierarchy */
	RUND_A_SLOT_OWNER_PORTID,	/* u32, socket-bound claims only */
	RUND_A_SLOT_FLAGS,		/* u32, RUND_ACQUIRE_F_* */
	RUND_A_SLOT_CLAIMED_NS,		/* u64, ktime_get_ns() at claim */
	RUND_A_SLOT_POPULATED,		/* u8: processes were seen in the slot since the claim */
	RUND_A_SLOT_MEMORY_MAX,		/* u64 */
	RUND_A_SLOT_CPU_QUOTA_US,	/* u64 */
	RUND_A_SLOT_CPU_PERIOD_US,	/* u32 */
	RUND_A_SLOT_PIDS_MAX,		/* u32 */
	RUND_A_SLOT_PAD,
	__RUND_A_SLOT_MAX,
};
#define RUND_A_SLOT_MAX (__RUND_A_SLOT_MAX - 1)

enum rund_stats_attr {
	RUND_A_STATS_UNSPEC,
	RUND_A_STATS_LAYOUT,		/* u32, enum rund_layout; RUND_LAYOUT_UNSPEC: no pool */
	RUND_A_STATS_SIZE,		/* u32: total slots */
	RUND_A_STATS_IDLE,		/* u32 */
	RUND_A_STATS_CLAIMED,		/* u32 */
	RUND_A_STATS_DRAINING,		/* u32 */
	RUND_A_STATS_BROKEN,		/* u32 */
	RUND_A_STATS_CONTROLLERS,	/* u32 */
	RUND_A_STATS_LEASE_MS,		/* u32 */
	RUND_A_STATS_OP,		/* nest, one per enum rund_op: RUND_A_OPSTAT_* */
	RUND_A_STATS_FAIL,		/* nest, one per enum rund_fail: RUND_A_FAIL_* */
	RUND_A_STATS_PAD,
	RUND_A_STATS_PREFIX,		/* string */
	RUND_A_STATS_ROOT,		/* string: first hierarchy's pool root */
	__RUND_A_STATS_MAX,
};
#define RUND_A_STATS_MAX (__RUND_A_STATS_MAX - 1)

enum rund_opstat_attr {
	RUND_A_OPSTAT_UNSPEC,
	RUND_A_OPSTAT_OP,		/* u32, enum rund_op */
	RUND_A_OPSTAT_COUNT,		/* u64 */
	RUND_A_OPSTAT_FAILED,		/* u64 */
	RUND_A_OPSTAT_HIST,		/* binary: RUND_HIST_BUCKETS x __u64 */
	RUND_A_OPSTAT_PAD,
	__RUND_A_OPSTAT_MAX,
};
#define RUND_A_OPSTAT_MAX (__RUND_A_OPSTAT_MAX - 1)

enum rund_fail_attr {
	RUND_A_FAIL_UNSPEC,
	RUND_A_FAIL_KIND,		/* u32, enum rund_fail */
	RUND_A_FAIL_COUNT,		/* u64 */
	RUND_A_FAIL_PAD,
	__RUND_A_FAIL_MAX,
};
#define RUND_A_FAIL_MAX (__RUND_A_FAIL_MAX - 1)

/*
 * Writable-layer fast path: ioctls on the root-only misc device /dev/rund.
 *
 * The module keeps a pool of open-but-unlinked reflink clones per registered
 * layer image and hands one out as a new file descriptor. Every structure has
 * reserved fields that must be zero, and the module rejects anything else
 * with EINVAL so that they can gain a meaning later.
 */
#include <linux/ioctl.h>

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

#endif /* _UAPI_LINUX_RUND_H */
