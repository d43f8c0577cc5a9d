// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "util.h"

/* Parse one complete JSON object out of the buffer; NULL when more bytes are needed. */
static json_object *take_object(struct rund_qmp *q, int *bad)
{
	json_object *obj;
	size_t used;

	*bad = 0;
	if (!q->len)
		return NULL;
	json_tokener_reset(q->tok);
	obj = json_tokener_parse_ex(q->tok, q->buf, (int)q->len);
	if (!obj) {
		if (json_tokener_get_error(q->tok) != json_tokener_continue)
			*bad = 1;
		return NULL;
	}
	used = json_tokener_get_parse_end(q->tok);
	memmove(q->buf, q->buf + used, q->len - used);
	q->len -= used;
	/* Skip the CRLF between messages. */
	while (q->len && (q->buf[0] == '\r' || q->buf[0] == '\n' || q->buf[0] == ' ')) {
		memmove(q->buf, q->buf + 1, q->len - 1);
		q->len--;
	}
	return obj;
}

/* Read the next JSON object that is not an event. */
static int read_reply(struct rund_qmp *q, long long deadline, json_object **out,
		      struct rund_error *err)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		json_object *obj;
		ssize_t n;
		int bad, r;

		while (q->len && (q->buf[0] == '\r' || q->buf[0] == '\n' || q->buf[0] == ' ')) {
			memmove(q->buf, q->buf + 1, q->len - 1);
			q->len--;
		}
		obj = take_object(q, &bad);
		if (bad)
			return rund_error_setx(err, EPROTO, "QEMU sent invalid JSON on QMP");
		if (obj) {
			if (json_object_object_get_ex(obj, "event", NULL)) {
				json_object_put(obj);
				continue;
			}
			*out = obj;
			return 0;
		}

		if (q->len == q->cap) {
			if (q->cap >= RUND_QMP_MAX_REPLY)
				return rund_error_setx(err, E2BIG,
						       "QMP reply exceeds %d bytes", RUND_QMP_MAX_REPLY);
			q->cap = q->cap ? q->cap * 2 : 4096;
			q->buf = realloc(q->buf, q->cap);
			if (!q->buf)
				return rund_error_set(err, ENOMEM, "failed to grow the QMP buffer");
		}

		r = TEMP_FAILURE_RETRY(poll(&pfd, 1, rund_ms_left(deadline)));
		if (r == 0)
			return rund_error_setx(err, ETIMEDOUT, "QMP reply timed out");
		n = TEMP_FAILURE_RETRY(read(q->fd, q->buf + q->len, q->cap - q->len));
		if (n < 0)
			return rund_error_set(err, errno, "failed to read from QMP");
		if (n == 0)
			return rund_error_setx(err, EPIPE, "QEMU closed the QMP socket");
		q->len += (size_t)n;
	}
}

static int send_all(int fd, const char *data, size_t len, const int *fds, int nfds,
		    struct rund_error *err)
{
	char control[CMSG_SPACE(sizeof(int) * RUND_QMP_MAX_FDS)];

	if (nfds > RUND_QMP_MAX_FDS)
		return rund_error_setx(err, EINVAL, "cannot pass %d descriptors, the limit is %d",
				       nfds, RUND_QMP_MAX_FDS);
	while (len) {
		struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		/* The descriptors travel with the first byte of the command. */
		if (nfds > 0) {
			struct cmsghdr *cm;

			memset(control, 0, sizeof(control));
			msg.msg_control = control;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
		n = TEMP_FAILURE_RETRY(sendmsg(fd, &msg, MSG_NOSIGNAL));
		if (n < 0)
			return rund_error_set(err, errno == EPIPE ? EPIPE : errno,
					      "failed to send to QMP");
		data += n;
		len -= (size_t)n;
		nfds = 0;
	}
	return 0;
}

int rund_qmp_execute(struct rund_qmp *q, const char *command, json_object *args,
		     const int *fds, int nfds, int timeout_ms, json_object **ret,
		     struct rund_error *err)
{
	long long deadline = rund_now_ms() + timeout_ms;
	json_object *req, *reply = NULL, *val;
	const char *text;
	int r;

	req = json_object_new_object();
	if (!req)
		return rund_error_set(err, ENOMEM, "failed to build a QMP request");
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	r = send_all(q->fd, text, strlen(text), fds, nfds, err);
	json_object_put(req);
	if (r)
		return r;

	r = read_reply(q, deadline, &reply, err);
	if (r) {
		rund_error_prefix(err, "%s: ", command);
		return r;
	}
	if (json_object_object_get_ex(reply, "error", &val)) {
		json_object *cls = NULL, *desc = NULL;

		json_object_object_get_ex(val, "class", &cls);
		json_object_object_get_ex(val, "desc", &desc);
		r = rund_error_setx(err, EIO, "QMP %s failed: %s: %s", command,
				    cls ? json_object_get_string(cls) : "unknown",
				    desc ? json_object_get_string(desc) : "no description");
		json_object_put(reply);
		return r;
	}
	if (!json_object_object_get_ex(reply, "return", &val)) {
		json_object_put(reply);
		return rund_error_setx(err, EPROTO, "QMP %s: reply has neither return nor error",
				       command);
	}
	if (ret)
		*ret = json_object_get(val);
	json_object_put(reply);
	return 0;
}

int rund_qmp_open(struct rund_qmp *q, int fd, int timeout_ms, struct rund_error *err)
{
	long long deadline = rund_now_ms() + timeout_ms;
	json_object *greeting = NULL;
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->tok = json_tokener_new();
	if (!q->tok)
		return rund_error_set(err, ENOMEM, "failed to create a JSON tokener");

	r = read_reply(q, deadline, &greeting, err);
	if (r) {
		rund_error_prefix(err, "QMP greeting: ");
		return r;
	}
	if (!json_object_object_get_ex(greeting, "QMP", NULL)) {
		json_object_put(greeting);
		return rund_error_setx(err, EPROTO, "QMP greeting has no QMP member");
	}
	json_object_put(greeting);
	return rund_qmp_execute(q, "qmp_capabilities", NULL, NULL, 0, rund_ms_left(deadline),
				NULL, err);
}

void rund_qmp_close(struct rund_qmp *q)
{
	if (q->tok)
		json_tokener_free(q->tok);
	free(q->buf);
	if (q->fd >= 0)
		close(q->fd);
	memset(q, 0, sizeof(*q));
	q->fd = -1;
}
