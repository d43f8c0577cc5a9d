// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host-side agent frame reader and parser fed with crafted byte streams, as
 * a hostile guest could send them: every malformed frame must be rejected
 * with an error, without a crash, a hang or a read past the frame limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>

#include "agent.h"
#include "vm.h"
#include "kselftest_harness.h"

FIXTURE(stream) {
	int host;		/* the reader's end, non-blocking */
	int guest;		/* crafted bytes go in here */
	struct rund_agent_reader *reader;
	struct rund_agent_frame frame;
	struct rund_agent_message msg;
	struct rund_error err;
	uint8_t buf[RUND_AGENT_FRAME_MAX];
};

FIXTURE_SETUP(stream)
{
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	self->host = sv[0];
	self->guest = sv[1];
	ASSERT_EQ(0, fcntl(self->host, F_SETFL, O_NONBLOCK));
	self->reader = malloc(sizeof(*self->reader));
	ASSERT_NE(NULL, self->reader);
	rund_agent_reader_init(self->reader);
	memset(&self->err, 0, sizeof(self->err));
}

FIXTURE_TEARDOWN(stream)
{
	close(self->host);
	if (self->guest >= 0)
		close(self->guest);
	free(self->reader);
}

static void put_hdr(uint8_t *b, uint32_t len, uint16_t type, uint16_t flags)
{
	rund_agent_put_le32(b, len);
	rund_agent_put_le16(b + 4, type);
	rund_agent_put_le16(b + 6, flags);
}

static int feed(int fd, const void *data, size_t len)
{
	return write(fd, data, len) == (ssize_t)len ? 0 : -1;
}

/* Read one frame and parse it; returns the first error or 0. */
static int read_and_parse(struct _test_data_stream *self)
{
	int ret = rund_agent_read(self->reader, self->host, &self->frame, &self->err);

	if (ret < 0)
		return ret;
	if (ret == 0)
		return -EAGAIN;
	return rund_agent_parse(&self->frame, &self->msg, &self->err);
}

TEST_F(stream, valid_ready_accepted)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_READY);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_VERSION, RUND_AGENT_PROTO_VERSION));
	ASSERT_EQ(0, rund_agent_put_u64(&m, RUND_AGENT_ATTR_CAPS, RUND_AGENT_CAP_STDIN));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));

	ASSERT_EQ(0, read_and_parse(self));
	EXPECT_EQ(RUND_AGENT_MSG_READY, self->msg.type);
	EXPECT_EQ(RUND_AGENT_PROTO_VERSION, self->msg.ready.version);
	EXPECT_EQ(RUND_AGENT_CAP_STDIN, self->msg.ready.caps);
}

TEST_F(stream, frame_split_across_reads)
{
	uint8_t data[RUND_AGENT_HDRLEN + 3];

	put_hdr(data, 3, RUND_AGENT_MSG_STDOUT, 0);
	memcpy(data + RUND_AGENT_HDRLEN, "abc", 3);
	ASSERT_EQ(0, feed(self->guest, data, 5));
	EXPECT_EQ(0, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
	ASSERT_EQ(0, feed(self->guest, data + 5, sizeof(data) - 5));
	ASSERT_EQ(1, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
	ASSERT_EQ(0, rund_agent_parse(&self->frame, &self->msg, &self->err));
	ASSERT_EQ(3, self->msg.output.len);
	EXPECT_EQ(0, memcmp(self->msg.output.data, "abc", 3));
}

TEST_F(stream, oversize_length_rejected)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	put_hdr(hdr, RUND_AGENT_MAX_PAYLOAD + 1, RUND_AGENT_MSG_STDOUT, 0);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
	EXPECT_NE(NULL, strstr(self->err.msg, "limit"));
}

TEST_F(stream, huge_length_rejected_unread)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	/* Rejected from the header alone: no 4 GiB payload is awaited. */
	put_hdr(hdr, 0xffffffffu, RUND_AGENT_MSG_STDERR, 0);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
}

TEST_F(stream, unknown_type_rejected)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	put_hdr(hdr, 0, 999, 0);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
	EXPECT_NE(NULL, strstr(self->err.msg, "unknown type 999"));
}

