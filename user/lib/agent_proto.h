/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Wire format between the host and the guest agent (docs/protocol.md).
 *
 * One virtio-serial port named RUND_AGENT_PORT_NAME carries a stream of
 * frames. A frame is a struct rund_agent_hdr followed by hdr.len payload
 * bytes. All integers are little-endian. Control messages carry attributes
 * (struct rund_agent_attr, netlink style: length, type, value, padded to 4
 * bytes); data messages (STDIN, STDOUT, STDERR) carry raw bytes.
 *
 * This header is shared by the static guest agent and librund, so it holds
 * only plain C99 with <stdint.h> and <string.h>.
 */
#ifndef RUND_AGENT_PROTO_H
#define RUND_AGENT_PROTO_H

#include <stdint.h>
#include <string.h>

#define RUND_AGENT_PORT_NAME "rund.agent"
#define RUND_AGENT_PROTO_VERSION 1

/* Hard limit on hdr.len; a receiver rejects any larger frame unread. */
#define RUND_AGENT_MAX_PAYLOAD (64u * 1024)
/* Limits on RUN: argument and environment counts and total string bytes. */
#define RUND_AGENT_MAX_ARGS 4096
#define RUND_AGENT_MAX_ERROR_MSG 1024

struct rund_agent_hdr {
	uint32_t len;		/* payload bytes after this header */
	uint16_t type;		/* enum rund_agent_msg */
	uint16_t flags;		/* no flags defined yet: must be 0 */
};

enum rund_agent_msg {
	RUND_AGENT_MSG_UNSPEC = 0,
	/* agent -> host */
	RUND_AGENT_MSG_READY = 1,	/* VERSION, CAPS */
	RUND_AGENT_MSG_STARTED = 2,	/* PID */
	RUND_AGENT_MSG_STDOUT = 3,	/* raw bytes, len >= 1 */
	RUND_AGENT_MSG_STDERR = 4,	/* raw bytes, len >= 1 */
	RUND_AGENT_MSG_EXIT = 5,	/* EXIT_CODE or EXIT_SIGNAL */
	RUND_AGENT_MSG_ERROR = 6,	/* STAGE, ERRNO, MESSAGE */
	/* host -> agent */
	RUND_AGENT_MSG_RUN = 16,	/* ARG..., ENV..., CWD */
	RUND_AGENT_MSG_STDIN = 17,	/* raw bytes, len >= 1 */
	RUND_AGENT_MSG_STDIN_EOF = 18,	/* empty */
	/*
	 * Template clones only (agent booted with rund.template=1), before RUN:
	 * IDENTITY (host -> agent) carries SANDBOX_ID, HOSTNAME, BOOT_ID,
	 * TIME_NS and ENTROPY; then MOUNT_LAYER (host -> agent) carries
	 * LAYER_DEVICE and LAYER_FSTYPE and asks the agent to mount the writable
	 * layer and the overlay root. The agent answers each with ACK or ERROR.
	 */
	RUND_AGENT_MSG_MOUNT_LAYER = 19,
	RUND_AGENT_MSG_IDENTITY = 20,
	RUND_AGENT_MSG_ACK = 7,
	RUND_AGENT_MSG_MAX = 20,
};

struct rund_agent_attr {
	uint16_t len;		/* header plus value, without padding */
	uint16_t type;		/* enum rund_agent_attr_type */
};

#define RUND_AGENT_ALIGNTO 4u
#define RUND_AGENT_ALIGN(n) (((n) + RUND_AGENT_ALIGNTO - 1) & ~(RUND_AGENT_ALIGNTO - 1))
#define RUND_AGENT_ATTR_HDRLEN ((uint32_t)sizeof(struct rund_agent_attr))

/*
 * Attribute types share one number space across messages, so a type means
 * the same thing wherever it appears. Receivers skip attribute types they do
 * not know, which lets a newer sender add attributes; they reject a known
 * attribute whose length is wrong for its type.
 */
