// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink family "rund": requests, replies, dumps and events of the
 * cgroup slot pool, and the netlink notifier that releases socket-bound
 * claims when their socket closes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netlink.h>

#include "pool.h"

static struct genl_family rund_family;

/* Not const: NLA_POLICY_FULL_RANGE takes a non-const pointer in 6.1. */

static struct netlink_range_validation rund_size_range = {
	.min = 1,
	.max = RUND_POOL_MAX_SLOTS,
};

static struct netlink_range_validation rund_lease_range = {
	.min = RUND_LEASE_MIN_MS,
	.max = RUND_LEASE_MAX_MS,
};

static struct netlink_range_validation rund_memory_range = {
	.min = RUND_MEMORY_MIN_BYTES,
	.max = RUND_MEMORY_MAX_BYTES,
};

static struct netlink_range_validation rund_quota_range = {
	.min = RUND_CPU_QUOTA_MIN_US,
	.max = RUND_CPU_QUOTA_MAX_US,
};

static struct netlink_range_validation rund_period_range = {
	.min = RUND_CPU_PERIOD_MIN_US,
	.max = RUND_CPU_PERIOD_MAX_US,
};

static struct netlink_range_validation rund_pids_range = {
	.min = RUND_PIDS_MIN,
	.max = RUND_PIDS_MAX,
};

static struct netlink_range_validation rund_pid_range = {
	.min = 1,
	.max = RUND_PIDS_MAX,
};

static struct netlink_range_validation rund_index_range = {
	.min = 0,
	.max = RUND_POOL_MAX_SLOTS - 1,
};

static const struct nla_policy rund_hier_policy[RUND_A_HIER_MAX + 1] = {
	[RUND_A_HIER_PATH] = { .type = NLA_NUL_STRING, .len = RUND_PATH_MAX },
	[RUND_A_HIER_CONTROLLERS] = NLA_POLICY_MASK(NLA_U32, RUND_CTRL_ALL),
};

static const struct nla_policy rund_init_policy[RUND_A_MAX + 1] = {
	[RUND_A_POOL_LAYOUT] = NLA_POLICY_RANGE(NLA_U32, RUND_LAYOUT_V2, RUND_LAYOUT_MAX),
	[RUND_A_POOL_ROOT] = { .type = NLA_NUL_STRING, .len = RUND_PATH_MAX },
	[RUND_A_POOL_HIERARCHIES] = NLA_POLICY_NESTED_ARRAY(rund_hier_policy),
	[RUND_A_POOL_SIZE] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_size_range),
	[RUND_A_POOL_PREFIX] = { .type = NLA_NUL_STRING, .len = RUND_PREFIX_MAX },
	[RUND_A_POOL_CONTROLLERS] = NLA_POLICY_MASK(NLA_U32, RUND_CTRL_ALL),
	[RUND_A_POOL_LEASE_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_lease_range),
};

static const struct nla_policy rund_resize_policy[RUND_A_MAX + 1] = {
	[RUND_A_POOL_SIZE] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_size_range),
};

static const struct nla_policy rund_acquire_policy[RUND_A_MAX + 1] = {
	[RUND_A_SANDBOX_ID] = { .type = NLA_NUL_STRING, .len = RUND_SANDBOX_ID_MAX },
	[RUND_A_ACQUIRE_FLAGS] = NLA_POLICY_MASK(NLA_U32, RUND_ACQUIRE_F_ALL),
	[RUND_A_MEMORY_MAX] = NLA_POLICY_FULL_RANGE(NLA_U64, &rund_memory_range),
	[RUND_A_CPU_QUOTA_US] = NLA_POLICY_FULL_RANGE(NLA_U64, &rund_quota_range),
	[RUND_A_CPU_PERIOD_US] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_period_range),
	[RUND_A_PIDS_MAX] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_pids_range),
};

