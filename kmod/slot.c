// SPDX-License-Identifier: GPL-2.0
/*
 * Slot life cycle: idle -> claimed -> draining -> idle.
 *
 * A claim pops the first idle slot and enters the sandbox id in the id table
 * under pool->lock, and nothing else happens under it. Limits, renames,
 * attaches, kills and drains run outside it, serialized per slot by
 * slot->op_lock. Whoever takes op_lock after a lookup checks that the slot
 * is still claimed under the same claim_seq, because a slot can be released
 * and claimed again between the lookup and the lock.
 *
 * Each claimed or draining slot holds a module reference, dropped when the
 * drain worker returns the slot to the idle list.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/jhash.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "cgfs.h"
#include "pool.h"

#define RUND_FREEZE_TIMEOUT_MS	1000
/* v1 kill reads at most this much of cgroup.procs per pass. */
#define RUND_PROCS_BUF_SIZE	(64 * 1024)

static bool rund_pool_v1(const struct rund_pool *pool)
{
	return pool->layout != RUND_LAYOUT_V2;
}

/**
 * rund_slot_write_limits() - write a claim's limits into the slot's control files
 * @pool: the pool
 * @slot: the slot, with op_lock held
 * @limits: zero fields mean unlimited, and a zero period means the default period
 *
 * Return: 0 or the first write error.
 */
int rund_slot_write_limits(struct rund_pool *pool, struct rund_slot *slot,
			   const struct rund_limits *limits)
{
	u32 period = limits->cpu_period_us ?: RUND_CPU_PERIOD_DEFAULT_US;
	bool v1 = rund_pool_v1(pool);
	int err = 0;
	u32 i;

	lockdep_assert_held(&slot->op_lock);

	for (i = 0; i < pool->nr_hier && !err; i++) {
		struct rund_slot_dir *dir = &slot->dirs[i];

		if (dir->memory) {
			if (limits->memory_max)
				err = rund_cgfs_printf(dir->memory, "%llu", limits->memory_max);
			else
				err = rund_cgfs_write(dir->memory, v1 ? "-1" : "max");
			if (err)
				break;
		}

		if (dir->cpu && !v1) {
			if (limits->cpu_quota_us)
				err = rund_cgfs_printf(dir->cpu, "%llu %u", limits->cpu_quota_us, period);
			else
				err = rund_cgfs_printf(dir->cpu, "max %u", period);
			if (err)
				break;
		} else if (dir->cpu) {
			/*
			 * v1 checks the quota against the period of the moment:
			 * lift the quota first, then set the period, then the quota.
			 */
			err = rund_cgfs_write(dir->cpu, "-1");
			if (!err)
				err = rund_cgfs_printf(dir->cpu_period, "%u", period);
			if (!err && limits->cpu_quota_us)
				err = rund_cgfs_printf(dir->cpu, "%llu", limits->cpu_quota_us);
			if (err)
				break;
		}

		if (dir->pids) {
			if (limits->pids_max)
				err = rund_cgfs_printf(dir->pids, "%u", limits->pids_max);
			else
				err = rund_cgfs_write(dir->pids, "max");
		}
	}
	return err;
}

static int rund_slot_rename(struct rund_pool *pool, struct rund_slot *slot, bool to_sandbox)
{
	int err;
	u32 i;

	lockdep_assert_held(&slot->op_lock);

	for (i = 0; i < pool->nr_hier; i++) {
		struct rund_slot_dir *dir = &slot->dirs[i];

		if (dir->renamed == to_sandbox)
			continue;
		err = rund_cgfs_rename(&pool->hier[i].root, dir->dentry,
				       to_sandbox ? slot->sandbox_id : slot->name);
		if (err) {
			pr_warn_ratelimited("cannot rename %s/%pd to %s: %d\n", pool->hier[i].path,
					    dir->dentry, to_sandbox ? slot->sandbox_id : slot->name, err);
			return err;
		}
		WRITE_ONCE(dir->renamed, to_sandbox);
	}
	return 0;
}

void rund_slot_info_locked(struct rund_pool *pool, struct rund_slot *slot,
			   struct rund_slot_info *info)
{
	bool renamed = rund_pool_v1(pool) && READ_ONCE(slot->dirs[0].renamed);

	lockdep_assert_held(&pool->lock);