TEST_F(stream, host_only_type_rejected)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	/* RUN travels host to guest only. */
	put_hdr(hdr, 0, RUND_AGENT_MSG_RUN, 0);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
}

TEST_F(stream, unknown_flags_rejected)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	put_hdr(hdr, 0, RUND_AGENT_MSG_EXIT, 0x8000);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
}

TEST_F(stream, stream_ends_inside_frame)
{
	uint8_t data[RUND_AGENT_HDRLEN + 2];

	put_hdr(data, 10, RUND_AGENT_MSG_STDOUT, 0);
	ASSERT_EQ(0, feed(self->guest, data, sizeof(data)));
	close(self->guest);
	self->guest = -1;
	EXPECT_EQ(-EPROTO, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
}

TEST_F(stream, clean_end_of_stream)
{
	close(self->guest);
	self->guest = -1;
	EXPECT_EQ(-EPIPE, rund_agent_read(self->reader, self->host, &self->frame, &self->err));
}

TEST_F(stream, truncated_attribute_rejected)
{
	uint8_t data[RUND_AGENT_HDRLEN + 6];

	/* The attribute claims 8 bytes of value but the payload has 2. */
	put_hdr(data, 6, RUND_AGENT_MSG_EXIT, 0);
	rund_agent_put_le16(data + RUND_AGENT_HDRLEN, 12);
	rund_agent_put_le16(data + RUND_AGENT_HDRLEN + 2, RUND_AGENT_ATTR_EXIT_CODE);
	ASSERT_EQ(0, feed(self->guest, data, sizeof(data)));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
	EXPECT_NE(NULL, strstr(self->err.msg, "truncated"));
}

TEST_F(stream, attribute_below_header_size_rejected)
{
	uint8_t data[RUND_AGENT_HDRLEN + 8];

	/* A length of 2 would make an iterator loop forever on zero progress. */
	put_hdr(data, 8, RUND_AGENT_MSG_STARTED, 0);
	memset(data + RUND_AGENT_HDRLEN, 0, 8);
	rund_agent_put_le16(data + RUND_AGENT_HDRLEN, 2);
	ASSERT_EQ(0, feed(self->guest, data, sizeof(data)));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, wrong_attribute_length_rejected)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_STARTED);
	ASSERT_EQ(0, rund_agent_put(&m, RUND_AGENT_ATTR_PID, "\x01\x02", 2));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, unknown_attribute_skipped)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_STARTED);
	ASSERT_EQ(0, rund_agent_put(&m, 4000, "future", 6));
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_PID, 42));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	ASSERT_EQ(0, read_and_parse(self));
	EXPECT_EQ(42, self->msg.started.pid);
}

TEST_F(stream, exit_with_code_and_signal_rejected)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_EXIT);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_EXIT_CODE, 1));
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_EXIT_SIGNAL, 9));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, exit_code_out_of_range_rejected)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_EXIT);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_EXIT_CODE, 256));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, ready_other_version_rejected)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_READY);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_VERSION, 77));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	EXPECT_EQ(-EPROTONOSUPPORT, read_and_parse(self));
}

TEST_F(stream, error_message_unterminated_rejected)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_ERROR);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_STAGE, RUND_AGENT_STAGE_MOUNT));
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_ERRNO, EIO));
	ASSERT_EQ(0, rund_agent_put(&m, RUND_AGENT_ATTR_MESSAGE, "no nul", 6));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, error_message_control_bytes_replaced)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, self->buf, sizeof(self->buf), RUND_AGENT_MSG_ERROR);
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_STAGE, RUND_AGENT_STAGE_MOUNT));
	ASSERT_EQ(0, rund_agent_put_u32(&m, RUND_AGENT_ATTR_ERRNO, EIO));
	ASSERT_EQ(0, rund_agent_put_str(&m, RUND_AGENT_ATTR_MESSAGE, "bad\x1b[2Jtext"));
	rund_agent_msg_finish(&m);
	ASSERT_EQ(0, feed(self->guest, self->buf, m.len));
	ASSERT_EQ(0, read_and_parse(self));
	EXPECT_STREQ("bad?[2Jtext", self->msg.error.message);
}

