// SPDX-License-Identifier: GPL-2.0
/*
 * Per-sandbox cgroup cost inside a guest with rund.ko. A mode names a
 * layout and a kind:
 *
 *   layout  v2     cgroup v2 at /sys/fs/cgroup
 *           v2fdm  the same, remounted with favordynmods for the mode's run
 *           v1     one v1 hierarchy co-mounting memory,cpu,pids,freezer
 *                  (mounted here; the guest's v2 must not use them)
 *   kind    floor  fork; kill, reap: no cgroup work at all
 *           base   mkdir, limits, fork, cgroup.procs write; kill, reap, rmdir
 *           pool   the module's pool: acquire with the same limits, then
 *                  clone3(CLONE_INTO_CGROUP) into the slot (v2) or a child
 *                  that writes itself into the slot's cgroup.procs (v1);
 *                  kill, reap, release (the drain runs in the module's
 *                  worker)
 *           upool  the same on librund's cgroupfs backend (no module; its
 *                  release drains before it returns)
 *
 *   bench-cgroup-guest SANDBOXES THREADS ROUNDS [MODE[-sustained]...]
 *
 * Without modes it runs v2-base and v2-pool. In a burst, each round starts
 * SANDBOXES sandboxes from THREADS threads (all alive at once), then tears
 * them all down. Pools have SANDBOXES slots there, so no claim waits for a
 * drain.
 * With "-sustained" each thread sets up and tears down one sandbox after the
 * other, SANDBOXES / THREADS times per round. Pools have 2 × THREADS slots
 * there, so drains overlap new claims and a claim may wait for a drained
 * slot (retried every 200 µs, counted, and inside the figure).
 *
 * The rounds of all modes named run interleaved. A sandbox's cost is its
 * setup plus its teardown. Prints one line per mode:
 * "BENCH mode sandboxes threads median_us p99_us setup_median_us
 * teardown_median_us sandboxes_per_s claim_retries auto_released".
 * sandboxes_per_s counts the time of the burst phases or the loop, not the
 * wait for the module's drains between rounds. Run by
 * scripts/bench-cgroup-guest.sh.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "../selftests/kmod/rund_nl.h"

#define CG2		"/sys/fs/cgroup"
#define V1_MOUNT	"/tmp/rund-bench-v1"
#define UPOOL_STATE	"/tmp/rund-bench-upool"
#define MEMORY		(256ULL << 20)
#define PIDS		64
#define CPU_QUOTA	50000
#define CPU_PERIOD	100000
#define MAX_THREADS	64
#define MAX_MODES	32

enum layout { LAYOUT_V2, LAYOUT_V2FDM, LAYOUT_V1 };
enum kind { KIND_FLOOR, KIND_BASE, KIND_POOL, KIND_UPOOL };

static const char *const layout_names[] = { "v2", "v2fdm", "v1" };
static const char *const kind_names[] = { "floor", "base", "pool", "upool" };

struct bench {
	char name[64];
	enum layout layout;
	enum kind kind;
	bool sustained;
	const char *mount;		/* where the layout's hierarchy is mounted */
	char root[128];			/* base: parent of the per-sandbox cgroups; pools: pool root */
	struct rund_pool *upool;
};

struct sandbox {
	pid_t pid;
	char name[64];
	double setup_us, teardown_us;
};

enum phase { PHASE_SETUP, PHASE_TEARDOWN, PHASE_BOTH };

