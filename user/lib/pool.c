// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * librund pool: backend selection, input checks shared by both backends,
 * names, and the cgroup mount lookup behind rund_pool_config_resolve().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "pool-internal.h"
#include "util.h"

static const char *const controller_names[] = { "memory", "cpu", "pids", "freezer" };

const char *rund_pool_backend_name(enum rund_pool_backend backend)
{
	switch (backend) {
	case RUND_POOL_BACKEND_AUTO: return "auto";
	case RUND_POOL_BACKEND_MODULE: return "module";
	case RUND_POOL_BACKEND_CGROUPFS: return "cgroupfs";
	}
	return "unknown";
}

int rund_pool_backend_from_env(enum rund_pool_backend *backend, bool *disabled)
{
	const char *s = getenv("RUND_POOL_BACKEND");

	*backend = RUND_POOL_BACKEND_AUTO;
	*disabled = false;
	if (!s || !*s || !strcmp(s, "auto"))
		return 0;
	if (!strcmp(s, "module"))
		*backend = RUND_POOL_BACKEND_MODULE;
	else if (!strcmp(s, "cgroupfs"))
		*backend = RUND_POOL_BACKEND_CGROUPFS;
	else if (!strcmp(s, "none"))
		*disabled = true;
	else
		return -EINVAL;
	return 0;
}

const char *rund_pool_layout_name(enum rund_layout layout)
{
	switch (layout) {
	case RUND_LAYOUT_V2: return "v2";
	case RUND_LAYOUT_V1: return "v1";
	case RUND_LAYOUT_V1_SPLIT: return "v1-split";
	default: return "none";
	}
}

const char *rund_pool_state_name(enum rund_slot_state state)
{
	switch (state) {
	case RUND_SLOT_IDLE: return "idle";
	case RUND_SLOT_CLAIMED: return "claimed";
	case RUND_SLOT_DRAINING: return "draining";
	case RUND_SLOT_BROKEN: return "broken";
	default: return "unknown";
	}
}

const char *rund_pool_op_name(enum rund_op op)
{
	switch (op) {
	case RUND_OP_ACQUIRE: return "acquire";
	case RUND_OP_ATTACH: return "attach";
	case RUND_OP_RELEASE: return "release";
	case RUND_OP_DRAIN: return "drain";
	default: return "unknown";
	}
}

const char *rund_pool_fail_name(enum rund_fail fail)
{
	switch (fail) {
	case RUND_FAIL_EXHAUSTED: return "exhausted";
	case RUND_FAIL_DUPLICATE: return "duplicate";
	case RUND_FAIL_NOT_FOUND: return "not_found";
	case RUND_FAIL_LIMITS: return "limits";
	case RUND_FAIL_RENAME: return "rename";
	case RUND_FAIL_ATTACH: return "attach";
	case RUND_FAIL_KILL: return "kill";
	case RUND_FAIL_DRAIN_TIMEOUT: return "drain_timeout";
	default: return "unknown";
	}
}

const char *rund_pool_reason_name(enum rund_event_reason reason)
{
	switch (reason) {
	case RUND_EVENT_ACQUIRED: return "acquired";
	case RUND_EVENT_RELEASED: return "released";
	case RUND_EVENT_SOCKET_CLOSED: return "owner_gone";
	case RUND_EVENT_EMPTIED: return "emptied";
	case RUND_EVENT_LEASE_EXPIRED: return "lease_expired";
	case RUND_EVENT_IDLE: return "idle";
	case RUND_EVENT_DRAIN_FAILED: return "drain_failed";
	case RUND_EVENT_POOL_DESTROYED: return "pool_destroyed";
	default: return "unknown";
	}
}

void rund_pool_controllers_str(uint32_t controllers, char *buf, size_t len)
{
	size_t i, n = 0;

	if (len)
		buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(controller_names); i++) {
		if (!(controllers & (1U << i)))
			continue;
		n += snprintf(buf + n, n < len ? len - n : 0, "%s%s",
			      n ? "," : "", controller_names[i]);
	}
}

int rund_pool_controllers_parse(const char *s, uint32_t *controllers,
				struct rund_error *err)
{
	char *copy, *word, *save = NULL;
	uint32_t mask = 0;
	size_t i;

