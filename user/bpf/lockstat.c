// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * rund-lockstat: where the kernel waits for locks, per lock and per caller.
 *
 * Attaches BPF programs to the lock:contention_begin and contention_end
 * tracepoints (tp_btf), which cover spinlocks, rwlocks, mutexes, rwsems and
 * percpu rwsems alike, and reports count, total, max and average wait per
 * lock and per kernel stack. It runs for a duration, until interrupted, or
 * around a command whose exit status it passes through.
 *
 * Exit status:
 *   0        a traced period ended
 *   N        with a command: its exit status, or 128+N when signal N killed it
 *   64       invalid options
 *   69       no kernel BTF or contention tracepoints, or load or attach rejected
 *   125      the tool itself failed
 *   126, 127 the command cannot be executed, or was not found
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "ksyms.h"
#include "lockstat.h"
#include "lockstat.skel.h"
#include "lockstat_report.h"

#define LOCKSTAT_EXIT_USAGE 64		/* EX_USAGE */
#define LOCKSTAT_EXIT_UNSUPPORTED 69	/* EX_UNAVAILABLE */
#define LOCKSTAT_EXIT_FAILED 125
#define LOCKSTAT_EXIT_CANNOT_INVOKE 126
#define LOCKSTAT_EXIT_NOT_FOUND 127

#define VMLINUX_BTF_PATH "/sys/kernel/btf/vmlinux"
#define KALLSYMS_PATH "/proc/kallsyms"
#define MAX_DURATION_S (7.0 * 24 * 3600)

static struct env {
	double duration_s;	/* 0: until interrupted or the command exits */
	__u32 tgid;
	__u32 tid;
	const char *cgroup_path;
	const char *lock_arg;	/* address or symbol, resolved after parsing */
	__u32 class_mask;
	const char *output_path;
	bool json;
	bool verbose;
	bool bpf_stats;
	char **command;
	struct lockstat_report_options report;
} env = {
	.report = {
		.top_locks = 10,
		.top_stacks = 3,
		.text_depth = 4,
		.sort = LOCKSTAT_SORT_TOTAL,
	},
};

static volatile sig_atomic_t exiting;
static volatile pid_t child_pid;
static bool command_started;

const char *argp_program_version = "rund-lockstat 0.1";
const char argp_program_doc[] =
"Trace kernel lock contention: how long tasks wait for which lock, and from where.\n"
"\v"
"Without -d or a command it traces until interrupted (Ctrl-C or SIGTERM).\n"
"With a command it attaches, runs the command, stops when it exits and exits\n"
"with its status.\n"
"\n"
"Lock classes for -k: spin, rwlock, mutex, rwsem, percpu-rwsem, rtmutex.\n"
"Without data symbols in /proc/kallsyms, lock names are inferred from the\n"
"waiting function and printed as \"likely NAME (inferred from caller F)\".\n"
"\n"
"Exit status: 64 invalid options, 69 kernel support missing or refused,\n"
"125 tool failure; with a command, its status, 126 or 127 if it cannot run.\n"
"\n"
"Examples:\n"
"  rund-lockstat -d 5                    # all contention for 5 seconds\n"
"  rund-lockstat -C 'cgroup_*' -- ./bench.sh\n"
"                                        # stacks through cgroup code while bench.sh runs\n"
"  rund-lockstat -k mutex,percpu-rwsem -H -d 10\n"
"  rund-lockstat -c /sys/fs/cgroup/unified/job -j -o out.json -d 5\n";

enum {
	OPT_BPF_STATS = 0x100,	/* long-only options start above the character range */
};

