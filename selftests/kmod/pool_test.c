// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of the rund cgroup slot pool (rund.ko), run as root inside a
 * throwaway guest with the module loaded.
 *
 * Built once per layout with -DTEST_V2, -DTEST_V1 or -DTEST_V1SPLIT:
 * each binary mounts the cgroup hierarchies its layout needs before the
 * tests and unmounts them after, because a v1 controller can be bound to
 * one hierarchy at a time. Pool roots are named rund-test-kmod-*.
 *
 * Environment: RUND_KO (path of rund.ko, for the unload/reload test),
 * RUND_STRESS_CYCLES (cycles per thread of the stress test, default 10000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rund_nl.h"

/* The preprocessor cannot compare enum values, so the layout comes as a macro. */
#if defined(TEST_V1)
#define TEST_LAYOUT RUND_LAYOUT_V1
#elif defined(TEST_V1SPLIT)
#define TEST_LAYOUT RUND_LAYOUT_V1_SPLIT
#else
#define TEST_V2
#define TEST_LAYOUT RUND_LAYOUT_V2
#endif

#define POOL_SIZE	8
#define CG2_MOUNT	"/sys/fs/cgroup"
#define V2_ROOT		CG2_MOUNT "/rund-test-kmod"
#define V1_MOUNT	"/tmp/rund-test-kmod-v1"
#define V1_ROOT		V1_MOUNT "/pool"
#define SPLIT_MOUNT	"/tmp/rund-test-kmod-split"

#define MIB		(1024ULL * 1024)

static const struct {
	const char *name;
	uint32_t ctrl;
} split_ctrls[] = {
	{ "memory", RUND_CTRL_MEMORY },
	{ "cpu", RUND_CTRL_CPU },
	{ "pids", RUND_CTRL_PIDS },
	{ "freezer", RUND_CTRL_FREEZER },
};
#define NR_SPLIT (sizeof(split_ctrls) / sizeof(split_ctrls[0]))

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Reads a small file and strips the trailing newline; returns "" on error. */
static const char *read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Directory of hierarchy @ctrl's pool root for this layout. */
static void pool_root(uint32_t ctrl, char *buf, size_t size)
{
	size_t i;

	if (TEST_LAYOUT == RUND_LAYOUT_V2) {
		snprintf(buf, size, "%s", V2_ROOT);
		return;
	}
	if (TEST_LAYOUT == RUND_LAYOUT_V1) {
		snprintf(buf, size, "%s", V1_ROOT);
		return;
	}
	for (i = 0; i < NR_SPLIT; i++) {
		if (split_ctrls[i].ctrl == ctrl)
			snprintf(buf, size, SPLIT_MOUNT "/%s/pool", split_ctrls[i].name);
	}
}

/* Path of control file @file of the directory @name in hierarchy @ctrl. */
static const char *cg_path(uint32_t ctrl, const char *name, const char *file, char *buf, size_t size)
{
	char root[256];

	pool_root(ctrl, root, sizeof(root));
	snprintf(buf, size, "%s/%s%s%s", root, name, file ? "/" : "", file ? file : "");
	return buf;
}

static int make_roots(void)
{
	char root[256];
	size_t i;

	for (i = 0; i < NR_SPLIT; i++) {
		pool_root(split_ctrls[i].ctrl, root, sizeof(root));
		if (mkdir(root, 0755) && errno != EEXIST)
			return -errno;
	}
	return 0;
}

static void remove_roots(void)
{
	char root[256];
	size_t i;

	for (i = 0; i < NR_SPLIT; i++) {
		pool_root(split_ctrls[i].ctrl, root, sizeof(root));
		rmdir(root);
	}
}

static int pool_init(struct rund_nl *nl, uint32_t size, uint32_t lease_ms, struct rund_reply *r)
{
	struct nl_msg *msg;
	struct nlattr *list, *entry;
	char root[256];
	size_t i;

	if (TEST_LAYOUT != RUND_LAYOUT_V1_SPLIT) {
		pool_root(0, root, sizeof(root));
		return rund_nl_init_single(nl, TEST_LAYOUT, root, size, "slot", lease_ms, r);
	}

	msg = rund_nl_msg(nl, RUND_CMD_POOL_INIT, 0);
	nla_put_u32(msg, RUND_A_POOL_LAYOUT, RUND_LAYOUT_V1_SPLIT);
	nla_put_u32(msg, RUND_A_POOL_SIZE, size);
	nla_put_string(msg, RUND_A_POOL_PREFIX, "slot");
	if (lease_ms)
		nla_put_u32(msg, RUND_A_POOL_LEASE_MS, lease_ms);
	list = nla_nest_start(msg, RUND_A_POOL_HIERARCHIES);
	for (i = 0; i < NR_SPLIT; i++) {
		entry = nla_nest_start(msg, RUND_A_HIER);
		pool_root(split_ctrls[i].ctrl, root, sizeof(root));
		nla_put_string(msg, RUND_A_HIER_PATH, root);
		nla_put_u32(msg, RUND_A_HIER_CONTROLLERS, split_ctrls[i].ctrl);
		nla_nest_end(msg, entry);
	}
	nla_nest_end(msg, list);
	return rund_nl_send(nl, msg, r);
}

static int stats(struct rund_nl *nl, struct rund_reply *r)
{
	return rund_nl_simple(nl, RUND_CMD_STATS_GET, r);
}

/* Waits until @idle slots are idle and none is claimed or draining; returns ms waited or -1. */
static int wait_idle(struct rund_nl *nl, uint32_t idle, int timeout_ms)
{
	uint64_t start = now_ms();
	struct rund_reply r;

	for (;;) {
		if (!stats(nl, &r) && r.stats[RUND_A_STATS_IDLE] == idle &&
		    !r.stats[RUND_A_STATS_CLAIMED] && !r.stats[RUND_A_STATS_DRAINING])
			return now_ms() - start;
		if (now_ms() - start > (uint64_t)timeout_ms)
			return -1;
		usleep(10000);
	}
}

/* Forks a child that sleeps until killed; returns its pid. */
static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static bool procs_contains(const char *path, pid_t pid)
{
	char buf[4096], want[16];
	char *line, *save;

	read_file(path, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%d", pid);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(line, want))
			return true;
	}
	return false;
}

FIXTURE(pool) {
	struct rund_nl nl;
};

FIXTURE_VARIANT(pool) {
	const char *layout_name;
};

#if defined(TEST_V2)
FIXTURE_VARIANT_ADD(pool, v2) { .layout_name = "cgroup v2" };
#elif defined(TEST_V1)
FIXTURE_VARIANT_ADD(pool, v1) { .layout_name = "co-mounted cgroup v1" };
#else
FIXTURE_VARIANT_ADD(pool, v1split) { .layout_name = "cgroup v1, one hierarchy per controller" };
#endif

FIXTURE_SETUP(pool)
{
	struct rund_reply r;

	ASSERT_EQ(0, rund_nl_open(&self->nl)) TH_LOG("rund family not found: is rund.ko loaded?");
	ASSERT_EQ(0, make_roots());
	ASSERT_EQ(0, pool_init(&self->nl, POOL_SIZE, 0, &r)) TH_LOG("init: %s", r.msg);
}

/* Releases every claimed slot, so that a failed test leaves a pool that can be destroyed. */
static void release_all(struct rund_nl *nl)
{
	struct rund_reply r, slot;
	struct nl_msg *msg;
	uint32_t i;

	if (stats(nl, &r))
		return;
	for (i = 0; i < r.stats[RUND_A_STATS_SIZE]; i++) {
		msg = rund_nl_msg(nl, RUND_CMD_SLOT_GET, 0);
		nla_put_u32(msg, RUND_A_INDEX, i);
		if (!rund_nl_send(nl, msg, &slot) && slot.slot_state == RUND_SLOT_CLAIMED)
			rund_nl_by_id(nl, RUND_CMD_RELEASE, slot.slot_id, &slot);
	}
}

FIXTURE_TEARDOWN(pool)
{
	struct rund_reply r;

	release_all(&self->nl);
	for (int i = 0; i < 500; i++) {
		if (rund_nl_simple(&self->nl, RUND_CMD_POOL_DESTROY, &r) != -EBUSY)
			break;
		usleep(10000);
	}
	remove_roots();
	rund_nl_close(&self->nl);
}

/* Claim with limits: limits land in the files, v1 renames, release resets. */
TEST_F(pool, acquire_limits_release)
{
	char path[512], buf[128];
	struct rund_reply r;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-limits", 0, 256 * MIB, 50000, 100000, 64, &r))
		TH_LOG("acquire: %s", r.msg);
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);
	EXPECT_STREQ("sb-limits", r.slot_id);

	if (TEST_LAYOUT == RUND_LAYOUT_V2) {
		char expected[512], name[64];

		snprintf(name, sizeof(name), "slot-%u", r.slot_index);
		EXPECT_STREQ(cg_path(0, name, NULL, expected, sizeof(expected)), r.slot_path);
		EXPECT_STREQ("268435456", read_file(cg_path(0, name, "memory.max", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("50000 100000", read_file(cg_path(0, name, "cpu.max", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("64", read_file(cg_path(0, name, "pids.max", path, sizeof(path)), buf, sizeof(buf)));
	} else {
		EXPECT_TRUE(exists(cg_path(RUND_CTRL_MEMORY, "sb-limits", NULL, path, sizeof(path))));
		EXPECT_FALSE(exists(cg_path(RUND_CTRL_MEMORY, "slot-0", NULL, path, sizeof(path))));
		EXPECT_STREQ("268435456", read_file(cg_path(RUND_CTRL_MEMORY, "sb-limits", "memory.limit_in_bytes", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("50000", read_file(cg_path(RUND_CTRL_CPU, "sb-limits", "cpu.cfs_quota_us", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("100000", read_file(cg_path(RUND_CTRL_CPU, "sb-limits", "cpu.cfs_period_us", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("64", read_file(cg_path(RUND_CTRL_PIDS, "sb-limits", "pids.max", path, sizeof(path)), buf, sizeof(buf)));
	}

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-limits", &r)) TH_LOG("release: %s", r.msg);
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));

	if (TEST_LAYOUT == RUND_LAYOUT_V2) {
		EXPECT_STREQ("max", read_file(cg_path(0, "slot-0", "memory.max", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("max 100000", read_file(cg_path(0, "slot-0", "cpu.max", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("max", read_file(cg_path(0, "slot-0", "pids.max", path, sizeof(path)), buf, sizeof(buf)));
	} else {
		EXPECT_FALSE(exists(cg_path(RUND_CTRL_MEMORY, "sb-limits", NULL, path, sizeof(path))));
		EXPECT_TRUE(exists(cg_path(RUND_CTRL_MEMORY, "slot-0", NULL, path, sizeof(path))));
		EXPECT_STREQ("-1", read_file(cg_path(RUND_CTRL_CPU, "slot-0", "cpu.cfs_quota_us", path, sizeof(path)), buf, sizeof(buf)));
		EXPECT_STREQ("max", read_file(cg_path(RUND_CTRL_PIDS, "slot-0", "pids.max", path, sizeof(path)), buf, sizeof(buf)));
	}
}

/* Query by id and index, dump and stats agree on one claim. */
TEST_F(pool, get_dump_stats)
{
	struct rund_reply r;
	struct nl_msg *msg;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-get", 0, 0, 0, 0, 0, &r)) TH_LOG("%s", r.msg);

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-get", &r)) TH_LOG("%s", r.msg);
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);
	EXPECT_STREQ("sb-get", r.slot_id);

	msg = rund_nl_msg(&self->nl, RUND_CMD_SLOT_GET, 0);
	nla_put_u32(msg, RUND_A_INDEX, POOL_SIZE - 1);
	ASSERT_EQ(0, rund_nl_send(&self->nl, msg, &r)) TH_LOG("%s", r.msg);
	EXPECT_EQ(POOL_SIZE - 1, r.slot_index);

	ASSERT_EQ(0, rund_nl_dump(&self->nl, &r));
	EXPECT_EQ(POOL_SIZE, r.nr_msgs);
	EXPECT_EQ(POOL_SIZE - 1, r.dump_states[RUND_SLOT_IDLE]);
	EXPECT_EQ(1, r.dump_states[RUND_SLOT_CLAIMED]);

	ASSERT_EQ(0, stats(&self->nl, &r));
	EXPECT_EQ(TEST_LAYOUT, r.stats[RUND_A_STATS_LAYOUT]);
	EXPECT_EQ(POOL_SIZE, r.stats[RUND_A_STATS_SIZE]);
	EXPECT_EQ(1, r.stats[RUND_A_STATS_CLAIMED]);
	EXPECT_EQ(POOL_SIZE - 1, r.stats[RUND_A_STATS_IDLE]);
	EXPECT_LE(1, r.op_count[RUND_OP_ACQUIRE]);
	EXPECT_EQ(r.op_count[RUND_OP_ACQUIRE], r.op_hist_total[RUND_OP_ACQUIRE]);

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-get", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

/* Attach moves a process in; release kills it and the slot returns idle. */
TEST_F(pool, attach_release_kills)
{
	char path[512];
	struct rund_reply r;
	pid_t child;
	int status;
	size_t i;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-attach", 0, 0, 0, 0, 0, &r)) TH_LOG("%s", r.msg);
	child = spawn_sleeper();
	ASSERT_LT(0, child);

	ASSERT_EQ(0, rund_nl_attach(&self->nl, "sb-attach", child, &r)) TH_LOG("attach: %s", r.msg);
	if (TEST_LAYOUT == RUND_LAYOUT_V2) {
		ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-attach", &r));
		snprintf(path, sizeof(path), "%s/cgroup.procs", r.slot_path);
		EXPECT_TRUE(procs_contains(path, child));
	} else {
		for (i = 0; i < NR_SPLIT; i++) {
			if (TEST_LAYOUT == RUND_LAYOUT_V1 && i)
				break;
			EXPECT_TRUE(procs_contains(cg_path(split_ctrls[i].ctrl, "sb-attach", "cgroup.procs",
							   path, sizeof(path)), child));
		}
	}

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-attach", &r)) TH_LOG("%s", r.msg);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));

	/* The id is gone: attach and release now fail. */
	EXPECT_EQ(-ENOENT, rund_nl_attach(&self->nl, "sb-attach", getpid(), &r));
}

/* A full pool rejects a claim with ENOSPC and an explanation, then recovers. */
TEST_F(pool, exhaustion_recovers)
{
	struct rund_reply r;
	char id[32];
	int i;

	for (i = 0; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-full-%d", i);
		ASSERT_EQ(0, rund_nl_acquire(&self->nl, id, 0, 0, 0, 0, 0, &r)) TH_LOG("%s: %s", id, r.msg);
	}
	EXPECT_EQ(-ENOSPC, rund_nl_acquire(&self->nl, "sb-full-x", 0, 0, 0, 0, 0, &r));
	EXPECT_NE(NULL, strstr(r.msg, "exhausted")) TH_LOG("message: '%s'", r.msg);

	ASSERT_EQ(0, stats(&self->nl, &r));
	EXPECT_LE(1, r.fail[RUND_FAIL_EXHAUSTED]);

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-full-0", &r));
	for (i = 0; i < 500; i++) {
		if (rund_nl_acquire(&self->nl, "sb-full-x", 0, 0, 0, 0, 0, &r) != -ENOSPC)
			break;
		usleep(10000);
	}
	EXPECT_EQ(0, r.err) TH_LOG("after a release: %s", r.msg);

	for (i = 1; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-full-%d", i);
		EXPECT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, id, &r));
	}
	EXPECT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-full-x", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

/* Duplicate ids are rejected; unknown ids fail every id-based command. */
TEST_F(pool, duplicate_unknown_ids)
{
	struct rund_reply r;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-dup", 0, 0, 0, 0, 0, &r));
	EXPECT_EQ(-EEXIST, rund_nl_acquire(&self->nl, "sb-dup", 0, 0, 0, 0, 0, &r));
	EXPECT_NE(0, strlen(r.msg));

	EXPECT_EQ(-ENOENT, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-none", &r));
	EXPECT_NE(0, strlen(r.msg));
	EXPECT_EQ(-ENOENT, rund_nl_attach(&self->nl, "sb-none", getpid(), &r));
	EXPECT_NE(0, strlen(r.msg));
	EXPECT_EQ(-ENOENT, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-none", &r));
	EXPECT_NE(0, strlen(r.msg));

	ASSERT_EQ(0, stats(&self->nl, &r));
	EXPECT_EQ(1, r.stats[RUND_A_STATS_CLAIMED]);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-dup", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

/* One malformed request: a command, a list of raw attributes, the expected errno. */
struct bad_attr {
	uint16_t type;
	uint16_t len;		/* payload bytes; the payload is @data */
	const void *data;
};

struct bad_case {
	const char *name;
	uint8_t cmd;
	int err;
	struct bad_attr attrs[4];
};

static const uint32_t u32_0 = 0, u32_1 = 1, u32_7 = 7, u32_500 = 500, u32_big = 70000;
static const uint32_t u32_mask = 0x100, u32_lease_low = 10, u32_v2 = RUND_LAYOUT_V2;
static const uint64_t u64_small = 4096, u64_quota_low = 10;
static const char long_id[] = "0123456789012345678901234567890123456789012345678901234567890123";
static const char long_path[300] = "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char no_nul[4] = { 'a', 'b', 'c', 'd' };

#define STR(s) { .len = sizeof(s), .data = s }
#define ATTR_STR(t, s) { .type = (t), .len = sizeof(s), .data = (s) }
#define ATTR_U32(t, v) { .type = (t), .len = 4, .data = &(v) }
#define ATTR_U64(t, v) { .type = (t), .len = 8, .data = &(v) }

static const struct bad_case bad_cases[] = {
	{ "acquire without id", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_U32(RUND_A_PIDS_MAX, u32_1) } },
	{ "acquire id as u32", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_U32(RUND_A_SANDBOX_ID, u32_1) } },
	{ "acquire id without NUL", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, no_nul) } },
	{ "acquire id too long", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, long_id) } },
	{ "acquire id empty", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, "") } },
	{ "acquire id with slash", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, "../x") } },
	{ "acquire id dot-dot", RUND_CMD_ACQUIRE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, "..") } },
	{ "acquire memory too small", RUND_CMD_ACQUIRE, -ERANGE,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U64(RUND_A_MEMORY_MAX, u64_small) } },
	{ "acquire memory as u32", RUND_CMD_ACQUIRE, -EINVAL,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_MEMORY_MAX, u32_1) } },
	{ "acquire quota too small", RUND_CMD_ACQUIRE, -ERANGE,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U64(RUND_A_CPU_QUOTA_US, u64_quota_low) } },
	{ "acquire period out of range", RUND_CMD_ACQUIRE, -ERANGE,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_CPU_PERIOD_US, u32_500) } },
	{ "acquire pids zero", RUND_CMD_ACQUIRE, -ERANGE,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_PIDS_MAX, u32_0) } },
	{ "acquire unknown flag", RUND_CMD_ACQUIRE, -EINVAL,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_ACQUIRE_FLAGS, u32_mask) } },
	{ "acquire foreign attribute", RUND_CMD_ACQUIRE, -EINVAL,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "acquire unknown attribute", RUND_CMD_ACQUIRE, -EINVAL,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(200, u32_1) } },
	{ "attach without pid", RUND_CMD_ATTACH, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad") } },
	{ "attach pid zero", RUND_CMD_ATTACH, -ERANGE,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_PID, u32_0) } },
	{ "release without id", RUND_CMD_RELEASE, -EINVAL, { } },
	{ "release id too long", RUND_CMD_RELEASE, -EINVAL, { ATTR_STR(RUND_A_SANDBOX_ID, long_id) } },
	{ "get id and index", RUND_CMD_SLOT_GET, -EINVAL,
	  { ATTR_STR(RUND_A_SANDBOX_ID, "sb-bad"), ATTR_U32(RUND_A_INDEX, u32_0) } },
	{ "get index out of range", RUND_CMD_SLOT_GET, -ERANGE, { ATTR_U32(RUND_A_INDEX, u32_big) } },
	{ "init while a pool exists", RUND_CMD_POOL_INIT, -EEXIST,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/sys/fs/cgroup/x"),
	    ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "init without layout", RUND_CMD_POOL_INIT, -EINVAL,
	  { ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "init layout out of range", RUND_CMD_POOL_INIT, -ERANGE,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_7), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "init size zero", RUND_CMD_POOL_INIT, -ERANGE,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_0) } },
	{ "init size too big", RUND_CMD_POOL_INIT, -ERANGE,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_big) } },
	{ "init relative root", RUND_CMD_POOL_INIT, -EINVAL,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "relative"), ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "init root too long", RUND_CMD_POOL_INIT, -EINVAL,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, long_path), ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "init bad prefix", RUND_CMD_POOL_INIT, -EINVAL,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_1),
	    ATTR_STR(RUND_A_POOL_PREFIX, "a/b") } },
	{ "init lease too short", RUND_CMD_POOL_INIT, -ERANGE,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_1),
	    ATTR_U32(RUND_A_POOL_LEASE_MS, u32_lease_low) } },
	{ "init unknown controller", RUND_CMD_POOL_INIT, -EINVAL,
	  { ATTR_U32(RUND_A_POOL_LAYOUT, u32_v2), ATTR_STR(RUND_A_POOL_ROOT, "/x"), ATTR_U32(RUND_A_POOL_SIZE, u32_1),
	    ATTR_U32(RUND_A_POOL_CONTROLLERS, u32_mask) } },
	{ "resize without size", RUND_CMD_POOL_RESIZE, -EINVAL, { } },
	{ "resize shrink", RUND_CMD_POOL_RESIZE, -EINVAL, { ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
	{ "destroy with attribute", RUND_CMD_POOL_DESTROY, -EINVAL, { ATTR_U32(RUND_A_POOL_SIZE, u32_1) } },
};

/* Every malformed request fails with its errno and an extack message, and changes nothing. */
TEST_F(pool, bad_requests_rejected)
{
	struct rund_reply before, after, r;
	size_t i, j;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-keep", 0, 0, 0, 0, 0, &r));
	ASSERT_EQ(0, stats(&self->nl, &before));

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct nl_msg *msg = rund_nl_msg(&self->nl, c->cmd, 0);

		for (j = 0; j < 4 && c->attrs[j].data; j++)
			nla_put(msg, c->attrs[j].type, c->attrs[j].len, c->attrs[j].data);
		rund_nl_send(&self->nl, msg, &r);
		EXPECT_EQ(c->err, r.err) TH_LOG("%s: errno %d, message '%s'", c->name, r.err, r.msg);
		EXPECT_NE(0, strlen(r.msg)) TH_LOG("%s: no extack message", c->name);
	}

	ASSERT_EQ(0, stats(&self->nl, &after));
	EXPECT_EQ(before.stats[RUND_A_STATS_SIZE], after.stats[RUND_A_STATS_SIZE]);
	EXPECT_EQ(before.stats[RUND_A_STATS_CLAIMED], after.stats[RUND_A_STATS_CLAIMED]);
	EXPECT_EQ(before.stats[RUND_A_STATS_IDLE], after.stats[RUND_A_STATS_IDLE]);
	EXPECT_EQ(before.op_count[RUND_OP_ACQUIRE], after.op_count[RUND_OP_ACQUIRE]);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-keep", &r));
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-keep", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

static int drop_net_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
	data[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
	data[CAP_NET_ADMIN / 32].inheritable &= ~(1u << (CAP_NET_ADMIN % 32));
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/* Without CAP_NET_ADMIN every mutating command gets EPERM; reads still work. */
TEST_F(pool, non_admin_eperm)
{
	struct rund_reply r;
	pid_t child;
	int status;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-admin", 0, 0, 0, 0, 0, &r));

	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		struct rund_nl nl;
		int fails = 0;

		if (drop_net_admin() || rund_nl_open(&nl))
			_exit(100);
		fails += rund_nl_acquire(&nl, "sb-user", 0, 0, 0, 0, 0, &r) != -EPERM;
		fails += rund_nl_by_id(&nl, RUND_CMD_RELEASE, "sb-admin", &r) != -EPERM;
		fails += rund_nl_attach(&nl, "sb-admin", getpid(), &r) != -EPERM;
		fails += rund_nl_simple(&nl, RUND_CMD_POOL_DESTROY, &r) != -EPERM;
		fails += pool_init(&nl, 1, 0, &r) != -EPERM;
		fails += stats(&nl, &r) != 0;
		fails += rund_nl_by_id(&nl, RUND_CMD_SLOT_GET, "sb-admin", &r) != 0;
		_exit(fails);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("%d checks failed in the unprivileged child", WEXITSTATUS(status));

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-admin", &r));
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-admin", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

/* Socket-bound claims of a client killed with SIGKILL are idle again within 1 s. */
TEST_F(pool, socket_bound_sigkill)
{
	struct rund_reply r;
	int pipefd[2];
	pid_t child;
	char ready;
	uint64_t killed;
	int waited;

	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		struct rund_nl nl;
		char id[32];
		int i;

		close(pipefd[0]);
		if (rund_nl_open(&nl))
			_exit(1);
		for (i = 0; i < 3; i++) {
			snprintf(id, sizeof(id), "sb-bound-%d", i);
			if (rund_nl_acquire(&nl, id, RUND_ACQUIRE_F_SOCKET_BOUND, 0, 0, 0, 0, &r))
				_exit(2);
		}
		if (write(pipefd[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	ASSERT_EQ(1, read(pipefd[0], &ready, 1));
	close(pipefd[0]);

	ASSERT_EQ(0, stats(&self->nl, &r));
	EXPECT_EQ(3, r.stats[RUND_A_STATS_CLAIMED]);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-bound-1", &r));
	EXPECT_NE(NULL, r.slot[RUND_A_SLOT_OWNER_PORTID]);

	killed = now_ms();
	ASSERT_EQ(0, kill(child, SIGKILL));
	ASSERT_EQ(child, waitpid(child, NULL, 0));
	waited = wait_idle(&self->nl, POOL_SIZE, 5000);
	ASSERT_LE(0, waited);
	EXPECT_GE(1000, now_ms() - killed) TH_LOG("slots idle %llu ms after SIGKILL",
						  (unsigned long long)(now_ms() - killed));
}

/* A claim outlives its client; it is released once its cgroup had processes and emptied. */
TEST_F(pool, one_shot_claim_emptied)
{
	struct rund_reply r, ev;
	struct rund_nl events;
	pid_t child, sleeper;
	int status;

	ASSERT_EQ(0, rund_nl_open(&events));
	ASSERT_EQ(0, rund_nl_subscribe(&events));

	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		struct rund_nl nl;

		if (rund_nl_open(&nl))
			_exit(1);
		_exit(rund_nl_acquire(&nl, "sb-oneshot", 0, 0, 0, 0, 0, &r) ? 2 : 0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));

	/* Several scan intervals later the claim is still there. */
	usleep(400000);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-oneshot", &r));
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);

	sleeper = spawn_sleeper();
	ASSERT_EQ(0, rund_nl_attach(&self->nl, "sb-oneshot", sleeper, &r)) TH_LOG("%s", r.msg);
	usleep(300000);
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-oneshot", &r));
	EXPECT_EQ(RUND_SLOT_CLAIMED, r.slot_state);

	kill(sleeper, SIGKILL);
	waitpid(sleeper, NULL, 0);
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 3000));

	/* Events: acquired, then emptied, then idle. */
	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_ACQUIRED, ev.event_reason);
	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_EMPTIED, ev.event_reason);
	EXPECT_STREQ("sb-oneshot", ev.slot_id);
	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_IDLE, ev.event_reason);
	EXPECT_EQ(RUND_SLOT_IDLE, ev.slot_state);
	rund_nl_close(&events);
}

