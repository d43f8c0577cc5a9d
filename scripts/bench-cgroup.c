// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Per-sandbox cgroup cost on the host: setup (cgroup + limits + a process
 * placed in it) and teardown (kill, reap, remove or release), for
 *  - v1-base:   mkdir in each v1 hierarchy + limits + cgroup.procs writes + rmdir
 *  - v1-pool:   cgroupfs pool acquire (rename + limits) + launcher that moves
 *               itself into the slot + release
 *  - v2-procs:  mkdir on cgroup2 + fork + cgroup.procs write + rmdir
 *  - v2-clone:  mkdir on cgroup2 + clone3(CLONE_INTO_CGROUP) + rmdir
 *  - v2-pool:   cgroupfs pool acquire + clone3(CLONE_INTO_CGROUP) into the slot + release
 *  - spawn:     fork and kill only, no cgroup (the floor under every mode)
 * Each mode starts N sandboxes from T threads (setup phase, all alive at
 * once), then tears them all down. Prints one line per mode with the median
 * and p99 of setup+teardown per sandbox in microseconds.
 *
 * usage: bench-cgroup MODE N THREADS ROOTNAME [idle|sustained]
 * "idle" instead measures lone starts: a 2 s pause before each start.
 * "sustained" keeps 4 sandboxes per thread alive and replaces the oldest
 * per step, so teardowns overlap other threads' setups.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sched.h>

#include "pool.h"

static const char *const v1_hier[] = {
	"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
};
#define NR_V1 (sizeof(v1_hier) / sizeof(v1_hier[0]))

enum mode { V1_BASE, V1_POOL, V2_PROCS, V2_CLONE, V2_POOL, SPAWN };

static enum mode mode;
static int total, nthreads;
static char root[128];
static struct rund_pool *pool;

struct sandbox {
	pid_t pid;
	char id[48];
	uint64_t ns;		/* setup + teardown */
	uint64_t setup_ns;
};

static struct sandbox *boxes;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-cgroup: %s: %s\n", what, strerror(err));
	exit(1);
}

/* A child that waits for SIGKILL. */
static void child_wait(void)
{
	for (;;)
		pause();
}

static pid_t clone_into(int dirfd)
{
	struct clone_args args = {
		.flags = CLONE_INTO_CGROUP,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)dirfd,
	};
	pid_t pid = syscall(SYS_clone3, &args, sizeof(args));

	if (pid == 0)
		child_wait();
	return pid;
}

static void setup_one(struct sandbox *b, int i)
{
	struct rund_pool_limits lim = { .memory_max = 128ULL << 20, .pids_max = 512 };
	struct rund_error err = { 0 };
	struct rund_slot_dirs dirs;
	char path[256], val[32];
	unsigned int h;
	int fd, p[2];
	char c;

	snprintf(b->id, sizeof(b->id), "sb%d", i);
	switch (mode) {
	case V1_BASE:
		for (h = 0; h < NR_V1; h++) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s/%s", v1_hier[h], root, b->id);
			if (mkdir(path, 0755))
				die(path, errno);
		}
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory/%s/%s/memory.limit_in_bytes", root, b->id);
		write_str(path, "134217728");
		snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/%s/%s/pids.max", root, b->id);
		write_str(path, "512");
		b->pid = fork();
		if (b->pid == 0)
			child_wait();
		snprintf(val, sizeof(val), "%d", b->pid);
		for (h = 0; h < NR_V1; h++) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s/%s/cgroup.procs", v1_hier[h], root, b->id);
			if (write_str(path, val))
				die(path, errno);
		}
		break;
	case V1_POOL:
		if (rund_pool_acquire(pool, b->id, &lim, 0, NULL, &err) ||
		    rund_pool_slot_dirs(pool, b->id, &dirs, &err)) {
			fprintf(stderr, "bench-cgroup: %s\n", err.msg);
			exit(1);
		}
		/* The launcher: a child that moves itself into the slot, then reports. */
		if (pipe(p))
			die("pipe", errno);
		b->pid = fork();
		if (b->pid == 0) {
			c = rund_pool_enter_dirs(&dirs) ? 'e' : 'k';
			if (write(p[1], &c, 1) != 1)
				_exit(1);
			child_wait();
		}
		if (read(p[0], &c, 1) != 1 || c != 'k')
			die("launcher could not enter its slot", EIO);
		close(p[0]);
		close(p[1]);
		break;
	case V2_PROCS:
		snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s/%s", root, b->id);
		if (mkdir(path, 0755))
			die(path, errno);
		b->pid = fork();
		if (b->pid == 0)
			child_wait();
		snprintf(val, sizeof(val), "%d", b->pid);
		strcat(path, "/cgroup.procs");
		if (write_str(path, val))
			die(path, errno);
		break;
	case V2_CLONE:
		snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s/%s", root, b->id);
		if (mkdir(path, 0755))
			die(path, errno);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			die(path, errno);
		b->pid = clone_into(fd);
		close(fd);
		break;
	case V2_POOL:
		if (rund_pool_acquire(pool, b->id, NULL, 0, NULL, &err) ||
		    rund_pool_slot_dirs(pool, b->id, &dirs, &err)) {
			fprintf(stderr, "bench-cgroup: %s\n", err.msg);
			exit(1);
		}
		b->pid = clone_into(dirs.dir_fd);
		rund_slot_dirs_close(&dirs);
		break;
	case SPAWN:
		b->pid = fork();
		if (b->pid == 0)
			child_wait();
		break;
	}
	if (b->pid < 0)
		die("spawn", errno);
}

