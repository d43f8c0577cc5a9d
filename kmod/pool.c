// SPDX-License-Identifier: GPL-2.0
/*
 * Cgroup slot pool: creation, growth and removal of the slot directories.
 *
 * A slot is one pre-created cgroup directory per hierarchy, named
 * "<prefix>-<index>" under the pool root. Slots live until the pool is
 * destroyed or the module unloads, and their control files stay open so
 * that a claim only writes into them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/file.h>
#include <linux/jhash.h>
#include <linux/percpu.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "cgfs.h"
#include "pool.h"

struct rund_pool rund_pool;

bool rund_pool_active(struct rund_pool *pool)
{
	return pool->layout != RUND_LAYOUT_UNSPEC;
}

/**
 * rund_slot_find_locked() - look up the claimed slot of a sandbox
 * @pool: the pool, with pool->lock held
 * @sandbox_id: NUL-terminated sandbox id
 *
 * Return: the slot, or NULL when no slot is claimed under @sandbox_id.
 */
struct rund_slot *rund_slot_find_locked(struct rund_pool *pool, const char *sandbox_id)
{
	u32 key = jhash(sandbox_id, strlen(sandbox_id), 0);
	struct rund_slot *slot;

	lockdep_assert_held(&pool->lock);

	hash_for_each_possible(pool->ids, slot, id_node, key) {
		if (!strcmp(slot->sandbox_id, sandbox_id))
			return slot;
	}
	return NULL;
}

/**
 * rund_slot_get() - copy the state of one slot
 * @sandbox_id: look up the slot claimed under this id, or by @index when NULL
 * @index: slot index
 * @info: receives the copy
 *
 * Return: 0, -ENODEV without a pool, or -ENOENT when no such slot exists.
 */
int rund_slot_get(const char *sandbox_id, u32 index, struct rund_slot_info *info)
{
	struct rund_pool *pool = &rund_pool;
	struct rund_slot *slot;
	int err = 0;

	down_read(&pool->rwsem);
	if (!rund_pool_active(pool)) {
		err = -ENODEV;
		goto out_unlock;
	}

	spin_lock(&pool->lock);
	if (sandbox_id)
		slot = rund_slot_find_locked(pool, sandbox_id);
	else
		slot = xa_load(&pool->slots, index);
	if (slot)
		rund_slot_info_locked(pool, slot, info);
	else
		err = -ENOENT;
	spin_unlock(&pool->lock);

out_unlock:
	up_read(&pool->rwsem);
	return err;
}

static void rund_slot_dir_close(struct rund_slot_dir *dir)
{
	struct file **files[] = {
		&dir->procs, &dir->memory, &dir->cpu, &dir->cpu_period,
		&dir->pids, &dir->freezer, &dir->kill, &dir->events,
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(files); i++) {
		if (*files[i]) {
			fput(*files[i]);
			*files[i] = NULL;
		}
	}
}

static int rund_slot_dir_open_one(const struct rund_hier *hier, struct rund_slot_dir *dir,
				  const char *name, int flags, struct file **out)
{
	struct file *file;

	file = rund_cgfs_open(&hier->root, dir->dentry, name, flags);
	if (IS_ERR(file)) {
		pr_warn_ratelimited("cannot open %s/%pd/%s: %ld\n",
				    hier->path, dir->dentry, name, PTR_ERR(file));
		return PTR_ERR(file);
	}
	*out = file;
	return 0;
}

/* Opens the control files of one slot directory that the pool writes or polls. */
static int rund_slot_dir_open(struct rund_pool *pool, const struct rund_hier *hier,
			      struct rund_slot_dir *dir)
{
	bool v2 = pool->layout == RUND_LAYOUT_V2;
	u32 ctrl = hier->controllers;
	int err;

	err = rund_slot_dir_open_one(hier, dir, "cgroup.procs", O_RDWR, &dir->procs);
	if (err)
		goto out_close;

	if (v2) {
		err = rund_slot_dir_open_one(hier, dir, "cgroup.kill", O_WRONLY, &dir->kill);
		if (err)
			goto out_close;
		err = rund_slot_dir_open_one(hier, dir, "cgroup.events", O_RDONLY, &dir->events);
		if (err)
			goto out_close;
	}