TEST_F(stream, empty_output_rejected)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];

	put_hdr(hdr, 0, RUND_AGENT_MSG_STDOUT, 0);
	ASSERT_EQ(0, feed(self->guest, hdr, sizeof(hdr)));
	EXPECT_EQ(-EPROTO, read_and_parse(self));
}

TEST_F(stream, max_payload_accepted)
{
	uint8_t *data = calloc(1, RUND_AGENT_FRAME_MAX);
	size_t off = 0;
	int ret;

	ASSERT_NE(NULL, data);
	put_hdr(data, RUND_AGENT_MAX_PAYLOAD, RUND_AGENT_MSG_STDOUT, 0);
	/* Write in pieces: the socket buffer may be smaller than a frame. */
	do {
		ssize_t n = write(self->guest, data + off, RUND_AGENT_FRAME_MAX - off);

		ASSERT_GT(n, 0);
		off += (size_t)n;
		ret = rund_agent_read(self->reader, self->host, &self->frame, &self->err);
	} while (ret == 0 && off < RUND_AGENT_FRAME_MAX);
	if (ret == 0)
		ret = rund_agent_read(self->reader, self->host, &self->frame, &self->err);
	ASSERT_EQ(1, ret);
	EXPECT_EQ(RUND_AGENT_MAX_PAYLOAD, self->frame.len);
	free(data);
}

TEST(run_request_too_big)
{
	static uint8_t buf[RUND_AGENT_FRAME_MAX];
	struct rund_error err = { 0 };
	char *big = malloc(RUND_AGENT_MAX_PAYLOAD);
	char *argv[] = { "echo", big, NULL };

	ASSERT_NE(NULL, big);
	memset(big, 'x', RUND_AGENT_MAX_PAYLOAD - 1);
	big[RUND_AGENT_MAX_PAYLOAD - 1] = '\0';
	EXPECT_EQ(-E2BIG, rund_agent_encode_run(buf, argv, NULL, NULL, &err));
	free(big);
}

/* The launcher's spawn places the child in a cgroup2 directory at birth. */
TEST(spawn_into_cgroup)
{
	static const char *const roots[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	char dir[256] = "", line[512], path[64];
	char *argv[] = { "sleep", "0.2", NULL };
	struct rund_spawn_opts opts = {
		.path = "sleep", .argv = argv,
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
	};
	struct rund_spawn_result res = { 0 };
	struct rund_error err = { 0 };
	bool found = false;
	struct statfs sfs;
	int status, cg;
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (!statfs(roots[i], &sfs) && sfs.f_type == CGROUP2_SUPER_MAGIC) {
			snprintf(dir, sizeof(dir), "%s/rund-test-e2e-%d", roots[i], getpid());
			break;
		}
	if (!dir[0])
		SKIP(return, "no cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");

	ASSERT_EQ(0, mkdir(dir, 0755));
	cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, cg);
	opts.cgroup_fd = cg;
	ASSERT_EQ(0, rund_spawn(&opts, &res, &err)) TH_LOG("%s", err.msg);
	EXPECT_TRUE(res.in_cgroup);

	snprintf(path, sizeof(path), "/proc/%d/cgroup", res.pid);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::/", 4) && strstr(line, strrchr(dir, '/')))
			found = true;
	fclose(f);
	EXPECT_TRUE(found);

	ASSERT_EQ(res.pid, waitpid(res.pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(res.pidfd);
	close(cg);
	EXPECT_EQ(0, rmdir(dir));
}

TEST(spawn_missing_binary)
{
	char *argv[] = { "/nonexistent/qemu", NULL };
	struct rund_spawn_opts opts = {
		.path = "/nonexistent/qemu", .argv = argv,
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .cgroup_fd = -1,
	};
	struct rund_spawn_result res = { 0 };
	struct rund_error err = { 0 };

	EXPECT_EQ(-ENOENT, rund_spawn(&opts, &res, &err));
	EXPECT_NE(NULL, strstr(err.msg, "/nonexistent/qemu"));
}

TEST_HARNESS_MAIN