/* A claim never populated is released when its lease ends. */
TEST_F(pool, lease_expires)
{
	struct rund_reply r, ev;
	struct rund_nl events;
	int i;

	ASSERT_EQ(0, rund_nl_simple(&self->nl, RUND_CMD_POOL_DESTROY, &r)) TH_LOG("%s", r.msg);
	ASSERT_EQ(0, pool_init(&self->nl, POOL_SIZE, 300, &r)) TH_LOG("%s", r.msg);
	ASSERT_EQ(0, rund_nl_open(&events));
	ASSERT_EQ(0, rund_nl_subscribe(&events));

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-lease", 0, 0, 0, 0, 0, &r));
	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-lease-bound", RUND_ACQUIRE_F_SOCKET_BOUND, 0, 0, 0, 0, &r));
	for (i = 0; i < 300; i++) {
		if (rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-lease", &r) == -ENOENT)
			break;
		usleep(10000);
	}
	EXPECT_EQ(-ENOENT, r.err) TH_LOG("the claim is still there 3 s after a 300 ms lease");

	/* The socket-bound claim is exempt from the lease. */
	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_SLOT_GET, "sb-lease-bound", &r));

	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_ACQUIRED, ev.event_reason);
	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_ACQUIRED, ev.event_reason);
	ASSERT_EQ(0, rund_nl_next_event(&events, 1000, &ev));
	EXPECT_EQ(RUND_EVENT_LEASE_EXPIRED, ev.event_reason);
	EXPECT_STREQ("sb-lease", ev.slot_id);
	rund_nl_close(&events);

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-lease-bound", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));
}