struct worker {
	struct bench *b;
	enum phase phase;
	struct sandbox *boxes;
	int first, count;
	int errors;
	long retries, auto_released;
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

/*
 * Spawn a child that sleeps until killed. With cgroup_fd it is born in that
 * cgroup (v2). With enter it first writes itself into the slot's
 * cgroup.procs files (v1) and reports through a pipe, so the setup ends only
 * once the child is in place.
 */
static pid_t spawn_sleeper(int cgroup_fd, const struct rund_slot_dirs *enter)
{
	struct clone_args args = { .exit_signal = SIGCHLD };
	int pipefd[2] = { -1, -1 };
	char status = 1;
	pid_t pid;

	if (cgroup_fd >= 0) {
		args.flags = CLONE_INTO_CGROUP;
		args.cgroup = cgroup_fd;
	}
	if (enter && pipe2(pipefd, O_CLOEXEC))
		return -1;
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		if (enter) {
			status = rund_pool_enter_dirs(enter) ? 1 : 0;
			if (write(pipefd[1], &status, 1) != 1 || status)
				_exit(1);
		}
		for (;;)
			pause();
	}
	if (!enter)
		return pid;
	close(pipefd[1]);
	if (pid > 0 && (read(pipefd[0], &status, 1) != 1 || status)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		errno = EIO;
		pid = -1;
	}
	close(pipefd[0]);
	return pid;
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int setup_base(struct bench *b, struct sandbox *sb)
{
	char dir[192], text[32];

	snprintf(dir, sizeof(dir), "%s/%s", b->root, sb->name);
	if (mkdir(dir, 0755))
		return -errno;
	snprintf(text, sizeof(text), "%llu", MEMORY);
	if (b->layout == LAYOUT_V1) {
		if (write_at(dir, "memory.limit_in_bytes", text) || write_at(dir, "pids.max", "64") ||
		    write_at(dir, "cpu.cfs_quota_us", "50000"))
			return -EIO;
	} else if (write_at(dir, "memory.max", text) || write_at(dir, "pids.max", "64") ||
		   write_at(dir, "cpu.max", "50000 100000")) {
		return -EIO;
	}
	sb->pid = spawn_sleeper(-1, NULL);
	if (sb->pid < 0)
		return -errno;
	snprintf(text, sizeof(text), "%d", sb->pid);
	return write_at(dir, "cgroup.procs", text);
}

static int teardown_base(struct bench *b, struct sandbox *sb)
{
	char dir[192];

	snprintf(dir, sizeof(dir), "%s/%s", b->root, sb->name);
	kill(sb->pid, SIGKILL);
	reap(sb->pid);
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
	struct rund_slot_dirs dirs = { .dir_fd = -1, .nr_procs = 1 };
	struct rund_reply r;
	int fd, err;

	for (;;) {
		err = rund_nl_acquire(&w->nl, sb->name, 0, MEMORY, CPU_QUOTA, CPU_PERIOD, PIDS, &r);
		if (err != -ENOSPC || !w->b->sustained)
			break;
		w->retries++;
		usleep(200);
	}
	if (err)
		return err;
	if (w->b->layout == LAYOUT_V1) {
		if (strlen(r.slot_path) + sizeof("/cgroup.procs") > sizeof(dirs.procs[0]))
			return -ENAMETOOLONG;
		strcpy(dirs.procs[0], r.slot_path);
		strcat(dirs.procs[0], "/cgroup.procs");
		sb->pid = spawn_sleeper(-1, &dirs);
		return sb->pid < 0 ? -errno : 0;
	}
	fd = open(r.slot_path, O_DIRECTORY | O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sb->pid = spawn_sleeper(fd, NULL);
	close(fd);
	return sb->pid < 0 ? -errno : 0;
}

/*
 * The pools' teardown ends the sandbox's process as the baseline does, then
 * releases the slot. Both pools release a claim by themselves once its
 * cgroup had processes and is empty, so a release may find the slot already
 * released (ENOENT) or being drained by another process (EBUSY, cgroupfs):
 * those count as auto-released.
 */
static int teardown_pool(struct worker *w, struct sandbox *sb)
{
	struct rund_reply r;
	int err;

	kill(sb->pid, SIGKILL);
	reap(sb->pid);
	err = rund_nl_by_id(&w->nl, RUND_CMD_RELEASE, sb->name, &r);
	if (err == -ENOENT) {
		w->auto_released++;
		err = 0;
	}
	return err;
}

static int setup_upool(struct worker *w, struct sandbox *sb)
{
	struct rund_pool_limits limits = { .memory_max = MEMORY, .cpu_quota_us = CPU_QUOTA,
					   .cpu_period_us = CPU_PERIOD, .pids_max = PIDS };
	struct rund_slot_dirs dirs;
	struct rund_error err;
	int ret;

	for (;;) {
		ret = rund_pool_acquire(w->b->upool, sb->name, &limits, 0, NULL, &err);
		if (ret != -ENOSPC || !w->b->sustained)
			break;
		w->retries++;
		usleep(200);
	}
	if (!ret)
		ret = rund_pool_slot_dirs(w->b->upool, sb->name, &dirs, &err);
	if (ret) {
		fprintf(stderr, "bench: claiming a cgroupfs slot for %s failed: %s\n", sb->name, err.msg);
		return ret;
	}
	sb->pid = spawn_sleeper(dirs.dir_fd, dirs.layout == RUND_LAYOUT_V2 ? NULL : &dirs);
	ret = sb->pid < 0 ? -errno : 0;
	rund_slot_dirs_close(&dirs);
	return ret;
}

static int teardown_upool(struct worker *w, struct sandbox *sb)
{
	struct rund_error err;
	int ret;

	kill(sb->pid, SIGKILL);
	reap(sb->pid);
	ret = rund_pool_release(w->b->upool, sb->name, &err);
	if (ret == -ENOENT || ret == -EBUSY) {
		w->auto_released++;
		ret = 0;
	}
	if (ret)
		fprintf(stderr, "bench: releasing the cgroupfs slot of %s failed: %s\n", sb->name, err.msg);
	return ret;
}

static int setup(struct worker *w, struct sandbox *sb)
{
	switch (w->b->kind) {
	case KIND_FLOOR:
		sb->pid = spawn_sleeper(-1, NULL);
		return sb->pid < 0 ? -errno : 0;
	case KIND_BASE:
		return setup_base(w->b, sb);
	case KIND_POOL:
		return setup_pool(w, sb);
	case KIND_UPOOL:
		return setup_upool(w, sb);
	}
	return -EINVAL;
}

static int teardown(struct worker *w, struct sandbox *sb)
{
	switch (w->b->kind) {
	case KIND_FLOOR:
		kill(sb->pid, SIGKILL);
		reap(sb->pid);
		return 0;
	case KIND_BASE:
		return teardown_base(w->b, sb);
	case KIND_POOL:
		return teardown_pool(w, sb);
	case KIND_UPOOL:
		return teardown_upool(w, sb);
	}
	return -EINVAL;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	int i, err;

	for (i = w->first; i < w->first + w->count; i++) {
		struct sandbox *sb = &w->boxes[i];
		double t0 = now_us();

		if (w->phase != PHASE_TEARDOWN) {
			err = setup(w, sb);
			sb->setup_us = now_us() - t0;
			if (err) {
				fprintf(stderr, "bench: setup of %s failed: %s\n", sb->name, strerror(-err));
				w->errors++;
				continue;
			}
		}
		if (w->phase != PHASE_SETUP) {
			t0 = now_us();
			err = teardown(w, sb);
			sb->teardown_us = now_us() - t0;
			if (err) {
				fprintf(stderr, "bench: teardown of %s failed: %s\n", sb->name, strerror(-err));
				w->errors++;
			}
		}
	}
	return NULL;
}

/* Runs one phase on all threads; returns the errors and adds up the counters. */
static int run_phase(struct bench *b, enum phase phase, struct sandbox *boxes, int n,
		     int threads, long *retries, long *auto_released)
{
	pthread_t tids[MAX_THREADS];
	struct worker w[MAX_THREADS];
	int i, errors = 0, per = n / threads;

	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){ .b = b, .phase = phase, .boxes = boxes, .first = i * per,
					.count = i == threads - 1 ? n - i * per : per };
		if (b->kind == KIND_POOL && rund_nl_open(&w[i].nl))
			return -1;
	}
	for (i = 0; i < threads; i++)
		pthread_create(&tids[i], NULL, run_worker, &w[i]);
	for (i = 0; i < threads; i++) {
		pthread_join(tids[i], NULL);
		errors += w[i].errors;
		*retries += w[i].retries;
		*auto_released += w[i].auto_released;
		if (b->kind == KIND_POOL)
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

static bool cgroup2_favors_dynmods(void)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, " " CG2 " ") && strstr(line, " - cgroup2 ") && strstr(line, "favordynmods"))
			found = true;
	fclose(f);
	return found;
}