	info->index = slot->index;
	info->state = slot->state;
	info->flags = slot->flags;
	info->owner_portid = slot->owner_portid;
	info->claimed_ns = slot->claimed_ns;
	info->populated = slot->populated;
	info->limits = slot->limits;
	if (slot->state == RUND_SLOT_IDLE)
		info->sandbox_id[0] = '\0';
	else
		strscpy(info->sandbox_id, slot->sandbox_id, sizeof(info->sandbox_id));
	snprintf(info->path, sizeof(info->path), "%s/%s", pool->hier[0].path,
		 renamed ? slot->sandbox_id : slot->name);
}

/*
 * Moves a claimed slot to draining and queues its drain. The drain worker
 * takes op_lock, so a caller holding it finishes its own file work first.
 */
static void rund_slot_release_locked(struct rund_pool *pool, struct rund_slot *slot,
				     enum rund_event_reason reason)
{
	lockdep_assert_held(&pool->lock);

	hash_del(&slot->id_node);
	xa_clear_mark(&pool->slots, slot->index, RUND_MARK_CLAIMED);
	xa_clear_mark(&pool->slots, slot->index, RUND_MARK_BOUND);
	pool->nr_state[slot->state]--;
	slot->state = RUND_SLOT_DRAINING;
	pool->nr_state[RUND_SLOT_DRAINING]++;
	slot->release_reason = reason;
	queue_work(pool->wq, &slot->drain_work);
}

/*
 * Takes op_lock of the slot claimed under @sandbox_id. Returns the slot with
 * op_lock held and still claimed by the same claim, or NULL.
 */
static struct rund_slot *rund_slot_lock_claimed(struct rund_pool *pool, const char *sandbox_id)
{
	struct rund_slot *slot;
	bool same;
	u64 seq;

	spin_lock(&pool->lock);
	slot = rund_slot_find_locked(pool, sandbox_id);
	seq = slot ? slot->claim_seq : 0;
	spin_unlock(&pool->lock);
	if (!slot)
		return NULL;

	/* Slots are freed only under rwsem held for write, which the caller excludes. */
	mutex_lock(&slot->op_lock);
	spin_lock(&pool->lock);
	same = slot->state == RUND_SLOT_CLAIMED && slot->claim_seq == seq;
	spin_unlock(&pool->lock);
	if (!same) {
		mutex_unlock(&slot->op_lock);
		return NULL;
	}
	return slot;
}

/**
 * rund_slot_acquire() - claim an idle slot for a sandbox and apply its limits
 * @claim: sandbox id (validated), limits, RUND_ACQUIRE_F_* flags, requesting portid
 * @info: the claimed slot on success
 * @extack: receives the reason of a rejection
 *
 * Return: 0, -ENODEV without a pool, -EEXIST for an id already claimed,
 * -ENOSPC when no slot is idle, or the error of a limit write or v1 rename,
 * in which case the slot goes back through a drain.
 */
int rund_slot_acquire(const struct rund_claim *claim, struct rund_slot_info *info,
		      struct netlink_ext_ack *extack)
{
	u32 key = jhash(claim->sandbox_id, strlen(claim->sandbox_id), 0);
	struct rund_pool *pool = &rund_pool;
	struct rund_slot *slot;
	u64 start = ktime_get_ns();
	bool same;
	u64 seq;
	int err;

	if (!try_module_get(THIS_MODULE))
		return -ENODEV;