	if (ctrl & RUND_CTRL_MEMORY) {
		err = rund_slot_dir_open_one(hier, dir, v2 ? "memory.max" : "memory.limit_in_bytes",
					     O_RDWR, &dir->memory);
		if (err)
			goto out_close;
	}

	if (ctrl & RUND_CTRL_CPU) {
		err = rund_slot_dir_open_one(hier, dir, v2 ? "cpu.max" : "cpu.cfs_quota_us",
					     O_RDWR, &dir->cpu);
		if (err)
			goto out_close;
		if (!v2) {
			err = rund_slot_dir_open_one(hier, dir, "cpu.cfs_period_us", O_RDWR,
						     &dir->cpu_period);
			if (err)
				goto out_close;
		}
	}

	if (ctrl & RUND_CTRL_PIDS) {
		err = rund_slot_dir_open_one(hier, dir, "pids.max", O_RDWR, &dir->pids);
		if (err)
			goto out_close;
	}

	if (!v2 && (ctrl & RUND_CTRL_FREEZER)) {
		err = rund_slot_dir_open_one(hier, dir, "freezer.state", O_RDWR, &dir->freezer);
		if (err)
			goto out_close;
	}
	return 0;

out_close:
	rund_slot_dir_close(dir);
	return err;
}

/* Closes the slot's files and removes its directories. The slot must be idle. */
static void rund_slot_free(struct rund_pool *pool, struct rund_slot *slot)
{
	u32 i;
	int err;

	for (i = 0; i < pool->nr_hier; i++) {
		struct rund_slot_dir *dir = &slot->dirs[i];

		if (!dir->dentry)
			continue;
		rund_slot_dir_close(dir);
		err = rund_cgfs_rmdir(&pool->hier[i].root, dir->dentry);
		dir->dentry = NULL;
		if (err)
			pr_warn_ratelimited("cannot remove %s/%s: %d\n",
					    pool->hier[i].path, slot->name, err);
	}
	mutex_destroy(&slot->op_lock);
	kfree(slot);
}

static struct rund_slot *rund_slot_create(struct rund_pool *pool, u32 index,
					  struct netlink_ext_ack *extack)
{
	struct rund_slot *slot;
	u32 i;
	int err;

	slot = kzalloc(sizeof(*slot), GFP_KERNEL);
	if (!slot)
		return ERR_PTR(-ENOMEM);

	slot->index = index;
	slot->pool = pool;
	slot->state = RUND_SLOT_IDLE;
	INIT_LIST_HEAD(&slot->idle_node);
	INIT_HLIST_NODE(&slot->id_node);
	mutex_init(&slot->op_lock);
	INIT_WORK(&slot->drain_work, rund_slot_drain_work);
	snprintf(slot->name, sizeof(slot->name), "%s-%u", pool->prefix, index);

	for (i = 0; i < pool->nr_hier; i++) {
		const struct rund_hier *hier = &pool->hier[i];
		struct rund_slot_dir *dir = &slot->dirs[i];

		err = rund_cgfs_mkdir(&hier->root, slot->name, &dir->dentry);
		if (err) {
			pr_warn_ratelimited("cannot create %s/%s: %d\n", hier->path, slot->name, err);
			if (err == -EEXIST)
				NL_SET_ERR_MSG(extack, "a slot directory already exists under the pool root; remove the leftover directories or pick another prefix");
			else
				NL_SET_ERR_MSG(extack, "cannot create a slot directory under the pool root");
			goto out_free;
		}

		err = rund_slot_dir_open(pool, hier, dir);
		if (err) {
			NL_SET_ERR_MSG(extack, "cannot open a slot's control files: check that the hierarchy has the requested controllers");
			goto out_free;
		}
	}
	return slot;

out_free:
	rund_slot_free(pool, slot);
	return ERR_PTR(err);
}

/*
 * Creates slots [pool->nr_slots, size) and publishes them idle. Slots that
 * were created before a failure stay in the pool.
 */