static const struct nla_policy rund_attach_policy[RUND_A_MAX + 1] = {
	[RUND_A_SANDBOX_ID] = { .type = NLA_NUL_STRING, .len = RUND_SANDBOX_ID_MAX },
	[RUND_A_PID] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_pid_range),
};

static const struct nla_policy rund_release_policy[RUND_A_MAX + 1] = {
	[RUND_A_SANDBOX_ID] = { .type = NLA_NUL_STRING, .len = RUND_SANDBOX_ID_MAX },
};

static const struct nla_policy rund_slot_get_policy[RUND_A_MAX + 1] = {
	[RUND_A_SANDBOX_ID] = { .type = NLA_NUL_STRING, .len = RUND_SANDBOX_ID_MAX },
	[RUND_A_INDEX] = NLA_POLICY_FULL_RANGE(NLA_U32, &rund_index_range),
};

/*
 * Sandbox ids and prefixes become directory names on cgroup v1: accept
 * letters, digits, '_', '.' and '-', but not "." and "..".
 */
static bool rund_name_valid(const char *name)
{
	const char *c;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (c = name; *c; c++) {
		if (!isalnum(*c) && *c != '_' && *c != '.' && *c != '-')
			return false;
	}
	return true;
}

/* Returns the validated sandbox id of a request, or NULL after setting extack. */
static const char *rund_get_sandbox_id(struct genl_info *info)
{
	struct nlattr *attr = info->attrs[RUND_A_SANDBOX_ID];
	const char *id;

	if (GENL_REQ_ATTR_CHECK(info, RUND_A_SANDBOX_ID)) {
		GENL_SET_ERR_MSG(info, "missing sandbox id (RUND_A_SANDBOX_ID)");
		return NULL;
	}
	id = nla_data(attr);
	if (!rund_name_valid(id)) {
		NL_SET_ERR_MSG_ATTR(info->extack, attr,
				    "invalid sandbox id: use letters, digits, '_', '.' and '-', not \".\" or \"..\"");
		return NULL;
	}
	return id;
}

static int rund_parse_hierarchies(struct genl_info *info, struct rund_pool_config *cfg)
{
	struct nlattr *tb[RUND_A_HIER_MAX + 1];
	struct nlattr *list = info->attrs[RUND_A_POOL_HIERARCHIES];
	struct nlattr *entry;
	int rem, err;

	nla_for_each_nested(entry, list, rem) {
		if (nla_type(entry) != RUND_A_HIER) {
			NL_SET_ERR_MSG_ATTR(info->extack, entry, "a hierarchy list entry must be RUND_A_HIER");
			return -EINVAL;
		}
		if (cfg->nr_hier == RUND_POOL_MAX_HIERARCHIES) {
			NL_SET_ERR_MSG_ATTR(info->extack, entry, "too many hierarchies");
			return -E2BIG;
		}
		err = nla_parse_nested(tb, RUND_A_HIER_MAX, entry, rund_hier_policy, info->extack);
		if (err)
			return err;
		if (!tb[RUND_A_HIER_PATH] || !tb[RUND_A_HIER_CONTROLLERS]) {
			NL_SET_ERR_MSG_ATTR(info->extack, entry,
					    "a hierarchy needs RUND_A_HIER_PATH and RUND_A_HIER_CONTROLLERS");
			return -EINVAL;
		}
		cfg->hier[cfg->nr_hier].path = nla_data(tb[RUND_A_HIER_PATH]);
		cfg->hier[cfg->nr_hier].controllers = nla_get_u32(tb[RUND_A_HIER_CONTROLLERS]);
		cfg->controllers |= cfg->hier[cfg->nr_hier].controllers;
		cfg->nr_hier++;
	}
	if (!cfg->nr_hier) {
		NL_SET_ERR_MSG_ATTR(info->extack, list, "the hierarchy list is empty");
		return -EINVAL;
	}
	return 0;
}