	down_read(&pool->rwsem);
	if (!rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "no pool exists; create one with the init command");
		err = -ENODEV;
		goto out_unlock;
	}

	spin_lock(&pool->lock);
	if (rund_slot_find_locked(pool, claim->sandbox_id)) {
		spin_unlock(&pool->lock);
		rund_stats_fail(pool, RUND_FAIL_DUPLICATE);
		NL_SET_ERR_MSG(extack, "the sandbox id already holds a slot; release it first or use another id");
		err = -EEXIST;
		goto out_unlock;
	}
	slot = list_first_entry_or_null(&pool->idle, struct rund_slot, idle_node);
	if (!slot) {
		spin_unlock(&pool->lock);
		rund_stats_fail(pool, RUND_FAIL_EXHAUSTED);
		NL_SET_ERR_MSG(extack, "no idle slot: the pool is exhausted; release slots or grow the pool");
		err = -ENOSPC;
		goto out_unlock;
	}
	list_del_init(&slot->idle_node);
	pool->nr_state[RUND_SLOT_IDLE]--;
	pool->nr_state[RUND_SLOT_CLAIMED]++;
	slot->state = RUND_SLOT_CLAIMED;
	seq = ++slot->claim_seq;
	strscpy(slot->sandbox_id, claim->sandbox_id, sizeof(slot->sandbox_id));
	hash_add(pool->ids, &slot->id_node, key);
	slot->flags = claim->flags;
	slot->owner_portid = claim->flags & RUND_ACQUIRE_F_SOCKET_BOUND ? claim->portid : 0;
	slot->claimed_ns = start;
	slot->populated = false;
	slot->limits = claim->limits;
	xa_set_mark(&pool->slots, slot->index, RUND_MARK_CLAIMED);
	if (claim->flags & RUND_ACQUIRE_F_SOCKET_BOUND)
		xa_set_mark(&pool->slots, slot->index, RUND_MARK_BOUND);
	spin_unlock(&pool->lock);

	/* From here the module reference belongs to the slot until its drain ends. */
	mutex_lock(&slot->op_lock);
	spin_lock(&pool->lock);
	same = slot->state == RUND_SLOT_CLAIMED && slot->claim_seq == seq;
	spin_unlock(&pool->lock);
	if (!same) {
		NL_SET_ERR_MSG(extack, "the slot was released while it was being claimed");
		err = -EAGAIN;
		goto out_unlock_slot;
	}

	err = rund_slot_write_limits(pool, slot, &claim->limits);
	if (err) {
		rund_stats_fail(pool, RUND_FAIL_LIMITS);
		NL_SET_ERR_MSG(extack, "cannot write the limits into the slot's cgroup files");
		goto out_release;
	}

	if (rund_pool_v1(pool)) {
		err = rund_slot_rename(pool, slot, true);
		if (err) {
			rund_stats_fail(pool, RUND_FAIL_RENAME);
			if (err == -EEXIST)
				NL_SET_ERR_MSG(extack, "a directory named after the sandbox id already exists under the pool root, possibly a slot released under this id that is still draining");
			else
				NL_SET_ERR_MSG(extack, "cannot rename the slot directory to the sandbox id");
			goto out_release;
		}
	}

	spin_lock(&pool->lock);
	rund_slot_info_locked(pool, slot, info);
	spin_unlock(&pool->lock);
	mutex_unlock(&slot->op_lock);
	up_read(&pool->rwsem);

	rund_genl_notify(info, RUND_EVENT_ACQUIRED);
	rund_stats_op(pool, RUND_OP_ACQUIRE, start, 0);
	return 0;

out_release:
	spin_lock(&pool->lock);
	if (slot->state == RUND_SLOT_CLAIMED && slot->claim_seq == seq)
		rund_slot_release_locked(pool, slot, RUND_EVENT_RELEASED);
	spin_unlock(&pool->lock);
out_unlock_slot:
	mutex_unlock(&slot->op_lock);
	up_read(&pool->rwsem);
	rund_stats_op(pool, RUND_OP_ACQUIRE, start, err);
	return err;

out_unlock:
	up_read(&pool->rwsem);
	module_put(THIS_MODULE);
	rund_stats_op(pool, RUND_OP_ACQUIRE, start, err);
	return err;
}

/**
 * rund_slot_attach() - move a process into a sandbox's slot
 * @sandbox_id: validated sandbox id
 * @pid: process id in the caller's pid namespace
 * @extack: receives the reason of a rejection
 *
 * The process is written into cgroup.procs of every hierarchy of the pool.
 * Return: 0, -ENODEV, -ENOENT for an unknown id, or the cgroup.procs write error.
 */
int rund_slot_attach(const char *sandbox_id, pid_t pid, struct netlink_ext_ack *extack)
{
	struct rund_pool *pool = &rund_pool;
	struct rund_slot *slot;
	u64 start = ktime_get_ns();
	int err = 0;
	u32 i;

	down_read(&pool->rwsem);
	if (!rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "no pool exists; create one with the init command");
		err = -ENODEV;
		goto out_unlock;
	}

	slot = rund_slot_lock_claimed(pool, sandbox_id);
	if (!slot) {
		rund_stats_fail(pool, RUND_FAIL_NOT_FOUND);
		NL_SET_ERR_MSG(extack, "no slot is claimed under this sandbox id");
		err = -ENOENT;
		goto out_unlock;
	}

	for (i = 0; i < pool->nr_hier; i++) {
		err = rund_cgfs_printf(slot->dirs[i].procs, "%d", pid);
		if (err) {
			rund_stats_fail(pool, RUND_FAIL_ATTACH);
			pr_debug("attach of pid %d to %s failed: %d\n", pid, sandbox_id, err);
			if (err == -ESRCH)
				NL_SET_ERR_MSG(extack, "no process with this pid in the caller's pid namespace");
			else
				NL_SET_ERR_MSG(extack, "cannot write the pid into the slot's cgroup.procs");
			break;
		}
	}

	if (!err) {
		spin_lock(&pool->lock);
		slot->populated = true;
		spin_unlock(&pool->lock);
	}
	mutex_unlock(&slot->op_lock);

