// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cgroupfs pool backend: the lite cgroup pool without the kernel module.
 *
 * Every process on the node maps one state file, <state_dir>/state, with
 * MAP_SHARED: a header (configuration, free list, counters) and one record
 * per slot. flock() on that file serialises changes to the free list and to
 * slot states. The lock is held only for those list operations, never
 * across a cgroupfs write. Threads of one process also take a mutex, since flock()
 * does not exclude descriptors of one open file.
 *
 * Crash safety without a daemon:
 *  - The header's dirty flag is set while the free list changes. A process
 *    that takes the lock and finds it set (its holder died) rebuilds the free
 *    list and the counts from the slot states.
 *  - Each claim records the claimer's pid and start time, and each drain its
 *    drainer's. A slot whose setup or drain was left half done by a dead
 *    process is drained again by the next scan. A drain repairs whatever it
 *    finds: processes still inside, limits, the directory under either name.
 *  - Auto-release is done by scans (see rund_pool_scan()), because no process
 *    watches the slots between operations.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool-internal.h"
#include "util.h"

#define STATE_MAGIC 0x6c6f6f70646e7572ULL	/* "rundpool" */
#define STATE_VERSION 1
#define HEADER_SIZE 16384
#define DRAIN_TIMEOUT_MS 5000

/* Slot-internal flags (cg_slot.iflags). */
#define SLOT_SETUP	(1U << 0)	/* claimer still renaming or writing limits */
#define SLOT_POPULATED	(1U << 1)	/* processes were seen since the claim */
#define SLOT_LIMITS	(1U << 2)	/* limits were written and need a reset */

struct cg_opstat {
	uint64_t count;
	uint64_t failed;
	uint64_t hist[RUND_HIST_BUCKETS];
};

struct cg_header {
	uint64_t magic;
	uint32_t version;
	uint32_t ready;			/* 0 while init or destroy runs */
	uint32_t layout;
	uint32_t controllers;
	uint32_t lease_ms;
	uint32_t nr_hier;
	struct rund_pool_hierarchy hier[RUND_POOL_MAX_HIERARCHIES];
	char prefix[RUND_PREFIX_MAX + 1];
	/* The fields below change only under the lock. */
	uint32_t size;
	uint32_t free_head;		/* slot index + 1; 0: no idle slot */
	uint32_t dirty;			/* the free list is being changed */
	uint32_t count[RUND_SLOT_STATE_MAX + 1];
	/* The fields below change with atomic operations, without the lock. */
	uint64_t last_scan_ns;
	struct cg_opstat op[RUND_OP_MAX + 1];
	uint64_t fail[RUND_FAIL_MAX + 1];
	uint64_t auto_released[RUND_EVENT_MAX + 1];
};

struct cg_slot {
	uint32_t state;			/* enum rund_slot_state */
	uint32_t flags;			/* RUND_POOL_ACQUIRE_* */
	uint32_t iflags;		/* SLOT_* */
	uint32_t next_free;		/* index + 1 of the next idle slot */
	uint32_t gen;			/* bumped by every claim and every drain */
	int32_t owner_pid;		/* claimer */
	uint64_t owner_start;		/* claimer's start time, clock ticks since boot */
	int32_t worker_pid;		/* drainer, while draining */
	uint32_t pad;
	uint64_t worker_start;
	uint64_t claimed_ns;
	/*
	 * Usage when the slot became idle: cpu.stat usage_usec on v2,
	 * memory.max_usage_in_bytes on v1. Writing 0 to the v1 peak resets it
	 * to the current charge, which page cache left by the last sandbox
	 * keeps above zero, so "used" means above this base, not above zero.
	 */
	uint64_t usage_base;
	struct rund_pool_limits limits;
	char id[RUND_SANDBOX_ID_MAX + 1];
};

_Static_assert(sizeof(struct cg_header) <= HEADER_SIZE, "state header too large");

#define STATE_SIZE (HEADER_SIZE + (size_t)RUND_POOL_MAX_SLOTS * \
		    (sizeof(uint64_t) + sizeof(struct cg_slot)))

struct cg_pool {
	char state_dir[RUND_PATH_MAX + 1];
	char state_path[RUND_PATH_MAX + 16];
	int fd;
	struct cg_header *hdr;
	uint64_t *id_hash;		/* per slot; 0 for an idle slot */
	struct cg_slot *slots;
	pthread_mutex_t lock;
	pid_t self_pid;
	uint64_t self_start;
	int crash_at;			/* enum crash_point, for the crash-safety tests */
};

/*
 * Points where a test can make this process die (RUND_POOL_TEST_CRASH=name)
 * to check that the next process repairs what it left.
 */
enum crash_point {
	CRASH_NONE,
	CRASH_LOCKED,		/* inside acquire's critical section, list half changed */
	CRASH_CLAIMED,		/* after the claim, before rename and limits */
	CRASH_DRAINING,		/* after release marked the slot draining */
};

static void crash_here(const struct cg_pool *p, enum crash_point at)
{
	if (p->crash_at == (int)at)
		_exit(99);
}

static struct cg_pool *cg(struct rund_pool *pool)
{
	return pool->priv;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* FNV-1a, never 0 so that 0 can mark an idle slot. */
static uint64_t hash_id(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*id)
		h = (h ^ (unsigned char)*id++) * 0x100000001b3ULL;
	return h ? h : 1;
}

/* Start time of pid in clock ticks since boot (field 22 of /proc/pid/stat), 0 if gone. */
static uint64_t proc_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may contain spaces and parentheses: start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

static bool process_alive(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	return proc_start_time(pid) == start;
}

static void self_identity(struct cg_pool *p)
{
	pid_t pid = getpid();

	if (p->self_pid != pid) {
		p->self_pid = pid;
		p->self_start = proc_start_time(pid);
	}
}

static void rebuild_free_list(struct cg_pool *p)
{
	struct cg_header *h = p->hdr;
	uint32_t i;

	memset(h->count, 0, sizeof(h->count));
	h->free_head = 0;
	for (i = h->size; i-- > 0;) {
		struct cg_slot *s = &p->slots[i];

		if (s->state > RUND_SLOT_STATE_MAX)
			s->state = RUND_SLOT_BROKEN;
		h->count[s->state]++;
		if (s->state == RUND_SLOT_IDLE) {
			p->id_hash[i] = 0;
			s->next_free = h->free_head;
			h->free_head = i + 1;
		}
	}
}

