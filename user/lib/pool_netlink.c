// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * module pool backend: a generic netlink client of the rund kernel module on
 * libnl-genl-3. Requests are sent with NLM_F_ACK and extended acks enabled,
 * so a rejected request comes back with the module's extack message, which
 * goes into struct rund_error unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/family.h>

#include "pool-internal.h"
#include "util.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct nl_pool {
	struct nl_sock *sk;
	struct nl_sock *ev_sk;		/* multicast subscription, on demand */
	int family;
	enum rund_layout layout;	/* cached from the first stats reply */
};

/* State of one request: where replies go and how it ended. */
struct nl_req {
	int done;			/* 1 while waiting, 0 acked, <0 -errno */
	char extack[256];
	rund_pool_slot_fn fn;		/* dump: called per slot */
	void *arg;
	int fn_ret;
	struct rund_slot_info *info;	/* single slot reply */
	bool got_slot;
	struct rund_pool_stats *stats;
	struct rund_pool_event *ev;	/* notifications */
	bool got_event;
};

static struct nl_pool *nlp(struct rund_pool *pool)
{
	return pool->priv;
}

static struct nla_policy slot_policy[RUND_A_SLOT_MAX + 1] = {
	[RUND_A_SLOT_INDEX] = { .type = NLA_U32 },
	[RUND_A_SLOT_STATE] = { .type = NLA_U32 },
	[RUND_A_SLOT_SANDBOX_ID] = { .type = NLA_STRING, .maxlen = RUND_SANDBOX_ID_MAX + 1 },
	[RUND_A_SLOT_PATH] = { .type = NLA_STRING, .maxlen = RUND_PATH_MAX + 1 },
	[RUND_A_SLOT_OWNER_PORTID] = { .type = NLA_U32 },
	[RUND_A_SLOT_FLAGS] = { .type = NLA_U32 },
	[RUND_A_SLOT_CLAIMED_NS] = { .type = NLA_U64 },
	[RUND_A_SLOT_POPULATED] = { .type = NLA_U8 },
	[RUND_A_SLOT_MEMORY_MAX] = { .type = NLA_U64 },
	[RUND_A_SLOT_CPU_QUOTA_US] = { .type = NLA_U64 },
	[RUND_A_SLOT_CPU_PERIOD_US] = { .type = NLA_U32 },
	[RUND_A_SLOT_PIDS_MAX] = { .type = NLA_U32 },
};

static struct nla_policy stats_policy[RUND_A_STATS_MAX + 1] = {
	[RUND_A_STATS_LAYOUT] = { .type = NLA_U32 },
	[RUND_A_STATS_SIZE] = { .type = NLA_U32 },
	[RUND_A_STATS_IDLE] = { .type = NLA_U32 },
	[RUND_A_STATS_CLAIMED] = { .type = NLA_U32 },
	[RUND_A_STATS_DRAINING] = { .type = NLA_U32 },
	[RUND_A_STATS_BROKEN] = { .type = NLA_U32 },
	[RUND_A_STATS_CONTROLLERS] = { .type = NLA_U32 },
	[RUND_A_STATS_LEASE_MS] = { .type = NLA_U32 },
	[RUND_A_STATS_OP] = { .type = NLA_NESTED },
	[RUND_A_STATS_FAIL] = { .type = NLA_NESTED },
	[RUND_A_STATS_PREFIX] = { .type = NLA_STRING, .maxlen = RUND_PREFIX_MAX + 1 },
	[RUND_A_STATS_ROOT] = { .type = NLA_STRING, .maxlen = RUND_PATH_MAX + 1 },
};

static struct nla_policy opstat_policy[RUND_A_OPSTAT_MAX + 1] = {
	[RUND_A_OPSTAT_OP] = { .type = NLA_U32 },
	[RUND_A_OPSTAT_COUNT] = { .type = NLA_U64 },
	[RUND_A_OPSTAT_FAILED] = { .type = NLA_U64 },
	[RUND_A_OPSTAT_HIST] = { .type = NLA_UNSPEC },
};

