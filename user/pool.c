// SPDX-License-Identifier: GPL-2.0-or-later
/* rund-helper pool: drive the node's cgroup pool (module or cgroupfs backend). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "pool.h"
#include "util.h"
#include "verbs.h"

struct pool_opts {
	enum rund_pool_backend backend;
	const char *state_dir;
	bool json;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rund-helper pool COMMAND [OPTIONS]\n"
		"\n"
		"COMMAND := init [--name NAME] [--layout v2|v1|v1-split] [--size N] [--prefix P]\n"
		"                [--controllers LIST] [--lease-ms MS]\n"
		"         | resize --size N\n"
		"         | acquire ID [--memory MIB] [--cpu-quota US] [--cpu-period US] [--pids N] [--bound]\n"
		"         | attach ID PID\n"
		"         | release ID                 (kills the processes left in the slot)\n"
		"         | show ID | show --index N\n"
		"         | list\n"
		"         | stats\n"
		"         | destroy [--force]\n"
		"         | monitor [--count N] [--timeout-ms MS]\n"
		"\n"
		"Options of every command:\n"
		"  --backend auto|module|cgroupfs  pool backend (default auto: the rund module when\n"
		"                                  loaded, else the cgroupfs backend)\n"
		"  --state DIR                     cgroupfs state directory (default $RUND_POOL_STATE_DIR\n"
		"                                  or " RUND_POOL_STATE_DIR ")\n"
		"  --json                          print one JSON object\n"
		"\n"
		"init options:\n"
		"  --name NAME        pool root below each cgroup mount, or an absolute path (default %s)\n"
		"  --layout L         v2, v1 (co-mounted controllers) or v1-split (one hierarchy per\n"
		"                     controller); default: what the host's mounts offer\n"
		"  --size N           number of slots, 1 to %u (default %u)\n"
		"  --prefix P         idle slot directory prefix (default %s)\n"
		"  --controllers L    comma-separated memory,cpu,pids,freezer, 'all' or 'none'\n"
		"                     (default all; v1 layouts always add freezer, v2 never has it)\n"
		"  --lease-ms MS      release a claim that stays empty this long, %u to %u (default %u)\n"
		"\n"
		"acquire claims a slot for sandbox ID ([A-Za-z0-9_.-], at most %u characters). The claim\n"
		"outlives this command and returns to idle once its cgroup has had processes and is empty\n"
		"again. --bound ties it to this command's process instead, which ends with the command.\n"
		"  --memory MIB       memory limit in MiB\n"
		"  --cpu-quota US     CPU time per period in microseconds, %u to %llu\n"
		"  --cpu-period US    CPU period in microseconds, %u to %u (default %u)\n"
		"  --pids N           maximum number of tasks, 1 to %u\n"
		"\n"
		"monitor prints slot state changes from the module's multicast group, one line\n"
		"(or JSON object) each, until N events arrived (--count, default: no limit) or\n"
		"none arrived for MS milliseconds (--timeout-ms, default: wait forever).\n",
		RUND_POOL_DEFAULT_NAME, RUND_POOL_MAX_SLOTS, RUND_POOL_DEFAULT_SIZE,
		RUND_POOL_DEFAULT_PREFIX, RUND_LEASE_MIN_MS, RUND_LEASE_MAX_MS,
		RUND_LEASE_DEFAULT_MS, RUND_SANDBOX_ID_MAX, RUND_CPU_QUOTA_MIN_US,
		(unsigned long long)RUND_CPU_QUOTA_MAX_US, RUND_CPU_PERIOD_MIN_US,
		RUND_CPU_PERIOD_MAX_US, RUND_CPU_PERIOD_DEFAULT_US, RUND_PIDS_MAX);
}

/* Parse a decimal integer in [min, max]; the message names the option and the range. */
static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		goto out_invalid;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		goto out_invalid;
	*out = v;
	return 0;

out_invalid:
	fprintf(stderr, "rund-helper pool: invalid %s '%s': expected an integer from %llu to %llu\n",
		opt, s ? s : "", (unsigned long long)min, (unsigned long long)max);
	return -EINVAL;
}