	if (!strcmp(s, "all")) {
		*controllers = RUND_CTRL_ALL;
		return 0;
	}
	if (!strcmp(s, "none") || !*s) {
		*controllers = 0;
		return 0;
	}

	copy = strdup(s);
	if (!copy)
		return rund_error_set(err, ENOMEM, "parse controllers");
	for (word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < ARRAY_SIZE(controller_names); i++)
			if (!strcmp(word, controller_names[i]))
				break;
		if (i == ARRAY_SIZE(controller_names)) {
			rund_error_setx(err, EINVAL,
					"unknown controller '%s'; use a comma-separated list of memory, cpu, pids, freezer, or 'all' or 'none'",
					word);
			free(copy);
			return -EINVAL;
		}
		mask |= 1U << i;
	}
	free(copy);
	*controllers = mask;
	return 0;
}

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int check_name(const char *what, const char *s, size_t max,
		      struct rund_error *err)
{
	size_t len, i;

	if (!s || !*s)
		return rund_error_setx(err, EINVAL, "%s is empty; give 1 to %zu characters of [A-Za-z0-9_.-]",
				       what, max);
	len = strnlen(s, max + 1);
	if (len > max)
		return rund_error_setx(err, EINVAL, "%s '%.*s...' is longer than %zu characters; shorten it",
				       what, 16, s, max);
	for (i = 0; i < len; i++)
		if (!name_char_ok(s[i]))
			return rund_error_setx(err, EINVAL,
					       "%s '%s' has the invalid character '%c' at offset %zu; use only [A-Za-z0-9_.-]",
					       what, s, s[i], i);
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return rund_error_setx(err, EINVAL, "%s '%s' is not a valid directory name; choose another",
				       what, s);
	return 0;
}

int rund_pool_check_id(const char *sandbox_id, struct rund_error *err)
{
	return check_name("sandbox id", sandbox_id, RUND_SANDBOX_ID_MAX, err);
}

int rund_pool_check_limits(const struct rund_pool_limits *l, struct rund_error *err)
{
	if (!l)
		return 0;
	if (l->memory_max && l->memory_max < RUND_MEMORY_MIN_BYTES)
		return rund_error_setx(err, ERANGE, "memory limit %llu bytes is below the minimum of %llu bytes (1 MiB)",
				       (unsigned long long)l->memory_max,
				       (unsigned long long)RUND_MEMORY_MIN_BYTES);
	if (l->memory_max > (1ULL << 62))
		return rund_error_setx(err, ERANGE, "memory limit %llu bytes is above the maximum of 2^62 bytes; leave it unset for no limit",
				       (unsigned long long)l->memory_max);
	if (l->cpu_period_us && (l->cpu_period_us < RUND_CPU_PERIOD_MIN_US ||
				 l->cpu_period_us > RUND_CPU_PERIOD_MAX_US))
		return rund_error_setx(err, ERANGE, "CPU period %u us is out of range; use %u to %u us",
				       l->cpu_period_us, RUND_CPU_PERIOD_MIN_US,
				       RUND_CPU_PERIOD_MAX_US);
	if (l->cpu_quota_us && (l->cpu_quota_us < RUND_CPU_QUOTA_MIN_US ||
				l->cpu_quota_us > RUND_CPU_QUOTA_MAX_US))
		return rund_error_setx(err, ERANGE, "CPU quota %llu us is out of range; use %u to %llu us",
				       (unsigned long long)l->cpu_quota_us,
				       RUND_CPU_QUOTA_MIN_US,
				       (unsigned long long)RUND_CPU_QUOTA_MAX_US);
	if (l->cpu_period_us && !l->cpu_quota_us)
		return rund_error_setx(err, EINVAL, "CPU period %u us given without a CPU quota; set the quota too",
				       l->cpu_period_us);
	if (l->pids_max > RUND_PIDS_MAX)
		return rund_error_setx(err, ERANGE, "pids limit %u is above the maximum of %u",
				       l->pids_max, RUND_PIDS_MAX);
	return 0;
}