static struct nla_policy fail_policy[RUND_A_FAIL_MAX + 1] = {
	[RUND_A_FAIL_KIND] = { .type = NLA_U32 },
	[RUND_A_FAIL_COUNT] = { .type = NLA_U64 },
};

static void copy_str(char *dst, size_t len, struct nlattr *a)
{
	snprintf(dst, len, "%.*s", nla_len(a), (const char *)nla_data(a));
}

static int parse_slot(struct nlattr *nest, struct rund_slot_info *info)
{
	struct nlattr *tb[RUND_A_SLOT_MAX + 1];
	int ret;

	ret = nla_parse_nested(tb, RUND_A_SLOT_MAX, nest, slot_policy);
	if (ret)
		return ret;
	memset(info, 0, sizeof(*info));
	if (tb[RUND_A_SLOT_INDEX])
		info->index = nla_get_u32(tb[RUND_A_SLOT_INDEX]);
	if (tb[RUND_A_SLOT_STATE])
		info->state = nla_get_u32(tb[RUND_A_SLOT_STATE]);
	if (tb[RUND_A_SLOT_SANDBOX_ID])
		copy_str(info->sandbox_id, sizeof(info->sandbox_id), tb[RUND_A_SLOT_SANDBOX_ID]);
	if (tb[RUND_A_SLOT_PATH])
		copy_str(info->path, sizeof(info->path), tb[RUND_A_SLOT_PATH]);
	if (tb[RUND_A_SLOT_OWNER_PORTID])
		info->owner = nla_get_u32(tb[RUND_A_SLOT_OWNER_PORTID]);
	if (tb[RUND_A_SLOT_FLAGS])
		info->flags = nla_get_u32(tb[RUND_A_SLOT_FLAGS]);
	if (tb[RUND_A_SLOT_CLAIMED_NS])
		info->claimed_ns = nla_get_u64(tb[RUND_A_SLOT_CLAIMED_NS]);
	if (tb[RUND_A_SLOT_POPULATED])
		info->populated = nla_get_u8(tb[RUND_A_SLOT_POPULATED]);
	if (tb[RUND_A_SLOT_MEMORY_MAX])
		info->limits.memory_max = nla_get_u64(tb[RUND_A_SLOT_MEMORY_MAX]);
	if (tb[RUND_A_SLOT_CPU_QUOTA_US])
		info->limits.cpu_quota_us = nla_get_u64(tb[RUND_A_SLOT_CPU_QUOTA_US]);
	if (tb[RUND_A_SLOT_CPU_PERIOD_US])
		info->limits.cpu_period_us = nla_get_u32(tb[RUND_A_SLOT_CPU_PERIOD_US]);
	if (tb[RUND_A_SLOT_PIDS_MAX])
		info->limits.pids_max = nla_get_u32(tb[RUND_A_SLOT_PIDS_MAX]);
	return 0;
}