static void pool_lock(struct cg_pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (flock(p->fd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (__atomic_load_n(&p->hdr->dirty, __ATOMIC_ACQUIRE)) {
		/* The previous holder died inside its critical section. */
		rebuild_free_list(p);
		__atomic_store_n(&p->hdr->dirty, 0, __ATOMIC_RELEASE);
	}
}

static void pool_unlock(struct cg_pool *p)
{
	flock(p->fd, LOCK_UN);
	pthread_mutex_unlock(&p->lock);
}

static void mark_dirty(struct cg_pool *p, bool dirty)
{
	__atomic_store_n(&p->hdr->dirty, dirty, __ATOMIC_SEQ_CST);
}

/* Change a slot's state and the counts; the caller holds the lock and marked dirty. */
static void set_state_locked(struct cg_pool *p, uint32_t i, enum rund_slot_state state)
{
	struct cg_slot *s = &p->slots[i];

	p->hdr->count[s->state]--;
	p->hdr->count[state]++;
	__atomic_store_n(&s->state, state, __ATOMIC_RELEASE);
}

static void count_op(struct cg_pool *p, enum rund_op op, uint64_t start, bool failed)
{
	struct cg_opstat *o = &p->hdr->op[op];

	__atomic_fetch_add(&o->count, 1, __ATOMIC_RELAXED);
	if (failed)
		__atomic_fetch_add(&o->failed, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&o->hist[rund_pool_hist_bucket(now_ns() - start)], 1,
			   __ATOMIC_RELAXED);
}

static void count_fail(struct cg_pool *p, enum rund_fail kind)
{
	__atomic_fetch_add(&p->hdr->fail[kind], 1, __ATOMIC_RELAXED);
}

/* Directory of slot i in hierarchy h under its current or its idle name. */
static void slot_path(struct cg_pool *p, uint32_t i, uint32_t h, bool by_id,
		      char *buf, size_t len)
{
	if (by_id)
		snprintf(buf, len, "%s/%s", p->hdr->hier[h].path, p->slots[i].id);
	else
		snprintf(buf, len, "%s/%s-%u", p->hdr->hier[h].path, p->hdr->prefix, i);
}

/* Whether a claimed slot's directories carry the sandbox id (v1 layouts). */
static bool renames(const struct cg_pool *p)
{
	return p->hdr->layout != RUND_LAYOUT_V2;
}

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[RUND_PATH_MAX + 128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[RUND_PATH_MAX + 128];
	ssize_t n, total = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)total < len - 1) {
		n = read(fd, buf + total, len - 1 - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

/* Directory of slot i in hierarchy h as it exists now: under the id or the idle name. */
static void current_path(struct cg_pool *p, uint32_t i, uint32_t h, char *buf, size_t len)
{
	struct stat st;

	if (renames(p) && p->slots[i].id[0]) {
		slot_path(p, i, h, true, buf, len);
		if (!stat(buf, &st))
			return;
	}
	slot_path(p, i, h, false, buf, len);
}

static uint64_t v2_cpu_usage(const char *dir)
{
	char buf[1024], *s;

	if (read_file(dir, "cpu.stat", buf, sizeof(buf)) <= 0)
		return 0;
	s = strstr(buf, "usage_usec ");
	return s ? strtoull(s + 11, NULL, 10) : 0;
}

static uint64_t v1_memory_peak(struct cg_pool *p, uint32_t i)
{
	char dir[RUND_PATH_MAX + 80], buf[64];
	uint32_t h;

	for (h = 0; h < p->hdr->nr_hier; h++) {
		if (!(p->hdr->hier[h].controllers & RUND_CTRL_MEMORY))
			continue;
		current_path(p, i, h, dir, sizeof(dir));
		if (read_file(dir, "memory.max_usage_in_bytes", buf, sizeof(buf)) > 0)
			return strtoull(buf, NULL, 10);
	}
	return 0;
}

/* 1 when slot i contains processes in any hierarchy, 0 when empty, -errno. */
static int slot_populated(struct cg_pool *p, uint32_t i)
{
	char dir[RUND_PATH_MAX + 80], buf[256];
	uint32_t h;
	ssize_t n;

	if (p->hdr->layout == RUND_LAYOUT_V2) {
		current_path(p, i, 0, dir, sizeof(dir));
		n = read_file(dir, "cgroup.events", buf, sizeof(buf));
		if (n < 0)
			return n;
		return strstr(buf, "populated 1") != NULL;
	}
	for (h = 0; h < p->hdr->nr_hier; h++) {
		current_path(p, i, h, dir, sizeof(dir));
		n = read_file(dir, "cgroup.procs", buf, sizeof(buf));
		if (n < 0)
			return n;
		if (n > 0)
			return 1;
	}
	return 0;
}

/*
 * Whether slot i ran anything since it became idle, even if it is empty now:
 * CPU time on v2 (cpu.stat exists without the cpu controller), the memory
 * peak on v1 (reset by every drain).
 */
static bool slot_was_used(struct cg_pool *p, uint32_t i)
{
	char dir[RUND_PATH_MAX + 80];

	if (__atomic_load_n(&p->slots[i].iflags, __ATOMIC_ACQUIRE) & SLOT_POPULATED)
		return true;
	if (p->hdr->layout == RUND_LAYOUT_V2) {
		current_path(p, i, 0, dir, sizeof(dir));
		return v2_cpu_usage(dir) > p->slots[i].usage_base;
	}
	return v1_memory_peak(p, i) > p->slots[i].usage_base;
}

/*
 * Sleep for a wait loop's round: yield for the first rounds (a killed task
 * usually needs only to be scheduled once), then back off from 20 us to 1 ms.
 */
static void backoff(int round)
{
	if (round < 4) {
		sched_yield();
		return;
	}
	usleep(round < 10 ? 20 << (round - 4) : 1000);
}

/* Send SIGKILL to every pid listed in dir/cgroup.procs; returns how many. */
static int kill_listed(const char *dir)
{
	char buf[8192], *line, *save = NULL;
	int n = 0;

	if (read_file(dir, "cgroup.procs", buf, sizeof(buf)) <= 0)
		return 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		pid_t pid = (pid_t)atoi(line);

		if (pid > 0 && !kill(pid, SIGKILL))
			n++;
	}
	return n;
}

/*
 * Kill every process in slot i. v2 writes cgroup.kill, and v1 sends SIGKILL
 * to each listed process. With freeze, v1 freezes the slot first. Once
 * freezer.state reads FROZEN no task in it can fork, so one pass over
 * cgroup.procs finds them all, and after the thaw each dies before it
 * returns to user space.
 */
static int kill_slot(struct cg_pool *p, uint32_t i, bool freeze)
{
	char dir[RUND_PATH_MAX + 80], freezer[RUND_PATH_MAX + 80] = "";
	char buf[64];
	uint32_t h;
	int ret, round;

	if (p->hdr->layout == RUND_LAYOUT_V2) {
		current_path(p, i, 0, dir, sizeof(dir));
		ret = write_file(dir, "cgroup.kill", "1");
		if (ret != -ENOENT)
			return ret;
		/* Kernels before 5.14 have no cgroup.kill: kill pid by pid. */
		kill_listed(dir);
		return 0;
	}

	for (h = 0; h < p->hdr->nr_hier && freeze; h++)
		if (p->hdr->hier[h].controllers & RUND_CTRL_FREEZER)
			current_path(p, i, h, freezer, sizeof(freezer));
	if (freezer[0]) {
		ret = write_file(freezer, "freezer.state", "FROZEN");
		if (ret)
			return ret;
		for (round = 0; round < 2000; round++) {
			if (read_file(freezer, "freezer.state", buf, sizeof(buf)) > 0 &&
			    !strncmp(buf, "FROZEN", 6))
				break;
			backoff(round);
		}
	}
	for (h = 0; h < p->hdr->nr_hier; h++) {
		current_path(p, i, h, dir, sizeof(dir));
		kill_listed(dir);
	}
	if (freezer[0])
		return write_file(freezer, "freezer.state", "THAWED");
	return 0;
}

/*
 * Wait for slot i to empty after kill_slot(). On v1 the first kill freezes
 * nothing. A task with SIGKILL pending cannot fork, so killing the listed
 * pids again each round catches children forked just before the kill. From
 * the eighth round on the slot is frozen first, which also stops a task
 * that forks faster than the rounds.
 */
static int wait_empty(struct cg_pool *p, uint32_t i, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int ret, round;

	for (round = 0;; round++) {
		ret = slot_populated(p, i);
		if (ret <= 0)
			return ret;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		if (p->hdr->layout != RUND_LAYOUT_V2 && round > 0)
			kill_slot(p, i, round >= 8);
		backoff(round);
	}
}

/* Write limits into slot i's directories (possibly under the id). */
static int write_limits(struct cg_pool *p, uint32_t i, const struct rund_pool_limits *l,
			bool reset, struct rund_error *err)
{
	uint32_t h, period = l->cpu_period_us ? l->cpu_period_us : RUND_CPU_PERIOD_DEFAULT_US;
	char dir[RUND_PATH_MAX + 80], val[64];
	bool v2 = p->hdr->layout == RUND_LAYOUT_V2;
	int ret = 0;

	for (h = 0; h < p->hdr->nr_hier; h++) {
		uint32_t c = p->hdr->hier[h].controllers;

		current_path(p, i, h, dir, sizeof(dir));
		if ((c & RUND_CTRL_MEMORY) && (l->memory_max || reset)) {
			if (reset || !l->memory_max)
				snprintf(val, sizeof(val), v2 ? "max" : "-1");
			else
				snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory_max);
			ret = write_file(dir, v2 ? "memory.max" : "memory.limit_in_bytes", val);
			if (ret)
				return rund_error_set(err, -ret, "write memory limit %s to %s", val, dir);
			if (!v2 && reset)
				write_file(dir, "memory.max_usage_in_bytes", "0");
		}
		if ((c & RUND_CTRL_CPU) && (l->cpu_quota_us || reset)) {
			if (v2) {
				if (reset)
					snprintf(val, sizeof(val), "max %u", RUND_CPU_PERIOD_DEFAULT_US);
				else
					snprintf(val, sizeof(val), "%llu %u",
						 (unsigned long long)l->cpu_quota_us, period);
				ret = write_file(dir, "cpu.max", val);
			} else {
				/* Quota before period on reset: a quota of -1 fits any period. */
				if (reset) {
					ret = write_file(dir, "cpu.cfs_quota_us", "-1");
					if (!ret)
						ret = write_file(dir, "cpu.cfs_period_us", "100000");
					snprintf(val, sizeof(val), "-1");
				} else {
					snprintf(val, sizeof(val), "%u", period);
					ret = write_file(dir, "cpu.cfs_period_us", val);
					snprintf(val, sizeof(val), "%llu",
						 (unsigned long long)l->cpu_quota_us);
					if (!ret)
						ret = write_file(dir, "cpu.cfs_quota_us", val);
				}
			}
			if (ret)
				return rund_error_set(err, -ret, "write CPU limit %s to %s", val, dir);
		}
		if ((c & RUND_CTRL_PIDS) && (l->pids_max || reset)) {
			if (reset || !l->pids_max)
				snprintf(val, sizeof(val), "max");
			else
				snprintf(val, sizeof(val), "%u", l->pids_max);
			ret = write_file(dir, "pids.max", val);
			if (ret)
				return rund_error_set(err, -ret, "write pids limit %s to %s", val, dir);
		}
	}
	return 0;
}

/* Reset the v1 memory peak that slot_was_used() reads. */
static void reset_memory_peak(struct cg_pool *p, uint32_t i)
{
	char dir[RUND_PATH_MAX + 80];
	uint32_t h;

	for (h = 0; h < p->hdr->nr_hier; h++) {
		if (!(p->hdr->hier[h].controllers & RUND_CTRL_MEMORY))
			continue;
		current_path(p, i, h, dir, sizeof(dir));
		write_file(dir, "memory.max_usage_in_bytes", "0");
	}
}

/* Rename slot i's directories between the idle name and the sandbox id. */
static int rename_slot(struct cg_pool *p, uint32_t i, bool to_id, struct rund_error *err)
{
	char from[RUND_PATH_MAX + 80], to[RUND_PATH_MAX + 80];
	struct stat st;
	uint32_t h;

	for (h = 0; h < p->hdr->nr_hier; h++) {
		slot_path(p, i, h, !to_id, from, sizeof(from));
		slot_path(p, i, h, to_id, to, sizeof(to));
		if (rename(from, to) == 0)
			continue;
		if (errno == ENOENT && !stat(to, &st))
			continue;	/* renamed by an earlier, interrupted attempt */
		if (errno == ENOENT && !to_id && mkdir(to, 0755) == 0)
			continue;	/* lost directory: recreate the idle one */
		return rund_error_set(err, errno, "rename %s to %s", from, to);
	}
	return 0;
}

/*
 * Drain slot i, whose state is DRAINING with this process as worker: kill
 * its processes, wait for it to empty, reset its limits, give the
 * directories their idle names back, and return it to the free list. On
 * failure the slot is marked broken and a later scan tries again.
 */
static int drain_slot(struct cg_pool *p, uint32_t i, struct rund_error *err)
{
	struct cg_slot *s = &p->slots[i];
	struct rund_pool_limits none = { 0 };
	char dir[RUND_PATH_MAX + 80];
	uint64_t start = now_ns();
	int ret;

	/* An empty slot needs no freeze and no kill: the common case after a sandbox exits. */
	if (slot_populated(p, i) != 0) {
		ret = kill_slot(p, i, false);
		if (ret && ret != -ENOENT) {
			count_fail(p, RUND_FAIL_KILL);
			ret = rund_error_set(err, -ret, "kill the processes of slot %u", i);
			goto out_broken;
		}
		ret = wait_empty(p, i, DRAIN_TIMEOUT_MS);
		if (ret == -ETIMEDOUT) {
			count_fail(p, RUND_FAIL_DRAIN_TIMEOUT);
			ret = rund_error_setx(err, ETIMEDOUT, "slot %u still has processes %d ms after SIGKILL; it stays broken until a later scan drains it",
					      i, DRAIN_TIMEOUT_MS);
			goto out_broken;
		}
	}
	if (s->iflags & SLOT_LIMITS) {
		ret = write_limits(p, i, &none, true, err);
		if (ret && ret != -ENOENT) {
			count_fail(p, RUND_FAIL_LIMITS);
			goto out_broken;
		}
	}
	if (p->hdr->layout != RUND_LAYOUT_V2)
		reset_memory_peak(p, i);
	if (renames(p) && s->id[0]) {
		ret = rename_slot(p, i, false, err);
		if (ret) {
			count_fail(p, RUND_FAIL_RENAME);
			goto out_broken;
		}
	}
	if (p->hdr->layout == RUND_LAYOUT_V2) {
		slot_path(p, i, 0, false, dir, sizeof(dir));
		s->usage_base = v2_cpu_usage(dir);
	} else {
		s->usage_base = v1_memory_peak(p, i);
	}

	pool_lock(p);
	mark_dirty(p, true);
	s->id[0] = '\0';
	p->id_hash[i] = 0;
	s->flags = 0;
	s->iflags = 0;
	s->owner_pid = 0;
	s->worker_pid = 0;
	s->gen++;
	set_state_locked(p, i, RUND_SLOT_IDLE);
	s->next_free = p->hdr->free_head;
	p->hdr->free_head = i + 1;
	mark_dirty(p, false);
	pool_unlock(p);
	count_op(p, RUND_OP_DRAIN, start, false);
	return 0;

out_broken:
	pool_lock(p);
	mark_dirty(p, true);
	set_state_locked(p, i, RUND_SLOT_BROKEN);
	s->worker_pid = 0;
	mark_dirty(p, false);
	pool_unlock(p);
	count_op(p, RUND_OP_DRAIN, start, true);
	return ret < 0 ? ret : -EIO;
}

/* Under the lock: move a claimed (or broken) slot to draining with this process as worker. */
static void begin_drain_locked(struct cg_pool *p, uint32_t i)
{
	struct cg_slot *s = &p->slots[i];

	mark_dirty(p, true);
	set_state_locked(p, i, RUND_SLOT_DRAINING);
	s->worker_pid = p->self_pid;
	s->worker_start = p->self_start;
	mark_dirty(p, false);
}

/* Slot index of a claimed or draining sandbox id, or -1; the caller holds the lock. */
static int find_locked(struct cg_pool *p, const char *id)
{
	uint64_t hash = hash_id(id);
	uint32_t i;

	for (i = 0; i < p->hdr->size; i++)
		if (p->id_hash[i] == hash && !strcmp(p->slots[i].id, id))
			return (int)i;
	return -1;
}

static int map_state(struct cg_pool *p, bool create, struct rund_error *err);

static int check_ready(struct cg_pool *p, struct rund_error *err)
{
	if (!p->hdr)
		return rund_error_setx(err, ENOENT, "no cgroupfs pool is initialised in %s; run 'rund-helper pool init' first",
				       p->state_dir);
	if (p->hdr->magic != STATE_MAGIC || !__atomic_load_n(&p->hdr->ready, __ATOMIC_ACQUIRE))
		return rund_error_setx(err, ENOENT, "no cgroupfs pool is initialised in %s; run 'rund-helper pool init' first",
				       p->state_dir);
	if (p->hdr->version != STATE_VERSION)
		return rund_error_setx(err, EPROTO, "pool state %s has version %u, this rund-helper reads %u; re-create the pool",
				       p->state_path, p->hdr->version, STATE_VERSION);
	return 0;
}

static int do_scan(struct cg_pool *p, bool force, struct rund_error *err)
{
	uint64_t now = now_ns(), last = __atomic_load_n(&p->hdr->last_scan_ns, __ATOMIC_RELAXED);
	uint64_t lease_ns = (uint64_t)p->hdr->lease_ms * 1000000ULL;
	struct rund_error ignored;
	int reclaimed = 0;
	uint32_t i, size;

	if (!force && now - last < RUND_POOL_SCAN_INTERVAL_MS * 1000000ULL)
		return 0;
	/* One scanner per interval: the others go on with their operation. */
	if (!__atomic_compare_exchange_n(&p->hdr->last_scan_ns, &last, now, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED) && !force)
		return 0;
	self_identity(p);

	size = __atomic_load_n(&p->hdr->size, __ATOMIC_ACQUIRE);
	for (i = 0; i < size; i++) {
		struct cg_slot *s = &p->slots[i];
		uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		uint32_t gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
		uint32_t iflags = __atomic_load_n(&s->iflags, __ATOMIC_ACQUIRE);
		enum rund_event_reason reason = RUND_EVENT_UNSPEC;
		bool owner_alive;
		int pop;

		if (state == RUND_SLOT_IDLE)
			continue;
		if (state == RUND_SLOT_DRAINING) {
			if (process_alive(s->worker_pid, s->worker_start))
				continue;
			reason = RUND_EVENT_DRAIN_FAILED;
		} else if (state == RUND_SLOT_BROKEN) {
			reason = RUND_EVENT_DRAIN_FAILED;
		} else {
			owner_alive = !(iflags & SLOT_SETUP) && !(s->flags & RUND_POOL_ACQUIRE_BOUND) ?
				true : process_alive(s->owner_pid, s->owner_start);
			if (iflags & SLOT_SETUP) {
				if (owner_alive)
					continue;
				reason = RUND_EVENT_SOCKET_CLOSED;
			} else if ((s->flags & RUND_POOL_ACQUIRE_BOUND) && !owner_alive) {
				reason = RUND_EVENT_SOCKET_CLOSED;
			} else {
				pop = slot_populated(p, i);
				if (pop > 0) {
					__atomic_or_fetch(&s->iflags, SLOT_POPULATED, __ATOMIC_RELEASE);
					continue;
				}
				if (pop < 0 && pop != -ENOENT)
					continue;
				if (slot_was_used(p, i))
					reason = RUND_EVENT_EMPTIED;
				else if (lease_ns && now - s->claimed_ns > lease_ns)
					reason = RUND_EVENT_LEASE_EXPIRED;
			}
		}
		if (reason == RUND_EVENT_UNSPEC)
			continue;

		/* Claim the work under the lock, then drain outside it. */
		pool_lock(p);
		if (s->gen != gen || s->state != state) {
			pool_unlock(p);
			continue;
		}
		begin_drain_locked(p, i);
		pool_unlock(p);
		__atomic_fetch_add(&p->hdr->auto_released[reason], 1, __ATOMIC_RELAXED);
		if (!drain_slot(p, i, &ignored))
			reclaimed++;
	}
	(void)err;
	return reclaimed;
}

static int cg_scan(struct rund_pool *pool, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	int ret = check_ready(p, err);

	return ret ? ret : do_scan(p, true, err);
}

static int make_dir(const char *path, struct rund_error *err)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return rund_error_set(err, errno, "create cgroup directory %s", path);
	return 0;
}