static int fail(const struct pool_opts *o, const char *cmd, struct rund_error *err)
{
	if (o->json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "command", json_object_new_string(cmd));
		json_object_object_add(j, "backend",
				       json_object_new_string(rund_pool_backend_name(o->backend)));
		json_object_object_add(j, "error", json_object_new_string(err->msg));
		json_object_object_add(j, "errno", json_object_new_int(err->code));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	}
	fprintf(stderr, "rund-helper pool %s: %s\n", cmd, err->msg);
	return RUND_EXIT_FAILED;
}

static json_object *slot_json(const struct rund_slot_info *s)
{
	json_object *j = json_object_new_object();
	json_object *l = json_object_new_object();

	json_object_object_add(j, "index", json_object_new_int64(s->index));
	json_object_object_add(j, "state", json_object_new_string(rund_pool_state_name(s->state)));
	if (s->state != RUND_SLOT_IDLE) {
		json_object_object_add(j, "sandbox_id", json_object_new_string(s->sandbox_id));
		json_object_object_add(j, "bound", json_object_new_boolean(s->flags & RUND_POOL_ACQUIRE_BOUND));
		json_object_object_add(j, "owner", json_object_new_int64(s->owner));
		json_object_object_add(j, "claimed_ns", json_object_new_int64((int64_t)s->claimed_ns));
		json_object_object_add(j, "populated", json_object_new_boolean(s->populated));
	}
	json_object_object_add(j, "path", json_object_new_string(s->path));
	json_object_object_add(l, "memory_max", json_object_new_int64((int64_t)s->limits.memory_max));
	json_object_object_add(l, "cpu_quota_us", json_object_new_int64((int64_t)s->limits.cpu_quota_us));
	json_object_object_add(l, "cpu_period_us", json_object_new_int64(s->limits.cpu_period_us));
	json_object_object_add(l, "pids_max", json_object_new_int64(s->limits.pids_max));
	json_object_object_add(j, "limits", l);
	return j;
}

static void slot_text(const struct rund_slot_info *s)
{
	printf("%5u  %-8s  %-24s  %s", s->index, rund_pool_state_name(s->state),
	       s->state == RUND_SLOT_IDLE ? "-" : s->sandbox_id, s->path);
	if (s->state != RUND_SLOT_IDLE) {
		printf("  owner=%u%s%s", s->owner, s->flags & RUND_POOL_ACQUIRE_BOUND ? " bound" : "",
		       s->populated ? " populated" : "");
		if (s->limits.memory_max)
			printf(" memory=%" PRIu64, s->limits.memory_max);
		if (s->limits.cpu_quota_us)
			printf(" cpu=%" PRIu64 "/%u", s->limits.cpu_quota_us,
			       s->limits.cpu_period_us ? s->limits.cpu_period_us : RUND_CPU_PERIOD_DEFAULT_US);
		if (s->limits.pids_max)
			printf(" pids=%u", s->limits.pids_max);
	}
	printf("\n");
}

static void print_result(const struct pool_opts *o, const char *cmd, json_object *extra,
			 const char *text)
{
	if (o->json) {
		json_object *j = extra ? extra : json_object_new_object();

		json_object_object_add(j, "command", json_object_new_string(cmd));
		json_object_object_add(j, "backend",
				       json_object_new_string(rund_pool_backend_name(o->backend)));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
		return;
	}
	if (extra)
		json_object_put(extra);
	if (text)
		printf("%s [backend %s]\n", text, rund_pool_backend_name(o->backend));
}

enum {
	OPT_BACKEND = 1000, OPT_STATE, OPT_JSON, OPT_NAME, OPT_LAYOUT, OPT_SIZE, OPT_PREFIX,
	OPT_CONTROLLERS, OPT_LEASE, OPT_MEMORY, OPT_CPU_QUOTA, OPT_CPU_PERIOD, OPT_PIDS,
	OPT_BOUND, OPT_INDEX, OPT_FORCE, OPT_HELP, OPT_COUNT, OPT_TIMEOUT,
};