static void teardown_one(struct sandbox *b)
{
	struct rund_error err = { 0 };
	char path[256];
	unsigned int h;
	int status;

	switch (mode) {
	case V1_BASE:
		kill(b->pid, SIGKILL);
		waitpid(b->pid, &status, 0);
		for (h = 0; h < NR_V1; h++) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s/%s", v1_hier[h], root, b->id);
			while (rmdir(path) && errno == EBUSY)
				usleep(100);
		}
		break;
	case V2_PROCS:
	case V2_CLONE:
		kill(b->pid, SIGKILL);
		waitpid(b->pid, &status, 0);
		snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s/%s", root, b->id);
		while (rmdir(path) && errno == EBUSY)
			usleep(100);
		break;
	case V1_POOL:
	case V2_POOL:
		/* release kills the slot's processes; reap ours afterwards */
		if (rund_pool_release(pool, b->id, &err)) {
			fprintf(stderr, "bench-cgroup: %s\n", err.msg);
			exit(1);
		}
		waitpid(b->pid, &status, 0);
		break;
	case SPAWN:
		kill(b->pid, SIGKILL);
		waitpid(b->pid, &status, 0);
		break;
	}
}

static pthread_barrier_t barrier;
static bool sustained;

/* Sandboxes each thread keeps alive in the sustained mode. */
#define LIVE_PER_THREAD 4

/*
 * Sustained churn: each thread keeps LIVE_PER_THREAD sandboxes alive and
 * replaces the oldest one per step, so teardowns (and the pool's drains)
 * overlap the setups of other threads. A step's figure is one setup plus
 * one teardown.
 */
static void churn(int from, int to)
{
	struct sandbox live[LIVE_PER_THREAD];
	int i, k = 0, n = 0;
	uint64_t t0;

	for (i = from; i < to; i++) {
		t0 = now_ns();
		if (n == LIVE_PER_THREAD) {
			teardown_one(&live[k]);
			n--;
		}
		setup_one(&live[k], i);
		n++;
		k = (k + 1) % LIVE_PER_THREAD;
		boxes[i].ns = now_ns() - t0;
		boxes[i].setup_ns = boxes[i].ns;
	}
	for (i = 0; i < n; i++)
		teardown_one(&live[i]);
}

static void *worker(void *arg)
{
	long t = (long)arg;
	int i, from = total * t / nthreads, to = total * (t + 1) / nthreads;
	uint64_t t0;

	pthread_barrier_wait(&barrier);
	if (sustained) {
		churn(from, to);
		return NULL;
	}
	for (i = from; i < to; i++) {
		t0 = now_ns();
		setup_one(&boxes[i], i);
		boxes[i].ns = now_ns() - t0;
		boxes[i].setup_ns = boxes[i].ns;
	}
	pthread_barrier_wait(&barrier);
	for (i = from; i < to; i++) {
		t0 = now_ns();
		teardown_one(&boxes[i]);
		boxes[i].ns += now_ns() - t0;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void make_roots(void)
{
	char path[256], buf[256];
	unsigned int h;
	ssize_t n;
	int fd;

	if (mode == V1_BASE) {
		for (h = 0; h < NR_V1; h++) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", v1_hier[h], root);
			if (mkdir(path, 0755) && errno != EEXIST)
				die(path, errno);
		}
		/* cpuset children need cpus and mems before a task may join. */
		snprintf(path, sizeof(path), "/sys/fs/cgroup/cpuset/%s/cgroup.clone_children", root);
		write_str(path, "1");
		fd = open("/sys/fs/cgroup/cpuset/cpuset.cpus", O_RDONLY);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		snprintf(path, sizeof(path), "/sys/fs/cgroup/cpuset/%s/cpuset.cpus", root);
		write_str(path, buf);
		fd = open("/sys/fs/cgroup/cpuset/cpuset.mems", O_RDONLY);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		snprintf(path, sizeof(path), "/sys/fs/cgroup/cpuset/%s/cpuset.mems", root);
		write_str(path, buf);
	} else if (mode == V2_PROCS || mode == V2_CLONE) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s", root);
		if (mkdir(path, 0755) && errno != EEXIST)
			die(path, errno);
	}
}

static void remove_roots(void)
{
	char path[256];
	unsigned int h;

	if (mode == V1_BASE) {
		for (h = 0; h < NR_V1; h++) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", v1_hier[h], root);
			rmdir(path);
		}
	} else if (mode == V2_PROCS || mode == V2_CLONE) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s", root);
		rmdir(path);
	}
}

