// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

void rund_agent_reader_init(struct rund_agent_reader *r)
{
	r->have = 0;
	memset(&r->hdr, 0, sizeof(r->hdr));
}

static bool guest_may_send(uint16_t type)
{
	switch (type) {
	case RUND_AGENT_MSG_READY:
	case RUND_AGENT_MSG_STARTED:
	case RUND_AGENT_MSG_STDOUT:
	case RUND_AGENT_MSG_STDERR:
	case RUND_AGENT_MSG_EXIT:
	case RUND_AGENT_MSG_ERROR:
	case RUND_AGENT_MSG_ACK:	/* to IDENTITY and MOUNT_LAYER in template clones */
		return true;
	default:
		return false;
	}
}

int rund_agent_read(struct rund_agent_reader *r, int fd,
		    struct rund_agent_frame *frame, struct rund_error *err)
{
	for (;;) {
		uint32_t want;
		ssize_t n;

		want = r->have < RUND_AGENT_HDRLEN ? RUND_AGENT_HDRLEN
						   : RUND_AGENT_HDRLEN + r->hdr.len;
		if (r->have == want && r->have >= RUND_AGENT_HDRLEN) {
			frame->type = r->hdr.type;
			frame->len = r->hdr.len;
			frame->payload = r->buf + RUND_AGENT_HDRLEN;
			r->have = 0;
			return 1;
		}

		n = read(fd, r->buf + r->have, want - r->have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return rund_error_set(err, errno, "failed to read from the agent channel");
		}
		if (n == 0) {
			if (r->have == 0)
				return -EPIPE;
			return rund_error_setx(err, EPROTO,
					       "agent channel closed inside a frame (%u of %u bytes)",
					       r->have, want);
		}
		r->have += (uint32_t)n;

		if (r->have == RUND_AGENT_HDRLEN) {
			rund_agent_hdr_decode(r->buf, &r->hdr);
			/* Check the header before reading a payload of its length. */
			if (r->hdr.len > RUND_AGENT_MAX_PAYLOAD)
				return rund_error_setx(err, EPROTO,
						       "guest sent a frame of %u bytes, the limit is %u",
						       r->hdr.len, RUND_AGENT_MAX_PAYLOAD);
			if (r->hdr.flags)
				return rund_error_setx(err, EPROTO,
						       "guest sent a frame with unknown flags %#x",
						       r->hdr.flags);
			if (!guest_may_send(r->hdr.type))
				return rund_error_setx(err, EPROTO,
						       "guest sent a frame of unknown type %u",
						       r->hdr.type);
		}
	}
}