static const struct option long_opts[] = {
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "layout", required_argument, NULL, OPT_LAYOUT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "controllers", required_argument, NULL, OPT_CONTROLLERS },
	{ "lease-ms", required_argument, NULL, OPT_LEASE },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "cpu-quota", required_argument, NULL, OPT_CPU_QUOTA },
	{ "cpu-period", required_argument, NULL, OPT_CPU_PERIOD },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "bound", no_argument, NULL, OPT_BOUND },
	{ "index", required_argument, NULL, OPT_INDEX },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ 0 },
};

/* Options that each command accepts besides the common ones. */
static bool option_allowed(const char *cmd, int opt)
{
	switch (opt) {
	case OPT_BACKEND: case OPT_STATE: case OPT_JSON: case OPT_HELP:
		return true;
	case OPT_NAME: case OPT_LAYOUT: case OPT_PREFIX: case OPT_CONTROLLERS: case OPT_LEASE:
		return !strcmp(cmd, "init");
	case OPT_SIZE:
		return !strcmp(cmd, "init") || !strcmp(cmd, "resize");
	case OPT_MEMORY: case OPT_CPU_QUOTA: case OPT_CPU_PERIOD: case OPT_PIDS: case OPT_BOUND:
		return !strcmp(cmd, "acquire");
	case OPT_INDEX:
		return !strcmp(cmd, "show");
	case OPT_FORCE:
		return !strcmp(cmd, "destroy");
	case OPT_COUNT: case OPT_TIMEOUT:
		return !strcmp(cmd, "monitor");
	}
	return false;
}

struct list_ctx {
	const struct pool_opts *o;
	json_object *arr;
	bool header_done;
};

/* The text header comes with the first slot, so a failed list prints only the error. */
static void list_header(struct list_ctx *c)
{
	if (c->o->json || c->header_done)
		return;
	printf("index  state     sandbox                   path  [backend %s]\n",
	       rund_pool_backend_name(c->o->backend));
	c->header_done = true;
}

static int list_one(const struct rund_slot_info *s, void *arg)
{
	struct list_ctx *c = arg;

	list_header(c);
	if (c->o->json)
		json_object_array_add(c->arr, slot_json(s));
	else
		slot_text(s);
	return 0;
}

static json_object *stats_json(const struct rund_pool_stats *st)
{
	json_object *j = json_object_new_object(), *ops = json_object_new_object();
	json_object *fails = json_object_new_object(), *autos = json_object_new_object();
	char ctrls[64];
	int i, b;

	rund_pool_controllers_str(st->controllers, ctrls, sizeof(ctrls));
	json_object_object_add(j, "layout", json_object_new_string(rund_pool_layout_name(st->layout)));
	json_object_object_add(j, "root", json_object_new_string(st->root));
	json_object_object_add(j, "prefix", json_object_new_string(st->prefix));
	json_object_object_add(j, "controllers", json_object_new_string(ctrls));
	json_object_object_add(j, "lease_ms", json_object_new_int64(st->lease_ms));
	json_object_object_add(j, "size", json_object_new_int64(st->size));
	json_object_object_add(j, "idle", json_object_new_int64(st->idle));
	json_object_object_add(j, "claimed", json_object_new_int64(st->claimed));
	json_object_object_add(j, "draining", json_object_new_int64(st->draining));
	json_object_object_add(j, "broken", json_object_new_int64(st->broken));
	for (i = 0; i <= RUND_OP_MAX; i++) {
		json_object *o = json_object_new_object(), *h = json_object_new_array();

		json_object_object_add(o, "count", json_object_new_int64((int64_t)st->op[i].count));
		json_object_object_add(o, "failed", json_object_new_int64((int64_t)st->op[i].failed));
		for (b = 0; b < RUND_HIST_BUCKETS; b++)
			json_object_array_add(h, json_object_new_int64((int64_t)st->op[i].hist[b]));
		json_object_object_add(o, "hist_log2_ns", h);
		json_object_object_add(ops, rund_pool_op_name(i), o);
	}
	json_object_object_add(j, "ops", ops);
	for (i = 0; i <= RUND_FAIL_MAX; i++)
		json_object_object_add(fails, rund_pool_fail_name(i),
				       json_object_new_int64((int64_t)st->fail[i]));
	json_object_object_add(j, "failures", fails);
	for (i = RUND_EVENT_SOCKET_CLOSED; i <= RUND_EVENT_DRAIN_FAILED; i++)
		if (i != RUND_EVENT_IDLE)
			json_object_object_add(autos, rund_pool_reason_name(i),
					       json_object_new_int64((int64_t)st->auto_released[i]));
	json_object_object_add(j, "auto_released", autos);
	return j;
}