/* Check that a v2 pool root can have the controllers and enable them for its slots. */
static int v2_enable_controllers(const struct rund_pool_config *cfg, struct rund_error *err)
{
	/* In RUND_CTRL_* bit order: memory, cpu, pids. */
	static const char *const names[] = { "memory", "cpu", "pids" };
	char parent[RUND_PATH_MAX + 1], have[64], want[64], buf[128] = "";
	uint32_t avail, c;
	char *slash;
	size_t n = 0;
	int ret;

	if (!cfg->controllers)
		return 0;
	snprintf(parent, sizeof(parent), "%s", cfg->hier[0].path);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (read_file(cfg->hier[0].path, "cgroup.controllers", buf, sizeof(buf)) < 0)
		buf[0] = '\0';
	avail = 0;
	for (c = 0; c < 3; c++) {
		char *w = strstr(buf, names[c]);

		if (w && (w == buf || w[-1] == ' ') && (w[strlen(names[c])] == ' ' ||
							w[strlen(names[c])] == '\n' ||
							!w[strlen(names[c])]))
			avail |= 1U << c;
	}
	if ((avail & cfg->controllers) != cfg->controllers) {
		rund_pool_controllers_str(cfg->controllers & ~avail, want, sizeof(want));
		rund_pool_controllers_str(avail, have, sizeof(have));
		return rund_error_setx(err, EOPNOTSUPP,
				       "cgroup v2 controllers %s are not available in %s (it offers: %s); enable them in %s/cgroup.subtree_control, or init with --controllers none",
				       want, cfg->hier[0].path, have[0] ? have : "none", parent);
	}
	for (c = 0; c < 3; c++)
		if (cfg->controllers & (1U << c))
			n += snprintf(buf + n, sizeof(buf) - n, "%s+%s", n ? " " : "", names[c]);
	ret = write_file(cfg->hier[0].path, "cgroup.subtree_control", buf);
	if (ret)
		return rund_error_set(err, -ret, "enable '%s' in %s/cgroup.subtree_control",
				      buf, cfg->hier[0].path);
	return 0;
}