const char *rund_agent_msg_name(uint16_t type)
{
	static const char *const names[] = {
		[RUND_AGENT_MSG_READY] = "READY",
		[RUND_AGENT_MSG_STARTED] = "STARTED",
		[RUND_AGENT_MSG_STDOUT] = "STDOUT",
		[RUND_AGENT_MSG_STDERR] = "STDERR",
		[RUND_AGENT_MSG_EXIT] = "EXIT",
		[RUND_AGENT_MSG_ERROR] = "ERROR",
		[RUND_AGENT_MSG_ACK] = "ACK",
		[RUND_AGENT_MSG_RUN] = "RUN",
		[RUND_AGENT_MSG_STDIN] = "STDIN",
		[RUND_AGENT_MSG_STDIN_EOF] = "STDIN_EOF",
		[RUND_AGENT_MSG_MOUNT_LAYER] = "MOUNT_LAYER",
		[RUND_AGENT_MSG_IDENTITY] = "IDENTITY",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "unknown";
}

const char *rund_agent_stage_name(uint32_t stage)
{
	static const char *const names[] = {
		[RUND_AGENT_STAGE_UNSPEC] = "unspecified",
		[RUND_AGENT_STAGE_MOUNT] = "mount",
		[RUND_AGENT_STAGE_PROTOCOL] = "protocol",
		[RUND_AGENT_STAGE_SPAWN] = "spawn",
		[RUND_AGENT_STAGE_CWD] = "cwd",
		[RUND_AGENT_STAGE_EXEC] = "exec",
		[RUND_AGENT_STAGE_IO] = "io",
	};

	if (stage < sizeof(names) / sizeof(names[0]))
		return names[stage];
	return "unknown";
}

/* Expected value length of each known attribute; 0 means a string. */
static int attr_expect(uint16_t type, uint32_t *len)
{
	switch (type) {
	case RUND_AGENT_ATTR_VERSION:
	case RUND_AGENT_ATTR_PID:
	case RUND_AGENT_ATTR_EXIT_CODE:
	case RUND_AGENT_ATTR_EXIT_SIGNAL:
	case RUND_AGENT_ATTR_STAGE:
	case RUND_AGENT_ATTR_ERRNO:
		*len = 4;
		return 1;
	case RUND_AGENT_ATTR_CAPS:
		*len = 8;
		return 1;
	case RUND_AGENT_ATTR_MESSAGE:
		*len = 0;
		return 1;
	default:
		return 0;
	}
}

static void copy_printable(char *dst, size_t size, const uint8_t *src, uint32_t len)
{
	size_t i, n = len < size - 1 ? len : size - 1;

	for (i = 0; i < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[n] = '\0';
}

#define SEEN(a) (1u << (a))

int rund_agent_parse(const struct rund_agent_frame *frame, struct rund_agent_message *msg,
		     struct rund_error *err)
{
	const char *name = rund_agent_msg_name(frame->type);
	struct rund_agent_attr_iter it;
	const uint8_t *data;
	uint32_t alen, expect, seen = 0;
	uint16_t type;
	int ret;

	memset(msg, 0, sizeof(*msg));
	msg->type = frame->type;

	if (!guest_may_send(frame->type))
		return rund_error_setx(err, EPROTO, "guest sent a frame of unknown type %u",
				       frame->type);

	if (frame->type == RUND_AGENT_MSG_STDOUT || frame->type == RUND_AGENT_MSG_STDERR) {
		if (frame->len == 0)
			return rund_error_setx(err, EPROTO, "guest sent an empty %s frame", name);
		msg->output.data = frame->payload;
		msg->output.len = frame->len;
		return 0;
	}

	rund_agent_attr_iter_init(&it, frame->payload, frame->len);
	while ((ret = rund_agent_attr_next(&it, &type, &data, &alen)) > 0) {
		if (!attr_expect(type, &expect))
			continue;
		if (expect && alen != expect)
			return rund_error_setx(err, EPROTO,
					       "%s attribute %u has %u bytes, expected %u",
					       name, type, alen, expect);
		if (!expect && (alen > RUND_AGENT_MAX_ERROR_MSG ||
				!rund_agent_attr_is_str(data, alen)))
			return rund_error_setx(err, EPROTO,
					       "%s attribute %u is not a string of at most %u bytes",
					       name, type, RUND_AGENT_MAX_ERROR_MSG);
		if (seen & SEEN(type))
			return rund_error_setx(err, EPROTO, "%s repeats attribute %u",
					       name, type);
		seen |= SEEN(type);

		switch (type) {
		case RUND_AGENT_ATTR_VERSION:
			msg->ready.version = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_CAPS:
			msg->ready.caps = rund_agent_get_le64(data);
			break;
		case RUND_AGENT_ATTR_PID:
			msg->started.pid = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_EXIT_CODE:
			msg->exit.code = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_EXIT_SIGNAL:
			msg->exit.signaled = true;
			msg->exit.code = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_STAGE:
			msg->error.stage = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_ERRNO:
			msg->error.errnum = rund_agent_get_le32(data);
			break;
		case RUND_AGENT_ATTR_MESSAGE:
			copy_printable(msg->error.message, sizeof(msg->error.message), data,
				       alen - 1);
			break;
		}
	}
	if (ret < 0)
		return rund_error_setx(err, EPROTO, "%s holds a truncated attribute", name);

	switch (frame->type) {
	case RUND_AGENT_MSG_READY:
		if (!(seen & SEEN(RUND_AGENT_ATTR_VERSION)))
			return rund_error_setx(err, EPROTO, "READY has no protocol version");
		if (msg->ready.version != RUND_AGENT_PROTO_VERSION)
			return rund_error_setx(err, EPROTONOSUPPORT,
					       "guest agent speaks protocol version %u, this host %u",
					       msg->ready.version, RUND_AGENT_PROTO_VERSION);
		break;
	case RUND_AGENT_MSG_STARTED:
		if (!(seen & SEEN(RUND_AGENT_ATTR_PID)))
			return rund_error_setx(err, EPROTO, "STARTED has no pid");
		break;
	case RUND_AGENT_MSG_EXIT: {
		bool code = seen & SEEN(RUND_AGENT_ATTR_EXIT_CODE);
		bool sig = seen & SEEN(RUND_AGENT_ATTR_EXIT_SIGNAL);

		if (code == sig)
			return rund_error_setx(err, EPROTO,
					       "EXIT must hold either an exit code or a signal");
		if (code && msg->exit.code > 255)
			return rund_error_setx(err, EPROTO, "EXIT code %u is out of range 0-255",
					       msg->exit.code);
		if (sig && (msg->exit.code < 1 || msg->exit.code > 64))
			return rund_error_setx(err, EPROTO, "EXIT signal %u is out of range 1-64",
					       msg->exit.code);
		break;
	}
	case RUND_AGENT_MSG_ERROR:
		if (!(seen & SEEN(RUND_AGENT_ATTR_STAGE)) || !(seen & SEEN(RUND_AGENT_ATTR_ERRNO)))
			return rund_error_setx(err, EPROTO, "ERROR has no stage or errno");
		if (msg->error.errnum > 4095)
			return rund_error_setx(err, EPROTO, "ERROR errno %u is out of range",
					       msg->error.errnum);
		break;
	}
	return 0;
}

int rund_agent_encode_run(void *buf, char *const argv[], char *const envp[],
			  const char *cwd, struct rund_error *err)
{
	struct rund_agent_msgbuf m;
	size_t i;

	if (!argv || !argv[0])
		return rund_error_setx(err, EINVAL, "no command to run");

	rund_agent_msg_init(&m, buf, RUND_AGENT_FRAME_MAX, RUND_AGENT_MSG_RUN);
	for (i = 0; argv[i]; i++)
		if (i >= RUND_AGENT_MAX_ARGS || rund_agent_put_str(&m, RUND_AGENT_ATTR_ARG, argv[i]))
			goto too_big;
	for (i = 0; envp && envp[i]; i++)
		if (i >= RUND_AGENT_MAX_ARGS || rund_agent_put_str(&m, RUND_AGENT_ATTR_ENV, envp[i]))
			goto too_big;
	if (cwd && rund_agent_put_str(&m, RUND_AGENT_ATTR_CWD, cwd))
		goto too_big;
	rund_agent_msg_finish(&m);
	return (int)m.len;

too_big:
	return rund_error_setx(err, E2BIG,
			       "command, environment and working directory exceed %u bytes or %u entries",
			       RUND_AGENT_MAX_PAYLOAD, RUND_AGENT_MAX_ARGS);
}

uint32_t rund_agent_encode_data(void *buf, uint16_t type, const void *data, uint32_t len)
{
	rund_agent_hdr_encode(buf, type, len);
	if (len)
		memcpy((uint8_t *)buf + RUND_AGENT_HDRLEN, data, len);
	return RUND_AGENT_HDRLEN + len;
}
