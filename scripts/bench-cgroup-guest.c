// SPDX-License-Identifier: GPL-2.0
/*
 * Per-sandbox cgroup cost inside a guest with rund.ko: a per-sandbox cgroup
 * (mkdir, limits, fork, cgroup.procs write; kill, reap, rmdir) against the
 * module's pool (acquire with the same limits, clone3(CLONE_INTO_CGROUP)
 * into the slot; release, reap), on cgroup v2.
 *
 *   bench-cgroup-guest SANDBOXES THREADS ROUNDS [v2-base|v2-pool]
 *
 * Each round starts SANDBOXES sandboxes from THREADS threads (all alive at
 * once), then tears them all down; a sandbox's cost is its setup plus its
 * teardown. Prints one "BENCH mode sandboxes threads median_us p99_us
 * setup_median_us teardown_median_us" line per mode; naming a mode runs only
 * that one. Run by scripts/bench-cgroup-guest.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../selftests/kmod/rund_nl.h"

#define CG2		"/sys/fs/cgroup"
#define BASE_ROOT	CG2 "/rund-bench-base"
#define POOL_ROOT	CG2 "/rund-bench-pool"
#define MEMORY		(256ULL << 20)
#define PIDS		64

enum mode { MODE_BASE, MODE_POOL };

struct sandbox {
	pid_t pid;
	char name[64];
	double setup_us, teardown_us;
};

struct worker {
	enum mode mode;
	struct sandbox *boxes;
	int first, count;
	bool teardown;
	int errors;
	struct rund_nl nl;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int write_at(const char *dir, const char *file, const char *text)
{
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static pid_t spawn_sleeper(int cgroup_fd)
{
	struct clone_args args = { .exit_signal = SIGCHLD };
	pid_t pid;

	if (cgroup_fd >= 0) {
		args.flags = CLONE_INTO_CGROUP;
		args.cgroup = cgroup_fd;
	}
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static int setup_base(struct worker *w, struct sandbox *sb)
{
	char dir[128], text[32];

	snprintf(dir, sizeof(dir), "%s/%s", BASE_ROOT, sb->name);
	if (mkdir(dir, 0755))
		return -errno;
	snprintf(text, sizeof(text), "%llu", MEMORY);
	if (write_at(dir, "memory.max", text) || write_at(dir, "pids.max", "64") ||
	    write_at(dir, "cpu.max", "50000 100000"))
		return -EIO;
	sb->pid = spawn_sleeper(-1);
	if (sb->pid < 0)
		return -errno;
	snprintf(text, sizeof(text), "%d", sb->pid);
	return write_at(dir, "cgroup.procs", text);
}

static int teardown_base(struct worker *w, struct sandbox *sb)
{
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/%s", BASE_ROOT, sb->name);
	kill(sb->pid, SIGKILL);
	waitpid(sb->pid, NULL, 0);
	/* The cgroup may still be populated for an instant after the reap. */
	while (rmdir(dir)) {
		if (errno != EBUSY)
			return -errno;
		usleep(50);
	}
	return 0;
}

static int setup_pool(struct worker *w, struct sandbox *sb)
{
	struct rund_reply r;
	int fd, err;

	err = rund_nl_acquire(&w->nl, sb->name, 0, MEMORY, 50000, 100000, PIDS, &r);
	if (err)
		return err;
	fd = open(r.slot_path, O_DIRECTORY | O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sb->pid = spawn_sleeper(fd);
	close(fd);
	return sb->pid < 0 ? -errno : 0;
}

static int teardown_pool(struct worker *w, struct sandbox *sb)
{
	struct rund_reply r;
	int err;

	err = rund_nl_by_id(&w->nl, RUND_CMD_RELEASE, sb->name, &r);
	waitpid(sb->pid, NULL, 0);
	return err;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = w->first; i < w->first + w->count; i++) {
		struct sandbox *sb = &w->boxes[i];
		double t0 = now_us();
		int err;

		if (!w->teardown)
			err = w->mode == MODE_BASE ? setup_base(w, sb) : setup_pool(w, sb);
		else
			err = w->mode == MODE_BASE ? teardown_base(w, sb) : teardown_pool(w, sb);
		if (err) {
			fprintf(stderr, "bench: %s of %s failed: %s\n", w->teardown ? "teardown" : "setup",
				sb->name, strerror(-err));
			w->errors++;
		}
		if (w->teardown)
			sb->teardown_us = now_us() - t0;
		else
			sb->setup_us = now_us() - t0;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *v, int n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(int)((n - 1) * p + 0.5)];
}