static int create_slots(struct cg_pool *p, uint32_t from, uint32_t to, struct rund_error *err)
{
	char dir[RUND_PATH_MAX + 80];
	uint32_t i, h;
	int ret;

	for (i = from; i < to; i++) {
		memset(&p->slots[i], 0, sizeof(p->slots[i]));
		p->id_hash[i] = 0;
		for (h = 0; h < p->hdr->nr_hier; h++) {
			slot_path(p, i, h, false, dir, sizeof(dir));
			ret = make_dir(dir, err);
			if (ret)
				return ret;
		}
		if (p->hdr->layout == RUND_LAYOUT_V2) {
			slot_path(p, i, 0, false, dir, sizeof(dir));
			p->slots[i].usage_base = v2_cpu_usage(dir);
		}
	}
	return 0;
}

static int cg_init(struct rund_pool *pool, const struct rund_pool_config *cfg,
		   struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	struct cg_header *h;
	uint32_t i;
	int ret;

	if (!p->hdr) {
		ret = map_state(p, true, err);
		if (ret)
			return ret;
	}
	h = p->hdr;
	pool_lock(p);
	if (h->magic == STATE_MAGIC && h->ready) {
		ret = rund_error_setx(err, EEXIST, "a %s pool of %u slots is already initialised at %s (state %s); grow it with 'pool resize' or remove it with 'pool destroy'",
				      rund_pool_layout_name(h->layout), h->size, h->hier[0].path,
				      p->state_path);
		goto out_unlock;
	}

	memset(h, 0, sizeof(*h));
	h->magic = STATE_MAGIC;
	h->version = STATE_VERSION;
	h->layout = cfg->layout;
	h->controllers = cfg->controllers;
	h->lease_ms = cfg->lease_ms ? cfg->lease_ms : RUND_LEASE_DEFAULT_MS;
	h->nr_hier = cfg->nr_hierarchies;
	memcpy(h->hier, cfg->hier, sizeof(h->hier));
	snprintf(h->prefix, sizeof(h->prefix), "%s", cfg->prefix);

	for (i = 0; i < h->nr_hier; i++) {
		ret = make_dir(h->hier[i].path, err);
		if (ret)
			goto out_unlock;
	}
	if (h->layout == RUND_LAYOUT_V2) {
		ret = v2_enable_controllers(cfg, err);
		if (ret)
			goto out_remove_roots;
	}
	ret = create_slots(p, 0, cfg->size, err);
	if (ret)
		goto out_remove_slots;

	h->size = cfg->size;
	rebuild_free_list(p);
	__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
	pool_unlock(p);
	return 0;

out_remove_slots:
	for (i = 0; i < cfg->size; i++) {
		char dir[RUND_PATH_MAX + 80];
		uint32_t j;

		for (j = 0; j < h->nr_hier; j++) {
			slot_path(p, i, j, false, dir, sizeof(dir));
			rmdir(dir);
		}
	}
out_remove_roots:
	for (i = 0; i < h->nr_hier; i++)
		rmdir(h->hier[i].path);
	h->magic = 0;
out_unlock:
	pool_unlock(p);
	return ret;
}