/* Resize grows the pool; new slots exist and can be claimed; shrinking is rejected. */
TEST_F(pool, resize_grows)
{
	char path[512], id[32];
	struct nl_msg *msg;
	struct rund_reply r;
	int i;

	msg = rund_nl_msg(&self->nl, RUND_CMD_POOL_RESIZE, 0);
	nla_put_u32(msg, RUND_A_POOL_SIZE, POOL_SIZE + 4);
	ASSERT_EQ(0, rund_nl_send(&self->nl, msg, &r)) TH_LOG("%s", r.msg);

	ASSERT_EQ(0, stats(&self->nl, &r));
	EXPECT_EQ(POOL_SIZE + 4, r.stats[RUND_A_STATS_SIZE]);
	EXPECT_EQ(POOL_SIZE + 4, r.stats[RUND_A_STATS_IDLE]);
	snprintf(id, sizeof(id), "slot-%d", POOL_SIZE + 3);
	EXPECT_TRUE(exists(cg_path(RUND_CTRL_MEMORY, id, NULL, path, sizeof(path))));

	for (i = 0; i < POOL_SIZE + 4; i++) {
		snprintf(id, sizeof(id), "sb-grow-%d", i);
		ASSERT_EQ(0, rund_nl_acquire(&self->nl, id, 0, 0, 0, 0, 0, &r)) TH_LOG("%s", r.msg);
	}
	for (i = 0; i < POOL_SIZE + 4; i++) {
		snprintf(id, sizeof(id), "sb-grow-%d", i);
		ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, id, &r));
	}
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE + 4, 5000));
}

