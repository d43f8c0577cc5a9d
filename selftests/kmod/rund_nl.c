// SPDX-License-Identifier: GPL-2.0
/* Raw generic netlink client for the rund module selftests. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "rund_nl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct rund_rx {
	struct rund_reply *reply;
	bool done;
};

int rund_nl_open(struct rund_nl *nl)
{
	int one = 1;
	int err;

	memset(nl, 0, sizeof(*nl));
	nl->sk = nl_socket_alloc();
	if (!nl->sk)
		return -ENOMEM;

	err = genl_connect(nl->sk);
	if (err)
		goto out_free;

	/* Ask for extack messages, without the request echoed back. */
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));

	nl->family = genl_ctrl_resolve(nl->sk, RUND_GENL_NAME);
	if (nl->family < 0) {
		err = nl->family;
		goto out_free;
	}
	nl->mcgrp = genl_ctrl_resolve_grp(nl->sk, RUND_GENL_NAME, RUND_GENL_MCGRP_EVENTS);
	return 0;

out_free:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return err < 0 ? -ENOENT : err;
}

void rund_nl_close(struct rund_nl *nl)
{
	if (nl->sk)
		nl_socket_free(nl->sk);
	nl->sk = NULL;
}

struct nl_msg *rund_nl_msg(struct rund_nl *nl, uint8_t cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0,
			 NLM_F_REQUEST | NLM_F_ACK | flags, cmd, RUND_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static void rund_parse_slot(struct rund_reply *reply, struct nlattr *nest)
{
	struct nlattr **tb = reply->slot;

	if (nla_parse_nested(tb, RUND_A_SLOT_MAX, nest, NULL))
		return;
	reply->slot_id[0] = '\0';
	reply->slot_path[0] = '\0';
	if (tb[RUND_A_SLOT_SANDBOX_ID])
		snprintf(reply->slot_id, sizeof(reply->slot_id), "%s",
			 nla_get_string(tb[RUND_A_SLOT_SANDBOX_ID]));
	if (tb[RUND_A_SLOT_PATH])
		snprintf(reply->slot_path, sizeof(reply->slot_path), "%s",
			 nla_get_string(tb[RUND_A_SLOT_PATH]));
	reply->slot_index = tb[RUND_A_SLOT_INDEX] ? nla_get_u32(tb[RUND_A_SLOT_INDEX]) : ~0u;
	reply->slot_state = tb[RUND_A_SLOT_STATE] ? nla_get_u32(tb[RUND_A_SLOT_STATE]) : ~0u;
	if (reply->slot_state < __RUND_SLOT_STATE_MAX)
		reply->dump_states[reply->slot_state]++;
}

static void rund_parse_stats(struct rund_reply *reply, struct nlattr *nest)
{
	struct nlattr *tb[RUND_A_STATS_MAX + 1];
	struct nlattr *item;
	int rem, i;

	if (nla_parse_nested(tb, RUND_A_STATS_MAX, nest, NULL))
		return;
	for (i = 0; i <= RUND_A_STATS_MAX; i++) {
		if (tb[i] && nla_len(tb[i]) == sizeof(uint32_t))
			reply->stats[i] = nla_get_u32(tb[i]);
	}

	nla_for_each_nested(item, nest, rem) {
		struct nlattr *sub[RUND_A_OPSTAT_MAX + 1];

		if (nla_type(item) == RUND_A_STATS_OP &&
		    !nla_parse_nested(sub, RUND_A_OPSTAT_MAX, item, NULL) && sub[RUND_A_OPSTAT_OP]) {
			uint32_t op = nla_get_u32(sub[RUND_A_OPSTAT_OP]);
			const uint64_t *hist;

			if (op > RUND_OP_MAX)
				continue;
			reply->op_count[op] = nla_get_u64(sub[RUND_A_OPSTAT_COUNT]);
			reply->op_failed[op] = nla_get_u64(sub[RUND_A_OPSTAT_FAILED]);
			hist = nla_data(sub[RUND_A_OPSTAT_HIST]);
			reply->op_hist_total[op] = 0;
			for (i = 0; i < RUND_HIST_BUCKETS; i++)
				reply->op_hist_total[op] += hist[i];
		} else if (nla_type(item) == RUND_A_STATS_FAIL) {
			struct nlattr *f[RUND_A_FAIL_MAX + 1];

			if (nla_parse_nested(f, RUND_A_FAIL_MAX, item, NULL) || !f[RUND_A_FAIL_KIND])
				continue;
			if (nla_get_u32(f[RUND_A_FAIL_KIND]) <= RUND_FAIL_MAX)
				reply->fail[nla_get_u32(f[RUND_A_FAIL_KIND])] =
					nla_get_u64(f[RUND_A_FAIL_COUNT]);
		}
	}
}

static int rund_on_valid(struct nl_msg *msg, void *arg)
{
	struct rund_rx *rx = arg;
	struct nlattr *tb[RUND_A_MAX + 1];
	struct genlmsghdr *gnlh = nlmsg_data(nlmsg_hdr(msg));

	rx->reply->nr_msgs++;
	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, RUND_A_MAX, NULL))
		return NL_SKIP;
	if (tb[RUND_A_SLOT])
		rund_parse_slot(rx->reply, tb[RUND_A_SLOT]);
	if (tb[RUND_A_STATS])
		rund_parse_stats(rx->reply, tb[RUND_A_STATS]);
	if (gnlh->cmd == RUND_CMD_SLOT_EVENT && tb[RUND_A_EVENT_REASON]) {
		rx->reply->event_reason = nla_get_u32(tb[RUND_A_EVENT_REASON]);
		rx->done = true;
		return NL_STOP;
	}
	return NL_OK;
}