static int cg_resize(struct rund_pool *pool, uint32_t size, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	uint32_t old, i;
	int ret = check_ready(p, err);

	if (ret)
		return ret;
	old = __atomic_load_n(&p->hdr->size, __ATOMIC_ACQUIRE);
	if (size < old)
		return rund_error_setx(err, EINVAL, "pool size %u is below the current %u slots; a pool can only grow",
				       size, old);
	if (size == old)
		return 0;

	/* mkdir outside the lock; a concurrent resize to the same size makes the same names. */
	ret = create_slots(p, old, size, err);
	if (ret)
		return ret;

	pool_lock(p);
	if (p->hdr->size < size) {
		mark_dirty(p, true);
		for (i = size; i-- > p->hdr->size;) {
			p->hdr->count[RUND_SLOT_IDLE]++;
			p->slots[i].next_free = p->hdr->free_head;
			p->hdr->free_head = i + 1;
		}
		__atomic_store_n(&p->hdr->size, size, __ATOMIC_RELEASE);
		mark_dirty(p, false);
	}
	pool_unlock(p);
	return 0;
}

static int cg_destroy(struct rund_pool *pool, bool force, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	struct cg_header *h = p->hdr;
	char dir[RUND_PATH_MAX + 80];
	uint32_t i, j, busy;
	int ret = check_ready(p, err);

	if (ret)
		return ret;
	pool_lock(p);
	busy = h->count[RUND_SLOT_CLAIMED] + h->count[RUND_SLOT_DRAINING];
	if (busy && !force) {
		pool_unlock(p);
		return rund_error_setx(err, EBUSY, "%u slot%s claimed or draining; release them first or destroy with --force",
				       busy, busy == 1 ? " is" : "s are");
	}
	__atomic_store_n(&h->ready, 0, __ATOMIC_RELEASE);
	pool_unlock(p);

	for (i = 0; i < h->size; i++) {
		kill_slot(p, i, true);
		wait_empty(p, i, DRAIN_TIMEOUT_MS);
		for (j = 0; j < h->nr_hier; j++) {
			current_path(p, i, j, dir, sizeof(dir));
			if (rmdir(dir) < 0 && errno != ENOENT) {
				ret = rund_error_set(err, errno, "remove %s", dir);
			}
		}
	}
	for (j = 0; j < h->nr_hier; j++)
		if (rmdir(h->hier[j].path) < 0 && errno != ENOENT && !ret)
			ret = rund_error_set(err, errno, "remove pool root %s", h->hier[j].path);
	if (ret) {
		/* Leave the state so that a second destroy can finish the job. */
		__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
		return ret;
	}
	pool_lock(p);
	h->magic = 0;
	unlink(p->state_path);
	pool_unlock(p);
	/* Forget the unlinked file: a later init on this handle makes a new one. */
	munmap(p->hdr, STATE_SIZE);
	close(p->fd);
	p->fd = -1;
	p->hdr = NULL;
	/* Deliberately ignored: the directory may hold other files. */
	rmdir(p->state_dir);
	return 0;
}