int rund_pool_check_config(const struct rund_pool_config *cfg, struct rund_error *err)
{
	uint32_t seen = 0, i;
	int ret;

	if (cfg->layout != RUND_LAYOUT_V2 && cfg->layout != RUND_LAYOUT_V1 &&
	    cfg->layout != RUND_LAYOUT_V1_SPLIT)
		return rund_error_setx(err, EINVAL, "pool layout %u is invalid; use v2, v1 or v1-split",
				       cfg->layout);
	if (cfg->size < 1 || cfg->size > RUND_POOL_MAX_SLOTS)
		return rund_error_setx(err, ERANGE, "pool size %u is out of range; use 1 to %u",
				       cfg->size, RUND_POOL_MAX_SLOTS);
	ret = check_name("slot prefix", cfg->prefix, RUND_PREFIX_MAX, err);
	if (ret)
		return ret;
	if (cfg->controllers & ~RUND_CTRL_ALL)
		return rund_error_setx(err, EINVAL, "controller bits 0x%x are unknown",
				       cfg->controllers & ~RUND_CTRL_ALL);
	if (cfg->lease_ms && (cfg->lease_ms < RUND_LEASE_MIN_MS ||
			      cfg->lease_ms > RUND_LEASE_MAX_MS))
		return rund_error_setx(err, ERANGE, "lease %u ms is out of range; use %u to %u ms",
				       cfg->lease_ms, RUND_LEASE_MIN_MS, RUND_LEASE_MAX_MS);
	if (cfg->layout == RUND_LAYOUT_V2 && (cfg->controllers & RUND_CTRL_FREEZER))
		return rund_error_setx(err, EINVAL, "freezer is a cgroup v1 controller; a v2 pool kills with cgroup.kill, so drop freezer from the controllers");
	if (cfg->layout != RUND_LAYOUT_V2 && !(cfg->controllers & RUND_CTRL_FREEZER))
		return rund_error_setx(err, EINVAL, "a %s pool needs the freezer controller to kill a slot's processes; add freezer to the controllers",
				       rund_pool_layout_name(cfg->layout));
	if (cfg->nr_hierarchies < 1 || cfg->nr_hierarchies > RUND_POOL_MAX_HIERARCHIES ||
	    (cfg->layout != RUND_LAYOUT_V1_SPLIT && cfg->nr_hierarchies != 1))
		return rund_error_setx(err, EINVAL, "a %s pool takes %s pool root directories, not %u",
				       rund_pool_layout_name(cfg->layout),
				       cfg->layout == RUND_LAYOUT_V1_SPLIT ? "1 to 8" : "exactly 1",
				       cfg->nr_hierarchies);

	for (i = 0; i < cfg->nr_hierarchies; i++) {
		const struct rund_pool_hierarchy *h = &cfg->hier[i];
		size_t len = strnlen(h->path, sizeof(h->path));

		if (len == 0 || len > RUND_PATH_MAX || h->path[0] != '/')
			return rund_error_setx(err, EINVAL, "pool root '%.*s' must be an absolute path of at most %u bytes",
					       (int)len, h->path, RUND_PATH_MAX);
		if (strstr(h->path, "/../") || strstr(h->path, "/./") ||
		    !strcmp(h->path, "/"))
			return rund_error_setx(err, EINVAL, "pool root '%s' must be a plain path below a cgroup mount", h->path);
		if (cfg->layout == RUND_LAYOUT_V1_SPLIT) {
			if (!h->controllers || (h->controllers & seen) ||
			    (h->controllers & ~cfg->controllers))
				return rund_error_setx(err, EINVAL, "hierarchy '%s' must serve at least one of the pool's controllers, each controller in one hierarchy only",
						       h->path);
			seen |= h->controllers;
		}
	}
	if (cfg->layout == RUND_LAYOUT_V1_SPLIT && seen != cfg->controllers)
		return rund_error_setx(err, EINVAL, "the hierarchies serve controllers 0x%x but the pool asks for 0x%x; give one hierarchy per controller",
				       seen, cfg->controllers);
	return 0;
}

/* A cgroup mount from /proc/self/mountinfo. */
struct cg_mount {
	char dir[RUND_PATH_MAX + 1];
	bool v2;
	uint32_t controllers;	/* v1: RUND_CTRL_* among its options */
	bool other;		/* v1: also has controllers rund does not manage */
};