static int rund_pool_grow(struct rund_pool *pool, u32 size, struct netlink_ext_ack *extack)
{
	struct rund_slot *slot;
	u32 index;
	int err;

	lockdep_assert_held(&pool->cfg_mutex);

	for (index = pool->nr_slots; index < size; index++) {
		slot = rund_slot_create(pool, index, extack);
		if (IS_ERR(slot))
			return PTR_ERR(slot);

		err = xa_insert(&pool->slots, index, slot, GFP_KERNEL);
		if (err) {
			rund_slot_free(pool, slot);
			return err;
		}

		spin_lock(&pool->lock);
		list_add_tail(&slot->idle_node, &pool->idle);
		pool->nr_slots = index + 1;
		pool->nr_state[RUND_SLOT_IDLE]++;
		spin_unlock(&pool->lock);
	}
	return 0;
}

/* Removes every slot. The caller holds rwsem for write and has checked that all are idle. */
static void rund_pool_free_slots(struct rund_pool *pool)
{
	struct rund_slot *slot;
	unsigned long index;

	lockdep_assert_held_write(&pool->rwsem);
	lockdep_assert_held(&pool->cfg_mutex);

	xa_for_each(&pool->slots, index, slot) {
		spin_lock(&pool->lock);
		list_del_init(&slot->idle_node);
		pool->nr_state[slot->state]--;
		pool->nr_slots--;
		spin_unlock(&pool->lock);

		xa_erase(&pool->slots, index);
		rund_slot_free(pool, slot);
	}
}

static void rund_pool_put_roots(struct rund_pool *pool)
{
	u32 i;

	for (i = 0; i < pool->nr_hier; i++)
		path_put(&pool->hier[i].root);
	memset(pool->hier, 0, sizeof(pool->hier));
	pool->nr_hier = 0;
}

/* Enables the pool's controllers for the slots below a v2 pool root. */
static int rund_pool_enable_v2(struct rund_pool *pool, struct netlink_ext_ack *extack)
{
	static const struct {
		u32 bit;
		const char *cmd;
	} ctrls[] = {
		{ RUND_CTRL_MEMORY, "+memory" },
		{ RUND_CTRL_CPU, "+cpu" },
		{ RUND_CTRL_PIDS, "+pids" },
	};
	struct rund_hier *hier = &pool->hier[0];
	struct file *file;
	int err = 0;
	int i;

	file = rund_cgfs_open(&hier->root, hier->root.dentry, "cgroup.subtree_control", O_WRONLY);
	if (IS_ERR(file)) {
		NL_SET_ERR_MSG(extack, "cannot open cgroup.subtree_control of the pool root");
		return PTR_ERR(file);
	}

	for (i = 0; i < ARRAY_SIZE(ctrls); i++) {
		if (!(pool->controllers & ctrls[i].bit))
			continue;
		err = rund_cgfs_write(file, ctrls[i].cmd);
		if (err) {
			pr_warn_ratelimited("cannot write %s to %s/cgroup.subtree_control: %d\n",
					    ctrls[i].cmd, hier->path, err);
			NL_SET_ERR_MSG(extack, "cannot enable a controller in the pool root's cgroup.subtree_control: enable it in the parent's cgroup.subtree_control first");
			break;
		}
	}
	fput(file);
	return err;
}

/* Checks that each requested controller is served by exactly one hierarchy. */
static int rund_pool_check_controllers(const struct rund_pool_config *cfg,
				       struct netlink_ext_ack *extack)
{
	u32 seen = 0;
	u32 i;

	if (cfg->layout == RUND_LAYOUT_V2 && (cfg->controllers & RUND_CTRL_FREEZER)) {
		NL_SET_ERR_MSG(extack, "the freezer controller exists only on cgroup v1; a v2 pool kills through cgroup.kill");
		return -EINVAL;
	}
	if (cfg->layout != RUND_LAYOUT_V2 && !(cfg->controllers & RUND_CTRL_FREEZER)) {
		NL_SET_ERR_MSG(extack, "a cgroup v1 pool needs the freezer controller to kill a slot's processes");
		return -EINVAL;
	}
	if (cfg->layout != RUND_LAYOUT_V1_SPLIT)
		return 0;