static void fill_info(struct cg_pool *p, uint32_t i, struct rund_slot_info *info)
{
	struct cg_slot *s = &p->slots[i];

	memset(info, 0, sizeof(*info));
	info->index = i;
	info->state = s->state;
	if (s->state != RUND_SLOT_IDLE)
		memcpy(info->sandbox_id, s->id, sizeof(info->sandbox_id));
	slot_path(p, i, 0, renames(p) && s->state == RUND_SLOT_CLAIMED &&
		  !(s->iflags & SLOT_SETUP), info->path, sizeof(info->path));
	info->flags = s->flags;
	info->owner = s->state == RUND_SLOT_IDLE ? 0 : (uint32_t)s->owner_pid;
	info->claimed_ns = s->state == RUND_SLOT_IDLE ? 0 : s->claimed_ns;
	info->populated = s->iflags & SLOT_POPULATED;
	if (s->state != RUND_SLOT_IDLE)
		info->limits = s->limits;
}

static int cg_acquire(struct rund_pool *pool, const char *id,
		      const struct rund_pool_limits *limits, uint32_t flags,
		      struct rund_slot_info *info, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	struct rund_pool_limits none = { 0 };
	uint64_t start = now_ns();
	struct rund_error ignored;
	struct cg_slot *s;
	char have[64];
	int ret, dup, retry;
	uint32_t i, missing = 0;

	ret = check_ready(p, err);
	if (ret)
		return ret;
	if (!limits)
		limits = &none;
	if (limits->memory_max && !(p->hdr->controllers & RUND_CTRL_MEMORY))
		missing |= RUND_CTRL_MEMORY;
	if (limits->cpu_quota_us && !(p->hdr->controllers & RUND_CTRL_CPU))
		missing |= RUND_CTRL_CPU;
	if (limits->pids_max && !(p->hdr->controllers & RUND_CTRL_PIDS))
		missing |= RUND_CTRL_PIDS;
	if (missing) {
		rund_pool_controllers_str(missing, have, sizeof(have));
		count_op(p, RUND_OP_ACQUIRE, start, true);
		return rund_error_setx(err, EOPNOTSUPP, "the pool has no %s controller for the requested limits; drop those limits or re-create the pool with --controllers including %s",
				       have, have);
	}
	if (renames(p)) {
		size_t plen = strlen(p->hdr->prefix);

		if (!strncmp(id, p->hdr->prefix, plen) && id[plen] == '-' &&
		    strspn(id + plen + 1, "0123456789") == strlen(id + plen + 1) && id[plen + 1]) {
			count_op(p, RUND_OP_ACQUIRE, start, true);
			return rund_error_setx(err, EINVAL, "sandbox id '%s' has the form of an idle slot's directory name; choose another id",
					       id);
		}
	}
	/*
	 * No periodic scan here: it would put its cost on the critical path.
	 * Only a pool without an idle slot is scanned, below.
	 */
	self_identity(p);

	for (retry = 0;; retry++) {
		pool_lock(p);
		dup = find_locked(p, id);
		if (dup >= 0) {
			enum rund_slot_state st = p->slots[dup].state;

			pool_unlock(p);
			count_fail(p, RUND_FAIL_DUPLICATE);
			count_op(p, RUND_OP_ACQUIRE, start, true);
			return rund_error_setx(err, EEXIST, "sandbox id '%s' is already in use by slot %d (%s); release it first or choose another id",
					       id, dup, rund_pool_state_name(st));
		}
		if (p->hdr->free_head)
			break;
		pool_unlock(p);
		if (retry) {
			count_fail(p, RUND_FAIL_EXHAUSTED);
			count_op(p, RUND_OP_ACQUIRE, start, true);
			return rund_error_setx(err, ENOSPC, "the pool has no idle slot (%u slots: %u claimed, %u draining, %u broken); release sandboxes or grow it with 'rund-helper pool resize'",
					       p->hdr->size, p->hdr->count[RUND_SLOT_CLAIMED],
					       p->hdr->count[RUND_SLOT_DRAINING],
					       p->hdr->count[RUND_SLOT_BROKEN]);
		}
		/* Reclaim dead owners' and emptied slots before giving up. */
		do_scan(p, true, err);
	}

	mark_dirty(p, true);
	i = p->hdr->free_head - 1;
	s = &p->slots[i];
	p->hdr->free_head = s->next_free;
	s->next_free = 0;
	crash_here(p, CRASH_LOCKED);
	set_state_locked(p, i, RUND_SLOT_CLAIMED);
	s->gen++;
	s->flags = flags;
	s->iflags = SLOT_SETUP;
	s->owner_pid = p->self_pid;
	s->owner_start = p->self_start;
	s->claimed_ns = start;
	s->limits = *limits;
	snprintf(s->id, sizeof(s->id), "%s", id);
	p->id_hash[i] = hash_id(id);
	mark_dirty(p, false);
	pool_unlock(p);
	crash_here(p, CRASH_CLAIMED);

	if (renames(p)) {
		ret = rename_slot(p, i, true, err);
		if (ret) {
			count_fail(p, RUND_FAIL_RENAME);
			goto out_release;
		}
	}
	if (limits->memory_max || limits->cpu_quota_us || limits->pids_max) {
		__atomic_or_fetch(&s->iflags, SLOT_LIMITS, __ATOMIC_RELEASE);
		ret = write_limits(p, i, limits, false, err);
		if (ret) {
			count_fail(p, RUND_FAIL_LIMITS);
			goto out_release;
		}
	}
	__atomic_and_fetch(&s->iflags, ~SLOT_SETUP, __ATOMIC_RELEASE);
	if (info)
		fill_info(p, i, info);
	count_op(p, RUND_OP_ACQUIRE, start, false);
	return 0;

out_release:
	pool_lock(p);
	begin_drain_locked(p, i);
	pool_unlock(p);
	drain_slot(p, i, &ignored);
	count_op(p, RUND_OP_ACQUIRE, start, true);
	return ret;
}