enum rund_agent_attr_type {
	RUND_AGENT_ATTR_UNSPEC = 0,
	RUND_AGENT_ATTR_VERSION = 1,	/* u32: RUND_AGENT_PROTO_VERSION */
	RUND_AGENT_ATTR_CAPS = 2,	/* u64: RUND_AGENT_CAP_* bits */
	RUND_AGENT_ATTR_ARG = 3,	/* string, repeated in argv order */
	RUND_AGENT_ATTR_ENV = 4,	/* string "NAME=value", repeated */
	RUND_AGENT_ATTR_CWD = 5,	/* string, absolute path */
	RUND_AGENT_ATTR_PID = 6,	/* u32: guest pid of the command */
	RUND_AGENT_ATTR_EXIT_CODE = 7,	/* u32: 0..255 */
	RUND_AGENT_ATTR_EXIT_SIGNAL = 8,	/* u32: signal number */
	RUND_AGENT_ATTR_STAGE = 9,	/* u32: enum rund_agent_stage */
	RUND_AGENT_ATTR_ERRNO = 10,	/* u32: positive errno (guest values) */
	RUND_AGENT_ATTR_MESSAGE = 11,	/* string, at most MAX_ERROR_MSG */
	/* Reserved for MOUNT_LAYER and IDENTITY. */
	RUND_AGENT_ATTR_LAYER_DEVICE = 12,	/* string: guest block device */
	RUND_AGENT_ATTR_LAYER_FSTYPE = 13,	/* string: "ext4" */
	RUND_AGENT_ATTR_SANDBOX_ID = 14,	/* string */
	RUND_AGENT_ATTR_HOSTNAME = 15,	/* string */
	RUND_AGENT_ATTR_BOOT_ID = 16,	/* 16 bytes */
	RUND_AGENT_ATTR_TIME_NS = 17,	/* u64: CLOCK_REALTIME in ns */
	RUND_AGENT_ATTR_ENTROPY = 18,	/* 32..256 bytes for the guest RNG */
};

/* Agent capabilities announced in READY. */
#define RUND_AGENT_CAP_STDIN (1ull << 0)	/* forwards STDIN and STDIN_EOF */

/* Stage of the agent at which a failure happened, carried in ERROR. */
enum rund_agent_stage {
	RUND_AGENT_STAGE_UNSPEC = 0,
	RUND_AGENT_STAGE_MOUNT = 1,	/* mounting the root or /proc, /dev... */
	RUND_AGENT_STAGE_PROTOCOL = 2,	/* the host sent an invalid frame */
	RUND_AGENT_STAGE_SPAWN = 3,	/* pipes, fork */
	RUND_AGENT_STAGE_CWD = 4,	/* chdir to CWD failed */
	RUND_AGENT_STAGE_EXEC = 5,	/* execve of ARG[0] failed */
	RUND_AGENT_STAGE_IO = 6,	/* relaying stdio failed */
};

/* Attribute strings are NUL-terminated inside their value, like NLA_NUL_STRING. */

