// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kernel side of rund-lockstat: times each wait between lock:contention_begin
 * and lock:contention_end and adds it to a per-(lock, flags, stack) aggregate.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "lockstat.h"

/* Filters, set by user space before load. Zero means "no filter". */
const volatile __u32 targ_tgid = 0;
const volatile __u32 targ_tid = 0;
const volatile __u64 targ_lock = 0;
const volatile __u32 targ_class_mask = 0;
const volatile bool filter_cgroup = false;

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LOCKSTAT_MAX_ENTRIES);
	__type(key, struct lockstat_wait_key);
	__type(value, struct lockstat_wait);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, LOCKSTAT_MAX_ENTRIES);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, LOCKSTAT_MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

/*
 * A shared hash updated with atomic adds. A per-CPU hash would avoid the
 * atomics but preallocates max_entries values for every CPU, which is
 * hundreds of MiB on a large node.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LOCKSTAT_MAX_ENTRIES);
	__type(key, struct lockstat_key);
	__type(value, struct lockstat_value);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOCKSTAT_DROP_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Zero-filled template for new aggregates, too large for the BPF stack. */
static const struct lockstat_value zero_value;

static void count_drop(__u32 reason)
{
	__u64 *counter = bpf_map_lookup_elem(&drops, &reason);

	if (counter)
		*counter += 1;
}

static void make_wait_key(struct lockstat_wait_key *key, __u32 tid, void *lock)
{
	key->tid = tid;
	/* Every CPU's idle thread has tid 0, and an idle thread never migrates. */
	key->cpu = tid ? 0 : bpf_get_smp_processor_id();
	key->lock = (__u64)lock;
}

static bool wait_is_traced(__u64 pid_tgid, void *lock, unsigned int flags)
{
	if (targ_tgid && (pid_tgid >> 32) != targ_tgid)
		return false;
	if (targ_tid && (__u32)pid_tgid != targ_tid)
		return false;
	if (targ_lock && (__u64)lock != targ_lock)
		return false;
	if (targ_class_mask && !(targ_class_mask & (1U << lockstat_classify(flags))))
		return false;
	if (filter_cgroup && bpf_current_task_under_cgroup(&cgroup_filter, 0) != 1)
		return false;
	return true;
}

static __u32 log2_slot(__u64 ns)
{
	__u32 slot = 0;

	while (ns > 1 && slot < LOCKSTAT_HIST_SLOTS - 1) {
		ns >>= 1;
		slot++;
	}
	return slot;
}

static int record_begin(void *ctx, void *lock, unsigned int flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct lockstat_wait_key key;
	struct lockstat_wait *wait, new_wait;

	if (!wait_is_traced(pid_tgid, lock, flags))
		return 0;

	make_wait_key(&key, (__u32)pid_tgid, lock);

	/*
	 * A mutex reports a second contention_begin when it stops spinning and
	 * goes to sleep: keep the first timestamp and stack so that the wait
	 * covers both phases.
	 */
	wait = bpf_map_lookup_elem(&waits, &key);
	if (wait) {
		wait->flags |= flags;
		return 0;
	}

	new_wait.start_ns = bpf_ktime_get_ns();
	new_wait.flags = flags;
	new_wait.stack_id = bpf_get_stackid(ctx, &stacks, 0);
	if (bpf_map_update_elem(&waits, &key, &new_wait, BPF_NOEXIST))
		count_drop(LOCKSTAT_DROP_WAIT_MAP_FULL);
	return 0;
}

static int record_end(void *lock)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct lockstat_wait_key wait_key;
	struct lockstat_wait *wait;
	struct lockstat_key key = {};
	struct lockstat_value *value;
	__u64 wait_ns;

	make_wait_key(&wait_key, (__u32)pid_tgid, lock);
	wait = bpf_map_lookup_elem(&waits, &wait_key);
	/* No entry: the wait began before attaching, or was filtered out. */
	if (!wait)
		return 0;

	wait_ns = bpf_ktime_get_ns() - wait->start_ns;
	key.lock = (__u64)lock;
	key.flags = wait->flags;
	key.stack_id = wait->stack_id;
	if (key.stack_id < 0)
		count_drop(LOCKSTAT_DROP_NO_STACK);
	bpf_map_delete_elem(&waits, &wait_key);

	value = bpf_map_lookup_elem(&stats, &key);
	if (!value) {
		/* Another CPU may insert the key first; BPF_NOEXIST then fails harmlessly. */
		bpf_map_update_elem(&stats, &key, &zero_value, BPF_NOEXIST);
		value = bpf_map_lookup_elem(&stats, &key);
		if (!value) {
			count_drop(LOCKSTAT_DROP_STAT_MAP_FULL);
			return 0;
		}
	}

	__sync_fetch_and_add(&value->count, 1);
	__sync_fetch_and_add(&value->total_ns, wait_ns);
	__sync_fetch_and_add(&value->hist[log2_slot(wait_ns)], 1);
	/*
	 * NOTE: racy. Two CPUs raising max_ns at once can keep the smaller wait,
	 * or pair max_ns with the other thread's id. It needs two waits for the
	 * same lock from the same stack ending within a few instructions.
	 */
	if (wait_ns > value->max_ns) {
		value->max_ns = wait_ns;
		value->max_tid = (__u32)pid_tgid;
	}
	return 0;
}

SEC("tp_btf/contention_begin")
int BPF_PROG(contention_begin, void *lock, unsigned int flags)
{
	return record_begin(ctx, lock, flags);
}

SEC("tp_btf/contention_end")
int BPF_PROG(contention_end, void *lock, int ret)
{
	return record_end(lock);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