struct stress_arg {
	int thread;
	int cycles;
	int failures;
	long exhausted;
};

static void *stress_thread(void *data)
{
	struct stress_arg *arg = data;
	struct rund_reply r;
	struct rund_nl nl;
	char id[32];
	int i, err;

	if (rund_nl_open(&nl)) {
		arg->failures++;
		return NULL;
	}
	for (i = 0; i < arg->cycles; i++) {
		/*
		 * A new id per cycle, as sandbox ids are: on v1 a slot released
		 * under an id keeps that directory name until its drain ends.
		 */
		snprintf(id, sizeof(id), "sb-stress-%d-%d", arg->thread, i);
		err = rund_nl_acquire(&nl, id, 0, 512 * MIB, 0, 0, 128, &r);
		if (err == -ENOSPC) {
			/* Drains run behind releases; wait for one. */
			arg->exhausted++;
			usleep(200);
			i--;
			continue;
		}
		if (err) {
			fprintf(stderr, "# thread %d: acquire %s: %s (%s)\n", arg->thread, id,
				strerror(-err), r.msg);
			arg->failures++;
			break;
		}
		err = rund_nl_by_id(&nl, RUND_CMD_RELEASE, id, &r);
		if (err) {
			fprintf(stderr, "# thread %d: release %s: %s (%s)\n", arg->thread, id,
				strerror(-err), r.msg);
			arg->failures++;
			break;
		}
	}
	rund_nl_close(&nl);
	return NULL;
}