static int parse_stats(struct nlattr *nest, struct rund_pool_stats *st)
{
	struct nlattr *tb[RUND_A_STATS_MAX + 1], *a;
	int ret, rem;

	ret = nla_parse_nested(tb, RUND_A_STATS_MAX, nest, stats_policy);
	if (ret)
		return ret;
	if (tb[RUND_A_STATS_LAYOUT])
		st->layout = nla_get_u32(tb[RUND_A_STATS_LAYOUT]);
	if (tb[RUND_A_STATS_SIZE])
		st->size = nla_get_u32(tb[RUND_A_STATS_SIZE]);
	if (tb[RUND_A_STATS_IDLE])
		st->idle = nla_get_u32(tb[RUND_A_STATS_IDLE]);
	if (tb[RUND_A_STATS_CLAIMED])
		st->claimed = nla_get_u32(tb[RUND_A_STATS_CLAIMED]);
	if (tb[RUND_A_STATS_DRAINING])
		st->draining = nla_get_u32(tb[RUND_A_STATS_DRAINING]);
	if (tb[RUND_A_STATS_BROKEN])
		st->broken = nla_get_u32(tb[RUND_A_STATS_BROKEN]);
	if (tb[RUND_A_STATS_CONTROLLERS])
		st->controllers = nla_get_u32(tb[RUND_A_STATS_CONTROLLERS]);
	if (tb[RUND_A_STATS_LEASE_MS])
		st->lease_ms = nla_get_u32(tb[RUND_A_STATS_LEASE_MS]);
	if (tb[RUND_A_STATS_PREFIX])
		copy_str(st->prefix, sizeof(st->prefix), tb[RUND_A_STATS_PREFIX]);
	if (tb[RUND_A_STATS_ROOT])
		copy_str(st->root, sizeof(st->root), tb[RUND_A_STATS_ROOT]);

	/* RUND_A_STATS_OP and _FAIL repeat, once per operation or kind. */
	nla_for_each_nested(a, nest, rem) {
		struct nlattr *ob[RUND_A_OPSTAT_MAX + 1];
		struct nlattr *fb[RUND_A_FAIL_MAX + 1];
		uint32_t k;

		if (nla_type(a) == RUND_A_STATS_OP &&
		    !nla_parse_nested(ob, RUND_A_OPSTAT_MAX, a, opstat_policy) &&
		    ob[RUND_A_OPSTAT_OP]) {
			k = nla_get_u32(ob[RUND_A_OPSTAT_OP]);
			if (k > RUND_OP_MAX)
				continue;
			if (ob[RUND_A_OPSTAT_COUNT])
				st->op[k].count = nla_get_u64(ob[RUND_A_OPSTAT_COUNT]);
			if (ob[RUND_A_OPSTAT_FAILED])
				st->op[k].failed = nla_get_u64(ob[RUND_A_OPSTAT_FAILED]);
			if (ob[RUND_A_OPSTAT_HIST] &&
			    nla_len(ob[RUND_A_OPSTAT_HIST]) == sizeof(st->op[k].hist))
				memcpy(st->op[k].hist, nla_data(ob[RUND_A_OPSTAT_HIST]),
				       sizeof(st->op[k].hist));
		} else if (nla_type(a) == RUND_A_STATS_FAIL &&
			   !nla_parse_nested(fb, RUND_A_FAIL_MAX, a, fail_policy) &&
			   fb[RUND_A_FAIL_KIND] && fb[RUND_A_FAIL_COUNT]) {
			k = nla_get_u32(fb[RUND_A_FAIL_KIND]);
			if (k <= RUND_FAIL_MAX)
				st->fail[k] = nla_get_u64(fb[RUND_A_FAIL_COUNT]);
		}
	}
	return 0;
}

static int valid_cb(struct nl_msg *msg, void *arg)
{
	struct nl_req *req = arg;
	struct genlmsghdr *gh = genlmsg_hdr(nlmsg_hdr(msg));
	struct nlattr *tb[RUND_A_MAX + 1];
	struct rund_slot_info info;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, RUND_A_MAX, NULL))
		return NL_SKIP;

	if (tb[RUND_A_SLOT] && !parse_slot(tb[RUND_A_SLOT], &info)) {
		if (req->ev) {
			req->ev->slot = info;
			req->ev->reason = tb[RUND_A_EVENT_REASON] ?
				nla_get_u32(tb[RUND_A_EVENT_REASON]) : RUND_EVENT_UNSPEC;
			req->got_event = gh->cmd == RUND_CMD_SLOT_EVENT;
		} else if (req->fn) {
			req->fn_ret = req->fn(&info, req->arg);
			if (req->fn_ret)
				return NL_STOP;
		} else if (req->info) {
			*req->info = info;
			req->got_slot = true;
		}
	}
	if (tb[RUND_A_STATS] && req->stats)
		parse_stats(tb[RUND_A_STATS], req->stats);
	return NL_OK;
}

/* Copy the extack message (NLMSGERR_ATTR_MSG) of an error reply, if any. */
static void read_extack(struct nlmsgerr *e, char *buf, size_t len)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	size_t off = sizeof(*e);

	buf[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	/* The TLVs follow the echoed request at the next netlink alignment. */
	off = NLMSG_ALIGN(off);
	if (NLMSG_HDRLEN + off > nlh->nlmsg_len)
		return;
	if (nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)((char *)e + off),
		      nlh->nlmsg_len - NLMSG_HDRLEN - off, NULL))
		return;
	if (tb[NLMSGERR_ATTR_MSG])
		copy_str(buf, len, tb[NLMSGERR_ATTR_MSG]);
}