out_unlock:
	up_read(&pool->rwsem);
	rund_stats_op(pool, RUND_OP_ATTACH, start, err);
	return err;
}

/* Lists the pids of cgroup.procs of a v1 slot and sends each SIGKILL. */
static int rund_slot_kill_v1_pids(const struct rund_hier *hier, struct rund_slot_dir *dir)
{
	char *buf, *cur, *line;
	ssize_t len;
	int pid;

	buf = kvmalloc(RUND_PROCS_BUF_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	len = rund_cgfs_read_at(&hier->root, dir->dentry, "cgroup.procs", buf, RUND_PROCS_BUF_SIZE);
	if (len < 0) {
		kvfree(buf);
		return len;
	}

	cur = buf;
	while ((line = strsep(&cur, "\n")) != NULL) {
		if (kstrtoint(line, 10, &pid) || pid <= 0)
			continue;
		rcu_read_lock();
		kill_pid(find_vpid(pid), SIGKILL, 1);
		rcu_read_unlock();
	}
	kvfree(buf);
	return 0;
}

static int rund_slot_freeze_wait(struct rund_slot_dir *dir)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(RUND_FREEZE_TIMEOUT_MS);
	char state[16];
	ssize_t len;

	for (;;) {
		len = rund_cgfs_read(dir->freezer, state, sizeof(state));
		if (len < 0)
			return len;
		if (!strcmp(state, "FROZEN\n"))
			return 0;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(200, 1000);
	}
}

static int rund_slot_populated(struct rund_pool *pool, struct rund_slot *slot);

/*
 * Kills every process of the slot with cgroup.kill on v2. On v1 the slot is
 * frozen so that nothing forks while the pids are listed and signalled,
 * then thawed so that the killed tasks can exit. An empty v1 slot is left
 * alone: freezing a cgroup while no other one is frozen enables the
 * freezer's static key, which patches kernel text on every CPU.
 */
static int rund_slot_kill(struct rund_pool *pool, struct rund_slot *slot)
{
	struct rund_slot_dir *freezer_dir = NULL;
	int err = 0;
	u32 i;

	lockdep_assert_held(&slot->op_lock);

	if (!rund_pool_v1(pool))
		return rund_cgfs_write(slot->dirs[0].kill, "1");

	/*
	 * No task of the slot is left to fork into it. A task can still join
	 * through a cgroup.procs write, which freezing would not stop either.
	 */
	if (rund_slot_populated(pool, slot) == 0)
		return 0;

	for (i = 0; i < pool->nr_hier; i++) {
		if (slot->dirs[i].freezer)
			freezer_dir = &slot->dirs[i];
	}
	if (!freezer_dir)
		return -EINVAL;

	err = rund_cgfs_write(freezer_dir->freezer, "FROZEN");
	if (!err)
		err = rund_slot_freeze_wait(freezer_dir);
	if (err)
		pr_warn_ratelimited("cannot freeze slot %s: %d\n", slot->name, err);

	/* Kill even when freezing failed: SIGKILL still ends most tasks. */
	for (i = 0; i < pool->nr_hier; i++) {
		int kerr = rund_slot_kill_v1_pids(&pool->hier[i], &slot->dirs[i]);

		if (kerr && !err)
			err = kerr;
	}

	if (rund_cgfs_write(freezer_dir->freezer, "THAWED") && !err)
		err = -EIO;
	return err;
}

/* Returns 1 when the slot has processes, 0 when it has none, or -errno. */
static int rund_slot_populated(struct rund_pool *pool, struct rund_slot *slot)
{
	char buf[64];
	ssize_t len;
	u32 i;

	lockdep_assert_held(&slot->op_lock);

	if (!rund_pool_v1(pool)) {
		len = rund_cgfs_read(slot->dirs[0].events, buf, sizeof(buf));
		if (len < 0)
			return len;
		return strstr(buf, "populated 1") != NULL;
	}

	for (i = 0; i < pool->nr_hier; i++) {
		len = rund_cgfs_read_at(&pool->hier[i].root, slot->dirs[i].dentry, "cgroup.procs",
					buf, sizeof(buf));
		if (len < 0)
			return len;
		if (len > 0)
			return 1;
	}
	return 0;
}

