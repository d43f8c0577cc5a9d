// SPDX-License-Identifier: GPL-2.0
/*
 * Pool statistics: per-CPU counters and log2 latency histograms, summed
 * on request, so that counting adds no shared cache line to a claim.
 */
#include <linux/log2.h>
#include <linux/ktime.h>
#include <linux/percpu.h>
#include <linux/string.h>

#include "pool.h"

/* Counts one run of @op that started at @start_ns and ended now with @err. */
void rund_stats_op(struct rund_pool *pool, enum rund_op op, u64 start_ns, int err)
{
	u64 delta = ktime_get_ns() - start_ns;
	unsigned int bucket = delta ? ilog2(delta) : 0;

	if (bucket >= RUND_HIST_BUCKETS)
		bucket = RUND_HIST_BUCKETS - 1;

	this_cpu_inc(pool->stats->op[op].count);
	this_cpu_inc(pool->stats->op[op].hist[bucket]);
	if (err)
		this_cpu_inc(pool->stats->op[op].failed);
}

void rund_stats_fail(struct rund_pool *pool, enum rund_fail kind)
{
	this_cpu_inc(pool->stats->fail[kind]);
}

/* Adds up every CPU's counters into @sum. Counters read mid-update may lag by one. */
void rund_stats_sum(struct rund_pool *pool, struct rund_stats *sum)
{
	int cpu, op, i;

	memset(sum, 0, sizeof(*sum));
	for_each_possible_cpu(cpu) {
		const struct rund_stats *pcpu = per_cpu_ptr(pool->stats, cpu);

		for (op = 0; op < __RUND_OP_MAX; op++) {
			sum->op[op].count += pcpu->op[op].count;
			sum->op[op].failed += pcpu->op[op].failed;
			for (i = 0; i < RUND_HIST_BUCKETS; i++)
				sum->op[op].hist[i] += pcpu->op[op].hist[i];
		}
		for (i = 0; i < __RUND_FAIL_MAX; i++)
			sum->fail[i] += pcpu->fail[i];
	}
}
