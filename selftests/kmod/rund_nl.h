/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Raw generic netlink client for the rund module selftests, on libnl-genl-3.
 * Requests are built attribute by attribute so that tests can send
 * malformed ones; every reply keeps the errno and the extack message.
 */
#ifndef RUND_SELFTEST_NL_H
#define RUND_SELFTEST_NL_H

#include <stdbool.h>
#include <stdint.h>

#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "../../kmod/uapi/rund.h"

struct rund_nl {
	struct nl_sock *sk;
	int family;
	int mcgrp;
};

/* Result of one request. */
struct rund_reply {
	int err;			/* 0 or -errno from the kernel */
	char msg[256];			/* extack message, empty when none */
	int nr_msgs;			/* replies received */
	struct nlattr *slot[RUND_A_SLOT_MAX + 1];	/* last RUND_A_SLOT, parsed */
	char slot_id[RUND_SANDBOX_ID_MAX + 1];
	char slot_path[512];
	uint32_t slot_index, slot_state;
	uint32_t stats[RUND_A_STATS_MAX + 1];		/* u32 stats attributes */
	uint64_t op_count[RUND_OP_MAX + 1];
	uint64_t op_failed[RUND_OP_MAX + 1];
	uint64_t op_hist_total[RUND_OP_MAX + 1];
	uint64_t fail[RUND_FAIL_MAX + 1];
	uint32_t dump_states[__RUND_SLOT_STATE_MAX];	/* per state, over a dump */
	uint32_t event_reason;
};

int rund_nl_open(struct rund_nl *nl);
void rund_nl_close(struct rund_nl *nl);
struct nl_msg *rund_nl_msg(struct rund_nl *nl, uint8_t cmd, int flags);
/* Sends @msg (consumed) and collects replies until the ack or the dump's end. */
int rund_nl_send(struct rund_nl *nl, struct nl_msg *msg, struct rund_reply *reply);

int rund_nl_init_single(struct rund_nl *nl, uint32_t layout, const char *root, uint32_t size,
			const char *prefix, uint32_t lease_ms, struct rund_reply *reply);
int rund_nl_acquire(struct rund_nl *nl, const char *id, uint32_t flags, uint64_t memory,
		    uint64_t quota, uint32_t period, uint32_t pids, struct rund_reply *reply);
int rund_nl_by_id(struct rund_nl *nl, uint8_t cmd, const char *id, struct rund_reply *reply);
int rund_nl_attach(struct rund_nl *nl, const char *id, uint32_t pid, struct rund_reply *reply);
int rund_nl_simple(struct rund_nl *nl, uint8_t cmd, struct rund_reply *reply);
int rund_nl_dump(struct rund_nl *nl, struct rund_reply *reply);
int rund_nl_subscribe(struct rund_nl *nl);
/* Waits up to @timeout_ms for one event; returns 0, -ETIMEDOUT or -errno. */
int rund_nl_next_event(struct rund_nl *nl, int timeout_ms, struct rund_reply *reply);

#endif /* RUND_SELFTEST_NL_H */