	for (i = 0; i < cfg->nr_hier; i++) {
		if (!cfg->hier[i].controllers || (cfg->hier[i].controllers & seen)) {
			NL_SET_ERR_MSG(extack, "each hierarchy must serve at least one controller, and each controller one hierarchy only");
			return -EINVAL;
		}
		seen |= cfg->hier[i].controllers;
	}
	if (seen != cfg->controllers) {
		NL_SET_ERR_MSG(extack, "the hierarchies' controllers must add up to the pool's controller set");
		return -EINVAL;
	}
	return 0;
}

/**
 * rund_pool_init() - create the pool
 * @cfg: layout, roots, size, prefix, controllers and lease, already range-checked
 * @extack: receives the reason of a rejection
 *
 * Return: 0, -EEXIST when a pool exists, or the error that stopped the
 * creation of the roots or slots, after removing every slot created.
 */
int rund_pool_init(const struct rund_pool_config *cfg, struct netlink_ext_ack *extack)
{
	struct rund_pool *pool = &rund_pool;
	bool v2 = cfg->layout == RUND_LAYOUT_V2;
	u32 i;
	int err;

	err = rund_pool_check_controllers(cfg, extack);
	if (err)
		return err;

	down_write(&pool->rwsem);
	mutex_lock(&pool->cfg_mutex);

	if (rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "a pool already exists; destroy it first or resize it");
		err = -EEXIST;
		goto out_unlock;
	}

	for (i = 0; i < cfg->nr_hier; i++) {
		struct rund_hier *hier = &pool->hier[i];

		err = rund_cgfs_lookup_root(cfg->hier[i].path, v2, &hier->root);
		if (err) {
			pr_warn_ratelimited("pool root %s: %d\n", cfg->hier[i].path, err);
			if (err == -EXDEV && v2)
				NL_SET_ERR_MSG(extack, "the pool root is not on a cgroup2 filesystem");
			else if (err == -EXDEV)
				NL_SET_ERR_MSG(extack, "the pool root is not on a cgroup v1 filesystem");
			else
				NL_SET_ERR_MSG(extack, "the pool root directory does not exist; create it first");
			goto out_put_roots;
		}
		strscpy(hier->path, cfg->hier[i].path, sizeof(hier->path));
		hier->controllers = cfg->layout == RUND_LAYOUT_V1_SPLIT ?
				    cfg->hier[i].controllers : cfg->controllers;
		pool->nr_hier = i + 1;
	}

	pool->layout = cfg->layout;
	pool->controllers = cfg->controllers;
	pool->lease_ms = cfg->lease_ms;
	strscpy(pool->prefix, cfg->prefix, sizeof(pool->prefix));

	if (v2) {
		err = rund_pool_enable_v2(pool, extack);
		if (err)
			goto out_reset;
	}

	err = rund_pool_grow(pool, cfg->size, extack);
	if (err)
		goto out_free_slots;

	pr_info("pool created: layout %u, %u slots, prefix %s, root %s\n",
		pool->layout, pool->nr_slots, pool->prefix, pool->hier[0].path);
	mutex_unlock(&pool->cfg_mutex);
	up_write(&pool->rwsem);
	queue_delayed_work(pool->wq, &pool->scan_work, msecs_to_jiffies(RUND_SCAN_INTERVAL_MS));
	return 0;

out_free_slots:
	rund_pool_free_slots(pool);
out_reset:
	pool->layout = RUND_LAYOUT_UNSPEC;
out_put_roots:
	rund_pool_put_roots(pool);
out_unlock:
	mutex_unlock(&pool->cfg_mutex);
	up_write(&pool->rwsem);
	return err;
}

/**
 * rund_pool_resize() - grow the pool to @size slots
 * @size: new slot count, not below the current one
 * @extack: receives the reason of a rejection
 *
 * Claims go on while the new slots are created. Return: 0, -ENODEV without
 * a pool, -EINVAL for a shrink, or the error that stopped the growth (the
 * slots created before it stay).
 */