static int read_cg_mounts(struct cg_mount *mounts, int max, struct rund_error *err)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int n = 0;

	if (!f)
		return rund_error_set(err, errno, "open /proc/self/mountinfo");
	while (n < max && fgets(line, sizeof(line), f)) {
		char mnt[RUND_PATH_MAX + 1], fstype[32], opts[1024], *sep, *o, *save = NULL;
		size_t i;

		sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %256s", mnt) != 1 ||
		    sscanf(sep + 3, "%31s %*s %1023s", fstype, opts) != 2)
			continue;
		if (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2"))
			continue;
		memset(&mounts[n], 0, sizeof(mounts[n]));
		snprintf(mounts[n].dir, sizeof(mounts[n].dir), "%s", mnt);
		mounts[n].v2 = !strcmp(fstype, "cgroup2");
		if (!mounts[n].v2) {
			for (o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
				for (i = 0; i < ARRAY_SIZE(controller_names); i++)
					if (!strcmp(o, controller_names[i]))
						break;
				if (i < ARRAY_SIZE(controller_names))
					mounts[n].controllers |= 1U << i;
				else if (strcmp(o, "rw") && strcmp(o, "ro") &&
					 strncmp(o, "name=", 5) && strncmp(o, "release_agent", 13) &&
					 strcmp(o, "clone_children") && strcmp(o, "noprefix") &&
					 strcmp(o, "xattr") && strcmp(o, "nsdelegate"))
					mounts[n].other = true;
			}
		}
		n++;
	}
	fclose(f);
	return n;
}

/* Read a v2 directory's cgroup.controllers as RUND_CTRL_* bits. */
static uint32_t v2_controllers(const char *dir)
{
	char path[RUND_PATH_MAX + 32], buf[512], *w, *save = NULL;
	uint32_t mask = 0;
	ssize_t n;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		for (i = 0; i < ARRAY_SIZE(controller_names); i++)
			if (!strcmp(w, controller_names[i]))
				mask |= 1U << i;
	return mask;
}

static int join_root(char *dst, const char *mount, const char *name,
		     struct rund_error *err)
{
	int n;

	if (name[0] == '/')
		n = snprintf(dst, RUND_PATH_MAX + 1, "%s", name);
	else
		n = snprintf(dst, RUND_PATH_MAX + 1, "%s/%s", mount, name);
	if (n < 0 || n > RUND_PATH_MAX)
		return rund_error_setx(err, ENAMETOOLONG, "pool root '%s/%s' is longer than %u bytes; choose a shorter name",
				       mount, name, RUND_PATH_MAX);
	return 0;
}

int rund_pool_config_resolve(struct rund_pool_config *cfg, const char *name,
			     enum rund_layout layout, uint32_t controllers,
			     struct rund_error *err)
{
	struct cg_mount mounts[32];
	const struct cg_mount *v2 = NULL, *comount = NULL;
	uint32_t v1_ctrls = controllers | RUND_CTRL_FREEZER;
	int n, i, ret;
	size_t c;

	if (!name || !*name || strstr(name, "..") || name[strlen(name) - 1] == '/')
		return rund_error_setx(err, EINVAL, "pool root name '%s' is invalid; give a name such as 'rund' or an absolute path",
				       name ? name : "");