static int rund_cmd_pool_init(struct sk_buff *skb, struct genl_info *info)
{
	struct rund_pool_config cfg = {
		.prefix = "slot",
		.lease_ms = RUND_LEASE_DEFAULT_MS,
	};
	struct nlattr **attrs = info->attrs;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, RUND_A_POOL_LAYOUT)) {
		GENL_SET_ERR_MSG(info, "missing pool layout (RUND_A_POOL_LAYOUT)");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, RUND_A_POOL_SIZE)) {
		GENL_SET_ERR_MSG(info, "missing pool size (RUND_A_POOL_SIZE)");
		return -EINVAL;
	}
	cfg.layout = nla_get_u32(attrs[RUND_A_POOL_LAYOUT]);
	cfg.size = nla_get_u32(attrs[RUND_A_POOL_SIZE]);

	if (cfg.layout == RUND_LAYOUT_V1_SPLIT) {
		if (attrs[RUND_A_POOL_ROOT]) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[RUND_A_POOL_ROOT],
					    "a split v1 pool takes RUND_A_POOL_HIERARCHIES, not RUND_A_POOL_ROOT");
			return -EINVAL;
		}
		if (attrs[RUND_A_POOL_CONTROLLERS]) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[RUND_A_POOL_CONTROLLERS],
					    "a split v1 pool takes its controllers from each hierarchy entry");
			return -EINVAL;
		}
		if (GENL_REQ_ATTR_CHECK(info, RUND_A_POOL_HIERARCHIES)) {
			GENL_SET_ERR_MSG(info, "missing hierarchy list (RUND_A_POOL_HIERARCHIES)");
			return -EINVAL;
		}
		err = rund_parse_hierarchies(info, &cfg);
		if (err)
			return err;
	} else {
		if (attrs[RUND_A_POOL_HIERARCHIES]) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[RUND_A_POOL_HIERARCHIES],
					    "only a split v1 pool takes RUND_A_POOL_HIERARCHIES");
			return -EINVAL;
		}
		if (GENL_REQ_ATTR_CHECK(info, RUND_A_POOL_ROOT)) {
			GENL_SET_ERR_MSG(info, "missing pool root (RUND_A_POOL_ROOT)");
			return -EINVAL;
		}
		cfg.nr_hier = 1;
		cfg.hier[0].path = nla_data(attrs[RUND_A_POOL_ROOT]);
		if (attrs[RUND_A_POOL_CONTROLLERS])
			cfg.controllers = nla_get_u32(attrs[RUND_A_POOL_CONTROLLERS]);
		else if (cfg.layout == RUND_LAYOUT_V2)
			cfg.controllers = RUND_CTRL_MEMORY | RUND_CTRL_CPU | RUND_CTRL_PIDS;
		else
			cfg.controllers = RUND_CTRL_ALL;
	}

	if (cfg.hier[0].path[0] != '/') {
		GENL_SET_ERR_MSG(info, "the pool root must be an absolute path");
		return -EINVAL;
	}
	if (attrs[RUND_A_POOL_PREFIX]) {
		cfg.prefix = nla_data(attrs[RUND_A_POOL_PREFIX]);
		if (!rund_name_valid(cfg.prefix)) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[RUND_A_POOL_PREFIX],
					    "invalid slot prefix: use letters, digits, '_', '.' and '-'");
			return -EINVAL;
		}
	}
	if (attrs[RUND_A_POOL_LEASE_MS])
		cfg.lease_ms = nla_get_u32(attrs[RUND_A_POOL_LEASE_MS]);

	return rund_pool_init(&cfg, info->extack);
}

static int rund_cmd_pool_resize(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, RUND_A_POOL_SIZE)) {
		GENL_SET_ERR_MSG(info, "missing pool size (RUND_A_POOL_SIZE)");
		return -EINVAL;
	}
	return rund_pool_resize(nla_get_u32(info->attrs[RUND_A_POOL_SIZE]), info->extack);
}