static const struct argp_option options[] = {
	{ NULL, 0, NULL, 0, "What to trace:", 1 },
	{ "duration", 'd', "SECONDS", 0, "Trace for SECONDS (a positive number, fractions allowed)", 1 },
	{ "pid", 'p', "PID", 0, "Only waits of process PID (all its threads)", 1 },
	{ "tid", 't', "TID", 0, "Only waits of thread TID", 1 },
	{ "cgroup", 'c', "PATH", 0,
	  "Only waits of tasks in this cgroup2 directory or below it (cgroup v1 paths are rejected)", 1 },
	{ "lock", 'L', "ADDR|SYMBOL", 0, "Only this lock: a hex address (0x...) or a data symbol", 1 },
	{ "class", 'k', "LIST", 0, "Only these lock classes, comma-separated", 1 },
	{ "caller", 'C', "PATTERN", 0,
	  "Only stacks with a function matching the fnmatch(3) PATTERN (repeatable)", 1 },
	{ NULL, 0, NULL, 0, "Report:", 2 },
	{ "locks", 'n', "N", 0, "Show the top N locks (default 10, 0 shows all)", 2 },
	{ "stacks", 's', "N", 0, "Show the top N caller stacks per lock (default 3, 0 shows all)", 2 },
	{ "stack-depth", 'D', "N", 0, "Frames per stack in text output (default 4)", 2 },
	{ "sort", 'S', "KEY", 0, "Sort by total, max, count or avg wait (default total)", 2 },
	{ "histogram", 'H', NULL, 0, "Add a log2 histogram of wait times per lock", 2 },
	{ "json", 'j', NULL, 0, "Print JSON instead of text", 2 },
	{ "output", 'o', "FILE", 0, "Write the report to FILE instead of standard output", 2 },
	{ "bpf-stats", OPT_BPF_STATS, NULL, 0,
	  "Report how often the BPF programs ran and for how long (the tool's own cost)", 2 },
	{ "verbose", 'v', NULL, 0, "Print libbpf debug output", 2 },
	{ NULL, 'h', NULL, OPTION_HIDDEN, "Show this help", 2 },
	{},
};