/* Remount the guest's cgroup2 with or without favordynmods and check the result. */
static int favor_dynmods(bool on)
{
	if (mount(NULL, CG2, NULL, MS_REMOUNT, on ? "favordynmods" : "")) {
		fprintf(stderr, "bench: remounting %s %s favordynmods failed: %s\n", CG2,
			on ? "with" : "without", strerror(errno));
		return -1;
	}
	if (cgroup2_favors_dynmods() != on) {
		fprintf(stderr, "bench: %s still shows favordynmods %s after the remount\n", CG2,
			on ? "off" : "on");
		return -1;
	}
	return 0;
}

static int mount_v1(void)
{
	int tries;

	if (!access(V1_MOUNT "/cgroup.procs", F_OK))
		return 0;
	mkdir(V1_MOUNT, 0755);
	for (tries = 0; tries < 100; tries++) {
		if (!mount("cgroup", V1_MOUNT, "cgroup", 0, "memory,cpu,pids,freezer"))
			return 0;
		/* A hierarchy unmounted just before is released asynchronously. */
		if (errno != EBUSY)
			break;
		usleep(50000);
	}
	fprintf(stderr, "bench: cannot mount a v1 hierarchy with memory,cpu,pids,freezer at %s: %s; run the v1 modes in a guest whose cgroup v2 never enabled those controllers\n",
		V1_MOUNT, strerror(errno));
	return -1;
}