static inline uint32_t rund_agent_get_le32(const void *p)
{
	const uint8_t *b = (const uint8_t *)p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline uint16_t rund_agent_get_le16(const void *p)
{
	const uint8_t *b = (const uint8_t *)p;

	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint64_t rund_agent_get_le64(const void *p)
{
	const uint8_t *b = (const uint8_t *)p;

	return (uint64_t)rund_agent_get_le32(b) |
	       (uint64_t)rund_agent_get_le32(b + 4) << 32;
}

static inline void rund_agent_put_le16(void *p, uint16_t v)
{
	uint8_t *b = (uint8_t *)p;

	b[0] = v & 0xff;
	b[1] = v >> 8;
}

static inline void rund_agent_put_le32(void *p, uint32_t v)
{
	uint8_t *b = (uint8_t *)p;

	b[0] = v & 0xff;
	b[1] = (v >> 8) & 0xff;
	b[2] = (v >> 16) & 0xff;
	b[3] = v >> 24;
}

static inline void rund_agent_put_le64(void *p, uint64_t v)
{
	rund_agent_put_le32(p, (uint32_t)v);
	rund_agent_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#define RUND_AGENT_HDRLEN 8u

static inline void rund_agent_hdr_encode(void *buf, uint16_t type, uint32_t len)
{
	uint8_t *b = (uint8_t *)buf;

	rund_agent_put_le32(b, len);
	rund_agent_put_le16(b + 4, type);
	rund_agent_put_le16(b + 6, 0);
}

static inline void rund_agent_hdr_decode(const void *buf, struct rund_agent_hdr *hdr)
{
	const uint8_t *b = (const uint8_t *)buf;

	hdr->len = rund_agent_get_le32(b);
	hdr->type = rund_agent_get_le16(b + 4);
	hdr->flags = rund_agent_get_le16(b + 6);
}

/*
 * Message builder: a frame being assembled in a caller-owned buffer of
 * RUND_AGENT_HDRLEN + RUND_AGENT_MAX_PAYLOAD bytes. rund_agent_put_*() return
 * 0, or -1 when the attribute would not fit; the frame is then unusable.
 */
struct rund_agent_msgbuf {
	uint8_t *buf;
	uint32_t len;		/* bytes used, header included */
	uint32_t cap;
};

static inline void rund_agent_msg_init(struct rund_agent_msgbuf *m, void *buf,
				       uint32_t cap, uint16_t type)
{
	m->buf = (uint8_t *)buf;
	m->cap = cap;
	m->len = RUND_AGENT_HDRLEN;
	rund_agent_hdr_encode(m->buf, type, 0);
}

static inline void rund_agent_msg_finish(struct rund_agent_msgbuf *m)
{
	rund_agent_put_le32(m->buf, m->len - RUND_AGENT_HDRLEN);
}

static inline int rund_agent_put(struct rund_agent_msgbuf *m, uint16_t type,
				 const void *data, uint32_t len)
{
	uint32_t total = RUND_AGENT_ATTR_HDRLEN + len;
	uint32_t padded = RUND_AGENT_ALIGN(total);

	if (total > 0xffff || padded > m->cap - m->len ||
	    m->len - RUND_AGENT_HDRLEN + padded > RUND_AGENT_MAX_PAYLOAD)
		return -1;
	rund_agent_put_le16(m->buf + m->len, (uint16_t)total);
	rund_agent_put_le16(m->buf + m->len + 2, type);
	if (len)
		memcpy(m->buf + m->len + RUND_AGENT_ATTR_HDRLEN, data, len);
	memset(m->buf + m->len + total, 0, padded - total);
	m->len += padded;
	return 0;
}

static inline int rund_agent_put_u32(struct rund_agent_msgbuf *m, uint16_t type, uint32_t v)
{
	uint8_t b[4];

	rund_agent_put_le32(b, v);
	return rund_agent_put(m, type, b, sizeof(b));
}

static inline int rund_agent_put_u64(struct rund_agent_msgbuf *m, uint16_t type, uint64_t v)
{
	uint8_t b[8];

	rund_agent_put_le64(b, v);
	return rund_agent_put(m, type, b, sizeof(b));
}

static inline int rund_agent_put_str(struct rund_agent_msgbuf *m, uint16_t type, const char *s)
{
	size_t n = strlen(s) + 1;

	if (n > 0xffff)
		return -1;
	return rund_agent_put(m, type, s, (uint32_t)n);
}

/*
 * Attribute iterator over a payload. rund_agent_attr_next() returns 1 with
 * the next attribute in *type, *data and *len, 0 at the clean end of the
 * payload, and -1 when the remaining bytes are not a whole attribute (a
 * truncated header, a length below the header size or past the end).
 */
struct rund_agent_attr_iter {
	const uint8_t *pos;
	uint32_t left;
};

static inline void rund_agent_attr_iter_init(struct rund_agent_attr_iter *it,
					     const void *payload, uint32_t len)
{
	it->pos = (const uint8_t *)payload;
	it->left = len;
}

static inline int rund_agent_attr_next(struct rund_agent_attr_iter *it, uint16_t *type,
				       const uint8_t **data, uint32_t *len)
{
	uint32_t alen, padded;

	if (it->left == 0)
		return 0;
	if (it->left < RUND_AGENT_ATTR_HDRLEN)
		return -1;
	alen = rund_agent_get_le16(it->pos);
	if (alen < RUND_AGENT_ATTR_HDRLEN || alen > it->left)
		return -1;
	*type = rund_agent_get_le16(it->pos + 2);
	*data = it->pos + RUND_AGENT_ATTR_HDRLEN;
	*len = alen - RUND_AGENT_ATTR_HDRLEN;
	padded = RUND_AGENT_ALIGN(alen);
	if (padded > it->left)
		padded = it->left;	/* the last attribute may omit its padding */
	it->pos += padded;
	it->left -= padded;
	return 1;
}

/* True when an attribute value is a NUL-terminated string with no inner NUL. */
static inline int rund_agent_attr_is_str(const uint8_t *data, uint32_t len)
{
	return len >= 1 && data[len - 1] == '\0' && memchr(data, '\0', len) == data + len - 1;
}

#endif /* RUND_AGENT_PROTO_H */