static int rund_cmd_pool_destroy(struct sk_buff *skb, struct genl_info *info)
{
	return rund_pool_destroy(info->extack);
}

static int rund_put_slot(struct sk_buff *skb, const struct rund_slot_info *info)
{
	const struct rund_limits *lim = &info->limits;
	struct nlattr *nest;

	nest = nla_nest_start(skb, RUND_A_SLOT);
	if (!nest)
		return -EMSGSIZE;

	if (nla_put_u32(skb, RUND_A_SLOT_INDEX, info->index) ||
	    nla_put_u32(skb, RUND_A_SLOT_STATE, info->state) ||
	    nla_put_string(skb, RUND_A_SLOT_PATH, info->path))
		goto out_cancel;

	if (info->state != RUND_SLOT_IDLE) {
		if (nla_put_string(skb, RUND_A_SLOT_SANDBOX_ID, info->sandbox_id) ||
		    nla_put_u32(skb, RUND_A_SLOT_FLAGS, info->flags) ||
		    nla_put_u64_64bit(skb, RUND_A_SLOT_CLAIMED_NS, info->claimed_ns,
				      RUND_A_SLOT_PAD) ||
		    nla_put_u8(skb, RUND_A_SLOT_POPULATED, info->populated) ||
		    nla_put_u64_64bit(skb, RUND_A_SLOT_MEMORY_MAX, lim->memory_max,
				      RUND_A_SLOT_PAD) ||
		    nla_put_u64_64bit(skb, RUND_A_SLOT_CPU_QUOTA_US, lim->cpu_quota_us,
				      RUND_A_SLOT_PAD) ||
		    nla_put_u32(skb, RUND_A_SLOT_CPU_PERIOD_US,
				lim->cpu_period_us ?: RUND_CPU_PERIOD_DEFAULT_US) ||
		    nla_put_u32(skb, RUND_A_SLOT_PIDS_MAX, lim->pids_max))
			goto out_cancel;
		if ((info->flags & RUND_ACQUIRE_F_SOCKET_BOUND) &&
		    nla_put_u32(skb, RUND_A_SLOT_OWNER_PORTID, info->owner_portid))
			goto out_cancel;
	}

	nla_nest_end(skb, nest);
	return 0;

out_cancel:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

/* Sends a reply holding one RUND_A_SLOT nest. */
static int rund_reply_slot(struct genl_info *info, u8 cmd, const struct rund_slot_info *slot)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;

	hdr = genlmsg_put_reply(msg, info, &rund_family, 0, cmd);
	if (!hdr)
		goto out_free;
	if (rund_put_slot(msg, slot))
		goto out_free;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

out_free:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

static int rund_cmd_acquire(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	struct rund_slot_info *slot;
	struct rund_claim claim = {};
	int err;

	claim.sandbox_id = rund_get_sandbox_id(info);
	if (!claim.sandbox_id)
		return -EINVAL;

	if (attrs[RUND_A_ACQUIRE_FLAGS])
		claim.flags = nla_get_u32(attrs[RUND_A_ACQUIRE_FLAGS]);
	if (attrs[RUND_A_MEMORY_MAX])
		claim.limits.memory_max = nla_get_u64(attrs[RUND_A_MEMORY_MAX]);
	if (attrs[RUND_A_CPU_QUOTA_US])
		claim.limits.cpu_quota_us = nla_get_u64(attrs[RUND_A_CPU_QUOTA_US]);
	if (attrs[RUND_A_CPU_PERIOD_US])
		claim.limits.cpu_period_us = nla_get_u32(attrs[RUND_A_CPU_PERIOD_US]);
	if (attrs[RUND_A_PIDS_MAX])
		claim.limits.pids_max = nla_get_u32(attrs[RUND_A_PIDS_MAX]);
	claim.portid = info->snd_portid;

	slot = kmalloc(sizeof(*slot), GFP_KERNEL);
	if (!slot)
		return -ENOMEM;

	err = rund_slot_acquire(&claim, slot, info->extack);
	if (!err)
		err = rund_reply_slot(info, RUND_CMD_ACQUIRE, slot);
	/* NOTE: a lost reply leaves the claim in place, and the caller can query or release it by id. */
	kfree(slot);
	return err;
}

static int rund_cmd_attach(struct sk_buff *skb, struct genl_info *info)
{
	const char *id = rund_get_sandbox_id(info);

	if (!id)
		return -EINVAL;
	if (GENL_REQ_ATTR_CHECK(info, RUND_A_PID)) {
		GENL_SET_ERR_MSG(info, "missing process id (RUND_A_PID)");
		return -EINVAL;
	}
	return rund_slot_attach(id, nla_get_u32(info->attrs[RUND_A_PID]), info->extack);
}

static int rund_cmd_release(struct sk_buff *skb, struct genl_info *info)
{
	const char *id = rund_get_sandbox_id(info);

	if (!id)
		return -EINVAL;
	return rund_slot_release(id, info->extack);
}

static int rund_cmd_slot_get(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	struct rund_slot_info *slot;
	const char *id = NULL;
	u32 index = 0;
	int err;

	if (attrs[RUND_A_SANDBOX_ID] && attrs[RUND_A_INDEX]) {
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[RUND_A_INDEX],
				    "give either a sandbox id or a slot index, not both");
		return -EINVAL;
	}
	if (attrs[RUND_A_INDEX]) {
		index = nla_get_u32(attrs[RUND_A_INDEX]);
	} else {
		id = rund_get_sandbox_id(info);
		if (!id)
			return -EINVAL;
	}

	slot = kmalloc(sizeof(*slot), GFP_KERNEL);
	if (!slot)
		return -ENOMEM;

	err = rund_slot_get(id, index, slot);
	if (err == -ENODEV)
		GENL_SET_ERR_MSG(info, "no pool exists; create one with the init command");
	else if (err == -ENOENT && id)
		GENL_SET_ERR_MSG(info, "no slot is claimed under this sandbox id");
	else if (err == -ENOENT)
		GENL_SET_ERR_MSG(info, "no slot has this index");
	if (!err)
		err = rund_reply_slot(info, RUND_CMD_SLOT_GET, slot);
	kfree(slot);
	return err;
}