static int error_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct nl_req *req = arg;

	read_extack(e, req->extack, sizeof(req->extack));
	req->done = e->error ? e->error : 0;
	return NL_STOP;
}

static int finish_cb(struct nl_msg *msg, void *arg)
{
	struct nl_req *req = arg;

	req->done = 0;
	return NL_SKIP;
}

static int ack_cb(struct nl_msg *msg, void *arg)
{
	struct nl_req *req = arg;

	req->done = 0;
	return NL_STOP;
}

static struct nl_msg *new_msg(struct nl_pool *p, uint8_t cmd, bool dump)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, p->family, 0,
			 NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0), cmd,
			 RUND_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/*
 * Send msg (freed here) and read replies until the ack, the end of a dump or
 * an error; -errno with the extack message, prefixed by what.
 */
static int transact(struct nl_pool *p, struct nl_msg *msg, struct nl_req *req,
		    const char *what, struct rund_error *err)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int ret;

	if (!cb) {
		nlmsg_free(msg);
		return rund_error_set(err, ENOMEM, "%s", what);
	}
	req->done = 1;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, valid_cb, req);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, finish_cb, req);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, ack_cb, req);
	nl_cb_err(cb, NL_CB_CUSTOM, error_cb, req);

	ret = nl_send_auto(p->sk, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		nl_cb_put(cb);
		return rund_error_setx(err, EIO, "%s: send to the rund module: %s", what,
				       nl_geterror(ret));
	}
	while (req->done > 0) {
		ret = nl_recvmsgs(p->sk, cb);
		if (ret < 0 && req->done > 0) {
			nl_cb_put(cb);
			return rund_error_setx(err, EIO, "%s: receive from the rund module: %s",
					       what, nl_geterror(ret));
		}
	}
	nl_cb_put(cb);
	if (req->done < 0) {
		if (req->extack[0])
			return rund_error_setx(err, -req->done, "%s: %s", what, req->extack);
		if (req->done == -EPERM)
			return rund_error_setx(err, EPERM, "%s: the rund module requires CAP_NET_ADMIN; run as root",
					       what);
		return rund_error_set(err, -req->done, "%s", what);
	}
	if (req->fn_ret)
		return req->fn_ret;
	return 0;
}

#define PUT_OR_FAIL(expr)							\
	do {									\
		if ((expr) < 0)							\
			goto out_put_failure;					\
	} while (0)

static int mod_init(struct rund_pool *pool, const struct rund_pool_config *cfg,
		   struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_POOL_INIT, false);
	struct nl_req req = { 0 };
	struct nlattr *hiers, *h;
	uint32_t i;

	if (!msg)
		return rund_error_set(err, ENOMEM, "pool init");
	/* The module makes the slots below pool roots that exist already. */
	for (i = 0; i < cfg->nr_hierarchies; i++) {
		if (mkdir(cfg->hier[i].path, 0755) < 0 && errno != EEXIST) {
			nlmsg_free(msg);
			return rund_error_set(err, errno, "pool init: create pool root %s",
					      cfg->hier[i].path);
		}
	}
	PUT_OR_FAIL(nla_put_u32(msg, RUND_A_POOL_LAYOUT, cfg->layout));
	if (cfg->layout == RUND_LAYOUT_V1_SPLIT) {
		hiers = nla_nest_start(msg, RUND_A_POOL_HIERARCHIES);
		if (!hiers)
			goto out_put_failure;
		for (i = 0; i < cfg->nr_hierarchies; i++) {
			h = nla_nest_start(msg, RUND_A_HIER);
			if (!h)
				goto out_put_failure;
			PUT_OR_FAIL(nla_put_string(msg, RUND_A_HIER_PATH, cfg->hier[i].path));
			PUT_OR_FAIL(nla_put_u32(msg, RUND_A_HIER_CONTROLLERS, cfg->hier[i].controllers));
			nla_nest_end(msg, h);
		}
		nla_nest_end(msg, hiers);
	} else {
		PUT_OR_FAIL(nla_put_string(msg, RUND_A_POOL_ROOT, cfg->hier[0].path));
	}
	PUT_OR_FAIL(nla_put_u32(msg, RUND_A_POOL_SIZE, cfg->size));
	PUT_OR_FAIL(nla_put_string(msg, RUND_A_POOL_PREFIX, cfg->prefix));
	PUT_OR_FAIL(nla_put_u32(msg, RUND_A_POOL_CONTROLLERS, cfg->controllers));
	if (cfg->lease_ms)
		PUT_OR_FAIL(nla_put_u32(msg, RUND_A_POOL_LEASE_MS, cfg->lease_ms));
	return transact(p, msg, &req, "pool init", err);

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "pool init: the request does not fit in one message");
}