/* 8 threads claim and release in a loop: no slot leaks, counters add up. */
TEST_F_TIMEOUT(pool, stress_threads, 1800)
{
	const char *env = getenv("RUND_STRESS_CYCLES");
	int cycles = env ? atoi(env) : 10000;
	struct stress_arg args[8];
	pthread_t threads[8];
	struct rund_reply before, after;
	long exhausted = 0;
	uint64_t start;
	int i;

	ASSERT_EQ(0, stats(&self->nl, &before));
	start = now_ms();
	for (i = 0; i < 8; i++) {
		args[i] = (struct stress_arg){ .thread = i, .cycles = cycles };
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, stress_thread, &args[i]));
	}
	for (i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		EXPECT_EQ(0, args[i].failures) TH_LOG("thread %d failed", i);
		exhausted += args[i].exhausted;
	}
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 20000));
	ksft_print_msg("stress: 8 threads x %d cycles in %llu ms, %ld exhausted retries\n", cycles,
		       (unsigned long long)(now_ms() - start), exhausted);

	ASSERT_EQ(0, stats(&self->nl, &after));
	EXPECT_EQ(0, after.stats[RUND_A_STATS_BROKEN]);
	EXPECT_EQ(POOL_SIZE, after.stats[RUND_A_STATS_IDLE]);
	EXPECT_EQ(8ULL * cycles + exhausted,
		  after.op_count[RUND_OP_ACQUIRE] - before.op_count[RUND_OP_ACQUIRE]);
	EXPECT_EQ((uint64_t)exhausted, after.fail[RUND_FAIL_EXHAUSTED] - before.fail[RUND_FAIL_EXHAUSTED]);
	EXPECT_EQ(8ULL * cycles, after.op_count[RUND_OP_RELEASE] - before.op_count[RUND_OP_RELEASE]);
	EXPECT_EQ(8ULL * cycles, after.op_count[RUND_OP_DRAIN] - before.op_count[RUND_OP_DRAIN]);
	EXPECT_EQ(0, after.op_failed[RUND_OP_DRAIN] - before.op_failed[RUND_OP_DRAIN]);
	EXPECT_EQ(after.op_count[RUND_OP_ACQUIRE], after.op_hist_total[RUND_OP_ACQUIRE]);
}