static int prepare(struct bench *b, struct rund_nl *nl, int size)
{
	struct rund_reply r;
	struct rund_error err;

	if (b->layout == LAYOUT_V1) {
		if (mount_v1())
			return -1;
		b->mount = V1_MOUNT;
	} else {
		b->mount = CG2;
		if (write_at(CG2, "cgroup.subtree_control", "+memory +cpu +pids")) {
			fprintf(stderr, "bench: cannot enable memory, cpu and pids in %s; the v1 modes may hold them: run the v2 modes in their own guest\n",
				CG2);
			return -1;
		}
		if (favor_dynmods(b->layout == LAYOUT_V2FDM))
			return -1;
	}
	snprintf(b->root, sizeof(b->root), "%s/rund-bench-%s", b->mount, kind_names[b->kind]);
	if (b->kind == KIND_FLOOR)
		return 0;
	if (mkdir(b->root, 0755) && errno != EEXIST) {
		fprintf(stderr, "bench: creating %s failed: %s\n", b->root, strerror(errno));
		return -1;
	}
	if (b->kind == KIND_BASE && b->layout != LAYOUT_V1 &&
	    write_at(b->root, "cgroup.subtree_control", "+memory +cpu +pids")) {
		fprintf(stderr, "bench: enabling memory, cpu and pids in %s/cgroup.subtree_control failed\n", b->root);
		return -1;
	}
	if (b->kind == KIND_POOL &&
	    rund_nl_init_single(nl, b->layout == LAYOUT_V1 ? RUND_LAYOUT_V1 : RUND_LAYOUT_V2,
				b->root, size, "slot", 0, &r)) {
		fprintf(stderr, "bench: module pool init at %s failed: %s\n", b->root, r.msg);
		return -1;
	}
	if (b->kind == KIND_UPOOL) {
		struct rund_pool_config cfg = {
			.layout = b->layout == LAYOUT_V1 ? RUND_LAYOUT_V1 : RUND_LAYOUT_V2,
			.nr_hierarchies = 1,
			.size = size,
			.prefix = "slot",
			.controllers = RUND_CTRL_MEMORY | RUND_CTRL_CPU | RUND_CTRL_PIDS,
			.lease_ms = RUND_LEASE_MAX_MS,
		};

		if (b->layout == LAYOUT_V1)
			cfg.controllers |= RUND_CTRL_FREEZER;
		snprintf(cfg.hier[0].path, sizeof(cfg.hier[0].path), "%s", b->root);
		cfg.hier[0].controllers = cfg.controllers;
		if (rund_pool_open(&b->upool, RUND_POOL_BACKEND_CGROUPFS, UPOOL_STATE, &err) ||
		    rund_pool_init(b->upool, &cfg, &err)) {
			fprintf(stderr, "bench: cgroupfs pool init at %s failed: %s\n", b->root, err.msg);
			return -1;
		}
	}
	return 0;
}

static void finish(struct bench *b, struct rund_nl *nl)
{
	struct rund_reply r;
	struct rund_error err;

	if (b->kind == KIND_POOL && rund_nl_simple(nl, RUND_CMD_POOL_DESTROY, &r))
		fprintf(stderr, "bench: module pool destroy failed: %s\n", r.msg);
	if (b->upool) {
		if (rund_pool_destroy(b->upool, false, &err))
			fprintf(stderr, "bench: cgroupfs pool destroy failed: %s\n", err.msg);
		rund_pool_close(b->upool);
		b->upool = NULL;
	}
	if (b->kind != KIND_FLOOR)
		rmdir(b->root);
	if (b->layout == LAYOUT_V2FDM)
		favor_dynmods(false);
}