static int mod_resize(struct rund_pool *pool, uint32_t size, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_POOL_RESIZE, false);
	struct nl_req req = { 0 };

	if (!msg)
		return rund_error_set(err, ENOMEM, "pool resize");
	PUT_OR_FAIL(nla_put_u32(msg, RUND_A_POOL_SIZE, size));
	return transact(p, msg, &req, "pool resize", err);

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "pool resize: message too small");
}

static int mod_destroy(struct rund_pool *pool, bool force, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_POOL_DESTROY, false);
	struct nl_req req = { 0 };

	if (!msg)
		return rund_error_set(err, ENOMEM, "pool destroy");
	/* NOTE: the module has no forced destroy. It returns EBUSY while slots are claimed. */
	(void)force;
	return transact(p, msg, &req, "pool destroy", err);
}

static int put_id(struct nl_msg *msg, const char *id)
{
	return nla_put_string(msg, RUND_A_SANDBOX_ID, id);
}

static int mod_acquire(struct rund_pool *pool, const char *id,
		      const struct rund_pool_limits *l, uint32_t flags,
		      struct rund_slot_info *info, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_ACQUIRE, false);
	struct rund_slot_info tmp;
	struct nl_req req = { .info = info ? info : &tmp };
	char what[RUND_SANDBOX_ID_MAX + 32];

	snprintf(what, sizeof(what), "acquire '%s'", id);
	if (!msg)
		return rund_error_set(err, ENOMEM, "%s", what);
	PUT_OR_FAIL(put_id(msg, id));
	if (flags)
		PUT_OR_FAIL(nla_put_u32(msg, RUND_A_ACQUIRE_FLAGS, flags));
	if (l && l->memory_max)
		PUT_OR_FAIL(nla_put_u64(msg, RUND_A_MEMORY_MAX, l->memory_max));
	if (l && l->cpu_quota_us)
		PUT_OR_FAIL(nla_put_u64(msg, RUND_A_CPU_QUOTA_US, l->cpu_quota_us));
	if (l && l->cpu_period_us)
		PUT_OR_FAIL(nla_put_u32(msg, RUND_A_CPU_PERIOD_US, l->cpu_period_us));
	if (l && l->pids_max)
		PUT_OR_FAIL(nla_put_u32(msg, RUND_A_PIDS_MAX, l->pids_max));
	return transact(p, msg, &req, what, err);

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "acquire: message too small");
}

static int mod_attach(struct rund_pool *pool, const char *id, pid_t pid,
		     struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_ATTACH, false);
	struct nl_req req = { 0 };
	char what[RUND_SANDBOX_ID_MAX + 48];

	snprintf(what, sizeof(what), "attach %d to '%s'", (int)pid, id);
	if (!msg)
		return rund_error_set(err, ENOMEM, "%s", what);
	PUT_OR_FAIL(put_id(msg, id));
	PUT_OR_FAIL(nla_put_u32(msg, RUND_A_PID, (uint32_t)pid));
	return transact(p, msg, &req, what, err);

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "attach: message too small");
}

static int mod_release(struct rund_pool *pool, const char *id, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_RELEASE, false);
	struct nl_req req = { 0 };
	char what[RUND_SANDBOX_ID_MAX + 32];

	snprintf(what, sizeof(what), "release '%s'", id);
	if (!msg)
		return rund_error_set(err, ENOMEM, "%s", what);
	PUT_OR_FAIL(put_id(msg, id));
	return transact(p, msg, &req, what, err);

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "release: message too small");
}