/* rmmod fails while a slot is claimed; after the release the module unloads and removes the slots. */
TEST_F(pool, rmmod_in_use)
{
	const char *ko = getenv("RUND_KO");
	char path[512];
	struct rund_reply r;
	int fd, ret;

	ASSERT_EQ(0, rund_nl_acquire(&self->nl, "sb-rmmod", 0, 0, 0, 0, 0, &r));
	ret = syscall(SYS_delete_module, "rund", O_NONBLOCK);
	EXPECT_EQ(-1, ret);
	EXPECT_TRUE(errno == EBUSY || errno == EWOULDBLOCK) TH_LOG("delete_module: %s", strerror(errno));

	ASSERT_EQ(0, rund_nl_by_id(&self->nl, RUND_CMD_RELEASE, "sb-rmmod", &r));
	ASSERT_LE(0, wait_idle(&self->nl, POOL_SIZE, 5000));

	if (!ko)
		SKIP(return, "RUND_KO is not set: cannot reload the module after unloading it");

	rund_nl_close(&self->nl);
	ASSERT_EQ(0, syscall(SYS_delete_module, "rund", O_NONBLOCK)) TH_LOG("%s", strerror(errno));
	EXPECT_FALSE(exists(cg_path(RUND_CTRL_MEMORY, "slot-0", NULL, path, sizeof(path))));

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, syscall(SYS_finit_module, fd, "", 0)) TH_LOG("reload: %s", strerror(errno));
	close(fd);
	ASSERT_EQ(0, rund_nl_open(&self->nl));
}

