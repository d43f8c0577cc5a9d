/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lite cgroup pool: pre-created cgroups claimed per sandbox.
 *
 * One API, two backends:
 *  - module: the rund kernel module, driven over the generic netlink family
 *    "rund" (libnl-genl-3). Claims can be bound to the requesting socket.
 *  - cgroupfs: the same pool in userspace, for hosts without the module. Its
 *    state lives in a shared file under the state directory (default
 *    /run/rund/pool), locked with flock() only around the list operation, so
 *    every process on the node shares one pool without a daemon.
 *
 * A slot is idle, claimed (by a sandbox id), draining (released: processes
 * being killed, limits reset) or broken (draining failed). A claim returns to
 * idle when it is released explicitly, when its cgroup had processes and
 * became empty, when it was never populated within the lease, or, for a bound
 * claim, when its owner goes away. The module notices these at once. The
 * cgroupfs backend has no daemon, so the next pool operation that scans
 * notices them instead: see rund_pool_scan().
 */
#ifndef RUND_POOL_H
#define RUND_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "rund.h"

#define RUND_POOL_STATE_DIR "/run/rund/pool"
#define RUND_POOL_DEFAULT_NAME "rund"
#define RUND_POOL_DEFAULT_SIZE 64
#define RUND_POOL_DEFAULT_PREFIX "slot"

/* Scan period of the cgroupfs backend, see rund_pool_scan(). */
#define RUND_POOL_SCAN_INTERVAL_MS 1000

enum rund_pool_backend {
	RUND_POOL_BACKEND_AUTO,		/* module when the family resolves, else cgroupfs */
	RUND_POOL_BACKEND_MODULE,
	RUND_POOL_BACKEND_CGROUPFS,
};

/*
 * Claim flags. RUND_POOL_ACQUIRE_BOUND ties the claim to its owner: the
 * requesting netlink socket for the module, the requesting process (pid and
 * start time) for cgroupfs. A claim without it is one-shot: it outlives its
 * requester and returns to idle once its cgroup has had processes and is
 * empty again, or when the lease expires before any process arrived.
 */
#define RUND_POOL_ACQUIRE_BOUND RUND_ACQUIRE_F_SOCKET_BOUND
#define RUND_POOL_ACQUIRE_ALL RUND_POOL_ACQUIRE_BOUND

struct rund_pool_hierarchy {
	char path[RUND_PATH_MAX + 1];	/* pool root directory in this hierarchy */
	uint32_t controllers;		/* RUND_CTRL_* served by this hierarchy */
};

struct rund_pool_config {
	enum rund_layout layout;
	/*
	 * V2 and V1: the pool root directory. V1_SPLIT: one entry per
	 * hierarchy. rund_pool_config_resolve() fills these from a name.
	 */
	uint32_t nr_hierarchies;
	struct rund_pool_hierarchy hier[RUND_POOL_MAX_HIERARCHIES];
	uint32_t size;
	char prefix[RUND_PREFIX_MAX + 1];
	uint32_t controllers;		/* RUND_CTRL_* */
	uint32_t lease_ms;		/* 0: RUND_LEASE_DEFAULT_MS */
};

/* Limits of one claim; 0 leaves a limit unset (unlimited). */
struct rund_pool_limits {
	uint64_t memory_max;		/* bytes */
	uint64_t cpu_quota_us;		/* microseconds per period */
	uint32_t cpu_period_us;		/* 0: RUND_CPU_PERIOD_DEFAULT_US */
	uint32_t pids_max;
};

struct rund_slot_info {
	uint32_t index;
	enum rund_slot_state state;
	char sandbox_id[RUND_SANDBOX_ID_MAX + 1];	/* claimed slots only */
	char path[RUND_PATH_MAX + 1];	/* directory in the first hierarchy */
	uint32_t flags;			/* RUND_POOL_ACQUIRE_* */
	uint32_t owner;			/* module: socket port id; cgroupfs: pid */
	uint64_t claimed_ns;		/* CLOCK_MONOTONIC at claim */
	bool populated;			/* processes were seen since the claim */
	struct rund_pool_limits limits;
};

struct rund_pool_opstat {
	uint64_t count;
	uint64_t failed;
	uint64_t hist[RUND_HIST_BUCKETS];	/* bucket i: [2^i, 2^(i+1)) ns */
};

struct rund_pool_stats {
	enum rund_layout layout;	/* RUND_LAYOUT_UNSPEC: no pool */
	uint32_t size;
	uint32_t idle, claimed, draining, broken;
	uint32_t controllers;
	uint32_t lease_ms;
	char prefix[RUND_PREFIX_MAX + 1];
	char root[RUND_PATH_MAX + 1];	/* first hierarchy's pool root */
	struct rund_pool_opstat op[RUND_OP_MAX + 1];
	uint64_t fail[RUND_FAIL_MAX + 1];
	/* cgroupfs only: automatic releases by reason (enum rund_event_reason). */
	uint64_t auto_released[RUND_EVENT_MAX + 1];
};

