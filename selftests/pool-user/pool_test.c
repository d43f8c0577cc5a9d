// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Tests of the cgroupfs pool backend on the host, through librund and the
 * rund-helper pool CLI. Every test makes its own pool under a root named
 * $RUND_TEST_PREFIX-<pid> and a private state directory, and removes both.
 *
 * Variants: v1_split (one v1 hierarchy per controller, the host's layout)
 * and v2 (the host's cgroup2 mount, which has no controllers here, so limits
 * are checked to be rejected with a clear message). Co-mounted v1 cannot be
 * made on this host and is covered by the module's guest tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/sched.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "pool.h"

#define POOL_SIZE 8

static const char *helper(void)
{
	const char *h = getenv("RUND_HELPER");

	return h ? h : "build/bin/rund-helper";
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return 0;
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* Start a child that sleeps until killed; returns its pid. */
static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

/* Run a shell command line, return its exit status, and keep its output in out. */
static int run_cmd(char *out, size_t len, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *f;
	size_t n = 0;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (out && len) {
		n = fread(out, 1, len - 1, f);
		out[n] = '\0';
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), f) > 0)
			;
	}
	status = pclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

FIXTURE(pool) {
	struct rund_pool *pool;
	struct rund_pool_config cfg;
	char name[128];
	char state[192];
	char cli[512];		/* "rund-helper pool" prefix with --state */
};

FIXTURE_VARIANT(pool) {
	enum rund_layout layout;
	uint32_t controllers;
	bool limits;		/* the hierarchies offer the limit controllers */
};

FIXTURE_VARIANT_ADD(pool, v1_split) {
	.layout = RUND_LAYOUT_V1_SPLIT,
	.controllers = RUND_CTRL_ALL,
	.limits = true,
};

FIXTURE_VARIANT_ADD(pool, v2) {
	.layout = RUND_LAYOUT_V2,
	.controllers = 0,
	.limits = false,
};

FIXTURE_SETUP(pool)
{
	const char *prefix = getenv("RUND_TEST_PREFIX");
	struct rund_error err = { 0 };

	snprintf(self->name, sizeof(self->name), "%s-%d",
		 prefix ? prefix : "rund-test-pooluser", (int)getpid());
	snprintf(self->state, sizeof(self->state), "/run/%s", self->name);
	snprintf(self->cli, sizeof(self->cli), "%s pool --backend cgroupfs --state %s",
		 helper(), self->state);
	ASSERT_EQ(0, rund_pool_open(&self->pool, RUND_POOL_BACKEND_CGROUPFS, self->state, &err))
		TH_LOG("%s", err.msg);
	ASSERT_EQ(0, rund_pool_config_resolve(&self->cfg, self->name, variant->layout,
					      variant->controllers, &err))
		TH_LOG("%s", err.msg);
	self->cfg.size = POOL_SIZE;
	strcpy(self->cfg.prefix, "slot");
	ASSERT_EQ(0, rund_pool_init(self->pool, &self->cfg, &err))
		TH_LOG("%s", err.msg);
}

FIXTURE_TEARDOWN(pool)
{
	struct rund_error err = { 0 };
	char path[256];

	if (self->pool) {
		EXPECT_EQ(0, rund_pool_destroy(self->pool, true, &err))
			TH_LOG("%s", err.msg);
		rund_pool_close(self->pool);
	}
	snprintf(path, sizeof(path), "%s/state", self->state);
	unlink(path);
	rmdir(self->state);
}

static void slot_dir(FIXTURE_DATA(pool) *self, uint32_t hier, const char *name,
		     char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", self->cfg.hier[hier].path, name);
}

/* Index of the hierarchy that serves ctrl, or 0. */
static uint32_t hier_of(FIXTURE_DATA(pool) *self, uint32_t ctrl)
{
	uint32_t h;

	for (h = 0; h < self->cfg.nr_hierarchies; h++)
		if (self->cfg.hier[h].controllers & ctrl)
			return h;
	return 0;
}