static int rund_slot_wait_empty(struct rund_pool *pool, struct rund_slot *slot)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(RUND_DRAIN_TIMEOUT_MS);
	unsigned int delay_us = 50;
	int ret;

	for (;;) {
		ret = rund_slot_populated(pool, slot);
		if (ret <= 0)
			return ret;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(delay_us, delay_us * 2);
		delay_us = min(delay_us * 2, 10000U);
	}
}

/**
 * rund_slot_release() - release a sandbox's slot
 * @sandbox_id: validated sandbox id
 * @extack: receives the reason of a rejection
 *
 * The slot's processes are sent the kill before this returns. Waiting for
 * them to exit, resetting the limits and the v1 rename back happen in the
 * drain worker. Return: 0, -ENODEV, or -ENOENT for an unknown id.
 */
int rund_slot_release(const char *sandbox_id, struct netlink_ext_ack *extack)
{
	struct rund_pool *pool = &rund_pool;
	struct rund_slot *slot;
	u64 start = ktime_get_ns();
	int err = 0;

	down_read(&pool->rwsem);
	if (!rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "no pool exists; create one with the init command");
		err = -ENODEV;
		goto out_unlock;
	}

	slot = rund_slot_lock_claimed(pool, sandbox_id);
	if (!slot) {
		rund_stats_fail(pool, RUND_FAIL_NOT_FOUND);
		NL_SET_ERR_MSG(extack, "no slot is claimed under this sandbox id");
		err = -ENOENT;
		goto out_unlock;
	}

	spin_lock(&pool->lock);
	rund_slot_release_locked(pool, slot, RUND_EVENT_RELEASED);
	spin_unlock(&pool->lock);

	/* A failed kill is retried by the drain worker, which also counts it. */
	rund_slot_kill(pool, slot);
	mutex_unlock(&slot->op_lock);

out_unlock:
	up_read(&pool->rwsem);
	rund_stats_op(pool, RUND_OP_RELEASE, start, err);
	return err;
}

/**
 * rund_slot_release_owner() - release the socket-bound claims of a closed socket
 * @portid: netlink port id of the socket, in the initial network namespace
 *
 * Called from the netlink notifier, which may run for any netlink socket:
 * it only walks the slots marked bound.
 */
void rund_slot_release_owner(u32 portid)
{
	struct rund_pool *pool = &rund_pool;
	struct rund_slot *slot;
	unsigned long index;

	if (!xa_marked(&pool->slots, RUND_MARK_BOUND))
		return;

	spin_lock(&pool->lock);
	xa_for_each_marked(&pool->slots, index, slot, RUND_MARK_BOUND) {
		if (slot->state == RUND_SLOT_CLAIMED && slot->owner_portid == portid)
			rund_slot_release_locked(pool, slot, RUND_EVENT_SOCKET_CLOSED);
	}
	spin_unlock(&pool->lock);
}

/* Kills, waits for empty, resets and renames back a released slot, then makes it idle. */
void rund_slot_drain_work(struct work_struct *work)
{
	struct rund_slot *slot = container_of(work, struct rund_slot, drain_work);
	struct rund_pool *pool = slot->pool;
	static const struct rund_limits no_limits;
	enum rund_event_reason reason;
	struct rund_slot_info info;
	u64 start = ktime_get_ns();
	bool broken = false;
	int err;

	spin_lock(&pool->lock);
	rund_slot_info_locked(pool, slot, &info);
	reason = slot->release_reason;
	spin_unlock(&pool->lock);
	rund_genl_notify(&info, reason);

	mutex_lock(&slot->op_lock);

	err = rund_slot_kill(pool, slot);
	if (err) {
		rund_stats_fail(pool, RUND_FAIL_KILL);
		pr_warn_ratelimited("kill of slot %s (%s) failed: %d\n",
				    slot->name, slot->sandbox_id, err);
	}

	err = rund_slot_wait_empty(pool, slot);
	if (err) {
		rund_stats_fail(pool, RUND_FAIL_DRAIN_TIMEOUT);
		pr_warn_ratelimited("slot %s (%s) did not empty: %d; marking it broken\n",
				    slot->name, slot->sandbox_id, err);
		broken = true;
	}

	if (!broken && rund_slot_write_limits(pool, slot, &no_limits)) {
		rund_stats_fail(pool, RUND_FAIL_LIMITS);
		pr_warn_ratelimited("cannot reset the limits of slot %s; marking it broken\n",
				    slot->name);
		broken = true;
	}

	if (!broken && rund_pool_v1(pool) && rund_slot_rename(pool, slot, false)) {
		rund_stats_fail(pool, RUND_FAIL_RENAME);
		broken = true;
	}
	mutex_unlock(&slot->op_lock);

	spin_lock(&pool->lock);
	pool->nr_state[RUND_SLOT_DRAINING]--;
	if (broken) {
		slot->state = RUND_SLOT_BROKEN;
	} else {
		slot->state = RUND_SLOT_IDLE;
		slot->sandbox_id[0] = '\0';
		slot->flags = 0;
		slot->owner_portid = 0;
		memset(&slot->limits, 0, sizeof(slot->limits));
		list_add(&slot->idle_node, &pool->idle);
	}
	pool->nr_state[slot->state]++;
	rund_slot_info_locked(pool, slot, &info);
	spin_unlock(&pool->lock);

	/* The slot may be freed from here on: use only locals and the pool. */
	rund_genl_notify(&info, broken ? RUND_EVENT_DRAIN_FAILED : RUND_EVENT_IDLE);
	rund_stats_op(pool, RUND_OP_DRAIN, start, broken ? -EIO : 0);
	module_put(THIS_MODULE);
}