/*
 * Placement targets of a claimed slot. V2: dir_fd is an O_RDONLY
 * directory descriptor for clone3(CLONE_INTO_CGROUP). V1 layouts: procs[]
 * are the slot's cgroup.procs files, one per hierarchy; a process writes "0"
 * to each to move itself (rund_pool_enter_dirs()).
 */
struct rund_slot_dirs {
	enum rund_layout layout;
	int dir_fd;			/* V2 only, else -1 */
	uint32_t nr_procs;
	char procs[RUND_POOL_MAX_HIERARCHIES][RUND_PATH_MAX + 64];
};

/* A slot state change from the module's multicast group. */
struct rund_pool_event {
	enum rund_event_reason reason;
	struct rund_slot_info slot;
};

struct rund_pool;

/*
 * Open a handle on the node's pool. AUTO picks the module when the "rund"
 * family resolves, else cgroupfs. state_dir names the cgroupfs backend's
 * state directory (NULL: $RUND_POOL_STATE_DIR, else RUND_POOL_STATE_DIR);
 * the module ignores it. The pool need not exist yet (see
 * rund_pool_init()). A handle may be shared by threads.
 */
int rund_pool_open(struct rund_pool **pool, enum rund_pool_backend backend,
		   const char *state_dir, struct rund_error *err);
void rund_pool_close(struct rund_pool *pool);
enum rund_pool_backend rund_pool_backend(const struct rund_pool *pool);

/*
 * Fill cfg's layout and hierarchy paths for a pool root called name (a path
 * relative to each hierarchy's mount point, e.g. "rund"), reading the cgroup
 * mounts from /proc/self/mountinfo. layout UNSPEC picks V2 when the whole
 * tree is cgroup2 with the controllers, V1 when the v1 controllers share one
 * hierarchy, else V1_SPLIT. V2 on a hybrid host uses the cgroup2 mount even
 * when it has none of the controllers: rund_pool_init() then names the
 * missing ones.
 */
int rund_pool_config_resolve(struct rund_pool_config *cfg, const char *name,
			     enum rund_layout layout, uint32_t controllers,
			     struct rund_error *err);

int rund_pool_init(struct rund_pool *pool, const struct rund_pool_config *cfg,
		   struct rund_error *err);
/* Grow the pool to size slots; shrinking is rejected. */
int rund_pool_resize(struct rund_pool *pool, uint32_t size, struct rund_error *err);
/* Kill every slot's processes and remove the pool; EBUSY while slots are claimed unless force. */
int rund_pool_destroy(struct rund_pool *pool, bool force, struct rund_error *err);

/*
 * Claim an idle slot for sandbox_id and apply limits (NULL: none). On V1
 * layouts the slot's directories are renamed to the sandbox id; on V2 the id
 * is kept in the pool's table. info (may be NULL) receives the slot.
 */
int rund_pool_acquire(struct rund_pool *pool, const char *sandbox_id,
		      const struct rund_pool_limits *limits, uint32_t flags,
		      struct rund_slot_info *info, struct rund_error *err);
/* Move pid (a process, all its threads) into the sandbox's slot. */
int rund_pool_attach(struct rund_pool *pool, const char *sandbox_id, pid_t pid,
		     struct rund_error *err);
/* Kill the slot's processes, wait for it to empty, reset limits, make it idle. */
int rund_pool_release(struct rund_pool *pool, const char *sandbox_id,
		      struct rund_error *err);
int rund_pool_query(struct rund_pool *pool, const char *sandbox_id,
		    struct rund_slot_info *info, struct rund_error *err);
int rund_pool_query_index(struct rund_pool *pool, uint32_t index,
			  struct rund_slot_info *info, struct rund_error *err);

/* Call fn for every slot; a non-zero return from fn stops the walk and is returned. */
typedef int (*rund_pool_slot_fn)(const struct rund_slot_info *info, void *arg);
int rund_pool_list(struct rund_pool *pool, rund_pool_slot_fn fn, void *arg,
		   struct rund_error *err);
int rund_pool_stats(struct rund_pool *pool, struct rund_pool_stats *stats,
		    struct rund_error *err);

/*
 * cgroupfs: return to idle every claim whose bound owner died, whose cgroup
 * had processes and is empty, or whose lease expired, and finish drains that
 * a dead process left half done. attach and release call it once
 * RUND_POOL_SCAN_INTERVAL_MS has passed since the last scan of any process.
 * list, show, stats and an acquire that finds no idle slot always call it.
 * An acquire that finds an idle slot does not scan, to keep the scan's cost
 * off the start of a sandbox.
 * Returns the number of slots reclaimed. The module does this by itself: 0.
 */
int rund_pool_scan(struct rund_pool *pool, struct rund_error *err);

/*
 * Tell the pool that processes were put into the slot by other means than
 * rund_pool_attach() (clone3 into the slot, a launcher that moved itself),
 * so that the slot is released once it empties. The module detects this by
 * itself, and the cgroupfs backend also detects CPU time spent in the slot.
 */
int rund_pool_mark_populated(struct rund_pool *pool, const char *sandbox_id,
			     struct rund_error *err);

