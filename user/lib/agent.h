/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host side of the guest agent protocol: frame reader and writer.
 *
 * Everything read from the guest is untrusted. The reader never holds more
 * than one frame (RUND_AGENT_HDRLEN + RUND_AGENT_MAX_PAYLOAD bytes), rejects
 * a frame whose header is invalid before reading its payload, and
 * rund_agent_parse() validates every attribute of a known message type.
 */
#ifndef RUND_AGENT_H
#define RUND_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"
#include "error.h"

#define RUND_AGENT_FRAME_MAX (RUND_AGENT_HDRLEN + RUND_AGENT_MAX_PAYLOAD)

/* Incremental reader of frames from a non-blocking descriptor. */
struct rund_agent_reader {
	uint32_t have;			/* bytes of the current frame in buf */
	struct rund_agent_hdr hdr;	/* valid once have >= RUND_AGENT_HDRLEN */
	uint8_t buf[RUND_AGENT_FRAME_MAX];
};

/* One frame from the guest; payload points into the reader's buffer. */
struct rund_agent_frame {
	uint16_t type;
	uint32_t len;
	const uint8_t *payload;
};

void rund_agent_reader_init(struct rund_agent_reader *r);

/*
 * Read from fd until one whole frame is buffered. Returns 1 with the frame
 * in *frame (valid until the next call), 0 when fd has no more bytes now,
 * -EPIPE at a clean end of stream between frames, -EPROTO for an invalid
 * header or a stream that ends inside a frame, or another -errno from read.
 */
int rund_agent_read(struct rund_agent_reader *r, int fd,
		    struct rund_agent_frame *frame, struct rund_error *err);

/* A message from the guest after validation. */
struct rund_agent_message {
	uint16_t type;
	union {
		struct {
			uint32_t version;
			uint64_t caps;
		} ready;
		struct {
			uint32_t pid;
		} started;
		struct {
			const uint8_t *data;
			uint32_t len;
		} output;		/* STDOUT, STDERR */
		struct {
			bool signaled;
			uint32_t code;	/* exit code, or signal number if signaled */
		} exit;
		struct {
			uint32_t stage;
			uint32_t errnum;
			/* Printable ASCII only: other bytes become '?'. */
			char message[RUND_AGENT_MAX_ERROR_MSG];
		} error;
	};
};

/*
 * Validate a frame from the guest: the type must be one the guest may send,
 * each known attribute must have its type's length, required attributes
 * must be present. Unknown attribute types are skipped. Returns 0 or
 * -EPROTO (-EPROTONOSUPPORT for a READY of another protocol version).
 */
int rund_agent_parse(const struct rund_agent_frame *frame, struct rund_agent_message *msg,
		     struct rund_error *err);

const char *rund_agent_msg_name(uint16_t type);
const char *rund_agent_stage_name(uint32_t stage);

/*
 * Encode RUN for argv (NULL-terminated, at least one entry), envp (NULL or
 * NULL-terminated "NAME=value" strings) and cwd (NULL for the image's /).
 * buf must hold RUND_AGENT_FRAME_MAX bytes. Returns the frame length or
 * -E2BIG when the request does not fit into one frame.
 */
int rund_agent_encode_run(void *buf, char *const argv[], char *const envp[],
			  const char *cwd, struct rund_error *err);

/* Encode a data frame (STDIN) or an empty one (STDIN_EOF); returns its length. */
uint32_t rund_agent_encode_data(void *buf, uint16_t type, const void *data, uint32_t len);

#endif /* RUND_AGENT_H */