static void expect_counts(struct __test_metadata *_metadata, struct rund_pool *pool,
			  uint32_t idle, uint32_t claimed)
{
	struct rund_pool_stats st;
	struct rund_error err = { 0 };

	ASSERT_EQ(0, rund_pool_stats(pool, &st, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(idle, st.idle);
	EXPECT_EQ(claimed, st.claimed);
	EXPECT_EQ(0, st.draining);
	EXPECT_EQ(0, st.broken);
	EXPECT_EQ(st.size, st.idle + st.claimed + st.draining + st.broken);
}

TEST_F(pool, every_operation_succeeds)
{
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	struct rund_pool_stats st;
	char dir[512], buf[256];
	pid_t child;
	int status;
	uint32_t h;

	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-ops", NULL, 0, &info, &err))
		TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_SLOT_CLAIMED, info.state);
	EXPECT_STREQ("sb-ops", info.sandbox_id);
	/* v1 renames the slot to the sandbox id in every hierarchy; v2 keeps the idle name. */
	for (h = 0; h < self->cfg.nr_hierarchies; h++) {
		snprintf(buf, sizeof(buf), variant->layout == RUND_LAYOUT_V2 ? "slot-%u" : "sb-ops",
			 info.index);
		slot_dir(self, h, buf, dir, sizeof(dir));
		EXPECT_TRUE(dir_exists(dir)) TH_LOG("missing %s", dir);
	}

	child = spawn_sleeper();
	ASSERT_GT(child, 0);
	ASSERT_EQ(0, rund_pool_attach(self->pool, "sb-ops", child, &err)) TH_LOG("%s", err.msg);
	for (h = 0; h < self->cfg.nr_hierarchies; h++) {
		snprintf(dir, sizeof(dir), "%s/cgroup.procs", info.path);
		if (variant->layout != RUND_LAYOUT_V2)
			snprintf(dir, sizeof(dir), "%s/sb-ops/cgroup.procs", self->cfg.hier[h].path);
		ASSERT_EQ(0, read_str(dir, buf, sizeof(buf)));
		EXPECT_EQ(child, atoi(buf)) TH_LOG("%s holds '%s'", dir, buf);
	}

	ASSERT_EQ(0, rund_pool_query(self->pool, "sb-ops", &info, &err)) TH_LOG("%s", err.msg);
	EXPECT_TRUE(info.populated);
	EXPECT_EQ((uint32_t)getpid(), info.owner);
	ASSERT_EQ(0, rund_pool_resize(self->pool, POOL_SIZE + 4, &err)) TH_LOG("%s", err.msg);
	snprintf(buf, sizeof(buf), "slot-%u", POOL_SIZE + 3);
	slot_dir(self, 0, buf, dir, sizeof(dir));
	EXPECT_TRUE(dir_exists(dir));
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(POOL_SIZE + 4, st.size);
	EXPECT_EQ(1, st.claimed);
	EXPECT_EQ(1, st.op[RUND_OP_ACQUIRE].count);
	EXPECT_EQ(1, st.op[RUND_OP_ATTACH].count);

	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-ops", &err)) TH_LOG("%s", err.msg);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	ASSERT_EQ(0, rund_pool_query_index(self->pool, info.index, &info, &err));
	EXPECT_EQ(RUND_SLOT_IDLE, info.state);
	snprintf(buf, sizeof(buf), "slot-%u", info.index);
	for (h = 0; h < self->cfg.nr_hierarchies; h++) {
		slot_dir(self, h, buf, dir, sizeof(dir));
		EXPECT_TRUE(dir_exists(dir)) TH_LOG("idle name missing: %s", dir);
	}
	expect_counts(_metadata, self->pool, POOL_SIZE + 4, 0);
}

TEST_F(pool, limits_in_cgroup_files)
{
	struct rund_pool_limits lim = {
		.memory_max = 64ULL << 20, .cpu_quota_us = 50000,
		.cpu_period_us = 200000, .pids_max = 17,
	};
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	char dir[512], path[600], buf[64];

	if (!variant->limits) {
		/* The host's cgroup2 mount has no controllers, which the error must name. */
		EXPECT_EQ(-EOPNOTSUPP, rund_pool_acquire(self->pool, "sb-lim", &lim, 0, &info, &err));
		EXPECT_NE(NULL, strstr(err.msg, "memory")) TH_LOG("%s", err.msg);
		expect_counts(_metadata, self->pool, POOL_SIZE, 0);
		return;
	}
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-lim", &lim, 0, &info, &err))
		TH_LOG("%s", err.msg);
	EXPECT_EQ(lim.memory_max, info.limits.memory_max);

	slot_dir(self, hier_of(self, RUND_CTRL_MEMORY), "sb-lim", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("67108864", buf);
	slot_dir(self, hier_of(self, RUND_CTRL_CPU), "sb-lim", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("50000", buf);
	snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("200000", buf);
	slot_dir(self, hier_of(self, RUND_CTRL_PIDS), "sb-lim", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/pids.max", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("17", buf);

	/* Release resets every limit of the idle slot. */
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-lim", &err)) TH_LOG("%s", err.msg);
	snprintf(buf, sizeof(buf), "slot-%u", info.index);
	slot_dir(self, hier_of(self, RUND_CTRL_PIDS), buf, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/pids.max", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("max", buf);
	snprintf(buf, sizeof(buf), "slot-%u", info.index);
	slot_dir(self, hier_of(self, RUND_CTRL_CPU), buf, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("-1", buf);
	snprintf(buf, sizeof(buf), "slot-%u", info.index);
	slot_dir(self, hier_of(self, RUND_CTRL_MEMORY), buf, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", dir);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	EXPECT_STREQ("9223372036854771712", buf);
}

TEST_F(pool, release_kills_and_idles)
{
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	pid_t kids[3];
	int i, status;

	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-kill", NULL, 0, &info, &err))
		TH_LOG("%s", err.msg);
	for (i = 0; i < 3; i++) {
		kids[i] = spawn_sleeper();
		ASSERT_GT(kids[i], 0);
		ASSERT_EQ(0, rund_pool_attach(self->pool, "sb-kill", kids[i], &err))
			TH_LOG("%s", err.msg);
	}
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-kill", &err)) TH_LOG("%s", err.msg);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(kids[i], waitpid(kids[i], &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status));
		EXPECT_EQ(SIGKILL, WTERMSIG(status));
	}
	ASSERT_EQ(0, rund_pool_query_index(self->pool, info.index, &info, &err));
	EXPECT_EQ(RUND_SLOT_IDLE, info.state);
	EXPECT_EQ(-ENOENT, rund_pool_query(self->pool, "sb-kill", &info, &err));
	expect_counts(_metadata, self->pool, POOL_SIZE, 0);
}

TEST_F(pool, exhaustion_and_recovery)
{
	struct rund_error err = { 0 };
	struct rund_pool_stats st;
	char id[32];
	int i;

	for (i = 0; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-full-%d", i);
		ASSERT_EQ(0, rund_pool_acquire(self->pool, id, NULL, 0, NULL, &err))
			TH_LOG("%s", err.msg);
	}
	EXPECT_EQ(-ENOSPC, rund_pool_acquire(self->pool, "sb-one-more", NULL, 0, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, "no idle slot")) TH_LOG("%s", err.msg);
	EXPECT_NE(NULL, strstr(err.msg, "resize")) TH_LOG("%s", err.msg);
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(1, st.fail[RUND_FAIL_EXHAUSTED]);

	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-full-3", &err)) TH_LOG("%s", err.msg);
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-one-more", NULL, 0, NULL, &err))
		TH_LOG("%s", err.msg);
	for (i = 0; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-full-%d", i);
		if (i != 3)
			ASSERT_EQ(0, rund_pool_release(self->pool, id, &err)) TH_LOG("%s", err.msg);
	}
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-one-more", &err));
	expect_counts(_metadata, self->pool, POOL_SIZE, 0);
}

TEST_F(pool, duplicate_and_unknown_ids)
{
	struct rund_error err = { 0 };
	struct rund_slot_info info;

	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-dup", NULL, 0, NULL, &err));
	EXPECT_EQ(-EEXIST, rund_pool_acquire(self->pool, "sb-dup", NULL, 0, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, "sb-dup")) TH_LOG("%s", err.msg);
	EXPECT_EQ(-ENOENT, rund_pool_release(self->pool, "sb-nope", &err));
	EXPECT_NE(NULL, strstr(err.msg, "sb-nope")) TH_LOG("%s", err.msg);
	EXPECT_EQ(-ENOENT, rund_pool_attach(self->pool, "sb-nope", getpid(), &err));
	EXPECT_EQ(-ENOENT, rund_pool_query(self->pool, "sb-nope", &info, &err));
	expect_counts(_metadata, self->pool, POOL_SIZE - 1, 1);
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-dup", &err));
	EXPECT_EQ(-ENOENT, rund_pool_release(self->pool, "sb-dup", &err));
	expect_counts(_metadata, self->pool, POOL_SIZE, 0);
}

/*
 * A process holding bound claims is killed with SIGKILL. Its slots return to
 * idle at the next operation that scans: an acquire that finds the pool
 * exhausted scans at once, and any operation scans once the scan interval
 * has passed.
 */
TEST_F(pool, killed_owner_slots_return)
{
	struct rund_error err = { 0 };
	struct rund_pool_stats st;
	int ready[2], status, i;
	uint64_t t0;
	char c;
	pid_t owner;

	ASSERT_EQ(0, pipe(ready));
	owner = fork();
	ASSERT_GE(owner, 0);
	if (owner == 0) {
		struct rund_pool *pool;
		char id[32];

		close(ready[0]);
		if (rund_pool_open(&pool, RUND_POOL_BACKEND_CGROUPFS, self->state, &err))
			_exit(1);
		for (i = 0; i < POOL_SIZE; i++) {
			snprintf(id, sizeof(id), "sb-bound-%d", i);
			if (rund_pool_acquire(pool, id, NULL, RUND_POOL_ACQUIRE_BOUND, NULL, &err))
				_exit(2);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	close(ready[0]);
	expect_counts(_metadata, self->pool, 0, POOL_SIZE);

	ASSERT_EQ(0, kill(owner, SIGKILL));
	ASSERT_EQ(owner, waitpid(owner, &status, 0));
	t0 = mono_ms();
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-after", NULL, 0, NULL, &err))
		TH_LOG("%s", err.msg);
	EXPECT_LT(mono_ms() - t0, 1000);
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(POOL_SIZE - 1, st.idle);
	EXPECT_EQ(1, st.claimed);
	EXPECT_EQ(POOL_SIZE, st.auto_released[RUND_EVENT_SOCKET_CLOSED]);
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-after", &err));
}

/* The same without exhaustion: a plain attach after the scan interval reclaims. */
TEST_F(pool, killed_owner_next_operation)
{
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	int ready[2], status;
	char c;
	pid_t owner;

	ASSERT_EQ(0, pipe(ready));
	owner = fork();
	ASSERT_GE(owner, 0);
	if (owner == 0) {
		struct rund_pool *pool;

		close(ready[0]);
		if (rund_pool_open(&pool, RUND_POOL_BACKEND_CGROUPFS, self->state, &err) ||
		    rund_pool_acquire(pool, "sb-bound", NULL, RUND_POOL_ACQUIRE_BOUND, NULL, &err))
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, kill(owner, SIGKILL));
	ASSERT_EQ(owner, waitpid(owner, &status, 0));
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-probe", NULL, 0, &info, &err));
	usleep((RUND_POOL_SCAN_INTERVAL_MS + 50) * 1000);
	/* attach of an unknown id still runs the periodic scan first */
	EXPECT_EQ(-ENOENT, rund_pool_attach(self->pool, "sb-none", getpid(), &err));
	ASSERT_EQ(0, rund_pool_query_index(self->pool, 0, &info, &err));
	expect_counts(_metadata, self->pool, POOL_SIZE - 1, 1);
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-probe", &err));
}

/* A claim made by the CLI outlives it and returns to idle once its cgroup empties. */
TEST_F(pool, oneshot_cli_claim)
{
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	struct rund_pool_stats st;
	char out[2048];
	pid_t child;
	int status;

	ASSERT_EQ(0, run_cmd(out, sizeof(out), "%s acquire sb-cli", self->cli)) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "backend cgroupfs")) TH_LOG("%s", out);
	ASSERT_EQ(0, rund_pool_query(self->pool, "sb-cli", &info, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_SLOT_CLAIMED, info.state);
	EXPECT_NE((uint32_t)getpid(), info.owner);
	EXPECT_EQ(-ESRCH, kill((pid_t)info.owner, 0) ? -errno : 0);

	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		usleep(300000);
		_exit(0);
	}
	ASSERT_EQ(0, run_cmd(out, sizeof(out), "%s attach sb-cli %d", self->cli, child))
		TH_LOG("%s", out);
	ASSERT_EQ(0, rund_pool_query(self->pool, "sb-cli", &info, &err));
	EXPECT_EQ(RUND_SLOT_CLAIMED, info.state);
	ASSERT_EQ(child, waitpid(child, &status, 0));

	/* list scans: the emptied one-shot claim is gone. */
	ASSERT_EQ(0, run_cmd(out, sizeof(out), "%s list --json", self->cli)) TH_LOG("%s", out);
	EXPECT_EQ(NULL, strstr(out, "sb-cli")) TH_LOG("%s", out);
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(1, st.auto_released[RUND_EVENT_EMPTIED]);
	expect_counts(_metadata, self->pool, POOL_SIZE, 0);
}

/*
 * A slot whose last sandbox left page cache charged to it must not count as
 * "used" when it is claimed again, because v1 memory keeps the charge after
 * the tasks are gone. Otherwise a scan releases the new claim before its
 * first attach.
 */
TEST_F(pool, reused_slot_not_released_early)
{
	struct rund_pool_limits lim = { .memory_max = 64ULL << 20 };
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	struct rund_pool_stats st;
	char id[32], file[192], out[4096];
	pid_t child;
	int i, status;

	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-cache", variant->limits ? &lim : NULL,
				       0, &info, &err))
		TH_LOG("%s", err.msg);
	snprintf(file, sizeof(file), "/var/tmp/%s-cache", self->name);
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		static char block[1 << 20];
		FILE *f;

		usleep(100000);	/* let the parent attach first */
		f = fopen(file, "w");
		if (!f)
			_exit(1);
		memset(block, 'c', sizeof(block));
		for (i = 0; i < 8; i++)
			fwrite(block, 1, sizeof(block), f);
		_exit(fclose(f) ? 1 : 0);
	}
	ASSERT_EQ(0, rund_pool_attach(self->pool, "sb-cache", child, &err)) TH_LOG("%s", err.msg);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-cache", &err)) TH_LOG("%s", err.msg);

	/* Claim every slot, so the one that held the page cache is among them. */
	for (i = 0; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-reuse-%d", i);
		ASSERT_EQ(0, rund_pool_acquire(self->pool, id, NULL, 0, &info, &err))
			TH_LOG("%s", err.msg);
	}
	ASSERT_EQ(0, run_cmd(out, sizeof(out), "%s list --json", self->cli)) TH_LOG("%s", out);
	for (i = 0; i < POOL_SIZE; i++) {
		snprintf(id, sizeof(id), "sb-reuse-%d", i);
		EXPECT_EQ(0, rund_pool_query(self->pool, id, &info, &err)) TH_LOG("%s", err.msg);
	}
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(0, st.auto_released[RUND_EVENT_EMPTIED]);
	expect_counts(_metadata, self->pool, 0, POOL_SIZE);
	unlink(file);
}

TEST_F(pool, lease_expires_empty_claim)
{
	struct rund_error err = { 0 };
	struct rund_pool_stats st;

	/* Re-create the pool with the shortest lease. */
	ASSERT_EQ(0, rund_pool_destroy(self->pool, true, &err)) TH_LOG("%s", err.msg);
	self->cfg.lease_ms = RUND_LEASE_MIN_MS;
	ASSERT_EQ(0, rund_pool_init(self->pool, &self->cfg, &err)) TH_LOG("%s", err.msg);
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-lease", NULL, 0, NULL, &err));
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(1, st.claimed);
	usleep((RUND_LEASE_MIN_MS + 50) * 1000);
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(0, st.claimed);
	EXPECT_EQ(1, st.auto_released[RUND_EVENT_LEASE_EXPIRED]);
}

/* A process that dies at each crash point leaves nothing that the next caller cannot repair. */
TEST_F(pool, crash_mid_operation_repaired)
{
	static const char *const points[] = { "locked", "claimed", "draining" };
	struct rund_error err = { 0 };
	char out[2048];
	unsigned int i;
	int rc;

	for (i = 0; i < 3; i++) {
		if (!strcmp(points[i], "draining")) {
			ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-crash", NULL, 0, NULL, &err));
			rc = run_cmd(out, sizeof(out), "RUND_POOL_TEST_CRASH=%s %s release sb-crash",
				     points[i], self->cli);
		} else {
			rc = run_cmd(out, sizeof(out), "RUND_POOL_TEST_CRASH=%s %s acquire sb-crash",
				     points[i], self->cli);
		}
		EXPECT_EQ(99, rc) TH_LOG("crash point %s: %s", points[i], out);
		/* stats scans and repairs; every slot must be idle again */
		expect_counts(_metadata, self->pool, POOL_SIZE, 0);
		ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-crash", NULL, 0, NULL, &err))
			TH_LOG("after crash at %s: %s", points[i], err.msg);
		ASSERT_EQ(0, rund_pool_release(self->pool, "sb-crash", &err));
	}
}

static int cycles(void)
{
	const char *c = getenv("RUND_TEST_CYCLES");

	return c ? atoi(c) : 10000;
}

#define WORKERS 8

/* 8 processes, each with its own handle, acquire and release in a loop. */
TEST_F_TIMEOUT(pool, concurrent_cycles_no_leak, 600)
{
	struct rund_error err = { 0 };
	struct rund_pool_stats before, st;
	int n = cycles(), w, status, failed = 0;
	pid_t pids[WORKERS];
	uint64_t t0;

	ASSERT_EQ(0, rund_pool_stats(self->pool, &before, &err));
	t0 = mono_ms();
	for (w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		ASSERT_GE(pids[w], 0);
		if (pids[w] == 0) {
			struct rund_pool *pool;
			char id[32];
			int k;

			if (rund_pool_open(&pool, RUND_POOL_BACKEND_CGROUPFS, self->state, &err))
				_exit(1);
			snprintf(id, sizeof(id), "sb-cyc-%d", w);
			for (k = 0; k < n; k++) {
				if (rund_pool_acquire(pool, id, NULL, RUND_POOL_ACQUIRE_BOUND, NULL, &err) ||
				    rund_pool_release(pool, id, &err)) {
					fprintf(stderr, "worker %d cycle %d: %s\n", w, k, err.msg);
					_exit(2);
				}
			}
			rund_pool_close(pool);
			_exit(0);
		}
	}
	for (w = 0; w < WORKERS; w++) {
		ASSERT_EQ(pids[w], waitpid(pids[w], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	TH_LOG("%d workers x %d cycles in %llu ms (%s)", WORKERS, n,
	       (unsigned long long)(mono_ms() - t0), rund_pool_layout_name(variant->layout));
	EXPECT_EQ(0, failed);
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(POOL_SIZE, st.idle);
	EXPECT_EQ(0, st.claimed);
	EXPECT_EQ(0, st.draining);
	EXPECT_EQ(0, st.broken);
	EXPECT_EQ((uint64_t)WORKERS * n, st.op[RUND_OP_ACQUIRE].count - before.op[RUND_OP_ACQUIRE].count);
	EXPECT_EQ((uint64_t)WORKERS * n, st.op[RUND_OP_RELEASE].count - before.op[RUND_OP_RELEASE].count);
	EXPECT_EQ(0, st.op[RUND_OP_ACQUIRE].failed);
	EXPECT_EQ(0, st.op[RUND_OP_RELEASE].failed);
	EXPECT_EQ(0, st.fail[RUND_FAIL_EXHAUSTED] + st.fail[RUND_FAIL_DUPLICATE] +
		     st.fail[RUND_FAIL_RENAME] + st.fail[RUND_FAIL_DRAIN_TIMEOUT]);
}

struct thread_arg {
	struct rund_pool *pool;
	int index;
	int cycles;
	int failed;
};

static void *thread_cycles(void *p)
{
	struct thread_arg *a = p;
	struct rund_error err = { 0 };
	char id[32];
	int k;

	snprintf(id, sizeof(id), "sb-thr-%d", a->index);
	for (k = 0; k < a->cycles; k++)
		if (rund_pool_acquire(a->pool, id, NULL, 0, NULL, &err) ||
		    rund_pool_release(a->pool, id, &err))
			a->failed++;
	return NULL;
}

/* 8 threads sharing one handle: the handle's mutex must stand in for flock. */
TEST_F_TIMEOUT(pool, threads_share_handle, 600)
{
	struct thread_arg args[WORKERS];
	pthread_t th[WORKERS];
	struct rund_error err = { 0 };
	struct rund_pool_stats st;
	int w, n = cycles() / 10;

	for (w = 0; w < WORKERS; w++) {
		args[w] = (struct thread_arg){ .pool = self->pool, .index = w, .cycles = n };
		ASSERT_EQ(0, pthread_create(&th[w], NULL, thread_cycles, &args[w]));
	}
	for (w = 0; w < WORKERS; w++) {
		pthread_join(th[w], NULL);
		EXPECT_EQ(0, args[w].failed) TH_LOG("thread %d", w);
	}
	ASSERT_EQ(0, rund_pool_stats(self->pool, &st, &err));
	EXPECT_EQ(POOL_SIZE, st.idle);
	EXPECT_EQ((uint64_t)WORKERS * n, st.op[RUND_OP_ACQUIRE].count);
	EXPECT_EQ((uint64_t)WORKERS * n, st.op[RUND_OP_RELEASE].count);
}

TEST_F(pool, bad_input_rejected)
{
	static const char *const bad_ids[] = {
		"", "a/b", "..", ".", "sp ace", "semi;colon",
		"x123456789012345678901234567890123456789012345678901234567890123",
	};
	static const struct {
		struct rund_pool_limits lim;
		const char *word;
	} bad_limits[] = {
		{ { .memory_max = 1000 }, "memory" },
		{ { .memory_max = (1ULL << 62) + 1 }, "memory" },
		{ { .cpu_quota_us = 10 }, "quota" },
		{ { .cpu_quota_us = 50000, .cpu_period_us = 10 }, "period" },
		{ { .cpu_period_us = 100000 }, "quota" },
		{ { .pids_max = RUND_PIDS_MAX + 1 }, "pids" },
	};
	struct rund_error err = { 0 };
	struct rund_slot_info info;
	char out[2048];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad_ids); i++) {
		EXPECT_EQ(-EINVAL, rund_pool_acquire(self->pool, bad_ids[i], NULL, 0, NULL, &err))
			TH_LOG("id '%s' accepted", bad_ids[i]);
		EXPECT_NE(NULL, strstr(err.msg, "sandbox id")) TH_LOG("%s", err.msg);
	}
	for (i = 0; i < ARRAY_SIZE(bad_limits); i++) {
		EXPECT_GT(0, rund_pool_acquire(self->pool, "sb-bad", &bad_limits[i].lim, 0, NULL, &err));
		EXPECT_NE(NULL, strcasestr(err.msg, bad_limits[i].word)) TH_LOG("%s", err.msg);
	}
	EXPECT_EQ(-EINVAL, rund_pool_acquire(self->pool, "sb-bad", NULL, 0x80, NULL, &err));
	if (variant->layout != RUND_LAYOUT_V2) {
		EXPECT_EQ(-EINVAL, rund_pool_acquire(self->pool, "slot-3", NULL, 0, NULL, &err));
		EXPECT_NE(NULL, strstr(err.msg, "slot-3")) TH_LOG("%s", err.msg);
	}
	EXPECT_EQ(-EINVAL, rund_pool_resize(self->pool, POOL_SIZE - 1, &err));
	EXPECT_EQ(-ERANGE, rund_pool_resize(self->pool, RUND_POOL_MAX_SLOTS + 1, &err));
	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-good", NULL, 0, &info, &err));
	EXPECT_EQ(-EINVAL, rund_pool_attach(self->pool, "sb-good", 0, &err));
	EXPECT_EQ(-ESRCH, rund_pool_attach(self->pool, "sb-good", 0x3fffff, &err));
	EXPECT_NE(NULL, strstr(err.msg, "4194303")) TH_LOG("%s", err.msg);
	EXPECT_EQ(-EEXIST, rund_pool_init(self->pool, &self->cfg, &err));

	/* The CLI rejects bad numbers, naming the value, with exit status 125. */
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire sb-x --memory 12abc", self->cli));
	EXPECT_NE(NULL, strstr(out, "12abc")) TH_LOG("%s", out);
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire sb-x --pids -1", self->cli));
	EXPECT_NE(NULL, strstr(out, "'-1'")) TH_LOG("%s", out);
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire sb-x --cpu-quota 99999999999999999999", self->cli));
	EXPECT_NE(NULL, strstr(out, "expected an integer")) TH_LOG("%s", out);
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire 'bad/id'", self->cli));
	EXPECT_NE(NULL, strstr(out, "bad/id")) TH_LOG("%s", out);
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s resize --size 0", self->cli));
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire sb-x --size 3", self->cli));
	EXPECT_NE(NULL, strstr(out, "does not apply")) TH_LOG("%s", out);
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s frobnicate", self->cli));
	EXPECT_EQ(125, run_cmd(out, sizeof(out), "%s acquire sb-good --json", self->cli));
	EXPECT_NE(NULL, strstr(out, "\"error\"")) TH_LOG("%s", out);

	/* Nothing changed: one claim, the rest idle. */
	expect_counts(_metadata, self->pool, POOL_SIZE - 1, 1);
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-good", &err));
}

TEST_F(pool, spawn_dirs_place_process)
{
	struct rund_error err = { 0 };
	struct rund_slot_dirs dirs;
	struct rund_slot_info info;
	char buf[64];
	int p[2], status;
	pid_t child;

	ASSERT_EQ(0, rund_pool_acquire(self->pool, "sb-spawn", NULL, 0, &info, &err));
	ASSERT_EQ(0, rund_pool_slot_dirs(self->pool, "sb-spawn", &dirs, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(self->cfg.nr_hierarchies, dirs.nr_procs);
	if (variant->layout == RUND_LAYOUT_V2) {
		struct clone_args args = {
			.flags = CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)dirs.dir_fd,
		};

		ASSERT_LE(0, dirs.dir_fd);
		child = syscall(SYS_clone3, &args, sizeof(args));
		if (child == 0) {
			pause();
			_exit(0);
		}
	} else {
		ASSERT_EQ(-1, dirs.dir_fd);
		ASSERT_EQ(0, pipe(p));
		child = fork();
		if (child == 0) {
			/* the launcher pattern: move itself, then report and wait */
			int ret = rund_pool_enter_dirs(&dirs);

			if (write(p[1], &ret, sizeof(ret)) != sizeof(ret))
				_exit(1);
			pause();
			_exit(0);
		}
		ASSERT_EQ(sizeof(int), read(p[0], &status, sizeof(int)));
		EXPECT_EQ(0, status);
		close(p[0]);
		close(p[1]);
	}
	ASSERT_GT(child, 0);
	ASSERT_EQ(0, read_str(dirs.procs[0], buf, sizeof(buf)));
	EXPECT_EQ(child, atoi(buf));
	rund_slot_dirs_close(&dirs);
	ASSERT_EQ(0, rund_pool_mark_populated(self->pool, "sb-spawn", &err));
	ASSERT_EQ(0, rund_pool_release(self->pool, "sb-spawn", &err));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
}

static int fork_sleeper(void *arg)
{
	pid_t *pid = arg;

	*pid = spawn_sleeper();
	return *pid > 0 ? 0 : -errno;
}

/*
 * The launch helper behind rund-helper run: on v2 the child is born through
 * the slot's directory fd, on v1 it is spawned by the launcher thread that
 * entered the slot ahead of time. Either way the child is in the slot, this
 * process is not, and ending the launch kills the child.
 */
TEST_F(pool, launch_places_child_only)
{
	struct rund_error err = { 0 };
	struct rund_pool_launch launch;
	char path[600], buf[256];
	pid_t child = -1;
	int status, fd;
	uint32_t h;

	ASSERT_EQ(0, setenv("RUND_POOL_STATE_DIR", self->state, 1));
	ASSERT_EQ(0, rund_pool_launch_claim(&launch, RUND_POOL_BACKEND_CGROUPFS, false,
					    "sb-launch", NULL, &err)) TH_LOG("%s", err.msg);
	ASSERT_TRUE(launch.claimed) TH_LOG("%s", launch.note);
	if (variant->layout == RUND_LAYOUT_V2) {
		struct clone_args args = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD };

		EXPECT_STREQ("clone_into_cgroup", launch.method);
		fd = rund_pool_launch_cgroup_fd(&launch);
		ASSERT_LE(0, fd);
		args.cgroup = (uint64_t)fd;
		child = syscall(SYS_clone3, &args, sizeof(args));
		if (child == 0) {
			pause();
			_exit(0);
		}
	} else {
		EXPECT_STREQ("launcher_thread", launch.method);
		EXPECT_EQ(-1, rund_pool_launch_cgroup_fd(&launch));
		ASSERT_EQ(0, rund_pool_launch_call(&launch, fork_sleeper, &child, &err))
			TH_LOG("%s", err.msg);
	}
	ASSERT_GT(child, 0);
	ASSERT_EQ(0, rund_pool_launch_spawned(&launch, child, &err)) TH_LOG("%s", err.msg);
	for (h = 0; h < launch.dirs.nr_procs; h++) {
		ASSERT_EQ(0, read_str(launch.dirs.procs[h], buf, sizeof(buf)));
		EXPECT_EQ(child, atoi(buf)) TH_LOG("%s holds '%s'", launch.dirs.procs[h], buf);
		snprintf(path, sizeof(path), "%d", (int)getpid());
		EXPECT_EQ(NULL, strstr(buf, path)) TH_LOG("the test process is in %s", launch.dirs.procs[h]);
	}
	ASSERT_EQ(0, rund_pool_launch_end(&launch, &err)) TH_LOG("%s", err.msg);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	expect_counts(_metadata, self->pool, POOL_SIZE, 0);
}

/* Without a pool the launch runs without a slot and gives the reason in its note. */
TEST_F(pool, launch_without_pool)
{
	struct rund_error err = { 0 };
	struct rund_pool_launch launch;
	char state[256];

	snprintf(state, sizeof(state), "%s-absent", self->state);
	ASSERT_EQ(0, setenv("RUND_POOL_STATE_DIR", state, 1));
	ASSERT_EQ(0, rund_pool_launch_claim(&launch, RUND_POOL_BACKEND_CGROUPFS, false,
					    "sb-nopool", NULL, &err)) TH_LOG("%s", err.msg);
	EXPECT_FALSE(launch.claimed);
	EXPECT_STREQ("none", launch.method);
	EXPECT_NE(NULL, strstr(launch.note, "no cgroup pool")) TH_LOG("%s", launch.note);
	EXPECT_EQ(-1, access(state, F_OK)) TH_LOG("%s was created", state);
	EXPECT_EQ(0, rund_pool_launch_end(&launch, &err));
}

TEST_HARNESS_MAIN
