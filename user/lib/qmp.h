/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QMP client on json-c over a connected unix stream socket.
 *
 * One request at a time: rund_qmp_execute() sends a command (optionally
 * with descriptors as SCM_RIGHTS, for add-fd and getfd) and waits for its
 * "return" or "error", skipping asynchronous events. Replies larger than
 * RUND_QMP_MAX_REPLY bytes are rejected.
 */
#ifndef RUND_QMP_H
#define RUND_QMP_H

#include <json-c/json.h>

#include "error.h"

#define RUND_QMP_MAX_REPLY (1024 * 1024)
#define RUND_QMP_MAX_FDS 8

struct rund_qmp {
	int fd;
	json_tokener *tok;
	char *buf;		/* bytes received and not yet parsed */
	size_t len, cap;
};

/*
 * Take over fd (closed by rund_qmp_close()), read the greeting and
 * negotiate capabilities, all within timeout_ms.
 */
int rund_qmp_open(struct rund_qmp *q, int fd, int timeout_ms, struct rund_error *err);

/*
 * Execute command with arguments args (may be NULL; not consumed) and pass
 * fds along with it. On success *ret receives the "return" value (put it
 * with json_object_put()) when ret is not NULL. A QMP error becomes -EIO
 * with its class and description in err; -ETIMEDOUT after timeout_ms;
 * -EPIPE when QEMU closed the socket (expected after "quit").
 */
int rund_qmp_execute(struct rund_qmp *q, const char *command, json_object *args,
		     const int *fds, int nfds, int timeout_ms, json_object **ret,
		     struct rund_error *err);

void rund_qmp_close(struct rund_qmp *q);

#endif /* RUND_QMP_H */