static int mod_query(struct rund_pool *pool, const char *id, uint32_t index,
		    struct rund_slot_info *info, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_SLOT_GET, false);
	struct nl_req req = { .info = info };
	char what[RUND_SANDBOX_ID_MAX + 32];
	int ret;

	if (id)
		snprintf(what, sizeof(what), "show '%s'", id);
	else
		snprintf(what, sizeof(what), "show slot %u", index);
	if (!msg)
		return rund_error_set(err, ENOMEM, "%s", what);
	if (id)
		PUT_OR_FAIL(put_id(msg, id));
	else
		PUT_OR_FAIL(nla_put_u32(msg, RUND_A_INDEX, index));
	ret = transact(p, msg, &req, what, err);
	if (!ret && !req.got_slot)
		return rund_error_setx(err, EPROTO, "show: the rund module replied without a slot");
	return ret;

out_put_failure:
	nlmsg_free(msg);
	return rund_error_setx(err, EMSGSIZE, "show: message too small");
}

static int mod_list(struct rund_pool *pool, rund_pool_slot_fn fn, void *arg,
		   struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_SLOT_GET, true);
	struct nl_req req = { .fn = fn, .arg = arg };

	if (!msg)
		return rund_error_set(err, ENOMEM, "list");
	return transact(p, msg, &req, "list", err);
}

static int mod_stats(struct rund_pool *pool, struct rund_pool_stats *st,
		    struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_msg *msg = new_msg(p, RUND_CMD_STATS_GET, false);
	struct nl_req req = { .stats = st };
	int ret;

	if (!msg)
		return rund_error_set(err, ENOMEM, "stats");
	ret = transact(p, msg, &req, "stats", err);
	if (!ret)
		p->layout = st->layout;
	return ret;
}

static int mod_slot_dirs(struct rund_pool *pool, const char *id, struct rund_slot_dirs *d,
			struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct rund_pool_stats st;
	struct rund_slot_info info;
	int ret;

	if (p->layout == RUND_LAYOUT_UNSPEC) {
		ret = mod_stats(pool, &st, err);
		if (ret)
			return ret;
	}
	if (p->layout == RUND_LAYOUT_V1_SPLIT)
		return rund_error_setx(err, EOPNOTSUPP, "the module names one directory per slot, but a v1-split slot has one per hierarchy; move the process with rund_pool_attach() instead");
	ret = mod_query(pool, id, 0, &info, err);
	if (ret)
		return ret;
	if (info.state != RUND_SLOT_CLAIMED)
		return rund_error_setx(err, EBUSY, "sandbox '%s' is %s, not claimed", id,
				       rund_pool_state_name(info.state));
	d->layout = p->layout;
	d->nr_procs = 1;
	snprintf(d->procs[0], sizeof(d->procs[0]), "%s/cgroup.procs", info.path);
	if (d->layout == RUND_LAYOUT_V2) {
		d->dir_fd = open(info.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d->dir_fd < 0)
			return rund_error_set(err, errno, "open slot directory %s", info.path);
	}
	return 0;
}

static int mod_subscribe(struct rund_pool *pool, struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	int grp, ret;

	if (p->ev_sk)
		return 0;
	p->ev_sk = nl_socket_alloc();
	if (!p->ev_sk)
		return rund_error_set(err, ENOMEM, "allocate the event socket");
	nl_socket_disable_seq_check(p->ev_sk);
	ret = genl_connect(p->ev_sk);
	if (ret < 0)
		goto out_free;
	grp = genl_ctrl_resolve_grp(p->sk, RUND_GENL_NAME, RUND_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		ret = grp;
		goto out_free;
	}
	ret = nl_socket_add_membership(p->ev_sk, grp);
	if (ret < 0)
		goto out_free;
	return 0;

out_free:
	nl_socket_free(p->ev_sk);
	p->ev_sk = NULL;
	return rund_error_setx(err, EIO, "subscribe to the rund '%s' group: %s",
			       RUND_GENL_MCGRP_EVENTS, nl_geterror(ret));
}