static int run_phase(enum mode mode, struct sandbox *boxes, int n, int threads, bool teardown)
{
	pthread_t tids[64];
	struct worker w[64];
	int i, errors = 0, per = n / threads;

	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){ .mode = mode, .boxes = boxes, .first = i * per,
					.count = i == threads - 1 ? n - i * per : per, .teardown = teardown };
		if (mode == MODE_POOL && rund_nl_open(&w[i].nl))
			return -1;
		pthread_create(&tids[i], NULL, run_worker, &w[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(tids[i], NULL);
		errors += w[i].errors;
		if (mode == MODE_POOL)
			rund_nl_close(&w[i].nl);
	}
	return errors;
}

static int wait_pool_idle(struct rund_nl *nl, unsigned int size)
{
	struct rund_reply r;
	int i;

	for (i = 0; i < 3000; i++) {
		if (!rund_nl_simple(nl, RUND_CMD_STATS_GET, &r) && r.stats[RUND_A_STATS_IDLE] == size)
			return 0;
		usleep(10000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	const char *only = argc > 4 ? argv[4] : NULL;
	static const char *names[] = { "v2-base", "v2-pool" };
	int first = MODE_BASE, last = MODE_POOL;
	struct rund_reply r;
	struct rund_nl nl;
	struct sandbox *boxes;
	double *total, *setup, *teardown;
	int mode, round, i, k;

	if (only && !strcmp(only, names[MODE_BASE]))
		last = MODE_BASE;
	else if (only && !strcmp(only, names[MODE_POOL]))
		first = MODE_POOL;
	else if (only)
		n = 0;	/* unknown mode: print the usage */
	if (n <= 0 || threads <= 0 || threads > 64 || rounds <= 0) {
		fprintf(stderr, "usage: %s SANDBOXES THREADS ROUNDS [v2-base|v2-pool] (THREADS 1..64)\n",
			argv[0]);
		return 2;
	}
	boxes = calloc(n, sizeof(*boxes));
	total = calloc((size_t)n * rounds, sizeof(double));
	setup = calloc((size_t)n * rounds, sizeof(double));
	teardown = calloc((size_t)n * rounds, sizeof(double));
	if (!boxes || !total || !setup || !teardown)
		return 1;

	write_at(CG2, "cgroup.subtree_control", "+memory +cpu +pids");
	mkdir(BASE_ROOT, 0755);
	write_at(BASE_ROOT, "cgroup.subtree_control", "+memory +cpu +pids");
	mkdir(POOL_ROOT, 0755);
	if (rund_nl_open(&nl)) {
		fprintf(stderr, "bench: rund family not found; load rund.ko\n");
		return 1;
	}
	if (rund_nl_init_single(&nl, RUND_LAYOUT_V2, POOL_ROOT, n, "slot", 0, &r)) {
		fprintf(stderr, "bench: pool init failed: %s\n", r.msg);
		return 1;
	}

	for (mode = first; mode <= last; mode++) {
		k = 0;
		for (round = 0; round < rounds; round++) {
			for (i = 0; i < n; i++)
				snprintf(boxes[i].name, sizeof(boxes[i].name), "sb-%d-%d", round, i);
			if (run_phase(mode, boxes, n, threads, false) ||
			    run_phase(mode, boxes, n, threads, true)) {
				fprintf(stderr, "bench: %s round %d had errors\n", names[mode], round);
				return 1;
			}
			if (mode == MODE_POOL && wait_pool_idle(&nl, n)) {
				fprintf(stderr, "bench: pool did not return to idle\n");
				return 1;
			}
			for (i = 0; i < n; i++, k++) {
				setup[k] = boxes[i].setup_us;
				teardown[k] = boxes[i].teardown_us;
				total[k] = setup[k] + teardown[k];
			}
		}
		printf("BENCH %s %d %d %.1f %.1f %.1f %.1f\n", names[mode], n, threads,
		       percentile(total, k, 0.5), percentile(total, k, 0.99),
		       percentile(setup, k, 0.5), percentile(teardown, k, 0.5));
		fflush(stdout);
	}

	rund_nl_simple(&nl, RUND_CMD_POOL_DESTROY, &r);
	rund_nl_close(&nl);
	rmdir(POOL_ROOT);
	rmdir(BASE_ROOT);
	return 0;
}