/* Mounts the hierarchies of this binary's layout. */
static int setup_layout(void)
{
	char dir[256];
	size_t i;
	int tries;

	if (TEST_LAYOUT == RUND_LAYOUT_V2)
		return write_file(CG2_MOUNT "/cgroup.subtree_control", "+memory +cpu +pids");

	/* Controllers in use on v2 cannot be bound to a v1 hierarchy. */
	write_file(CG2_MOUNT "/cgroup.subtree_control", "-memory -cpu -pids");

	for (tries = 0; tries < 100; tries++) {
		int err = 0;

		if (TEST_LAYOUT == RUND_LAYOUT_V1) {
			mkdir(V1_MOUNT, 0755);
			if (mount("cgroup", V1_MOUNT, "cgroup", 0, "memory,cpu,pids,freezer"))
				err = -errno;
		} else {
			mkdir(SPLIT_MOUNT, 0755);
			for (i = 0; i < NR_SPLIT && !err; i++) {
				snprintf(dir, sizeof(dir), SPLIT_MOUNT "/%s", split_ctrls[i].name);
				mkdir(dir, 0755);
				if (mount("cgroup", dir, "cgroup", 0, split_ctrls[i].name))
					err = -errno;
			}
		}
		if (!err)
			return 0;
		/* A hierarchy unmounted just before is released asynchronously. */
		if (err != -EBUSY)
			return err;
		usleep(50000);
	}
	return -EBUSY;
}

static void teardown_layout(void)
{
	char dir[256];
	size_t i;

	if (TEST_LAYOUT == RUND_LAYOUT_V1) {
		umount(V1_MOUNT);
		rmdir(V1_MOUNT);
	} else if (TEST_LAYOUT == RUND_LAYOUT_V1_SPLIT) {
		for (i = 0; i < NR_SPLIT; i++) {
			snprintf(dir, sizeof(dir), SPLIT_MOUNT "/%s", split_ctrls[i].name);
			umount(dir);
			rmdir(dir);
		}
		rmdir(SPLIT_MOUNT);
	}
}

/* What TEST_HARNESS_MAIN does besides main(): run the tests in definition order. */
static void __attribute__((constructor)) rund_constructor_order_last(void)
{
	if (!__constructor_order)
		__constructor_order = _CONSTRUCTOR_ORDER_BACKWARD;
}

int main(int argc, char **argv)
{
	int err, ret;

	err = setup_layout();
	if (err) {
		printf("Bail out! cannot mount the cgroup hierarchies of this layout: %s\n", strerror(-err));
		return KSFT_FAIL;
	}
	ret = test_harness_run(argc, argv);
	teardown_layout();
	return ret;
}