	n = read_cg_mounts(mounts, ARRAY_SIZE(mounts), err);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (mounts[i].v2 && !v2)
			v2 = &mounts[i];
		if (!mounts[i].v2 && (mounts[i].controllers & v1_ctrls) == v1_ctrls && !comount)
			comount = &mounts[i];
	}

	if (layout == RUND_LAYOUT_UNSPEC) {
		if (v2 && !strcmp(v2->dir, "/sys/fs/cgroup") &&
		    (v2_controllers(v2->dir) & controllers) == (controllers & ~RUND_CTRL_FREEZER))
			layout = RUND_LAYOUT_V2;
		else if (comount)
			layout = RUND_LAYOUT_V1;
		else
			layout = v2 && n == 1 ? RUND_LAYOUT_V2 : RUND_LAYOUT_V1_SPLIT;
	}

	memset(cfg->hier, 0, sizeof(cfg->hier));
	cfg->nr_hierarchies = 0;
	cfg->layout = layout;
	switch (layout) {
	case RUND_LAYOUT_V2:
		if (!v2)
			return rund_error_setx(err, ENOENT, "no cgroup2 mount found in /proc/self/mountinfo; use a v1 layout");
		cfg->controllers = controllers & ~RUND_CTRL_FREEZER;
		cfg->nr_hierarchies = 1;
		cfg->hier[0].controllers = cfg->controllers;
		return join_root(cfg->hier[0].path, v2->dir, name, err);
	case RUND_LAYOUT_V1:
		if (!comount)
			return rund_error_setx(err, ENOENT, "no cgroup v1 hierarchy has all of the controllers co-mounted; use --layout v1-split");
		cfg->controllers = v1_ctrls;
		cfg->nr_hierarchies = 1;
		cfg->hier[0].controllers = v1_ctrls;
		return join_root(cfg->hier[0].path, comount->dir, name, err);
	case RUND_LAYOUT_V1_SPLIT:
		cfg->controllers = v1_ctrls;
		for (c = 0; c < ARRAY_SIZE(controller_names); c++) {
			uint32_t bit = 1U << c;
			int j;

			if (!(v1_ctrls & bit))
				continue;
			for (i = 0; i < n; i++)
				if (!mounts[i].v2 && (mounts[i].controllers & bit))
					break;
			if (i == n)
				return rund_error_setx(err, ENOENT, "no cgroup v1 hierarchy has the %s controller; drop it from --controllers",
						       controller_names[c]);
			for (j = 0; j < (int)cfg->nr_hierarchies; j++)
				if (!strncmp(cfg->hier[j].path, mounts[i].dir, strlen(mounts[i].dir)) &&
				    cfg->hier[j].path[strlen(mounts[i].dir)] == '/')
					break;
			if (j == (int)cfg->nr_hierarchies) {
				ret = join_root(cfg->hier[j].path, mounts[i].dir, name, err);
				if (ret)
					return ret;
				cfg->nr_hierarchies++;
			}
			cfg->hier[j].controllers |= bit;
		}
		if (name[0] == '/')
			return rund_error_setx(err, EINVAL, "a v1-split pool root is a name below each hierarchy, not the path '%s'",
					       name);
		return 0;
	default:
		return rund_error_setx(err, EINVAL, "pool layout %u is invalid", layout);
	}
}

int rund_pool_open(struct rund_pool **poolp, enum rund_pool_backend backend,
		   const char *state_dir, struct rund_error *err)
{
	struct rund_pool *pool;
	int ret;

	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return rund_error_set(err, ENOMEM, "allocate the pool handle");

	if (backend == RUND_POOL_BACKEND_AUTO || backend == RUND_POOL_BACKEND_MODULE) {
		ret = rund_pool_module_open(pool, err);
		if (!ret)
			goto out;
		if (backend == RUND_POOL_BACKEND_MODULE || ret != -ENOENT) {
			free(pool);
			return ret;
		}
	}

	ret = rund_pool_cgroupfs_open(pool, state_dir, err);
	if (ret) {
		free(pool);
		return ret;
	}
out:
	rund_error_clear(err);
	*poolp = pool;
	return 0;
}

void rund_pool_close(struct rund_pool *pool)
{
	if (!pool)
		return;
	pool->ops->close(pool);
	free(pool);
}

enum rund_pool_backend rund_pool_backend(const struct rund_pool *pool)
{
	return pool->backend;
}

int rund_pool_init(struct rund_pool *pool, const struct rund_pool_config *cfg,
		   struct rund_error *err)
{
	int ret = rund_pool_check_config(cfg, err);

	return ret ? ret : pool->ops->init(pool, cfg, err);
}

int rund_pool_resize(struct rund_pool *pool, uint32_t size, struct rund_error *err)
{
	if (size < 1 || size > RUND_POOL_MAX_SLOTS)
		return rund_error_setx(err, ERANGE, "pool size %u is out of range; use 1 to %u",
				       size, RUND_POOL_MAX_SLOTS);
	return pool->ops->resize(pool, size, err);
}

int rund_pool_destroy(struct rund_pool *pool, bool force, struct rund_error *err)
{
	return pool->ops->destroy(pool, force, err);
}

int rund_pool_acquire(struct rund_pool *pool, const char *sandbox_id,
		      const struct rund_pool_limits *limits, uint32_t flags,
		      struct rund_slot_info *info, struct rund_error *err)
{
	int ret = rund_pool_check_id(sandbox_id, err);