static void open_pool(int size)
{
	struct rund_pool_config cfg;
	struct rund_error err = { 0 };
	char state[192];

	snprintf(state, sizeof(state), "/run/%s", root);
	if (rund_pool_open(&pool, RUND_POOL_BACKEND_CGROUPFS, state, &err) ||
	    rund_pool_config_resolve(&cfg, root, mode == V1_POOL ? RUND_LAYOUT_V1_SPLIT : RUND_LAYOUT_V2,
				     mode == V1_POOL ? RUND_CTRL_ALL : 0, &err)) {
		fprintf(stderr, "bench-cgroup: %s\n", err.msg);
		exit(1);
	}
	cfg.size = size;
	strcpy(cfg.prefix, "slot");
	/* Setup of the pool is outside the measured path. */
	if (rund_pool_init(pool, &cfg, &err)) {
		fprintf(stderr, "bench-cgroup: %s\n", err.msg);
		exit(1);
	}
}

static void close_pool(void)
{
	struct rund_error err = { 0 };
	char state[256];

	if (rund_pool_destroy(pool, true, &err))
		fprintf(stderr, "bench-cgroup: %s\n", err.msg);
	rund_pool_close(pool);
	snprintf(state, sizeof(state), "/run/%s/state", root);
	unlink(state);
	*strrchr(state, '/') = '\0';
	rmdir(state);
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "v1-base", "v1-pool", "v2-procs", "v2-clone", "v2-pool", "spawn" };
	pthread_t th[64];
	uint64_t *lat, *setup, *down, sum = 0, wall;
	bool idle;
	long t;
	int i;

	if (argc < 5) {
		fprintf(stderr, "usage: bench-cgroup v1-base|v1-pool|v2-procs|v2-clone|v2-pool|spawn N THREADS ROOTNAME [idle]\n");
		return 2;
	}
	for (i = 0; i < 6; i++)
		if (!strcmp(argv[1], names[i]))
			mode = i;
	if (strcmp(argv[1], names[mode])) {
		fprintf(stderr, "bench-cgroup: unknown mode '%s'\n", argv[1]);
		return 2;
	}
	total = atoi(argv[2]);
	nthreads = atoi(argv[3]);
	snprintf(root, sizeof(root), "%s", argv[4]);
	idle = argc > 5 && !strcmp(argv[5], "idle");
	sustained = argc > 5 && !strcmp(argv[5], "sustained");
	if (total < 1 || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "bench-cgroup: N must be >= 1 and THREADS 1 to 64\n");
		return 2;
	}

	boxes = calloc(total, sizeof(*boxes));
	lat = calloc(total, sizeof(*lat));
	make_roots();
	if (mode == V1_POOL || mode == V2_POOL)
		open_pool(idle ? 1 : sustained ? nthreads * (LIVE_PER_THREAD + 1) : total);

	wall = now_ns();
	if (idle) {
		/* Lone starts: each after a pause that lets RCU and percpu rwsems go idle. */
		for (i = 0; i < total; i++) {
			uint64_t t0;

			sleep(2);
			t0 = now_ns();
			setup_one(&boxes[i], i);
			lat[i] = now_ns() - t0;
			boxes[i].setup_ns = lat[i];
			teardown_one(&boxes[i]);
			boxes[i].ns = lat[i];
		}
	} else {
		pthread_barrier_init(&barrier, NULL, nthreads);
		for (t = 0; t < nthreads; t++)
			pthread_create(&th[t], NULL, worker, (void *)t);
		for (t = 0; t < nthreads; t++)
			pthread_join(th[t], NULL);
		for (i = 0; i < total; i++)
			lat[i] = boxes[i].ns;
	}
	wall = now_ns() - wall;

	if (getenv("BENCH_POOL_STATS") && (mode == V1_POOL || mode == V2_POOL)) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "%s pool stats --state /run/%s", getenv("BENCH_POOL_STATS"), root);
		if (system(cmd))
			fprintf(stderr, "bench-cgroup: %s failed\n", cmd);
	}
	if (mode == V1_POOL || mode == V2_POOL)
		close_pool();
	remove_roots();

	setup = calloc(total, sizeof(*setup));
	down = calloc(total, sizeof(*down));
	for (i = 0; i < total; i++) {
		setup[i] = boxes[i].setup_ns;
		down[i] = boxes[i].ns - boxes[i].setup_ns;
	}
	qsort(setup, total, sizeof(*setup), cmp_u64);
	qsort(down, total, sizeof(*down), cmp_u64);
	qsort(lat, total, sizeof(*lat), cmp_u64);
	for (i = 0; i < total; i++)
		sum += lat[i];
	/* idle mode: the setup (the start) alone is the figure of interest */
	printf("%s n=%d threads=%d%s%s median_us=%.1f p99_us=%.1f mean_us=%.1f setup_median_us=%.1f setup_p99_us=%.1f teardown_median_us=%.1f wall_ms=%.1f\n",
	       names[mode], total, nthreads, idle ? " idle" : "", sustained ? " sustained" : "",
	       lat[total / 2] / 1000.0, lat[(total * 99) / 100] / 1000.0,
	       sum / 1000.0 / total, setup[total / 2] / 1000.0, setup[(total * 99) / 100] / 1000.0,
	       down[total / 2] / 1000.0, wall / 1e6);
	return 0;
}