/* Dumps every slot in index order. cb->args[0] is the next index. */
static int rund_dump_slots(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct rund_slot_info *slot;
	u32 index = cb->args[0];
	int err = 0;
	void *hdr;

	slot = kmalloc(sizeof(*slot), GFP_KERNEL);
	if (!slot)
		return -ENOMEM;

	for (;; index++) {
		err = rund_slot_get(NULL, index, slot);
		if (err) {
			/* -ENOENT past the last slot ends the dump, and without a pool the dump is empty. */
			err = 0;
			break;
		}
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				  &rund_family, NLM_F_MULTI, RUND_CMD_SLOT_GET);
		if (!hdr)
			break;
		if (rund_put_slot(skb, slot)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
	}
	cb->args[0] = index;
	kfree(slot);
	return err ?: skb->len;
}

static int rund_put_stats(struct sk_buff *skb, const struct rund_stats *sum)
{
	struct rund_pool *pool = &rund_pool;
	u32 counts[__RUND_SLOT_STATE_MAX];
	struct nlattr *nest, *item;
	u32 layout, nr_slots, controllers, lease_ms;
	char prefix[RUND_PREFIX_MAX + 1];
	char root[RUND_PATH_MAX + 1];
	int i;

	down_read(&pool->rwsem);
	layout = pool->layout;
	controllers = pool->controllers;
	lease_ms = pool->lease_ms;
	strscpy(prefix, pool->prefix, sizeof(prefix));
	strscpy(root, pool->nr_hier ? pool->hier[0].path : "", sizeof(root));
	spin_lock(&pool->lock);
	nr_slots = pool->nr_slots;
	memcpy(counts, pool->nr_state, sizeof(counts));
	spin_unlock(&pool->lock);
	up_read(&pool->rwsem);

	nest = nla_nest_start(skb, RUND_A_STATS);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u32(skb, RUND_A_STATS_LAYOUT, layout) ||
	    nla_put_u32(skb, RUND_A_STATS_SIZE, nr_slots) ||
	    nla_put_u32(skb, RUND_A_STATS_IDLE, counts[RUND_SLOT_IDLE]) ||
	    nla_put_u32(skb, RUND_A_STATS_CLAIMED, counts[RUND_SLOT_CLAIMED]) ||
	    nla_put_u32(skb, RUND_A_STATS_DRAINING, counts[RUND_SLOT_DRAINING]) ||
	    nla_put_u32(skb, RUND_A_STATS_BROKEN, counts[RUND_SLOT_BROKEN]) ||
	    nla_put_u32(skb, RUND_A_STATS_CONTROLLERS, controllers) ||
	    nla_put_u32(skb, RUND_A_STATS_LEASE_MS, lease_ms) ||
	    nla_put_string(skb, RUND_A_STATS_PREFIX, prefix) ||
	    nla_put_string(skb, RUND_A_STATS_ROOT, root))
		goto out_cancel;

	for (i = 0; i < __RUND_OP_MAX; i++) {
		item = nla_nest_start(skb, RUND_A_STATS_OP);
		if (!item ||
		    nla_put_u32(skb, RUND_A_OPSTAT_OP, i) ||
		    nla_put_u64_64bit(skb, RUND_A_OPSTAT_COUNT, sum->op[i].count, RUND_A_OPSTAT_PAD) ||
		    nla_put_u64_64bit(skb, RUND_A_OPSTAT_FAILED, sum->op[i].failed, RUND_A_OPSTAT_PAD) ||
		    nla_put(skb, RUND_A_OPSTAT_HIST, sizeof(sum->op[i].hist), sum->op[i].hist))
			goto out_cancel;
		nla_nest_end(skb, item);
	}

	for (i = 0; i < __RUND_FAIL_MAX; i++) {
		item = nla_nest_start(skb, RUND_A_STATS_FAIL);
		if (!item ||
		    nla_put_u32(skb, RUND_A_FAIL_KIND, i) ||
		    nla_put_u64_64bit(skb, RUND_A_FAIL_COUNT, sum->fail[i], RUND_A_FAIL_PAD))
			goto out_cancel;
		nla_nest_end(skb, item);
	}

	nla_nest_end(skb, nest);
	return 0;

