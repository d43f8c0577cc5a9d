// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Placing a VMM into a claimed pool slot at birth (see struct
 * rund_pool_launch in pool.h for the three methods).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "util.h"

/*
 * The v1 launcher: a thread whose tid sits in the slot's tasks files, so
 * that a process it spawns starts in the slot.
 */
struct rund_pool_launcher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int (*fn)(void *arg);		/* request, NULL when none */
	void *arg;
	int result;
	bool done, quit;
	int setup_error;		/* -errno when the thread could not enter the slot */
	bool ready;
	bool in_slot;			/* the thread's tid is in the slot's tasks files */
	uint32_t nr;
	char slot_tasks[RUND_POOL_MAX_HIERARCHIES][RUND_PATH_MAX + 64];
	char home_tasks[RUND_POOL_MAX_HIERARCHIES][RUND_PATH_MAX + 64];
};

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int write_tid(const char *path, pid_t tid)
{
	char val[16];
	int fd, ret = 0;

	snprintf(val, sizeof(val), "%d", (int)tid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Find the tasks file of the calling thread's own cgroup in the hierarchy
 * of slot_file: the cgroup mount that is the longest prefix of slot_file,
 * joined with the path that /proc/thread-self/cgroup lists for that mount.
 */
static int home_tasks_file(const char *slot_file, char *out, size_t len)
{
	char line[4096], mount[RUND_PATH_MAX + 1] = "", opts[1024] = "";
	size_t best = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char mnt[RUND_PATH_MAX + 1], fstype[32], o[1024], *sep = strstr(line, " - ");
		size_t n;

		if (!sep || sscanf(line, "%*s %*s %*s %*s %256s", mnt) != 1 ||
		    sscanf(sep + 3, "%31s %*s %1023s", fstype, o) != 2 || strcmp(fstype, "cgroup"))
			continue;
		n = strlen(mnt);
		if (n > best && !strncmp(slot_file, mnt, n) && slot_file[n] == '/') {
			best = n;
			snprintf(mount, sizeof(mount), "%s", mnt);
			snprintf(opts, sizeof(opts), ",%s,", o);
		}
	}
	fclose(f);
	if (!best)
		return -ENOENT;

	f = fopen("/proc/thread-self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *ctrls = strchr(line, ':'), *path, *c, *save = NULL;
		bool match = true;

		if (!ctrls)
			continue;
		path = strchr(++ctrls, ':');
		if (!path || path == ctrls)
			continue;
		*path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		for (c = strtok_r(ctrls, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
			char word[64];

			snprintf(word, sizeof(word), ",%s,", c);
			if (!strstr(opts, word))
				match = false;
		}
		if (match) {
			fclose(f);
			snprintf(out, len, "%s%s/tasks", mount, strcmp(path, "/") ? path : "");
			return 0;
		}
	}
	fclose(f);
	return -ENOENT;
}

static void *launcher_main(void *p)
{
	struct rund_pool_launcher *l = p;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	uint32_t h;
	int ret = 0;

	for (h = 0; h < l->nr && !ret; h++)
		ret = home_tasks_file(l->slot_tasks[h], l->home_tasks[h], sizeof(l->home_tasks[h]));
	for (h = 0; h < l->nr && !ret; h++) {
		ret = write_tid(l->slot_tasks[h], tid);
		l->in_slot = true;
	}

	pthread_mutex_lock(&l->lock);
	l->setup_error = ret;
	l->ready = true;
	pthread_cond_broadcast(&l->cond);
	for (;;) {
		while (!l->fn && !l->quit)
			pthread_cond_wait(&l->cond, &l->lock);
		if (l->quit)
			break;
		pthread_mutex_unlock(&l->lock);
		l->result = l->fn(l->arg);
		/* Back home, so that releasing the slot cannot kill this process. */
		for (h = 0; h < l->nr; h++)
			write_tid(l->home_tasks[h], tid);
		l->in_slot = false;
		pthread_mutex_lock(&l->lock);
		l->fn = NULL;
		l->done = true;
		pthread_cond_broadcast(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
	if (l->in_slot) {
		for (h = 0; h < l->nr; h++)
			write_tid(l->home_tasks[h], tid);
		l->in_slot = false;
	}
	/*
	 * A process spawned on this thread gets its PR_SET_PDEATHSIG signal when
	 * this thread exits, so the thread is stopped only after the VMM is reaped.
	 */
	return NULL;
}

static int launcher_start(struct rund_pool_launch *launch, struct rund_error *err)
{
	struct rund_pool_launcher *l = calloc(1, sizeof(*l));
	uint32_t h;
	int ret;

	if (!l)
		return rund_error_set(err, ENOMEM, "allocate the launcher");
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->nr = launch->dirs.nr_procs;
	for (h = 0; h < l->nr; h++) {
		char *slash;

		snprintf(l->slot_tasks[h], sizeof(l->slot_tasks[h]), "%s", launch->dirs.procs[h]);
		slash = strrchr(l->slot_tasks[h], '/');
		snprintf(slash + 1, sizeof(l->slot_tasks[h]) - (slash + 1 - l->slot_tasks[h]), "tasks");
	}
	ret = pthread_create(&l->thread, NULL, launcher_main, l);
	if (ret) {
		free(l);
		return rund_error_set(err, ret, "start the launcher thread");
	}
	launch->launcher = l;
	return 0;
}

/* Wait for the launcher to be in the slot; on failure stop it. */
static int launcher_wait_ready(struct rund_pool_launch *launch, struct rund_error *err)
{
	struct rund_pool_launcher *l = launch->launcher;
	int ret;

	pthread_mutex_lock(&l->lock);
	while (!l->ready)
		pthread_cond_wait(&l->cond, &l->lock);
	ret = l->setup_error;
	pthread_mutex_unlock(&l->lock);
	if (ret)
		return rund_error_set(err, -ret, "move the launcher thread into slot %s", launch->dirs.procs[0]);
	return 0;
}

static void launcher_stop(struct rund_pool_launch *launch)
{
	struct rund_pool_launcher *l = launch->launcher;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->quit = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
	launch->launcher = NULL;
}

int rund_pool_launch_claim(struct rund_pool_launch *launch, enum rund_pool_backend backend,
			   bool disabled, const char *sandbox_id,
			   const struct rund_pool_limits *limits, struct rund_error *err)
{
	struct timespec t0;
	int ret;

	memset(launch, 0, sizeof(*launch));
	launch->dirs.dir_fd = -1;
	launch->method = "none";
	if (disabled) {
		snprintf(launch->note, sizeof(launch->note), "the cgroup pool is disabled");
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = rund_pool_open(&launch->pool, backend, NULL, err);
	if (ret)
		return ret;
	snprintf(launch->sandbox_id, sizeof(launch->sandbox_id), "%s", sandbox_id);
	ret = rund_pool_acquire(launch->pool, sandbox_id, limits, RUND_POOL_ACQUIRE_BOUND,
				&launch->slot, err);
	if (ret == -ENOENT && rund_pool_backend(launch->pool) == RUND_POOL_BACKEND_CGROUPFS) {
		snprintf(launch->note, sizeof(launch->note),
			 "no cgroup pool is initialised (rund-helper pool init makes one)");
		rund_pool_close(launch->pool);
		launch->pool = NULL;
		rund_error_clear(err);
		return 0;
	}
	if (ret) {
		rund_pool_close(launch->pool);
		launch->pool = NULL;
		return ret;
	}
	launch->claimed = true;
	launch->used = true;
	launch->backend = rund_pool_backend(launch->pool);

	ret = rund_pool_slot_dirs(launch->pool, sandbox_id, &launch->dirs, err);
	if (ret == -EOPNOTSUPP) {
		launch->method = "attach";
		rund_error_clear(err);
		ret = 0;
	} else if (!ret && launch->dirs.layout == RUND_LAYOUT_V2) {
		launch->method = "clone_into_cgroup";
	} else if (!ret) {
		launch->method = "launcher_thread";
		ret = launcher_start(launch, err);
	}
	launch->claim_ms = ms_since(&t0);
	if (ret) {
		struct rund_error ignored;

		rund_pool_launch_end(launch, &ignored);
		return ret;
	}
	return 0;
}

int rund_pool_launch_cgroup_fd(const struct rund_pool_launch *launch)
{
	return launch->claimed ? launch->dirs.dir_fd : -1;
}

int rund_pool_launch_call(struct rund_pool_launch *launch, int (*fn)(void *arg), void *arg,
			  struct rund_error *err)
{
	struct rund_pool_launcher *l = launch->launcher;
	int ret;

	if (!l)
		return fn(arg);
	ret = launcher_wait_ready(launch, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&l->lock);
	l->fn = fn;
	l->arg = arg;
	l->done = false;
	pthread_cond_broadcast(&l->cond);
	while (!l->done)
		pthread_cond_wait(&l->cond, &l->lock);
	ret = l->result;
	pthread_mutex_unlock(&l->lock);
	return ret;
}

int rund_pool_launch_spawned(struct rund_pool_launch *launch, pid_t pid, struct rund_error *err)
{
	if (!launch->claimed)
		return 0;
	if (!strcmp(launch->method, "attach"))
		return rund_pool_attach(launch->pool, launch->sandbox_id, pid, err);
	return rund_pool_mark_populated(launch->pool, launch->sandbox_id, err);
}

int rund_pool_launch_end(struct rund_pool_launch *launch, struct rund_error *err)
{
	int ret = 0;

	if (!launch->pool && !launch->launcher)
		return 0;

	/* A launcher still inside the slot leaves it first: release kills what the slot holds. */
	if (launch->launcher) {
		struct rund_error ignored;

		launcher_wait_ready(launch, &ignored);
		if (launch->launcher->in_slot)
			launcher_stop(launch);
	}
	if (launch->claimed) {
		ret = rund_pool_release(launch->pool, launch->sandbox_id, err);
		/* The slot may already be idle again: emptied slots are released by scans. */
		if (ret == -ENOENT) {
			rund_error_clear(err);
			ret = 0;
		}
	}
	launch->claimed = false;
	launcher_stop(launch);
	rund_slot_dirs_close(&launch->dirs);
	rund_pool_close(launch->pool);
	launch->pool = NULL;
	return ret;
}