static void stats_text(const struct rund_pool_stats *st)
{
	char ctrls[64];
	int i, b;

	rund_pool_controllers_str(st->controllers, ctrls, sizeof(ctrls));
	printf("layout %s, root %s, prefix %s, controllers %s, lease %u ms\n",
	       rund_pool_layout_name(st->layout), st->root, st->prefix,
	       ctrls[0] ? ctrls : "none", st->lease_ms);
	printf("slots %u: %u idle, %u claimed, %u draining, %u broken\n", st->size, st->idle,
	       st->claimed, st->draining, st->broken);
	for (i = 0; i <= RUND_OP_MAX; i++) {
		printf("%-8s count %" PRIu64 " failed %" PRIu64 "  latency:", rund_pool_op_name(i),
		       st->op[i].count, st->op[i].failed);
		for (b = 0; b < RUND_HIST_BUCKETS; b++)
			if (st->op[i].hist[b])
				printf(" [%.1fus,%s)=%" PRIu64, (double)(1ULL << b) / 1000,
				       b == RUND_HIST_BUCKETS - 1 ? "inf" : "x2", st->op[i].hist[b]);
		printf("\n");
	}
	printf("failures:");
	for (i = 0; i <= RUND_FAIL_MAX; i++)
		printf(" %s=%" PRIu64, rund_pool_fail_name(i), st->fail[i]);
	printf("\nauto-released:");
	for (i = RUND_EVENT_SOCKET_CLOSED; i <= RUND_EVENT_DRAIN_FAILED; i++)
		if (i != RUND_EVENT_IDLE)
			printf(" %s=%" PRIu64, rund_pool_reason_name(i), st->auto_released[i]);
	printf("\n");
}

/* Print slot events until count arrived (0: no limit) or none came for timeout_ms. */
static int monitor(const struct pool_opts *o, struct rund_pool *pool, uint64_t count,
		   int timeout_ms, struct rund_error *err)
{
	struct rund_pool_event ev;
	uint64_t seen = 0;
	int ret;

	ret = rund_pool_subscribe(pool, err);
	if (ret)
		return ret;
	if (!o->json)
		printf("monitor: waiting for slot events [backend %s]\n",
		       rund_pool_backend_name(o->backend));
	fflush(stdout);
	while (!count || seen < count) {
		ret = rund_pool_next_event(pool, timeout_ms, &ev, err);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (timeout_ms >= 0)
				break;
			continue;
		}
		seen++;
		if (o->json) {
			json_object *j = slot_json(&ev.slot);

			json_object_object_add(j, "event",
					       json_object_new_string(rund_pool_reason_name(ev.reason)));
			printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
			json_object_put(j);
		} else {
			printf("%-14s ", rund_pool_reason_name(ev.reason));
			slot_text(&ev.slot);
		}
		fflush(stdout);
	}
	return 0;
}

static int parse_layout(const char *s, enum rund_layout *layout)
{
	if (!strcmp(s, "v2"))
		*layout = RUND_LAYOUT_V2;
	else if (!strcmp(s, "v1"))
		*layout = RUND_LAYOUT_V1;
	else if (!strcmp(s, "v1-split"))
		*layout = RUND_LAYOUT_V1_SPLIT;
	else if (!strcmp(s, "auto"))
		*layout = RUND_LAYOUT_UNSPEC;
	else {
		fprintf(stderr, "rund-helper pool: invalid --layout '%s': use v2, v1, v1-split or auto\n", s);
		return -EINVAL;
	}
	return 0;
}