out_cancel:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

static int rund_cmd_stats_get(struct sk_buff *skb, struct genl_info *info)
{
	struct rund_stats *sum;
	struct sk_buff *msg;
	void *hdr;
	int err = -EMSGSIZE;

	sum = kmalloc(sizeof(*sum), GFP_KERNEL);
	if (!sum)
		return -ENOMEM;
	rund_stats_sum(&rund_pool, sum);

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out_free_sum;
	}
	hdr = genlmsg_put_reply(msg, info, &rund_family, 0, RUND_CMD_STATS_GET);
	if (!hdr || rund_put_stats(msg, sum))
		goto out_free_msg;
	genlmsg_end(msg, hdr);
	kfree(sum);
	return genlmsg_reply(msg, info);

out_free_msg:
	nlmsg_free(msg);
out_free_sum:
	kfree(sum);
	return err;
}

/**
 * rund_genl_notify() - multicast a slot state change to RUND_GENL_MCGRP_EVENTS
 * @info: the slot after the change
 * @reason: why it changed
 *
 * Sleeps (GFP_KERNEL); an event that cannot be allocated is dropped.
 */
void rund_genl_notify(const struct rund_slot_info *info, enum rund_event_reason reason)
{
	struct sk_buff *msg;
	void *hdr;

	if (!genl_has_listeners(&rund_family, &init_net, 0))
		return;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &rund_family, 0, RUND_CMD_SLOT_EVENT);
	if (!hdr)
		goto out_free;
	if (nla_put_u32(msg, RUND_A_EVENT_REASON, reason) || rund_put_slot(msg, info))
		goto out_free;
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&rund_family, msg, 0, 0, GFP_KERNEL);
	return;