static int parse_mode(const char *s, struct bench *b)
{
	char buf[64], *kind, *rest;
	size_t i;

	memset(b, 0, sizeof(*b));
	snprintf(buf, sizeof(buf), "%s", s);
	snprintf(b->name, sizeof(b->name), "%s", s);
	kind = strchr(buf, '-');
	if (!kind)
		return -1;
	*kind++ = '\0';
	rest = strchr(kind, '-');
	if (rest) {
		*rest++ = '\0';
		if (strcmp(rest, "sustained"))
			return -1;
		b->sustained = true;
	}
	for (i = 0; i < 3 && strcmp(buf, layout_names[i]); i++)
		;
	if (i == 3)
		return -1;
	b->layout = i;
	for (i = 0; i < 4 && strcmp(kind, kind_names[i]); i++)
		;
	if (i == 4)
		return -1;
	b->kind = i;
	return 0;
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

/* Figures of one mode over all its rounds. */
struct result {
	double *total, *setup, *teardown;	/* µs per sandbox */
	int count;
	double wall_us;				/* time of the burst phases or the loop */
	long retries, auto_released;
};

/* Run one round of a mode: make its cgroups or pool, start and end n sandboxes, remove them. */
static int run_round(struct bench *b, struct result *res, int round, int n, int threads,
		     struct rund_nl *nl)
{
	struct sandbox *boxes = calloc(n, sizeof(*boxes));
	int size = b->sustained ? 2 * threads : n;
	int i, errors, ret = -1;
	double t0;

	if (!boxes)
		return -1;
	if (prepare(b, nl, size))
		goto out_finish;
	for (i = 0; i < n; i++)
		snprintf(boxes[i].name, sizeof(boxes[i].name), "sb-%d-%d", round, i);
	t0 = now_us();
	if (b->sustained) {
		errors = run_phase(b, PHASE_BOTH, boxes, n, threads, &res->retries, &res->auto_released);
	} else {
		errors = run_phase(b, PHASE_SETUP, boxes, n, threads, &res->retries, &res->auto_released);
		if (!errors)
			errors = run_phase(b, PHASE_TEARDOWN, boxes, n, threads, &res->retries,
					   &res->auto_released);
	}
	res->wall_us += now_us() - t0;
	if (errors) {
		fprintf(stderr, "bench: %s round %d had errors\n", b->name, round);
		goto out_finish;
	}
	if (b->kind == KIND_POOL && wait_pool_idle(nl, size)) {
		fprintf(stderr, "bench: the module pool did not return to idle within 30 s\n");
		goto out_finish;
	}
	for (i = 0; i < n; i++, res->count++) {
		res->setup[res->count] = boxes[i].setup_us;
		res->teardown[res->count] = boxes[i].teardown_us;
		res->total[res->count] = boxes[i].setup_us + boxes[i].teardown_us;
	}
	ret = 0;
out_finish:
	finish(b, nl);
	free(boxes);
	return ret;
}

static void print_result(const struct bench *b, struct result *res, int n, int threads)
{
	printf("BENCH %s %d %d %.1f %.1f %.1f %.1f %.1f %ld %ld\n", b->name, n, threads,
	       percentile(res->total, res->count, 0.5), percentile(res->total, res->count, 0.99),
	       percentile(res->setup, res->count, 0.5), percentile(res->teardown, res->count, 0.5),
	       res->count / (res->wall_us / 1e6), res->retries, res->auto_released);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = { "v2-base", "v2-pool" };
	int n = argc > 1 ? atoi(argv[1]) : 200;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	const char *const *modes = argc > 4 ? (const char *const *)argv + 4 : defaults;
	int nr_modes = argc > 4 ? argc - 4 : 2;
	struct bench benches[MAX_MODES];
	struct result results[MAX_MODES] = { 0 };
	struct rund_nl nl;
	bool module = false;
	int i, round;

	for (i = 0; i < nr_modes && nr_modes <= MAX_MODES; i++) {
		if (parse_mode(modes[i], &benches[i])) {
			n = 0;
			break;
		}
		module |= benches[i].kind == KIND_POOL;
	}
	if (n <= 0 || threads <= 0 || threads > MAX_THREADS || rounds <= 0 || nr_modes > MAX_MODES) {
		fprintf(stderr, "usage: %s SANDBOXES THREADS ROUNDS [MODE...] (THREADS 1..%d, up to %d modes)\n"
			"MODE: {v2,v2fdm,v1}-{floor,base,pool,upool}[-sustained]; default: v2-base v2-pool\n",
			argv[0], MAX_THREADS, MAX_MODES);
		return 2;
	}
	for (i = 0; i < nr_modes; i++) {
		struct result *res = &results[i];

		res->total = calloc((size_t)n * rounds, sizeof(double));
		res->setup = calloc((size_t)n * rounds, sizeof(double));
		res->teardown = calloc((size_t)n * rounds, sizeof(double));
		if (!res->total || !res->setup || !res->teardown)
			return 1;
	}
	if (module && rund_nl_open(&nl)) {
		fprintf(stderr, "bench: rund family not found; load rund.ko\n");
		return 1;
	}
	/*
	 * Rounds are interleaved (round 1 of every mode, then round 2...), so
	 * that a change in the host's load spreads over all modes alike.
	 */
	for (round = 0; round < rounds; round++)
		for (i = 0; i < nr_modes; i++)
			if (run_round(&benches[i], &results[i], round, n, threads, &nl))
				return 1;
	for (i = 0; i < nr_modes; i++)
		print_result(&benches[i], &results[i], n, threads);
	if (module)
		rund_nl_close(&nl);
	return 0;
}