/* Find a claimed sandbox's slot; on -errno err names the id. */
static int lookup_claimed(struct cg_pool *p, const char *id, enum rund_fail *kind,
			  struct rund_error *err)
{
	int i = find_locked(p, id);

	if (i < 0) {
		*kind = RUND_FAIL_NOT_FOUND;
		return rund_error_setx(err, ENOENT, "no slot is claimed by sandbox id '%s'; 'rund-helper pool list' shows the claims",
				       id);
	}
	if (p->slots[i].state != RUND_SLOT_CLAIMED) {
		*kind = RUND_FAIL_NOT_FOUND;
		return rund_error_setx(err, EBUSY, "sandbox '%s' is %s, not claimed; wait for slot %d to become idle",
				       id, rund_pool_state_name(p->slots[i].state), i);
	}
	return i;
}

static int cg_attach(struct rund_pool *pool, const char *id, pid_t pid,
		     struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	char dir[RUND_PATH_MAX + 80], val[32];
	uint64_t start = now_ns();
	enum rund_fail kind;
	int i, ret;
	uint32_t h;

	ret = check_ready(p, err);
	if (ret)
		return ret;
	do_scan(p, false, err);
	pool_lock(p);
	i = lookup_claimed(p, id, &kind, err);
	pool_unlock(p);
	if (i < 0) {
		count_fail(p, kind);
		count_op(p, RUND_OP_ATTACH, start, true);
		return i;
	}

	snprintf(val, sizeof(val), "%d", (int)pid);
	for (h = 0; h < p->hdr->nr_hier; h++) {
		current_path(p, i, h, dir, sizeof(dir));
		ret = write_file(dir, "cgroup.procs", val);
		if (ret) {
			count_fail(p, RUND_FAIL_ATTACH);
			count_op(p, RUND_OP_ATTACH, start, true);
			if (ret == -ESRCH)
				return rund_error_setx(err, ESRCH, "process %d does not exist; give the pid of a running process",
						       (int)pid);
			return rund_error_set(err, -ret, "move process %d into %s/cgroup.procs",
					      (int)pid, dir);
		}
	}
	__atomic_or_fetch(&p->slots[i].iflags, SLOT_POPULATED, __ATOMIC_RELEASE);
	count_op(p, RUND_OP_ATTACH, start, false);
	return 0;
}

static int cg_release(struct rund_pool *pool, const char *id, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	uint64_t start = now_ns();
	enum rund_fail kind;
	int i, ret;

	ret = check_ready(p, err);
	if (ret)
		return ret;
	self_identity(p);
	pool_lock(p);
	i = lookup_claimed(p, id, &kind, err);
	if (i >= 0)
		begin_drain_locked(p, i);
	pool_unlock(p);
	if (i < 0) {
		count_fail(p, kind);
		count_op(p, RUND_OP_RELEASE, start, true);
		return i;
	}
	crash_here(p, CRASH_DRAINING);
	ret = drain_slot(p, i, err);
	count_op(p, RUND_OP_RELEASE, start, ret != 0);
	do_scan(p, false, err);
	return ret;
}

static int cg_query(struct rund_pool *pool, const char *id, uint32_t index,
		    struct rund_slot_info *info, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	int i, ret = check_ready(p, err);

	if (ret)
		return ret;
	do_scan(p, true, err);
	pool_lock(p);
	if (id) {
		i = find_locked(p, id);
		if (i < 0) {
			pool_unlock(p);
			count_fail(p, RUND_FAIL_NOT_FOUND);
			return rund_error_setx(err, ENOENT, "no slot is claimed by sandbox id '%s'; 'rund-helper pool list' shows the claims",
					       id);
		}
	} else {
		if (index >= p->hdr->size) {
			pool_unlock(p);
			return rund_error_setx(err, ENOENT, "slot index %u is out of range; the pool has %u slots",
					       index, p->hdr->size);
		}
		i = (int)index;
	}
	fill_info(p, i, info);
	pool_unlock(p);
	return 0;
}

static int cg_list(struct rund_pool *pool, rund_pool_slot_fn fn, void *arg,
		   struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	struct rund_slot_info info;
	uint32_t i, size;
	int ret = check_ready(p, err);

	if (ret)
		return ret;
	do_scan(p, true, err);
	size = __atomic_load_n(&p->hdr->size, __ATOMIC_ACQUIRE);
	for (i = 0; i < size; i++) {
		/* One slot at a time under the lock, so the walk blocks claims for one copy at most. */
		pool_lock(p);
		fill_info(p, i, &info);
		pool_unlock(p);
		ret = fn(&info, arg);
		if (ret)
			return ret;
	}
	return 0;
}