int rund_pool_resize(u32 size, struct netlink_ext_ack *extack)
{
	struct rund_pool *pool = &rund_pool;
	int err;

	down_read(&pool->rwsem);
	mutex_lock(&pool->cfg_mutex);

	if (!rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "no pool exists; create one with the init command");
		err = -ENODEV;
		goto out_unlock;
	}
	if (size < pool->nr_slots) {
		NL_SET_ERR_MSG(extack, "the pool can only grow; destroy and re-create it to shrink");
		err = -EINVAL;
		goto out_unlock;
	}

	err = rund_pool_grow(pool, size, extack);
	if (!err)
		pr_info("pool resized to %u slots\n", size);

out_unlock:
	mutex_unlock(&pool->cfg_mutex);
	up_read(&pool->rwsem);
	return err;
}

/* Tears the pool down. The caller holds rwsem for write and cfg_mutex. */
static int rund_pool_destroy_locked(struct rund_pool *pool, struct netlink_ext_ack *extack)
{
	u32 busy;

	lockdep_assert_held_write(&pool->rwsem);
	lockdep_assert_held(&pool->cfg_mutex);

	if (!rund_pool_active(pool)) {
		NL_SET_ERR_MSG(extack, "no pool exists");
		return -ENODEV;
	}

	spin_lock(&pool->lock);
	busy = pool->nr_state[RUND_SLOT_CLAIMED] + pool->nr_state[RUND_SLOT_DRAINING];
	spin_unlock(&pool->lock);
	if (busy) {
		NL_SET_ERR_MSG(extack, "slots are claimed or draining; release them first");
		return -EBUSY;
	}

	/*
	 * A drain that has just returned its slot to idle may still be running
	 * its last lines, but those touch no slot memory, so the slots can go.
	 * Flushing pool->wq here would wait on the scanner, which takes rwsem.
	 */
	rund_pool_free_slots(pool);
	rund_pool_put_roots(pool);
	pool->layout = RUND_LAYOUT_UNSPEC;
	pool->controllers = 0;
	pr_info("pool destroyed\n");
	return 0;
}

/**
 * rund_pool_destroy() - remove every slot and forget the configuration
 * @extack: receives the reason of a rejection
 *
 * Return: 0, -ENODEV without a pool, -EBUSY while slots are claimed or draining.
 */
int rund_pool_destroy(struct netlink_ext_ack *extack)
{
	struct rund_pool *pool = &rund_pool;
	int err;

	/* The scanner read-holds rwsem, so stop it before taking it for write. */
	cancel_delayed_work_sync(&pool->scan_work);

	down_write(&pool->rwsem);
	mutex_lock(&pool->cfg_mutex);
	err = rund_pool_destroy_locked(pool, extack);
	mutex_unlock(&pool->cfg_mutex);
	up_write(&pool->rwsem);

	if (err && rund_pool_active(pool))
		queue_delayed_work(pool->wq, &pool->scan_work,
				   msecs_to_jiffies(RUND_SCAN_INTERVAL_MS));
	return err;
}

/* Sets up the empty pool at module load. */
int rund_pool_setup(void)
{
	struct rund_pool *pool = &rund_pool;

	init_rwsem(&pool->rwsem);
	mutex_init(&pool->cfg_mutex);
	spin_lock_init(&pool->lock);
	INIT_LIST_HEAD(&pool->idle);
	hash_init(pool->ids);
	xa_init(&pool->slots);
	INIT_DELAYED_WORK(&pool->scan_work, rund_pool_scan_work);

	pool->stats = alloc_percpu(struct rund_stats);
	if (!pool->stats)
		return -ENOMEM;

	pool->wq = alloc_workqueue("rund", WQ_UNBOUND, 0);
	if (!pool->wq) {
		free_percpu(pool->stats);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Removes the pool at module unload. Every claimed or draining slot holds a
 * module reference, so only idle slots are left here.
 */
void rund_pool_teardown(void)
{
	struct rund_pool *pool = &rund_pool;

	cancel_delayed_work_sync(&pool->scan_work);
	down_write(&pool->rwsem);
	mutex_lock(&pool->cfg_mutex);
	if (rund_pool_active(pool))
		rund_pool_destroy_locked(pool, NULL);
	mutex_unlock(&pool->cfg_mutex);
	up_write(&pool->rwsem);

	destroy_workqueue(pool->wq);
	free_percpu(pool->stats);
	xa_destroy(&pool->slots);
}