int cmd_pool(int argc, char **argv)
{
	struct pool_opts o = { .backend = RUND_POOL_BACKEND_AUTO };
	struct rund_pool_config cfg = { .size = RUND_POOL_DEFAULT_SIZE };
	struct rund_pool_limits lim = { 0 };
	const char *cmd, *name = RUND_POOL_DEFAULT_NAME, *prefix = RUND_POOL_DEFAULT_PREFIX;
	enum rund_layout layout = RUND_LAYOUT_UNSPEC;
	uint32_t controllers = RUND_CTRL_ALL, flags = 0;
	bool have_size = false, have_index = false, force = false;
	uint64_t v, size = 0, index = 0, count = 0, timeout_ms = 0;
	bool have_timeout = false;
	struct rund_error err = { 0 };
	struct rund_pool *pool = NULL;
	char text[1024];
	int c, i, ret, nargs;
	char **args;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? RUND_EXIT_FAILED : 0;
	}
	/* The command may follow common options: move it to argv[1]. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const struct option *lo;

		for (lo = long_opts; lo->name; lo++)
			if (!strcmp(argv[i] + 2, lo->name) && lo->has_arg == required_argument)
				i++;
	}
	if (i >= argc) {
		usage(stderr);
		return RUND_EXIT_FAILED;
	}
	cmd = argv[i];
	memmove(argv + 2, argv + 1, (i - 1) * sizeof(*argv));
	argv[1] = (char *)cmd;
	if (strcmp(cmd, "init") && strcmp(cmd, "resize") && strcmp(cmd, "acquire") &&
	    strcmp(cmd, "release") && strcmp(cmd, "attach") && strcmp(cmd, "show") &&
	    strcmp(cmd, "list") && strcmp(cmd, "stats") && strcmp(cmd, "destroy") &&
	    strcmp(cmd, "monitor")) {
		fprintf(stderr, "rund-helper pool: unknown command '%s'; run 'rund-helper pool --help'\n", cmd);
		return RUND_EXIT_FAILED;
	}

	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "", long_opts, NULL)) != -1) {
		if (c == '?')
			return RUND_EXIT_FAILED;
		if (!option_allowed(cmd, c)) {
			fprintf(stderr, "rund-helper pool %s: option '%s' does not apply to this command; run 'rund-helper pool --help'\n",
				cmd, argv[optind]);
			return RUND_EXIT_FAILED;
		}
		switch (c) {
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_BACKEND:
			if (!strcmp(optarg, "auto"))
				o.backend = RUND_POOL_BACKEND_AUTO;
			else if (!strcmp(optarg, "module"))
				o.backend = RUND_POOL_BACKEND_MODULE;
			else if (!strcmp(optarg, "cgroupfs"))
				o.backend = RUND_POOL_BACKEND_CGROUPFS;
			else {
				fprintf(stderr, "rund-helper pool: invalid --backend '%s': use auto, module or cgroupfs\n",
					optarg);
				return RUND_EXIT_FAILED;
			}
			break;
		case OPT_STATE:
			o.state_dir = optarg;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_LAYOUT:
			if (parse_layout(optarg, &layout))
				return RUND_EXIT_FAILED;
			break;
		case OPT_SIZE:
			if (parse_u64("--size", optarg, 1, RUND_POOL_MAX_SLOTS, &size))
				return RUND_EXIT_FAILED;
			have_size = true;
			break;
		case OPT_PREFIX:
			prefix = optarg;
			break;
		case OPT_CONTROLLERS:
			ret = rund_pool_controllers_parse(optarg, &controllers, &err);
			if (ret) {
				fprintf(stderr, "rund-helper pool: invalid --controllers: %s\n", err.msg);
				return RUND_EXIT_FAILED;
			}
			break;
		case OPT_LEASE:
			if (parse_u64("--lease-ms", optarg, RUND_LEASE_MIN_MS, RUND_LEASE_MAX_MS, &v))
				return RUND_EXIT_FAILED;
			cfg.lease_ms = (uint32_t)v;
			break;
		case OPT_MEMORY:
			if (parse_u64("--memory (MiB)", optarg, 1, 1ULL << 42, &v))
				return RUND_EXIT_FAILED;
			lim.memory_max = v << 20;
			break;
		case OPT_CPU_QUOTA:
			if (parse_u64("--cpu-quota (us)", optarg, RUND_CPU_QUOTA_MIN_US,
				      RUND_CPU_QUOTA_MAX_US, &lim.cpu_quota_us))
				return RUND_EXIT_FAILED;
			break;
		case OPT_CPU_PERIOD:
			if (parse_u64("--cpu-period (us)", optarg, RUND_CPU_PERIOD_MIN_US,
				      RUND_CPU_PERIOD_MAX_US, &v))
				return RUND_EXIT_FAILED;
			lim.cpu_period_us = (uint32_t)v;
			break;
		case OPT_PIDS:
			if (parse_u64("--pids", optarg, RUND_PIDS_MIN, RUND_PIDS_MAX, &v))
				return RUND_EXIT_FAILED;
			lim.pids_max = (uint32_t)v;
			break;
		case OPT_BOUND:
			flags |= RUND_POOL_ACQUIRE_BOUND;
			break;
		case OPT_INDEX:
			if (parse_u64("--index", optarg, 0, RUND_POOL_MAX_SLOTS - 1, &index))
				return RUND_EXIT_FAILED;
			have_index = true;
			break;
		case OPT_FORCE:
			force = true;
			break;
		case OPT_COUNT:
			if (parse_u64("--count", optarg, 1, 1000000000, &count))
				return RUND_EXIT_FAILED;
			break;
		case OPT_TIMEOUT:
			if (parse_u64("--timeout-ms", optarg, 1, 86400000, &timeout_ms))
				return RUND_EXIT_FAILED;
			have_timeout = true;
			break;
		}
	}
	args = argv + 1 + optind;
	nargs = argc - 1 - optind;

	/* Positional arguments: ID for acquire/release/show, ID PID for attach. */
	{
		int want = !strcmp(cmd, "attach") ? 2 :
			   (!strcmp(cmd, "acquire") || !strcmp(cmd, "release") ||
			    (!strcmp(cmd, "show") && !have_index)) ? 1 : 0;

		if (!strcmp(cmd, "resize") && !have_size && nargs == 1) {
			if (parse_u64("size", args[0], 1, RUND_POOL_MAX_SLOTS, &size))
				return RUND_EXIT_FAILED;
			have_size = true;
			nargs = 0;
		}
		if (nargs != want) {
			fprintf(stderr, "rund-helper pool %s: expected %d argument%s, got %d; run 'rund-helper pool --help'\n",
				cmd, want, want == 1 ? "" : "s", nargs);
			return RUND_EXIT_FAILED;
		}
		if (want >= 1 && rund_pool_check_id(args[0], &err)) {
			fprintf(stderr, "rund-helper pool %s: %s\n", cmd, err.msg);
			return RUND_EXIT_FAILED;
		}
	}
	if (!strcmp(cmd, "resize") && !have_size) {
		fprintf(stderr, "rund-helper pool resize: give the new size with --size N\n");
		return RUND_EXIT_FAILED;
	}

	ret = rund_pool_open(&pool, o.backend, o.state_dir, &err);
	if (ret)
		return fail(&o, cmd, &err);
	o.backend = rund_pool_backend(pool);

	if (!strcmp(cmd, "init")) {
		ret = rund_pool_config_resolve(&cfg, name, layout, controllers, &err);
		if (!ret) {
			if (have_size)
				cfg.size = (uint32_t)size;
			snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefix);
			if (strlen(prefix) > RUND_PREFIX_MAX)
				ret = rund_error_setx(&err, EINVAL, "slot prefix '%s' is longer than %u characters; shorten --prefix",
						      prefix, RUND_PREFIX_MAX);
			else
				ret = rund_pool_init(pool, &cfg, &err);
		}
		if (!ret) {
			json_object *j = json_object_new_object(), *h = json_object_new_array();
			char ctrls[64];
			uint32_t i;

			rund_pool_controllers_str(cfg.controllers, ctrls, sizeof(ctrls));
			for (i = 0; i < cfg.nr_hierarchies; i++)
				json_object_array_add(h, json_object_new_string(cfg.hier[i].path));
			json_object_object_add(j, "layout", json_object_new_string(rund_pool_layout_name(cfg.layout)));
			json_object_object_add(j, "roots", h);
			json_object_object_add(j, "size", json_object_new_int64(cfg.size));
			json_object_object_add(j, "controllers", json_object_new_string(ctrls));
			snprintf(text, sizeof(text), "init: %s pool of %u slots at %s%s, controllers %s",
				 rund_pool_layout_name(cfg.layout), cfg.size, cfg.hier[0].path,
				 cfg.nr_hierarchies > 1 ? " (and one root per hierarchy)" : "",
				 ctrls[0] ? ctrls : "none");
			print_result(&o, cmd, j, text);
		}
	} else if (!strcmp(cmd, "resize")) {
		ret = rund_pool_resize(pool, (uint32_t)size, &err);
		if (!ret) {
			json_object *j = json_object_new_object();

			json_object_object_add(j, "size", json_object_new_int64((int64_t)size));
			snprintf(text, sizeof(text), "resize: %" PRIu64 " slots", size);
			print_result(&o, cmd, j, text);
		}
	} else if (!strcmp(cmd, "acquire")) {
		struct rund_slot_info info;

		ret = rund_pool_acquire(pool, args[0], &lim, flags, &info, &err);
		if (!ret) {
			snprintf(text, sizeof(text), "acquire: sandbox %s has slot %u at %s",
				 args[0], info.index, info.path);
			print_result(&o, cmd, slot_json(&info), text);
		}
	} else if (!strcmp(cmd, "attach")) {
		uint64_t pid;

		if (parse_u64("pid", args[1], 1, 4194304, &pid)) {
			rund_pool_close(pool);
			return RUND_EXIT_FAILED;
		}
		ret = rund_pool_attach(pool, args[0], (pid_t)pid, &err);
		if (!ret) {
			json_object *j = json_object_new_object();

			json_object_object_add(j, "sandbox_id", json_object_new_string(args[0]));
			json_object_object_add(j, "pid", json_object_new_int64((int64_t)pid));
			snprintf(text, sizeof(text), "attach: process %" PRIu64 " is in sandbox %s",
				 pid, args[0]);
			print_result(&o, cmd, j, text);
		}
	} else if (!strcmp(cmd, "release")) {
		ret = rund_pool_release(pool, args[0], &err);
		if (!ret) {
			json_object *j = json_object_new_object();

			json_object_object_add(j, "sandbox_id", json_object_new_string(args[0]));
			snprintf(text, sizeof(text), "release: sandbox %s released, its slot is idle", args[0]);
			print_result(&o, cmd, j, text);
		}
	} else if (!strcmp(cmd, "show")) {
		struct rund_slot_info info;

		if (have_index)
			ret = rund_pool_query_index(pool, (uint32_t)index, &info, &err);
		else
			ret = rund_pool_query(pool, args[0], &info, &err);
		if (!ret) {
			if (o.json) {
				print_result(&o, cmd, slot_json(&info), NULL);
			} else {
				slot_text(&info);
				printf("[backend %s]\n", rund_pool_backend_name(o.backend));
			}
		}
	} else if (!strcmp(cmd, "list")) {
		struct list_ctx lc = { .o = &o, .arr = json_object_new_array() };

		ret = rund_pool_list(pool, list_one, &lc, &err);
		if (!ret)
			list_header(&lc);
		if (!ret && o.json) {
			json_object *j = json_object_new_object();

			json_object_object_add(j, "slots", lc.arr);
			lc.arr = NULL;
			print_result(&o, cmd, j, NULL);
		}
		if (lc.arr)
			json_object_put(lc.arr);
	} else if (!strcmp(cmd, "stats")) {
		struct rund_pool_stats st;

		ret = rund_pool_stats(pool, &st, &err);
		if (!ret) {
			if (o.json) {
				print_result(&o, cmd, stats_json(&st), NULL);
			} else {
				printf("backend %s\n", rund_pool_backend_name(o.backend));
				stats_text(&st);
			}
		}
	} else if (!strcmp(cmd, "monitor")) {
		ret = monitor(&o, pool, count, have_timeout ? (int)timeout_ms : -1, &err);
	} else {
		ret = rund_pool_destroy(pool, force, &err);
		if (!ret)
			print_result(&o, cmd, NULL, "destroy: pool removed");
	}

	rund_pool_close(pool);
	return ret ? fail(&o, cmd, &err) : 0;
}
