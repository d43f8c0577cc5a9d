/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* rund-lockstat's report: reads the BPF maps, names locks and prints them. */
#ifndef RUND_LOCKSTAT_REPORT_H
#define RUND_LOCKSTAT_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#include "ksyms.h"
#include "lockstat.h"

#define LOCKSTAT_MAX_CALLER_PATTERNS 16

enum lockstat_sort {
	LOCKSTAT_SORT_TOTAL,
	LOCKSTAT_SORT_MAX,
	LOCKSTAT_SORT_COUNT,
	LOCKSTAT_SORT_AVG,
};

/* One (lock, flags, stack) aggregate and its symbolized stack. */
struct lockstat_entry {
	struct lockstat_key key;
	struct lockstat_value value;
	__u64 ips[LOCKSTAT_MAX_STACK_DEPTH];
	int depth;
	int caller;	/* index in ips of the first frame outside lock code, or -1 */
};

/* A lock name guessed from the function that waited for it. */
struct lockstat_inference {
	const char *caller;
	enum lockstat_class class;
	const char *lock;
	bool dynamic;	/* a lock inside an allocated object, never a static one */
};

struct lockstat_lock {
	__u64 addr;
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u32 max_tid;
	__u64 hist[LOCKSTAT_HIST_SLOTS];
	struct lockstat_entry **entries;	/* sorted like the locks */
	size_t entry_count;
	const struct ksym *symbol;		/* from kallsyms, or NULL */
	const struct lockstat_inference *inferred;	/* or NULL */
	const char *conflicting_lock;	/* another name some caller suggests */
	bool in_kernel_image;		/* static lock, not heap or per-CPU */
};

struct lockstat_report_options {
	int top_locks;		/* 0: all */
	int top_stacks;		/* 0: all */
	int text_depth;		/* frames per caller stack in text output */
	enum lockstat_sort sort;
	bool histogram;
	const char *caller_patterns[LOCKSTAT_MAX_CALLER_PATTERNS];	/* fnmatch(3) */
	int caller_pattern_count;
};

struct lockstat_report {
	struct lockstat_entry *entries;
	size_t entry_count;
	struct lockstat_entry **entry_pointers;	/* the locks' entries point into this */
	struct lockstat_lock *locks;
	size_t lock_count;
	__u64 total_count;
	__u64 total_ns;
	__u64 filtered_count;	/* waits left out by the caller filter */
	__u64 drops[LOCKSTAT_DROP_COUNT];
	__u64 recursion_misses;	/* program runs the kernel skipped */
	bool bpf_stats;		/* run counts and times below were collected */
	__u64 prog_runs;	/* runs of both programs */
	__u64 prog_run_ns;	/* time spent in both programs */
	double duration_s;
	bool data_symbols;	/* kallsyms lists data objects */
	bool addresses_visible;
	const char *target;	/* what was traced, for the header */
};

/*
 * Reads every aggregate from @stats_fd and its stack from @stacks_fd, applies
 * the caller filter and groups the aggregates per lock. Returns 0 or -errno.
 */
int lockstat_report_collect(struct lockstat_report *report, int stats_fd, int stacks_fd,
			    const struct ksyms *ksyms,
			    const struct lockstat_report_options *options);
void lockstat_report_print_text(FILE *out, const struct lockstat_report *report,
				const struct ksyms *ksyms,
				const struct lockstat_report_options *options);
/* Returns 0, or -ENOMEM when json-c cannot allocate. */
int lockstat_report_print_json(FILE *out, const struct lockstat_report *report,
			       const struct ksyms *ksyms,
			       const struct lockstat_report_options *options);
void lockstat_report_free(struct lockstat_report *report);

/* Returns "mutex", "spin", "rwsem-read", ... for contention_begin @flags. */
const char *lockstat_flags_name(__u32 flags);

#endif /* RUND_LOCKSTAT_REPORT_H */