/* Open the claimed slot's directory (V2) or name its cgroup.procs files (V1). */
int rund_pool_slot_dirs(struct rund_pool *pool, const char *sandbox_id,
			struct rund_slot_dirs *dirs, struct rund_error *err);
void rund_slot_dirs_close(struct rund_slot_dirs *dirs);
/*
 * Move the calling process into the slot by writing "0" to each cgroup.procs
 * file. Uses only open/write/close, so a child may call it between fork or
 * vfork and exec. Returns 0 or -errno.
 */
int rund_pool_enter_dirs(const struct rund_slot_dirs *dirs);

/*
 * Subscribe to slot state changes (module only; cgroupfs: -EOPNOTSUPP) and
 * wait up to timeout_ms (-1: forever) for the next one. Returns 1 with *ev
 * filled, 0 on timeout.
 */
int rund_pool_subscribe(struct rund_pool *pool, struct rund_error *err);
int rund_pool_next_event(struct rund_pool *pool, int timeout_ms,
			 struct rund_pool_event *ev, struct rund_error *err);

/*
 * A claimed slot that a VMM is about to be born in (rund-helper run).
 *  - v2: the VMM is spawned with clone3(CLONE_INTO_CGROUP) and the slot's
 *    directory descriptor (method "clone_into_cgroup").
 *  - v1 with slot paths: a launcher thread moves itself into the slot (its
 *    tid into each hierarchy's tasks file) right after the claim, ahead of
 *    the spawn. The spawn runs on that thread, so the VMM inherits the slot,
 *    and the thread then moves back to its own cgroups, which keeps the
 *    helper's process out of the slot (method "launcher_thread").
 *  - otherwise (the module's v1-split pool names no per-hierarchy paths):
 *    the VMM is spawned, then moved with rund_pool_attach() (method "attach").
 * The claim is bound to the caller, so it returns to idle if the caller dies.
 */
struct rund_pool_launch {
	struct rund_pool *pool;
	bool claimed;			/* holds a claim now */
	bool used;			/* had a claim, kept for reports after the release */
	enum rund_pool_backend backend;
	char sandbox_id[RUND_SANDBOX_ID_MAX + 1];
	struct rund_slot_info slot;
	struct rund_slot_dirs dirs;
	const char *method;		/* "clone_into_cgroup", "launcher_thread", "attach" or "none" */
	char note[256];			/* why there is no slot, when there is none */
	double claim_ms;
	struct rund_pool_launcher *launcher;	/* v1 launcher thread, NULL otherwise */
};

/*
 * Claim a bound slot for sandbox_id. When no pool is initialised (or the
 * backend is "none"), return 0 with launch->claimed false and the reason in
 * launch->note: the caller runs without a slot.
 */
int rund_pool_launch_claim(struct rund_pool_launch *launch, enum rund_pool_backend backend,
			   bool disabled, const char *sandbox_id,
			   const struct rund_pool_limits *limits, struct rund_error *err);
/* Directory descriptor for clone3(CLONE_INTO_CGROUP), -1 for other methods. */
int rund_pool_launch_cgroup_fd(const struct rund_pool_launch *launch);
/* Run fn(arg) where a child it spawns is born in the slot; returns fn's result. */
int rund_pool_launch_call(struct rund_pool_launch *launch, int (*fn)(void *arg), void *arg,
			  struct rund_error *err);
/* Tell the pool the VMM (pid) was started: attach it or mark the slot populated. */
int rund_pool_launch_spawned(struct rund_pool_launch *launch, pid_t pid,
			     struct rund_error *err);
/* Release the slot (killing what is left in it) and close everything. */
int rund_pool_launch_end(struct rund_pool_launch *launch, struct rund_error *err);

/* Input checks shared by both backends and the CLI. */
int rund_pool_check_id(const char *sandbox_id, struct rund_error *err);
int rund_pool_check_limits(const struct rund_pool_limits *limits,
			   struct rund_error *err);
int rund_pool_check_config(const struct rund_pool_config *cfg,
			   struct rund_error *err);

const char *rund_pool_backend_name(enum rund_pool_backend backend);

/*
 * Read RUND_POOL_BACKEND=auto|module|cgroupfs|none (unset or empty: auto)
 * for launchers. "none" sets *disabled. Returns 0, or -EINVAL for any other
 * value.
 */
int rund_pool_backend_from_env(enum rund_pool_backend *backend, bool *disabled);
const char *rund_pool_layout_name(enum rund_layout layout);
const char *rund_pool_state_name(enum rund_slot_state state);
const char *rund_pool_op_name(enum rund_op op);
const char *rund_pool_fail_name(enum rund_fail fail);
const char *rund_pool_reason_name(enum rund_event_reason reason);
/* Controller names, comma-separated ("memory,cpu"); buf gets "" for 0. */
void rund_pool_controllers_str(uint32_t controllers, char *buf, size_t len);
/* Parse "memory,cpu,pids,freezer", "all" or "none"; -EINVAL names the bad word. */
int rund_pool_controllers_parse(const char *s, uint32_t *controllers,
				struct rund_error *err);

#endif /* RUND_POOL_H */