static int cg_stats(struct rund_pool *pool, struct rund_pool_stats *st,
		    struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	struct cg_header *h = p->hdr;
	int op, ret = check_ready(p, err);

	if (ret)
		return ret;
	do_scan(p, true, err);
	pool_lock(p);
	st->layout = h->layout;
	st->size = h->size;
	st->idle = h->count[RUND_SLOT_IDLE];
	st->claimed = h->count[RUND_SLOT_CLAIMED];
	st->draining = h->count[RUND_SLOT_DRAINING];
	st->broken = h->count[RUND_SLOT_BROKEN];
	st->controllers = h->controllers;
	st->lease_ms = h->lease_ms;
	memcpy(st->prefix, h->prefix, sizeof(st->prefix));
	memcpy(st->root, h->hier[0].path, sizeof(st->root));
	pool_unlock(p);
	for (op = 0; op <= RUND_OP_MAX; op++) {
		st->op[op].count = __atomic_load_n(&h->op[op].count, __ATOMIC_RELAXED);
		st->op[op].failed = __atomic_load_n(&h->op[op].failed, __ATOMIC_RELAXED);
		memcpy(st->op[op].hist, h->op[op].hist, sizeof(st->op[op].hist));
	}
	memcpy(st->fail, h->fail, sizeof(st->fail));
	memcpy(st->auto_released, h->auto_released, sizeof(st->auto_released));
	return 0;
}

static int cg_mark_populated(struct rund_pool *pool, const char *id, struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	enum rund_fail kind;
	int i, ret = check_ready(p, err);

	if (ret)
		return ret;
	pool_lock(p);
	i = lookup_claimed(p, id, &kind, err);
	if (i >= 0)
		__atomic_or_fetch(&p->slots[i].iflags, SLOT_POPULATED, __ATOMIC_RELEASE);
	pool_unlock(p);
	return i < 0 ? i : 0;
}

static int cg_slot_dirs(struct rund_pool *pool, const char *id, struct rund_slot_dirs *d,
			struct rund_error *err)
{
	struct cg_pool *p = cg(pool);
	char dir[RUND_PATH_MAX + 80];
	enum rund_fail kind;
	int i, ret = check_ready(p, err);
	uint32_t h;

	if (ret)
		return ret;
	pool_lock(p);
	i = lookup_claimed(p, id, &kind, err);
	pool_unlock(p);
	if (i < 0)
		return i;

	d->layout = p->hdr->layout;
	for (h = 0; h < p->hdr->nr_hier; h++) {
		current_path(p, i, h, dir, sizeof(dir));
		snprintf(d->procs[h], sizeof(d->procs[h]), "%s/cgroup.procs", dir);
	}
	d->nr_procs = p->hdr->nr_hier;
	if (d->layout == RUND_LAYOUT_V2) {
		current_path(p, i, 0, dir, sizeof(dir));
		d->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d->dir_fd < 0)
			return rund_error_set(err, errno, "open slot directory %s", dir);
	}
	return 0;
}

static void cg_close(struct rund_pool *pool)
{
	struct cg_pool *p = cg(pool);

	if (p->hdr)
		munmap(p->hdr, STATE_SIZE);
	if (p->fd >= 0)
		close(p->fd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int mkdir_p(const char *path)
{
	char buf[RUND_PATH_MAX + 1], *s;

	snprintf(buf, sizeof(buf), "%s", path);
	for (s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Open and map the state file. Only init creates it, so that the other
 * operations leave no trace on a node without a pool.
 */
static int map_state(struct cg_pool *p, bool create, struct rund_error *err)
{
	struct stat st;
	void *map;
	int ret;

	if (create) {
		ret = mkdir_p(p->state_dir);
		if (ret)
			return rund_error_set(err, -ret, "create state directory %s", p->state_dir);
	}
	p->fd = open(p->state_path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (p->fd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		return rund_error_set(err, errno, "open pool state %s", p->state_path);
	}
	if (fstat(p->fd, &st) < 0 || (st.st_size != (off_t)STATE_SIZE &&
				      ftruncate(p->fd, STATE_SIZE) < 0)) {
		ret = rund_error_set(err, errno, "size pool state %s", p->state_path);
		goto out_close;
	}
	map = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (map == MAP_FAILED) {
		ret = rund_error_set(err, errno, "map pool state %s", p->state_path);
		goto out_close;
	}
	p->hdr = map;
	p->id_hash = (uint64_t *)((char *)map + HEADER_SIZE);
	p->slots = (struct cg_slot *)(p->id_hash + RUND_POOL_MAX_SLOTS);
	return 0;

out_close:
	close(p->fd);
	p->fd = -1;
	return ret;
}

int rund_pool_cgroupfs_open(struct rund_pool *pool, const char *state_dir,
			    struct rund_error *err)
{
	struct cg_pool *p;
	int ret;

	if (!state_dir || !*state_dir)
		state_dir = getenv("RUND_POOL_STATE_DIR");
	if (!state_dir || !*state_dir)
		state_dir = RUND_POOL_STATE_DIR;
	if (strlen(state_dir) > RUND_PATH_MAX || state_dir[0] != '/')
		return rund_error_setx(err, EINVAL, "state directory '%s' must be an absolute path of at most %u bytes",
				       state_dir, RUND_PATH_MAX);

	p = calloc(1, sizeof(*p));
	if (!p)
		return rund_error_set(err, ENOMEM, "allocate the cgroupfs pool");
	p->fd = -1;
	pthread_mutex_init(&p->lock, NULL);
	snprintf(p->state_dir, sizeof(p->state_dir), "%s", state_dir);
	snprintf(p->state_path, sizeof(p->state_path), "%s/state", state_dir);

	ret = map_state(p, false, err);
	if (ret) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return ret;
	}
	self_identity(p);
	if (getenv("RUND_POOL_TEST_CRASH")) {
		const char *at = getenv("RUND_POOL_TEST_CRASH");

		p->crash_at = !strcmp(at, "locked") ? CRASH_LOCKED :
			      !strcmp(at, "claimed") ? CRASH_CLAIMED :
			      !strcmp(at, "draining") ? CRASH_DRAINING : CRASH_NONE;
	}

	pool->backend = RUND_POOL_BACKEND_CGROUPFS;
	pool->ops = &rund_pool_cgroupfs_ops;
	pool->priv = p;
	return 0;
}

const struct rund_pool_ops rund_pool_cgroupfs_ops = {
	.init = cg_init,
	.resize = cg_resize,
	.destroy = cg_destroy,
	.acquire = cg_acquire,
	.attach = cg_attach,
	.release = cg_release,
	.query = cg_query,
	.list = cg_list,
	.stats = cg_stats,
	.scan = cg_scan,
	.mark_populated = cg_mark_populated,
	.slot_dirs = cg_slot_dirs,
	.close = cg_close,
};
