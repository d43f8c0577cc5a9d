/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cgroup slot pool: shared definitions of pool.c, slot.c, stats.c and genl.c.
 *
 * Lock order: pool->rwsem -> pool->cfg_mutex -> slot->op_lock -> pool->lock.
 */
#ifndef RUND_KMOD_POOL_H
#define RUND_KMOD_POOL_H

#include <linux/hashtable.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/path.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "uapi/rund.h"

/* xarray marks on pool->slots, set and cleared under pool->lock. */
#define RUND_MARK_CLAIMED	XA_MARK_0	/* state == RUND_SLOT_CLAIMED */
#define RUND_MARK_BOUND		XA_MARK_1	/* claimed with RUND_ACQUIRE_F_SOCKET_BOUND */

#define RUND_SCAN_INTERVAL_MS	100
#define RUND_DRAIN_TIMEOUT_MS	10000
#define RUND_SLOT_NAME_MAX	(RUND_PREFIX_MAX + 12)

/* One cgroup hierarchy the pool lives in: the pool root directory there. */
struct rund_hier {
	struct path root;	/* pinned pool root directory */
	char path[RUND_PATH_MAX + 1];
	u32 controllers;	/* RUND_CTRL_* served by this hierarchy */
};

/* Limits of a claim. Zero means unlimited (pids, memory, quota). */
struct rund_limits {
	u64 memory_max;
	u64 cpu_quota_us;
	u32 cpu_period_us;
	u32 pids_max;
};

/* Open cgroup files of one slot in one hierarchy, NULL where the hierarchy lacks the controller. */
struct rund_slot_dir {
	struct dentry *dentry;	/* slot directory, child of hier->root.dentry */
	struct file *procs;
	struct file *memory;	/* memory.max or memory.limit_in_bytes */
	struct file *cpu;	/* cpu.max or cpu.cfs_quota_us */
	struct file *cpu_period;/* v1: cpu.cfs_period_us */
	struct file *pids;	/* pids.max */
	struct file *freezer;	/* v1: freezer.state */
	struct file *kill;	/* v2: cgroup.kill */
	struct file *events;	/* v2: cgroup.events */
	bool renamed;		/* v1: named after the sandbox id, not the slot name */
};

struct rund_slot {
	u32 index;
	char name[RUND_SLOT_NAME_MAX + 1];	/* "<prefix>-<index>", immutable */

	/* Protected by pool->lock. */
	enum rund_slot_state state;
	struct list_head idle_node;		/* on pool->idle while idle */
	struct hlist_node id_node;		/* in pool->ids while claimed */
	u64 claim_seq;				/* bumped on every claim */
	char sandbox_id[RUND_SANDBOX_ID_MAX + 1];
	u32 flags;				/* RUND_ACQUIRE_F_* */
	u32 owner_portid;
	u64 claimed_ns;
	bool populated;
	enum rund_event_reason release_reason;
	struct rund_limits limits;

	/*
	 * Serializes the slow work on the slot's cgroup files: limit writes
	 * and renames at acquire, attach, kill and drain.
	 */
	struct mutex op_lock;
	struct rund_slot_dir dirs[RUND_POOL_MAX_HIERARCHIES];	/* under op_lock */
	struct work_struct drain_work;
	struct rund_pool *pool;
};

/* Per-CPU statistics of one operation. */
struct rund_opstat {
	u64 count;
	u64 failed;
	u64 hist[RUND_HIST_BUCKETS];
};

struct rund_stats {
	struct rund_opstat op[__RUND_OP_MAX];
	u64 fail[__RUND_FAIL_MAX];
};

struct rund_pool {
	/*
	 * Read-held by every operation that looks up slots. Write-held by
	 * init and destroy, which create the configuration and free slots.
	 */
	struct rw_semaphore rwsem;
	/* Serializes init, resize and destroy, and so the growth of nr_slots. */
	struct mutex cfg_mutex;

	/* Configuration: written under rwsem held for write, constant otherwise. */
	enum rund_layout layout;
	u32 controllers;
	u32 lease_ms;
	char prefix[RUND_PREFIX_MAX + 1];
	struct rund_hier hier[RUND_POOL_MAX_HIERARCHIES];
	u32 nr_hier;

	/* Slots by index. Entries are stored under cfg_mutex and erased under rwsem held for write. */
	struct xarray slots;

	/*
	 * Protects the idle list, the id table, every slot's state fields,
	 * the counters below and the xarray marks. Held only for list and
	 * table operations, never across file I/O.
	 */
	spinlock_t lock;
	struct list_head idle;
	DECLARE_HASHTABLE(ids, 12);
	u32 nr_slots;
	u32 nr_state[__RUND_SLOT_STATE_MAX];

	struct workqueue_struct *wq;	/* drain works and the scanner */
	struct delayed_work scan_work;
	struct rund_stats __percpu *stats;
};

extern struct rund_pool rund_pool;

/* pool.c */
int rund_pool_setup(void);
void rund_pool_teardown(void);
struct rund_pool_config {
	enum rund_layout layout;
	u32 size;
	u32 controllers;
	u32 lease_ms;
	const char *prefix;
	u32 nr_hier;
	struct {
		const char *path;
		u32 controllers;
	} hier[RUND_POOL_MAX_HIERARCHIES];
};
int rund_pool_init(const struct rund_pool_config *cfg, struct netlink_ext_ack *extack);
int rund_pool_resize(u32 size, struct netlink_ext_ack *extack);
int rund_pool_destroy(struct netlink_ext_ack *extack);
bool rund_pool_active(struct rund_pool *pool);
struct rund_slot *rund_slot_find_locked(struct rund_pool *pool, const char *sandbox_id);
struct rund_slot_info;
int rund_slot_get(const char *sandbox_id, u32 index, struct rund_slot_info *info);

/* slot.c */
struct rund_claim {
	const char *sandbox_id;
	struct rund_limits limits;
	u32 flags;
	u32 portid;
};
int rund_slot_acquire(const struct rund_claim *claim, struct rund_slot_info *info,
		      struct netlink_ext_ack *extack);
int rund_slot_attach(const char *sandbox_id, pid_t pid, struct netlink_ext_ack *extack);
int rund_slot_release(const char *sandbox_id, struct netlink_ext_ack *extack);
void rund_slot_release_owner(u32 portid);
void rund_slot_drain_work(struct work_struct *work);
void rund_pool_scan_work(struct work_struct *work);
int rund_slot_write_limits(struct rund_pool *pool, struct rund_slot *slot,
			   const struct rund_limits *limits);

/* Copy of a slot's state for replies and events, taken under pool->lock. */
struct rund_slot_info {
	u32 index;
	enum rund_slot_state state;
	char sandbox_id[RUND_SANDBOX_ID_MAX + 1];
	char path[RUND_PATH_MAX + RUND_SANDBOX_ID_MAX + 2];
	u32 flags;
	u32 owner_portid;
	u64 claimed_ns;
	bool populated;
	struct rund_limits limits;
};
void rund_slot_info_locked(struct rund_pool *pool, struct rund_slot *slot,
			   struct rund_slot_info *info);

/* stats.c */
void rund_stats_op(struct rund_pool *pool, enum rund_op op, u64 start_ns, int err);
void rund_stats_fail(struct rund_pool *pool, enum rund_fail kind);
void rund_stats_sum(struct rund_pool *pool, struct rund_stats *sum);

/* genl.c */
int rund_genl_register(void);
void rund_genl_unregister(void);
void rund_genl_notify(const struct rund_slot_info *info, enum rund_event_reason reason);

#endif /* RUND_KMOD_POOL_H */