out_free:
	nlmsg_free(msg);
}

static const struct genl_ops rund_ops[] = {
	{
		.cmd = RUND_CMD_POOL_INIT,
		.doit = rund_cmd_pool_init,
		.policy = rund_init_policy,
		.maxattr = ARRAY_SIZE(rund_init_policy) - 1,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = RUND_CMD_POOL_RESIZE,
		.doit = rund_cmd_pool_resize,
		.policy = rund_resize_policy,
		.maxattr = ARRAY_SIZE(rund_resize_policy) - 1,
		.flags = GENL_ADMIN_PERM,
	},
	{
		/* No policy: the core rejects every attribute. */
		.cmd = RUND_CMD_POOL_DESTROY,
		.doit = rund_cmd_pool_destroy,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = RUND_CMD_ACQUIRE,
		.doit = rund_cmd_acquire,
		.policy = rund_acquire_policy,
		.maxattr = ARRAY_SIZE(rund_acquire_policy) - 1,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = RUND_CMD_ATTACH,
		.doit = rund_cmd_attach,
		.policy = rund_attach_policy,
		.maxattr = ARRAY_SIZE(rund_attach_policy) - 1,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = RUND_CMD_RELEASE,
		.doit = rund_cmd_release,
		.policy = rund_release_policy,
		.maxattr = ARRAY_SIZE(rund_release_policy) - 1,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = RUND_CMD_SLOT_GET,
		.doit = rund_cmd_slot_get,
		.dumpit = rund_dump_slots,
		.policy = rund_slot_get_policy,
		.maxattr = ARRAY_SIZE(rund_slot_get_policy) - 1,
	},
	{
		.cmd = RUND_CMD_STATS_GET,
		.doit = rund_cmd_stats_get,
	},
};

static const struct genl_multicast_group rund_mcgrps[] = {
	{ .name = RUND_GENL_MCGRP_EVENTS },
};

static struct genl_family rund_family __ro_after_init = {
	.name = RUND_GENL_NAME,
	.version = RUND_GENL_VERSION,
	.module = THIS_MODULE,
	/* Requests run concurrently because the pool does its own locking. */
	.parallel_ops = true,
	.resv_start_op = 0,
	.ops = rund_ops,
	.n_ops = ARRAY_SIZE(rund_ops),
	.mcgrps = rund_mcgrps,
	.n_mcgrps = ARRAY_SIZE(rund_mcgrps),
};

/*
 * Releases socket-bound claims when their generic netlink socket goes away.
 * NETLINK_URELEASE fires from netlink_release() in process context for every
 * bound netlink socket; genl_family has no per-socket hooks in 6.1.
 */
static int rund_netlink_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct netlink_notify *n = ptr;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !net_eq(n->net, &init_net))
		return NOTIFY_DONE;

	rund_slot_release_owner(n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block rund_netlink_nb = {
	.notifier_call = rund_netlink_event,
};

int __init rund_genl_register(void)
{
	int err;

	err = netlink_register_notifier(&rund_netlink_nb);
	if (err)
		return err;

	err = genl_register_family(&rund_family);
	if (err)
		goto out_unregister_notifier;
	return 0;

out_unregister_notifier:
	netlink_unregister_notifier(&rund_netlink_nb);
	return err;
}

void rund_genl_unregister(void)
{
	genl_unregister_family(&rund_family);
	netlink_unregister_notifier(&rund_netlink_nb);
}