static int accept_any_seq(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

static int mod_next_event(struct rund_pool *pool, int timeout_ms, struct rund_pool_event *ev,
			 struct rund_error *err)
{
	struct nl_pool *p = nlp(pool);
	struct nl_req req = { .ev = ev };
	struct nl_cb *cb;
	struct pollfd pfd;
	int ret;

	ret = mod_subscribe(pool, err);
	if (ret)
		return ret;
	pfd.fd = nl_socket_get_fd(p->ev_sk);
	pfd.events = POLLIN;
	ret = poll(&pfd, 1, timeout_ms);
	if (ret < 0)
		return rund_error_set(err, errno, "wait for a pool event");
	if (ret == 0)
		return 0;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb)
		return rund_error_set(err, ENOMEM, "read a pool event");
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, valid_cb, &req);
	/* Notifications carry sequence number 0 because they reply to no request. */
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, accept_any_seq, NULL);
	ret = nl_recvmsgs(p->ev_sk, cb);
	nl_cb_put(cb);
	if (ret < 0)
		return rund_error_setx(err, EIO, "read a pool event: %s", nl_geterror(ret));
	return req.got_event ? 1 : 0;
}

static void mod_close(struct rund_pool *pool)
{
	struct nl_pool *p = nlp(pool);

	if (p->ev_sk)
		nl_socket_free(p->ev_sk);
	if (p->sk)
		nl_socket_free(p->sk);
	free(p);
}

int rund_pool_module_open(struct rund_pool *pool, struct rund_error *err)
{
	struct nl_cache *cache = NULL;
	struct genl_family *fam;
	struct nl_pool *p;
	int ret, one = 1;
	unsigned int version;

	p = calloc(1, sizeof(*p));
	if (!p)
		return rund_error_set(err, ENOMEM, "allocate the netlink client");
	p->sk = nl_socket_alloc();
	if (!p->sk) {
		ret = rund_error_set(err, ENOMEM, "allocate a netlink socket");
		goto out_free;
	}
	ret = genl_connect(p->sk);
	if (ret < 0) {
		ret = rund_error_setx(err, EIO, "connect to generic netlink: %s", nl_geterror(ret));
		goto out_free_sock;
	}
	/* Deliberately ignored: without extended acks errors lose only their text. */
	setsockopt(nl_socket_get_fd(p->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(nl_socket_get_fd(p->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));

	p->family = genl_ctrl_resolve(p->sk, RUND_GENL_NAME);
	if (p->family < 0) {
		ret = rund_error_setx(err, ENOENT, "the generic netlink family '%s' is not registered; load rund.ko or use --backend cgroupfs",
				      RUND_GENL_NAME);
		goto out_free_sock;
	}
	ret = genl_ctrl_alloc_cache(p->sk, &cache);
	if (ret < 0) {
		ret = rund_error_setx(err, EIO, "read the generic netlink families: %s", nl_geterror(ret));
		goto out_free_sock;
	}
	fam = genl_ctrl_search_by_name(cache, RUND_GENL_NAME);
	version = fam ? genl_family_get_version(fam) : 0;
	if (fam)
		genl_family_put(fam);
	nl_cache_free(cache);
	if (version != RUND_GENL_VERSION) {
		ret = rund_error_setx(err, EPROTO, "the rund module speaks version %u of the '%s' family, this rund-helper version %u; install matching versions",
				      version, RUND_GENL_NAME, RUND_GENL_VERSION);
		goto out_free_sock;
	}

	pool->backend = RUND_POOL_BACKEND_MODULE;
	pool->ops = &rund_pool_module_ops;
	pool->priv = p;
	return 0;

out_free_sock:
	nl_socket_free(p->sk);
out_free:
	free(p);
	return ret;
}

const struct rund_pool_ops rund_pool_module_ops = {
	.init = mod_init,
	.resize = mod_resize,
	.destroy = mod_destroy,
	.acquire = mod_acquire,
	.attach = mod_attach,
	.release = mod_release,
	.query = mod_query,
	.list = mod_list,
	.stats = mod_stats,
	.slot_dirs = mod_slot_dirs,
	.subscribe = mod_subscribe,
	.next_event = mod_next_event,
	.close = mod_close,
};
