/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Backend interface behind struct rund_pool (pool.c dispatches to it). */
#ifndef RUND_POOL_INTERNAL_H
#define RUND_POOL_INTERNAL_H

#include "pool.h"

struct rund_pool_ops {
	int (*init)(struct rund_pool *pool, const struct rund_pool_config *cfg,
		    struct rund_error *err);
	int (*resize)(struct rund_pool *pool, uint32_t size, struct rund_error *err);
	int (*destroy)(struct rund_pool *pool, bool force, struct rund_error *err);
	int (*acquire)(struct rund_pool *pool, const char *sandbox_id,
		       const struct rund_pool_limits *limits, uint32_t flags,
		       struct rund_slot_info *info, struct rund_error *err);
	int (*attach)(struct rund_pool *pool, const char *sandbox_id, pid_t pid,
		      struct rund_error *err);
	int (*release)(struct rund_pool *pool, const char *sandbox_id,
		       struct rund_error *err);
	/* sandbox_id NULL: look the slot up by index. */
	int (*query)(struct rund_pool *pool, const char *sandbox_id, uint32_t index,
		     struct rund_slot_info *info, struct rund_error *err);
	int (*list)(struct rund_pool *pool, rund_pool_slot_fn fn, void *arg,
		    struct rund_error *err);
	int (*stats)(struct rund_pool *pool, struct rund_pool_stats *stats,
		     struct rund_error *err);
	int (*scan)(struct rund_pool *pool, struct rund_error *err);
	int (*mark_populated)(struct rund_pool *pool, const char *sandbox_id,
			      struct rund_error *err);
	int (*slot_dirs)(struct rund_pool *pool, const char *sandbox_id,
			 struct rund_slot_dirs *dirs, struct rund_error *err);
	int (*subscribe)(struct rund_pool *pool, struct rund_error *err);
	int (*next_event)(struct rund_pool *pool, int timeout_ms,
			  struct rund_pool_event *ev, struct rund_error *err);
	void (*close)(struct rund_pool *pool);
};

struct rund_pool {
	enum rund_pool_backend backend;
	const struct rund_pool_ops *ops;
	void *priv;
};

extern const struct rund_pool_ops rund_pool_cgroupfs_ops;
extern const struct rund_pool_ops rund_pool_module_ops;

/* Open the backends; the module's returns -ENOENT when the family is absent. */
int rund_pool_cgroupfs_open(struct rund_pool *pool, const char *state_dir,
			    struct rund_error *err);
int rund_pool_module_open(struct rund_pool *pool, struct rund_error *err);

/* Histogram bucket of a duration: floor(log2(ns)), capped at the last bucket. */
static inline unsigned int rund_pool_hist_bucket(uint64_t ns)
{
	unsigned int b;

	if (ns < 2)
		return 0;
	b = 63 - __builtin_clzll(ns);
	return b < RUND_HIST_BUCKETS ? b : RUND_HIST_BUCKETS - 1;
}

#endif /* RUND_POOL_INTERNAL_H */