/* Decides whether a claimed slot is released automatically. The caller holds op_lock. */
static enum rund_event_reason rund_slot_scan_one(struct rund_pool *pool, struct rund_slot *slot)
{
	bool was_populated, bound;
	u64 claimed_ns;
	int populated;

	lockdep_assert_held(&slot->op_lock);

	spin_lock(&pool->lock);
	was_populated = slot->populated;
	bound = slot->flags & RUND_ACQUIRE_F_SOCKET_BOUND;
	claimed_ns = slot->claimed_ns;
	spin_unlock(&pool->lock);

	populated = rund_slot_populated(pool, slot);
	if (populated < 0)
		return RUND_EVENT_UNSPEC;

	if (populated) {
		if (!was_populated) {
			spin_lock(&pool->lock);
			slot->populated = true;
			spin_unlock(&pool->lock);
		}
		return RUND_EVENT_UNSPEC;
	}
	if (was_populated)
		return RUND_EVENT_EMPTIED;
	/*
	 * A socket-bound claim lives as long as its socket, populated or not.
	 * The clock is read after claimed_ns, so the difference cannot wrap.
	 */
	if (!bound && ktime_get_ns() - claimed_ns > (u64)pool->lease_ms * NSEC_PER_MSEC)
		return RUND_EVENT_LEASE_EXPIRED;
	return RUND_EVENT_UNSPEC;
}

/*
 * Releases claimed slots whose cgroup became empty or whose lease expired.
 * Runs every RUND_SCAN_INTERVAL_MS while a pool exists; it skips slots whose
 * op_lock is busy and looks at them again on the next pass.
 */
void rund_pool_scan_work(struct work_struct *work)
{
	struct rund_pool *pool = container_of(to_delayed_work(work), struct rund_pool, scan_work);
	enum rund_event_reason reason;
	struct rund_slot *slot;
	unsigned long index;
	bool claimed;
	u64 seq;

	down_read(&pool->rwsem);
	if (!rund_pool_active(pool)) {
		up_read(&pool->rwsem);
		return;
	}

	xa_for_each_marked(&pool->slots, index, slot, RUND_MARK_CLAIMED) {
		if (!mutex_trylock(&slot->op_lock))
			continue;

		spin_lock(&pool->lock);
		seq = slot->claim_seq;
		claimed = slot->state == RUND_SLOT_CLAIMED;
		spin_unlock(&pool->lock);

		reason = claimed ? rund_slot_scan_one(pool, slot) : RUND_EVENT_UNSPEC;
		if (reason != RUND_EVENT_UNSPEC) {
			spin_lock(&pool->lock);
			if (slot->state == RUND_SLOT_CLAIMED && slot->claim_seq == seq)
				rund_slot_release_locked(pool, slot, reason);
			spin_unlock(&pool->lock);
		}
		mutex_unlock(&slot->op_lock);
		cond_resched();
	}
	up_read(&pool->rwsem);

	queue_delayed_work(pool->wq, &pool->scan_work, msecs_to_jiffies(RUND_SCAN_INTERVAL_MS));
}