/* Parses a decimal integer in [min, max]. Signs, spaces and suffixes are invalid. */
static int parse_ulong(const char *arg, unsigned long min, unsigned long max,
		       unsigned long *value)
{
	char *end;

	if (!arg[0] || arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	errno = 0;
	*value = strtoul(arg, &end, 10);
	if (errno || *end || *value < min || *value > max)
		return -EINVAL;
	return 0;
}

static int parse_classes(const char *arg, __u32 *mask)
{
	static const char *const names[LOCKSTAT_CLASS_COUNT] = {
		[LOCKSTAT_CLASS_SPIN] = "spin",
		[LOCKSTAT_CLASS_RWLOCK] = "rwlock",
		[LOCKSTAT_CLASS_MUTEX] = "mutex",
		[LOCKSTAT_CLASS_RWSEM] = "rwsem",
		[LOCKSTAT_CLASS_PERCPU_RWSEM] = "percpu-rwsem",
		[LOCKSTAT_CLASS_RTMUTEX] = "rtmutex",
	};
	const char *start = arg;

	*mask = 0;
	while (1) {
		size_t len = strcspn(start, ",");
		int i;

		for (i = 0; i < LOCKSTAT_CLASS_COUNT; i++)
			if (strlen(names[i]) == len && !strncmp(start, names[i], len))
				break;
		if (i == LOCKSTAT_CLASS_COUNT)
			return -EINVAL;
		*mask |= 1U << i;
		if (!start[len])
			return 0;
		start += len + 1;
	}
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	unsigned long value;
	char *end;

	switch (key) {
	case 'h':
		argp_state_help(state, stderr, ARGP_HELP_STD_HELP);
		break;
	case 'd':
		errno = 0;
		env.duration_s = strtod(arg, &end);
		if (errno || *end || !arg[0] || arg[0] == '-' || arg[0] == ' ' ||
		    !isfinite(env.duration_s) || env.duration_s <= 0 ||
		    env.duration_s > MAX_DURATION_S)
			argp_error(state, "invalid duration '%s': expected seconds, a number "
				   "above 0 and at most %.0f", arg, MAX_DURATION_S);
		break;
	case 'p':
		if (parse_ulong(arg, 1, INT_MAX, &value))
			argp_error(state, "invalid PID '%s': expected a positive integer", arg);
		env.tgid = value;
		break;
	case 't':
		if (parse_ulong(arg, 1, INT_MAX, &value))
			argp_error(state, "invalid TID '%s': expected a positive integer", arg);
		env.tid = value;
		break;
	case 'c':
		env.cgroup_path = arg;
		break;
	case 'L':
		env.lock_arg = arg;
		break;
	case 'k':
		if (parse_classes(arg, &env.class_mask))
			argp_error(state, "invalid lock class list '%s': expected a comma-separated "
				   "list of spin, rwlock, mutex, rwsem, percpu-rwsem, rtmutex", arg);
		break;
	case 'C':
		if (!arg[0])
			argp_error(state, "invalid caller pattern '': expected a function name "
				   "or fnmatch(3) pattern");
		if (env.report.caller_pattern_count == LOCKSTAT_MAX_CALLER_PATTERNS)
			argp_error(state, "too many -C options: at most %d",
				   LOCKSTAT_MAX_CALLER_PATTERNS);
		env.report.caller_patterns[env.report.caller_pattern_count++] = arg;
		break;
	case 'n':
		if (parse_ulong(arg, 0, INT_MAX, &value))
			argp_error(state, "invalid lock count '%s': expected an integer, 0 for all", arg);
		env.report.top_locks = value;
		break;
	case 's':
		if (parse_ulong(arg, 0, INT_MAX, &value))
			argp_error(state, "invalid stack count '%s': expected an integer, 0 for all", arg);
		env.report.top_stacks = value;
		break;
	case 'D':
		if (parse_ulong(arg, 1, LOCKSTAT_MAX_STACK_DEPTH, &value))
			argp_error(state, "invalid stack depth '%s': expected an integer from 1 to %d",
				   arg, LOCKSTAT_MAX_STACK_DEPTH);
		env.report.text_depth = value;
		break;
	case 'S':
		if (!strcmp(arg, "total"))
			env.report.sort = LOCKSTAT_SORT_TOTAL;
		else if (!strcmp(arg, "max"))
			env.report.sort = LOCKSTAT_SORT_MAX;
		else if (!strcmp(arg, "count"))
			env.report.sort = LOCKSTAT_SORT_COUNT;
		else if (!strcmp(arg, "avg"))
			env.report.sort = LOCKSTAT_SORT_AVG;
		else
			argp_error(state, "invalid sort key '%s': expected total, max, count or avg",
				   arg);
		break;
	case 'H':
		env.report.histogram = true;
		break;
	case 'j':
		env.json = true;
		break;
	case 'o':
		env.output_path = arg;
		break;
	case 'v':
		env.verbose = true;
		break;
	case OPT_BPF_STATS:
		env.bpf_stats = true;
		break;
	case ARGP_KEY_ARG:
		/* Let argp hand over the command and its arguments as one vector. */
		return ARGP_ERR_UNKNOWN;
	case ARGP_KEY_ARGS:
		env.command = state->argv + state->next;
		break;
	case ARGP_KEY_END:
		if (env.command && env.duration_s)
			argp_error(state, "-d cannot be combined with a command: tracing stops "
				   "when the command exits");
		if (env.tgid && env.tid)
			argp_error(state, "-p and -t cannot be combined: give one of them");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	return vfprintf(stderr, format, args);
}

static void handle_signal(int sig)
{
	exiting = 1;
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Checks kernel BTF and both tracepoints. Returns 0 or an exit status. */
static int check_kernel_support(void)
{
	struct btf *vmlinux_btf;
	int ret = 0;

	if (access(VMLINUX_BTF_PATH, R_OK)) {
		fprintf(stderr, "rund-lockstat: kernel BTF %s is missing (%s): the kernel needs "
			"CONFIG_DEBUG_INFO_BTF=y for tp_btf programs\n", VMLINUX_BTF_PATH,
			strerror(errno));
		return LOCKSTAT_EXIT_UNSUPPORTED;
	}
	vmlinux_btf = btf__load_vmlinux_btf();
	if (!vmlinux_btf) {
		fprintf(stderr, "rund-lockstat: failed to load kernel BTF from %s: %s\n",
			VMLINUX_BTF_PATH, strerror(errno));
		return LOCKSTAT_EXIT_UNSUPPORTED;
	}
	if (btf__find_by_name_kind(vmlinux_btf, "btf_trace_contention_begin", BTF_KIND_TYPEDEF) < 0 ||
	    btf__find_by_name_kind(vmlinux_btf, "btf_trace_contention_end", BTF_KIND_TYPEDEF) < 0) {
		fprintf(stderr, "rund-lockstat: the kernel has no lock:contention_begin/end "
			"tracepoints (added in Linux 5.19)\n");
		ret = LOCKSTAT_EXIT_UNSUPPORTED;
	}
	btf__free(vmlinux_btf);
	return ret;
}

static int resolve_lock(const struct ksyms *ksyms, const char *arg, __u64 *addr)
{
	const struct ksym *sym;
	char *end;

	if (!strncmp(arg, "0x", 2) || !strncmp(arg, "0X", 2)) {
		errno = 0;
		*addr = strtoull(arg + 2, &end, 16);
		if (errno || *end || end == arg + 2 || !*addr) {
			fprintf(stderr, "rund-lockstat: invalid lock address '%s': expected a "
				"non-zero hex number such as 0xffffffff82a1b2c0\n", arg);
			return -EINVAL;
		}
		return 0;
	}
	sym = ksyms_by_name(ksyms, arg);
	if (!sym || !strchr("DdBbRr", sym->type)) {
		fprintf(stderr, "rund-lockstat: lock symbol '%s' not found among the data symbols "
			"of %s (kernels without CONFIG_KALLSYMS_ALL list none); give the lock's "
			"address from a previous report instead\n", arg, KALLSYMS_PATH);
		return -ENOENT;
	}
	*addr = sym->addr;
	return 0;
}

/*
 * Opens the cgroup directory for the BPF cgroup filter. The filter uses
 * bpf_current_task_under_cgroup(), which follows only the cgroup2 (unified)
 * hierarchy, so a v1 directory is rejected rather than silently ignored.
 */
static int open_cgroup(const char *path)
{
	struct statfs fs;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "rund-lockstat: cannot open cgroup '%s': %s\n", path,
			strerror(errno));
		return -errno;
	}
	if (fstatfs(fd, &fs)) {
		fprintf(stderr, "rund-lockstat: failed to stat cgroup '%s': %s\n", path,
			strerror(errno));
		close(fd);
		return -errno;
	}
	if (fs.f_type == CGROUP_SUPER_MAGIC) {
		fprintf(stderr, "rund-lockstat: cgroup '%s' is on a cgroup v1 hierarchy; the BPF "
			"filter sees only cgroup2 membership, so give the task's cgroup under the "
			"cgroup2 mount (such as /sys/fs/cgroup/unified/...) or filter with -p\n", path);
		close(fd);
		return -EINVAL;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		fprintf(stderr, "rund-lockstat: '%s' is not a cgroup2 directory\n", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static bool is_refusal(int err)
{
	err = err < 0 ? -err : err;
	/* 524 is the kernel's internal ENOTSUPP, which leaks out of bpf(2). */
	return err == EPERM || err == EACCES || err == EOPNOTSUPP || err == 524;
}

/* Waits until the duration passes or a signal arrives. */
static void wait_duration(double seconds)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)seconds;
	deadline.tv_nsec += (long)((seconds - (time_t)seconds) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (!exiting) {
		int err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);

		if (err != EINTR)
			break;
	}
}

static void wait_for_signal(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!exiting)
		sigsuspend(&none);
}

/*
 * Runs the command and waits for it. Returns its exit status (128+N when
 * killed by signal N), or 126/127 when it cannot be executed.
 */
static int run_command(char **command)
{
	int report_pipe[2], status, child_errno = 0;
	ssize_t got;
	pid_t pid;

	if (pipe2(report_pipe, O_CLOEXEC)) {
		fprintf(stderr, "rund-lockstat: failed to create a pipe: %s\n", strerror(errno));
		return LOCKSTAT_EXIT_FAILED;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "rund-lockstat: failed to fork: %s\n", strerror(errno));
		close(report_pipe[0]);
		close(report_pipe[1]);
		return LOCKSTAT_EXIT_FAILED;
	}
	if (pid == 0) {
		close(report_pipe[0]);
		execvp(command[0], command);
		/* The pipe closes on a successful exec. On failure it carries errno. */
		child_errno = errno;
		if (write(report_pipe[1], &child_errno, sizeof(child_errno)) < 0)
			_exit(LOCKSTAT_EXIT_CANNOT_INVOKE);
		_exit(child_errno == ENOENT ? LOCKSTAT_EXIT_NOT_FOUND : LOCKSTAT_EXIT_CANNOT_INVOKE);
	}
	child_pid = pid;
	close(report_pipe[1]);
	do
		got = read(report_pipe[0], &child_errno, sizeof(child_errno));
	while (got < 0 && errno == EINTR);
	close(report_pipe[0]);

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "rund-lockstat: failed to wait for '%s': %s\n", command[0],
				strerror(errno));
			child_pid = 0;
			return LOCKSTAT_EXIT_FAILED;
		}
	}
	child_pid = 0;

	command_started = got != sizeof(child_errno);
	if (!command_started) {
		fprintf(stderr, "rund-lockstat: cannot run '%s': %s\n", command[0],
			strerror(child_errno));
		return child_errno == ENOENT ? LOCKSTAT_EXIT_NOT_FOUND : LOCKSTAT_EXIT_CANNOT_INVOKE;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void read_drops(const struct lockstat_bpf *obj, struct lockstat_report *report)
{
	int ncpus = libbpf_num_possible_cpus();
	int fd = bpf_map__fd(obj->maps.drops);
	struct bpf_prog_info info;
	__u32 len, i;
	__u64 *values;
	int cpu;

	values = ncpus > 0 ? calloc(ncpus, sizeof(*values)) : NULL;
	for (i = 0; values && i < LOCKSTAT_DROP_COUNT; i++) {
		if (bpf_map_lookup_elem(fd, &i, values))
			continue;
		for (cpu = 0; cpu < ncpus; cpu++)
			report->drops[i] += values[cpu];
	}
	free(values);

	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(obj->progs.contention_begin), &info, &len)) {
		report->recursion_misses += info.recursion_misses;
		report->prog_runs += info.run_cnt;
		report->prog_run_ns += info.run_time_ns;
	}
	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(obj->progs.contention_end), &info, &len)) {
		report->recursion_misses += info.recursion_misses;
		report->prog_runs += info.run_cnt;
		report->prog_run_ns += info.run_time_ns;
	}
}