	if (!ret)
		ret = rund_pool_check_limits(limits, err);
	if (ret)
		return ret;
	if (flags & ~RUND_POOL_ACQUIRE_ALL)
		return rund_error_setx(err, EINVAL, "acquire flags 0x%x are unknown", flags);
	return pool->ops->acquire(pool, sandbox_id, limits, flags, info, err);
}

int rund_pool_attach(struct rund_pool *pool, const char *sandbox_id, pid_t pid,
		     struct rund_error *err)
{
	int ret = rund_pool_check_id(sandbox_id, err);

	if (ret)
		return ret;
	if (pid <= 0)
		return rund_error_setx(err, EINVAL, "pid %d is invalid; give a positive process id", (int)pid);
	return pool->ops->attach(pool, sandbox_id, pid, err);
}

int rund_pool_release(struct rund_pool *pool, const char *sandbox_id,
		      struct rund_error *err)
{
	int ret = rund_pool_check_id(sandbox_id, err);

	return ret ? ret : pool->ops->release(pool, sandbox_id, err);
}

int rund_pool_query(struct rund_pool *pool, const char *sandbox_id,
		    struct rund_slot_info *info, struct rund_error *err)
{
	int ret = rund_pool_check_id(sandbox_id, err);

	return ret ? ret : pool->ops->query(pool, sandbox_id, 0, info, err);
}

int rund_pool_query_index(struct rund_pool *pool, uint32_t index,
			  struct rund_slot_info *info, struct rund_error *err)
{
	return pool->ops->query(pool, NULL, index, info, err);
}

int rund_pool_list(struct rund_pool *pool, rund_pool_slot_fn fn, void *arg,
		   struct rund_error *err)
{
	return pool->ops->list(pool, fn, arg, err);
}

int rund_pool_stats(struct rund_pool *pool, struct rund_pool_stats *stats,
		    struct rund_error *err)
{
	memset(stats, 0, sizeof(*stats));
	return pool->ops->stats(pool, stats, err);
}

int rund_pool_scan(struct rund_pool *pool, struct rund_error *err)
{
	return pool->ops->scan ? pool->ops->scan(pool, err) : 0;
}

int rund_pool_mark_populated(struct rund_pool *pool, const char *sandbox_id,
			     struct rund_error *err)
{
	return pool->ops->mark_populated ? pool->ops->mark_populated(pool, sandbox_id, err) : 0;
}

int rund_pool_slot_dirs(struct rund_pool *pool, const char *sandbox_id,
			struct rund_slot_dirs *dirs, struct rund_error *err)
{
	int ret = rund_pool_check_id(sandbox_id, err);

	memset(dirs, 0, sizeof(*dirs));
	dirs->dir_fd = -1;
	return ret ? ret : pool->ops->slot_dirs(pool, sandbox_id, dirs, err);
}

void rund_slot_dirs_close(struct rund_slot_dirs *dirs)
{
	if (dirs->dir_fd >= 0)
		close(dirs->dir_fd);
	dirs->dir_fd = -1;
}

int rund_pool_enter_dirs(const struct rund_slot_dirs *dirs)
{
	uint32_t i;

	for (i = 0; i < dirs->nr_procs; i++) {
		int fd = open(dirs->procs[i], O_WRONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0)
			return -errno;
		n = write(fd, "0", 1);
		if (n < 0) {
			int e = errno;

			close(fd);
			return -e;
		}
		close(fd);
	}
	return 0;
}

int rund_pool_subscribe(struct rund_pool *pool, struct rund_error *err)
{
	if (!pool->ops->subscribe)
		return rund_error_setx(err, EOPNOTSUPP, "the %s backend has no notifications; it keeps no daemon to send them",
				       rund_pool_backend_name(pool->backend));
	return pool->ops->subscribe(pool, err);
}

int rund_pool_next_event(struct rund_pool *pool, int timeout_ms,
			 struct rund_pool_event *ev, struct rund_error *err)
{
	if (!pool->ops->next_event)
		return rund_error_setx(err, EOPNOTSUPP, "the %s backend has no notifications",
				       rund_pool_backend_name(pool->backend));
	return pool->ops->next_event(pool, timeout_ms, ev, err);
}
