/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Types shared by the lock-contention tool's BPF program (lockstat.bpf.c)
 * and its user-space side (lockstat.c).
 */
#ifndef RUND_LOCKSTAT_H
#define RUND_LOCKSTAT_H

/* Log2 buckets of wait time in nanoseconds: bucket i counts [2^i, 2^(i+1)). */
#define LOCKSTAT_HIST_SLOTS 40
#define LOCKSTAT_MAX_STACK_DEPTH 32
#define LOCKSTAT_MAX_ENTRIES 16384

/*
 * Flags of lock:contention_begin, from include/trace/events/lock.h (stable
 * since 5.19, when the tracepoints were added). They are preprocessor
 * constants, so the kernel's BTF does not carry them.
 */
#define LCB_F_SPIN (1U << 0)
#define LCB_F_READ (1U << 1)
#define LCB_F_WRITE (1U << 2)
#define LCB_F_RT (1U << 3)
#define LCB_F_PERCPU (1U << 4)
#define LCB_F_MUTEX (1U << 5)

/* Lock classes derived from the flags; the class filter is a mask of these. */
enum lockstat_class {
	LOCKSTAT_CLASS_SPIN,		/* spinlock_t, raw_spinlock_t */
	LOCKSTAT_CLASS_RWLOCK,		/* rwlock_t (queued, spinning) */
	LOCKSTAT_CLASS_MUTEX,		/* struct mutex, spinning or sleeping */
	LOCKSTAT_CLASS_RWSEM,		/* struct rw_semaphore */
	LOCKSTAT_CLASS_PERCPU_RWSEM,	/* struct percpu_rw_semaphore */
	LOCKSTAT_CLASS_RTMUTEX,		/* rt_mutex and PREEMPT_RT locks */
	LOCKSTAT_CLASS_COUNT,
};

static inline enum lockstat_class lockstat_classify(unsigned int flags)
{
	if (flags & LCB_F_MUTEX)
		return LOCKSTAT_CLASS_MUTEX;
	if (flags & LCB_F_PERCPU)
		return LOCKSTAT_CLASS_PERCPU_RWSEM;
	if (flags & LCB_F_RT)
		return LOCKSTAT_CLASS_RTMUTEX;
	if (flags & LCB_F_SPIN)
		return (flags & (LCB_F_READ | LCB_F_WRITE)) ?
			LOCKSTAT_CLASS_RWLOCK : LOCKSTAT_CLASS_SPIN;
	return LOCKSTAT_CLASS_RWSEM;
}

/*
 * A lock waiter in progress. The key has the thread id and the lock, so a
 * spinlock contended in an interrupt that arrives while the same thread
 * spins on a mutex gets its own entry. The idle threads all have tid 0, so
 * their key also contains the CPU.
 */
struct lockstat_wait_key {
	__u32 tid;
	__u32 cpu;
	__u64 lock;
};

struct lockstat_wait {
	__u64 start_ns;
	__u32 flags;	/* the first contention_begin's flags */
	__s32 stack_id;	/* negative: no stack (the stack map was full) */
};

/*
 * One aggregate: a lock, the flags of its wait and the kernel stack that
 * waited. User space sums these per lock. A lock that is waited for both
 * as a reader and as a writer has one aggregate per flag set.
 */
struct lockstat_key {
	__u64 lock;
	__s32 stack_id;
	__u32 flags;
};

struct lockstat_value {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u32 max_tid;		/* the thread that waited max_ns */
	__u32 pad;
	__u64 hist[LOCKSTAT_HIST_SLOTS];
};

/* Events the BPF program could not record, indexes of the drops map. */
enum lockstat_drop {
	LOCKSTAT_DROP_WAIT_MAP_FULL,	/* too many waiters in progress */
	LOCKSTAT_DROP_STAT_MAP_FULL,	/* too many (lock, stack) aggregates */
	/* bpf_get_stackid() failed (map full or hash collision): counted without a stack */
	LOCKSTAT_DROP_NO_STACK,
	LOCKSTAT_DROP_COUNT,
};

#endif /* RUND_LOCKSTAT_H */