/* Writes what was traced, such as "cgroup /x, while running make", into @buf. */
static void describe_target(char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	if (env.tgid)
		len += snprintf(buf + len, size - len, "process %u, ", env.tgid);
	if (env.tid && len < size)
		len += snprintf(buf + len, size - len, "thread %u, ", env.tid);
	if (env.cgroup_path && len < size)
		len += snprintf(buf + len, size - len, "cgroup %s, ", env.cgroup_path);
	if (!len && len < size)
		len += snprintf(buf + len, size - len, "system-wide, ");
	if (env.command && len < size)
		len += snprintf(buf + len, size - len, "while running %s, ", env.command[0]);
	/* Drop the last separator. */
	if (len >= 2 && len < size)
		buf[len - 2] = '\0';
}

int main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = options,
		.parser = parse_arg,
		.doc = argp_program_doc,
		.args_doc = "[-- COMMAND [ARG...]]",
	};
	struct lockstat_report report = {};
	struct lockstat_bpf *obj = NULL;
	struct ksyms *ksyms = NULL;
	struct timespec start, end;
	struct sigaction action;
	char target[256];
	FILE *out = stdout;
	int cgroup_fd = -1, stats_fd = -1;
	__u64 lock_addr = 0;
	int ret, err;

	argp_err_exit_status = LOCKSTAT_EXIT_USAGE;
	err = argp_parse(&argp, argc, argv, ARGP_IN_ORDER, NULL, NULL);
	if (err)
		return LOCKSTAT_EXIT_USAGE;

	libbpf_set_print(libbpf_print);

	ret = check_kernel_support();
	if (ret)
		return ret;

	ksyms = ksyms_load(KALLSYMS_PATH);
	if (!ksyms) {
		fprintf(stderr, "rund-lockstat: failed to read %s: %s\n", KALLSYMS_PATH,
			strerror(errno));
		return LOCKSTAT_EXIT_FAILED;
	}
	ret = LOCKSTAT_EXIT_USAGE;
	if (env.lock_arg && resolve_lock(ksyms, env.lock_arg, &lock_addr))
		goto cleanup;
	if (env.tgid && kill(env.tgid, 0) && errno == ESRCH) {
		fprintf(stderr, "rund-lockstat: process %u not found\n", env.tgid);
		goto cleanup;
	}
	if (env.cgroup_path) {
		cgroup_fd = open_cgroup(env.cgroup_path);
		if (cgroup_fd < 0)
			goto cleanup;
	}
	if (env.output_path) {
		out = fopen(env.output_path, "we");
		if (!out) {
			fprintf(stderr, "rund-lockstat: cannot open output file '%s': %s\n",
				env.output_path, strerror(errno));
			out = stdout;
			ret = LOCKSTAT_EXIT_FAILED;
			goto cleanup;
		}
	}

	ret = LOCKSTAT_EXIT_FAILED;
	obj = lockstat_bpf__open();
	if (!obj) {
		fprintf(stderr, "rund-lockstat: failed to open the BPF object: %s\n", strerror(errno));
		goto cleanup;
	}
	obj->rodata->targ_tgid = env.tgid;
	obj->rodata->targ_tid = env.tid;
	obj->rodata->targ_lock = lock_addr;
	obj->rodata->targ_class_mask = env.class_mask;
	obj->rodata->filter_cgroup = cgroup_fd >= 0;

	err = lockstat_bpf__load(obj);
	if (err) {
		fprintf(stderr, "rund-lockstat: failed to load the BPF programs: %s%s\n",
			strerror(-err), is_refusal(err) ?
			" (needs root or CAP_BPF and CAP_PERFMON; run with -v for the verifier log)" :
			" (run with -v for the verifier log)");
		if (is_refusal(err))
			ret = LOCKSTAT_EXIT_UNSUPPORTED;
		goto cleanup;
	}
	if (cgroup_fd >= 0) {
		__u32 index = 0;

		if (bpf_map_update_elem(bpf_map__fd(obj->maps.cgroup_filter), &index, &cgroup_fd,
					BPF_ANY)) {
			fprintf(stderr, "rund-lockstat: failed to set the cgroup filter to '%s': %s\n",
				env.cgroup_path, strerror(errno));
			goto cleanup;
		}
	}
	if (env.bpf_stats) {
		/* Statistics stay enabled while this descriptor is open. */
		stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (stats_fd < 0) {
			fprintf(stderr, "rund-lockstat: failed to enable BPF run-time statistics: %s\n",
				strerror(errno));
			goto cleanup;
		}
		report.bpf_stats = true;
	}
	err = lockstat_bpf__attach(obj);
	if (err) {
		fprintf(stderr, "rund-lockstat: failed to attach to lock:contention_begin/end "
			"(tp_btf): %s\n", strerror(-err));
		ret = LOCKSTAT_EXIT_UNSUPPORTED;
		goto cleanup;
	}

	memset(&action, 0, sizeof(action));
	action.sa_handler = handle_signal;
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (env.command) {
		ret = run_command(env.command);
	} else {
		if (env.duration_s)
			wait_duration(env.duration_s);
		else
			wait_for_signal();
		ret = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	lockstat_bpf__detach(obj);

	/* A command that never ran leaves nothing worth reporting. */
	if (env.command && !command_started)
		goto cleanup;

	/* Read the symbols again: the BPF programs' own frames appear only now. */
	ksyms_free(ksyms);
	ksyms = ksyms_load(KALLSYMS_PATH);
	if (!ksyms) {
		fprintf(stderr, "rund-lockstat: failed to read %s: %s\n", KALLSYMS_PATH,
			strerror(errno));
		ret = LOCKSTAT_EXIT_FAILED;
		goto cleanup;
	}

	report.duration_s = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	describe_target(target, sizeof(target));
	report.target = target;
	read_drops(obj, &report);
	err = lockstat_report_collect(&report, bpf_map__fd(obj->maps.stats),
				      bpf_map__fd(obj->maps.stacks), ksyms, &env.report);
	if (err) {
		fprintf(stderr, "rund-lockstat: failed to read the results: %s\n", strerror(-err));
		ret = LOCKSTAT_EXIT_FAILED;
		goto cleanup;
	}
	if (env.json)
		err = lockstat_report_print_json(out, &report, ksyms, &env.report);
	else
		lockstat_report_print_text(out, &report, ksyms, &env.report);
	if (err || fflush(out) || ferror(out)) {
		fprintf(stderr, "rund-lockstat: failed to write the report: %s\n",
			err ? strerror(-err) : strerror(errno));
		ret = LOCKSTAT_EXIT_FAILED;
	}

cleanup:
	lockstat_report_free(&report);
	lockstat_bpf__destroy(obj);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	if (stats_fd >= 0)
		close(stats_fd);
	if (out != stdout)
		fclose(out);
	ksyms_free(ksyms);
	return ret;
}