static int rund_on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)e - 1;
	struct rund_rx *rx = arg;
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	int hdrlen = sizeof(*e);

	rx->reply->err = e->error;
	rx->done = true;

	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		hdrlen += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) &&
	    !nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)((char *)e + hdrlen),
		       nlh->nlmsg_len - NLMSG_HDRLEN - hdrlen, NULL) &&
	    tb[NLMSGERR_ATTR_MSG])
		snprintf(rx->reply->msg, sizeof(rx->reply->msg), "%s",
			 nla_get_string(tb[NLMSGERR_ATTR_MSG]));
	return NL_STOP;
}

static int rund_on_done(struct nl_msg *msg, void *arg)
{
	struct rund_rx *rx = arg;

	rx->done = true;
	return NL_STOP;
}

/* Disables libnl's sequence check for multicast events. */
static int rund_on_seq(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

static int rund_receive(struct rund_nl *nl, struct rund_reply *reply, bool events)
{
	struct rund_rx rx = { .reply = reply };
	struct nl_cb *cb;
	int err = 0;

	cb = nl_cb_alloc(NL_CB_CUSTOM);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, rund_on_valid, &rx);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, rund_on_done, &rx);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, rund_on_done, &rx);
	nl_cb_err(cb, NL_CB_CUSTOM, rund_on_error, &rx);
	if (events)
		nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, rund_on_seq, NULL);

	while (!rx.done) {
		err = nl_recvmsgs(nl->sk, cb);
		if (err < 0 && !rx.done) {
			reply->err = -EIO;
			break;
		}
		if (events)
			break;
	}
	nl_cb_put(cb);
	if (events && !rx.done)
		return -EAGAIN;
	return reply->err;
}

int rund_nl_send(struct rund_nl *nl, struct nl_msg *msg, struct rund_reply *reply)
{
	int err;

	memset(reply, 0, sizeof(*reply));
	err = nl_send_auto(nl->sk, msg);
	nlmsg_free(msg);
	if (err < 0)
		return reply->err = -EIO;
	return rund_receive(nl, reply, false);
}

int rund_nl_init_single(struct rund_nl *nl, uint32_t layout, const char *root, uint32_t size,
			const char *prefix, uint32_t lease_ms, struct rund_reply *reply)
{
	struct nl_msg *msg = rund_nl_msg(nl, RUND_CMD_POOL_INIT, 0);

	nla_put_u32(msg, RUND_A_POOL_LAYOUT, layout);
	nla_put_string(msg, RUND_A_POOL_ROOT, root);
	nla_put_u32(msg, RUND_A_POOL_SIZE, size);
	if (prefix)
		nla_put_string(msg, RUND_A_POOL_PREFIX, prefix);
	if (lease_ms)
		nla_put_u32(msg, RUND_A_POOL_LEASE_MS, lease_ms);
	return rund_nl_send(nl, msg, reply);
}

int rund_nl_acquire(struct rund_nl *nl, const char *id, uint32_t flags, uint64_t memory,
		    uint64_t quota, uint32_t period, uint32_t pids, struct rund_reply *reply)
{
	struct nl_msg *msg = rund_nl_msg(nl, RUND_CMD_ACQUIRE, 0);

	nla_put_string(msg, RUND_A_SANDBOX_ID, id);
	if (flags)
		nla_put_u32(msg, RUND_A_ACQUIRE_FLAGS, flags);
	if (memory)
		nla_put_u64(msg, RUND_A_MEMORY_MAX, memory);
	if (quota)
		nla_put_u64(msg, RUND_A_CPU_QUOTA_US, quota);
	if (period)
		nla_put_u32(msg, RUND_A_CPU_PERIOD_US, period);
	if (pids)
		nla_put_u32(msg, RUND_A_PIDS_MAX, pids);
	return rund_nl_send(nl, msg, reply);
}

int rund_nl_by_id(struct rund_nl *nl, uint8_t cmd, const char *id, struct rund_reply *reply)
{
	struct nl_msg *msg = rund_nl_msg(nl, cmd, 0);

	nla_put_string(msg, RUND_A_SANDBOX_ID, id);
	return rund_nl_send(nl, msg, reply);
}

int rund_nl_attach(struct rund_nl *nl, const char *id, uint32_t pid, struct rund_reply *reply)
{
	struct nl_msg *msg = rund_nl_msg(nl, RUND_CMD_ATTACH, 0);

	nla_put_string(msg, RUND_A_SANDBOX_ID, id);
	nla_put_u32(msg, RUND_A_PID, pid);
	return rund_nl_send(nl, msg, reply);
}

int rund_nl_simple(struct rund_nl *nl, uint8_t cmd, struct rund_reply *reply)
{
	return rund_nl_send(nl, rund_nl_msg(nl, cmd, 0), reply);
}

int rund_nl_dump(struct rund_nl *nl, struct rund_reply *reply)
{
	return rund_nl_send(nl, rund_nl_msg(nl, RUND_CMD_SLOT_GET, NLM_F_DUMP), reply);
}

int rund_nl_subscribe(struct rund_nl *nl)
{
	if (nl->mcgrp < 0)
		return nl->mcgrp;
	nl_socket_disable_seq_check(nl->sk);
	return nl_socket_add_membership(nl->sk, nl->mcgrp) ? -EIO : 0;
}

int rund_nl_next_event(struct rund_nl *nl, int timeout_ms, struct rund_reply *reply)
{
	struct pollfd pfd = { .fd = nl_socket_get_fd(nl->sk), .events = POLLIN };
	int ret;

	memset(reply, 0, sizeof(*reply));
	for (;;) {
		ret = poll(&pfd, 1, timeout_ms);
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		ret = rund_receive(nl, reply, true);
		if (ret != -EAGAIN)
			return ret;
	}
}
