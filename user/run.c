// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rund-helper run: start a microVM from an image, run one command in it and
 * exit with the command's status.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "error.h"
#include "layer.h"
#include "pool.h"
#include "qmp.h"
#include "template.h"
#include "util.h"
#include "verbs.h"
#include "vm.h"
#include "vmmpool.h"

#define RUN_DEFAULT_IMAGE "/var/lib/rund/images/debian.erofs"
#define CONSOLE_TAIL 4096	/* bytes of guest console kept for errors */
#define QEMU_STDERR_MAX 4096
#define REBOOT_WAIT_MS 5000	/* QEMU exit after the guest's reboot() */

struct run_opts {
	const char *image;
	const char *layer;
	const char *kernel;
	const char *initrd;
	unsigned int memory_mib;
	unsigned int vcpus;
	unsigned int timeout_s;
	bool timings;
	bool json;
	int json_fd;
	bool allow_copy;
	char **env;
	int nenv;
	const char *workdir;
	char **argv;
	const char *template_name;	/* --template: required template */
	bool no_template;		/* --no-template: always boot cold */
	bool no_vmm_pool;		/* --no-vmm-pool: always start QEMU on demand */
};

enum phase {
	PHASE_LAUNCH,
	PHASE_CGROUP,
	PHASE_LAYER,
	PHASE_HANDOFF,			/* a pre-started VMM received from its pool */
	PHASE_SWAP,			/* its writable layer swapped in over QMP */
	PHASE_SPAWN,
	PHASE_RESTORE,
	PHASE_IDENTITY,
	PHASE_READY,
	PHASE_STARTED,
	PHASE_EXITED,
	PHASE_TEARDOWN,
	PHASE_COUNT,
};

static const char *const phase_names[PHASE_COUNT] = {
	[PHASE_CGROUP] = "cgroup_claim",
	[PHASE_LAYER] = "layer",
	[PHASE_HANDOFF] = "vmm_handoff",
	[PHASE_SWAP] = "layer_swap",
	[PHASE_SPAWN] = "spawn",
	[PHASE_RESTORE] = "restore",
	[PHASE_IDENTITY] = "identity",
	[PHASE_READY] = "agent_ready",
	[PHASE_STARTED] = "function_start",
	[PHASE_EXITED] = "function_end",
	[PHASE_TEARDOWN] = "teardown",
};

/* Byte ring holding the newest bytes written to it. */
struct tail {
	char buf[CONSOLE_TAIL];
	size_t pos, len;
};

struct run {
	struct run_opts *o;
	char id[17];
	struct rund_vm vm;
	int image_fd, layer_fd;
	int agent_fd, qmp_fd, console_fd, qemu_err_fd, sig_fd;
	enum rund_layer_source layer_source;
	bool have_layer_source;
	struct rund_agent_reader *reader;
	uint8_t *txbuf;			/* one pending frame to the agent */
	uint32_t tx_len, tx_off;
	bool stdin_open, stdin_eof_sent, stdout_broken;
	bool ready, started, exited;
	bool kvm_failed;		/* QEMU failed under KVM before READY */
	pid_t qemu_pid;
	uint32_t guest_pid;
	struct rund_template *tmpl;	/* the template restored, NULL for a cold boot */
	struct rund_pool_launch pool;	/* the cgroup slot QEMU is born in */
	struct rund_vmm_lease *lease;	/* QEMU from a VMM pool, NULL: started on demand */
	bool tmpl_picked;		/* pick_template() ran */
	char vmm_note[RUND_ERROR_MSG_MAX];	/* why a pool's VMM was not used */
	char template_note[RUND_ERROR_MSG_MAX];	/* why no template was restored */
	struct tail console;
	char qemu_err[QEMU_STDERR_MAX];
	size_t qemu_err_len;
	struct timespec t[PHASE_COUNT];
	bool t_set[PHASE_COUNT];
	/* Outcome. */
	int status;
	const char *failed_by;		/* "function", "rund", "command" */
	char reason[RUND_ERROR_MSG_MAX + CONSOLE_TAIL];
};

static void mark(struct run *r, enum phase p)
{
	clock_gettime(CLOCK_MONOTONIC, &r->t[p]);
	r->t_set[p] = true;
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

static void tail_add(struct tail *t, const char *data, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		t->buf[t->pos] = data[i];
		t->pos = (t->pos + 1) % sizeof(t->buf);
		if (t->len < sizeof(t->buf))
			t->len++;
	}
}

/* Copy the ring's last lines, printable ASCII and newlines only. */
static void tail_copy(const struct tail *t, char *out, size_t size, int max_lines)
{
	size_t start = (t->pos + sizeof(t->buf) - t->len) % sizeof(t->buf);
	size_t i, n = 0, from = 0;
	int lines = 0;

	for (i = 0; i < t->len && n + 1 < size; i++) {
		char c = t->buf[(start + i) % sizeof(t->buf)];

		if (c == '\r')
			continue;
		out[n++] = c == '\n' || (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	out[n] = '\0';
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	for (i = n; i > 0; i--)
		if (out[i - 1] == '\n' && ++lines == max_lines) {
			from = i;
			break;
		}
	memmove(out, out + from, n - from + 1);
}

static int fail_run(struct run *r, int status, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail_run(struct run *r, int status, const char *who, const char *fmt, ...)
{
	va_list ap;

	if (r->failed_by)
		return r->status;	/* keep the first failure */
	r->status = status;
	r->failed_by = who;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return status;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rund-helper run [OPTIONS] -- CMD [ARGS...]\n"
		"\n"
		"Start a microVM from an image, run CMD in it and exit with its status.\n"
		"\n"
		"  --image PATH     read-only EROFS image (default %s)\n"
		"  --layer PATH     writable-layer image to clone (default %s)\n"
		"  --memory MIB     guest memory in MiB (default 128, 64-65536)\n"
		"  --vcpus N        guest vCPUs (default 1, 1-64)\n"
		"  --timeout S      end the sandbox S seconds after launch (default 60, 1-86400)\n"
		"  --env NAME=VALUE add a variable to CMD's environment (repeatable)\n"
		"  --workdir DIR    CMD's working directory in the sandbox (default /)\n"
		"  --allow-copy     copy the layer image when its filesystem has no reflink\n"
		"  --kernel PATH    guest kernel (default $RUND_KERNEL or %s)\n"
		"  --initrd PATH    agent initramfs (default $RUND_INITRD or %s)\n"
		"  --template NAME  restore template NAME instead of booting; fail when it\n"
		"                   does not match (default: any matching template)\n"
		"  --no-template    always boot cold\n"
		"  --no-vmm-pool    start QEMU on demand even when a pool of pre-started\n"
		"                   VMMs serves the template (rund-helper vmm-pool)\n"
		"  --timings        print per-phase durations to stderr\n"
		"  --json           print one JSON result object to stderr at the end\n"
		"  --json-fd FD     print the JSON result object to descriptor FD instead\n"
		"\n"
		"QEMU starts in a cgroup slot claimed from the node's pool when one is\n"
		"initialised (rund-helper pool init); RUND_POOL_BACKEND=auto|module|cgroupfs|none\n"
		"picks the pool backend or disables the pool (default auto).\n"
		"\n"
		"Exit status: CMD's status; 128+N when CMD died of signal N; 125 when rund\n"
		"failed, 126 when CMD cannot be invoked, 127 when CMD is not found.\n",
		RUN_DEFAULT_IMAGE, RUND_LAYER_DEFAULT_IMAGE, RUND_DEFAULT_KERNEL,
		RUND_DEFAULT_INITRD);
}

static int parse_uint(const char *opt, const char *s, long min, long max, unsigned int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "rund-helper run: invalid %s value '%s': expected an integer from %ld to %ld\n",
			opt, s, min, max);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

enum {
	OPT_IMAGE = 256, OPT_LAYER, OPT_MEMORY, OPT_VCPUS, OPT_TIMEOUT, OPT_TIMINGS,
	OPT_JSON, OPT_JSON_FD, OPT_ALLOW_COPY, OPT_ENV, OPT_WORKDIR, OPT_KERNEL, OPT_INITRD, OPT_TEMPLATE, OPT_NO_TEMPLATE,
	OPT_NO_VMM_POOL,
};

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "image", required_argument, NULL, OPT_IMAGE },
		{ "layer", required_argument, NULL, OPT_LAYER },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "vcpus", required_argument, NULL, OPT_VCPUS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "timings", no_argument, NULL, OPT_TIMINGS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "json-fd", required_argument, NULL, OPT_JSON_FD },
		{ "allow-copy", no_argument, NULL, OPT_ALLOW_COPY },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "workdir", required_argument, NULL, OPT_WORKDIR },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "template", required_argument, NULL, OPT_TEMPLATE },
		{ "no-template", no_argument, NULL, OPT_NO_TEMPLATE },
		{ "no-vmm-pool", no_argument, NULL, OPT_NO_VMM_POOL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned int fd;
	int c;

	o->image = RUN_DEFAULT_IMAGE;
	o->layer = RUND_LAYER_DEFAULT_IMAGE;
	o->kernel = getenv("RUND_KERNEL") ? getenv("RUND_KERNEL") : RUND_DEFAULT_KERNEL;
	o->initrd = getenv("RUND_INITRD") ? getenv("RUND_INITRD") : RUND_DEFAULT_INITRD;
	o->memory_mib = 128;
	o->vcpus = 1;
	o->timeout_s = 60;
	o->json_fd = STDERR_FILENO;
	/* One spare entry for RUND_SANDBOX_ID, see send_run(). */
	o->env = calloc((size_t)argc + 2, sizeof(char *));
	if (!o->env)
		return -1;

	/* "+": stop at the first non-option, CMD's own options are not ours. */
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_IMAGE: o->image = optarg; break;
		case OPT_LAYER: o->layer = optarg; break;
		case OPT_KERNEL: o->kernel = optarg; break;
		case OPT_INITRD: o->initrd = optarg; break;
		case OPT_TEMPLATE:
			if (optarg[0] == '-') {
				fprintf(stderr, "rund-helper run: invalid --template '%s': expected a template name ('rund-helper template list' shows them)\n",
					optarg);
				return -1;
			}
			o->template_name = optarg;
			break;
		case OPT_NO_TEMPLATE: o->no_template = true; break;
		case OPT_NO_VMM_POOL: o->no_vmm_pool = true; break;
		case OPT_WORKDIR:
			if (optarg[0] != '/') {
				fprintf(stderr, "rund-helper run: invalid --workdir '%s': expected an absolute path\n",
					optarg);
				return -1;
			}
			o->workdir = optarg;
			break;
		case OPT_MEMORY:
			if (parse_uint("--memory", optarg, 64, 65536, &o->memory_mib))
				return -1;
			break;
		case OPT_VCPUS:
			if (parse_uint("--vcpus", optarg, 1, 64, &o->vcpus))
				return -1;
			break;
		case OPT_TIMEOUT:
			if (parse_uint("--timeout", optarg, 1, 86400, &o->timeout_s))
				return -1;
			break;
		case OPT_JSON_FD:
			if (parse_uint("--json-fd", optarg, 0, INT_MAX, &fd))
				return -1;
			if (fcntl((int)fd, F_GETFD) < 0) {
				fprintf(stderr, "rund-helper run: invalid --json-fd '%s': descriptor is not open\n",
					optarg);
				return -1;
			}
			o->json = true;
			o->json_fd = (int)fd;
			break;
		case OPT_ENV:
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				fprintf(stderr, "rund-helper run: invalid --env '%s': expected NAME=VALUE\n",
					optarg);
				return -1;
			}
			o->env[o->nenv++] = optarg;
			break;
		case OPT_TIMINGS: o->timings = true; break;
		case OPT_JSON: o->json = true; break;
		case OPT_ALLOW_COPY: o->allow_copy = true; break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "rund-helper run: see 'rund-helper run --help'\n");
			return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "rund-helper run: no command given; usage: rund-helper run [OPTIONS] -- CMD [ARGS...]\n");
		return -1;
	}
	if (o->template_name && o->no_template) {
		fprintf(stderr, "rund-helper run: --template %s and --no-template exclude each other; pass one\n",
			o->template_name);
		return -1;
	}
	o->argv = argv + optind;
	return 0;
}

static int open_image(const char *what, const char *path, int flags, struct rund_error *err)
{
	struct stat st;
	int fd;

	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return rund_error_set(err, errno, "failed to open %s %s", what, path);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return rund_error_setx(err, EINVAL, "%s %s is not a regular file", what, path);
	}
	return fd;
}

/* Queue one frame to the agent; the caller ensures the queue is empty. */
static void queue_frame(struct run *r, uint32_t len)
{
	r->tx_len = len;
	r->tx_off = 0;
}

static int flush_tx(struct run *r)
{
	while (r->tx_off < r->tx_len) {
		ssize_t n = send(r->agent_fd, r->txbuf + r->tx_off, r->tx_len - r->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		r->tx_off += (uint32_t)n;
	}
	r->tx_len = r->tx_off = 0;
	return 0;
}

static int write_out(int fd, const uint8_t *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				poll(&p, 1, -1);
				continue;
			}
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Map an agent ERROR to the helper's exit status. */
static int error_status(const struct rund_agent_message *m)
{
	if (m->error.stage == RUND_AGENT_STAGE_EXEC)
		return m->error.errnum == ENOENT ? RUND_EXIT_NOT_FOUND : RUND_EXIT_CANNOT_INVOKE;
	return RUND_EXIT_FAILED;
}

/* The agent is ready (READY, or a template clone set up): queue RUN. */
static int send_run(struct run *r)
{
	struct rund_error err = { 0 };
	int len;

	char id_var[sizeof("RUND_SANDBOX_ID=") + sizeof(r->id)];
	char **env = r->o->env;
	int i;

	r->ready = true;
	mark(r, PHASE_READY);
	/*
	 * The function learns its sandbox id from RUND_SANDBOX_ID, unless the
	 * caller set that variable itself. parse_args() sized o->env with a
	 * spare entry for it.
	 */
	for (i = 0; i < r->o->nenv; i++)
		if (!strncmp(env[i], "RUND_SANDBOX_ID=", 16))
			break;
	if (i == r->o->nenv) {
		snprintf(id_var, sizeof(id_var), "RUND_SANDBOX_ID=%s", r->id);
		env[r->o->nenv] = id_var;
		env[r->o->nenv + 1] = NULL;
	}
	len = rund_agent_encode_run(r->txbuf, r->o->argv, env, r->o->workdir, &err);
	env[r->o->nenv] = NULL;
	if (len < 0)
		return fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
	queue_frame(r, (uint32_t)len);
	r->stdin_open = true;
	return 0;
}

static int handle_message(struct run *r, const struct rund_agent_message *m)
{

	switch (m->type) {
	case RUND_AGENT_MSG_READY:
		if (r->ready)
			return fail_run(r, RUND_EXIT_FAILED, "rund",
					"protocol error: guest sent READY twice");
		return send_run(r);
	case RUND_AGENT_MSG_STARTED:
		if (!r->ready || r->started)
			break;
		r->started = true;
		r->guest_pid = m->started.pid;
		mark(r, PHASE_STARTED);
		return 0;
	case RUND_AGENT_MSG_STDOUT:
	case RUND_AGENT_MSG_STDERR:
		if (!r->started || r->exited)
			break;
		if (m->type == RUND_AGENT_MSG_STDERR) {
			write_out(STDERR_FILENO, m->output.data, m->output.len);
		} else if (!r->stdout_broken &&
			   write_out(STDOUT_FILENO, m->output.data, m->output.len) == -EPIPE) {
			/* The reader of our stdout has gone (EPIPE), so drop the rest. */
			r->stdout_broken = true;
		}
		return 0;
	case RUND_AGENT_MSG_EXIT:
		if (!r->started || r->exited)
			break;
		r->exited = true;
		mark(r, PHASE_EXITED);
		r->status = m->exit.signaled ? 128 + (int)m->exit.code : (int)m->exit.code;
		r->failed_by = NULL;
		return 0;
	case RUND_AGENT_MSG_ERROR:
		if (m->error.stage == RUND_AGENT_STAGE_EXEC || m->error.stage == RUND_AGENT_STAGE_CWD)
			return fail_run(r, error_status(m), "command", "%s", m->error.message);
		return fail_run(r, RUND_EXIT_FAILED, "rund", "guest agent failed at stage %s: %s",
				rund_agent_stage_name(m->error.stage), m->error.message);
	}
	return fail_run(r, RUND_EXIT_FAILED, "rund", "protocol error: guest sent %s out of order",
			rund_agent_msg_name(m->type));
}

/* Returns 1 when the run is over (EXIT or a failure), 0 to go on. */
static int read_agent(struct run *r)
{
	struct rund_agent_frame f;
	struct rund_agent_message m;
	struct rund_error err = { 0 };
	int ret;

	for (;;) {
		ret = rund_agent_read(r->reader, r->agent_fd, &f, &err);
		if (ret == 0)
			return 0;
		if (ret == -EPIPE) {
			/* Let QEMU's exit status and the console speak. */
			close(r->agent_fd);
			r->agent_fd = -1;
			return 0;
		}
		if (ret < 0) {
			fail_run(r, RUND_EXIT_FAILED, "rund", "protocol error: %s", err.msg);
			return 1;
		}
		if (rund_agent_parse(&f, &m, &err)) {
			fail_run(r, RUND_EXIT_FAILED, "rund", "protocol error: %s", err.msg);
			return 1;
		}
		handle_message(r, &m);
		if (r->exited || r->failed_by)
			return 1;
	}
}

static void read_stdin(struct run *r)
{
	static uint8_t buf[RUND_AGENT_MAX_PAYLOAD];
	ssize_t n;

	n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF, or a stdin that cannot be read: send STDIN_EOF either way. */
		queue_frame(r, rund_agent_encode_data(r->txbuf, RUND_AGENT_MSG_STDIN_EOF, NULL, 0));
		r->stdin_open = false;
		r->stdin_eof_sent = true;
		return;
	}
	queue_frame(r, rund_agent_encode_data(r->txbuf, RUND_AGENT_MSG_STDIN, buf, (uint32_t)n));
}

static void drain_fd(int *fd, struct run *r, bool console)
{
	char buf[4096];
	ssize_t n;

	while (*fd >= 0) {
		n = read(*fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			return;
		}
		if (console) {
			tail_add(&r->console, buf, (size_t)n);
		} else {
			size_t room = sizeof(r->qemu_err) - 1 - r->qemu_err_len;
			size_t take = (size_t)n < room ? (size_t)n : room;

			memcpy(r->qemu_err + r->qemu_err_len, buf, take);
			r->qemu_err_len += take;
			r->qemu_err[r->qemu_err_len] = '\0';
		}
	}
}

static bool qemu_exited(const struct run *r)
{
	struct pollfd p = { .fd = r->vm.pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static long long deadline_left_ms(const struct run *r, const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)ms_between(&now, deadline);
}

/*
 * Under KVM a guest that fails before READY with QEMU reporting a KVM
 * error means /dev/kvm passed the probes but cannot run this guest.
 */
static bool kvm_broken(struct run *r)
{
	if (r->vm.accel != RUND_ACCEL_KVM || r->ready)
		return false;
	if (!strstr(r->qemu_err, "KVM internal error") && !strstr(r->qemu_err, "kvm run failed") &&
	    !(r->vm.pidfd >= 0 && qemu_exited(r)))
		return false;
	r->kvm_failed = true;
	return true;
}

/* The event loop: agent frames, stdin, console, QEMU's stderr and exit, signals. */
static void event_loop(struct run *r)
{
	struct timespec deadline = r->t[PHASE_LAUNCH];
	bool qemu_gone = false;

	deadline.tv_sec += r->o->timeout_s;

	for (;;) {
		struct pollfd p[7];
		int n = 0, i_agent = -1, i_stdin = -1, i_con = -1, i_err = -1, i_pid, i_sig;
		long long left;

		if (r->failed_by || r->exited)
			return;

		i_sig = n;
		p[n++] = (struct pollfd){ .fd = r->sig_fd, .events = POLLIN };
		i_pid = n;
		p[n++] = (struct pollfd){ .fd = r->vm.pidfd, .events = POLLIN };
		if (r->agent_fd >= 0) {
			i_agent = n;
			p[n++] = (struct pollfd){ .fd = r->agent_fd,
						  .events = POLLIN | (r->tx_len ? POLLOUT : 0) };
		}
		if (r->stdin_open && !r->tx_len && r->agent_fd >= 0) {
			i_stdin = n;
			p[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (r->console_fd >= 0) {
			i_con = n;
			p[n++] = (struct pollfd){ .fd = r->console_fd, .events = POLLIN };
		}
		if (r->qemu_err_fd >= 0) {
			i_err = n;
			p[n++] = (struct pollfd){ .fd = r->qemu_err_fd, .events = POLLIN };
		}

		left = deadline_left_ms(r, &deadline);
		if (left <= 0) {
			fail_run(r, RUND_EXIT_FAILED, "rund",
				 "timed out after %u s %s; the sandbox was killed (raise --timeout if the function needs longer)",
				 r->o->timeout_s,
				 !r->ready ? "before the guest agent became ready" :
				 !r->started ? "before the function started" : "while the function ran");
			return;
		}
		if (poll(p, n, left > INT_MAX ? INT_MAX : (int)left) < 0) {
			if (errno == EINTR)
				continue;
			fail_run(r, RUND_EXIT_FAILED, "rund", "poll failed: %s", strerror(errno));
			return;
		}

		if (p[i_sig].revents) {
			struct signalfd_siginfo si;

			if (read(r->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				fail_run(r, 128 + (int)si.ssi_signo, "rund",
					 "interrupted by signal %s; the sandbox was killed",
					 strsignal((int)si.ssi_signo));
				return;
			}
		}
		if (i_con >= 0 && p[i_con].revents)
			drain_fd(&r->console_fd, r, true);
		if (i_err >= 0 && p[i_err].revents) {
			drain_fd(&r->qemu_err_fd, r, false);
			if (kvm_broken(r))
				return;
		}
		if (i_agent >= 0 && p[i_agent].revents & POLLOUT) {
			int ret = flush_tx(r);

			if (ret && ret != -EPIPE) {
				fail_run(r, RUND_EXIT_FAILED, "rund", "failed to write to the agent channel: %s",
					 strerror(-ret));
				return;
			}
		}
		if (i_agent >= 0 && p[i_agent].revents & (POLLIN | POLLHUP | POLLERR))
			if (read_agent(r))
				return;
		if (i_stdin >= 0 && p[i_stdin].revents && !r->tx_len)
			read_stdin(r);
		if (r->tx_len && r->agent_fd >= 0 && flush_tx(r) == -EPIPE)
			r->tx_len = 0;

		if (p[i_pid].revents && !qemu_gone) {
			qemu_gone = true;
			/* Take what QEMU left in the channel and the console. */
			if (r->agent_fd >= 0 && read_agent(r))
				return;
			drain_fd(&r->console_fd, r, true);
			drain_fd(&r->qemu_err_fd, r, false);
			kvm_broken(r);
			return;		/* the caller reports the exit without EXIT */
		}
	}
}

static void print_timings(const struct run *r)
{
	enum phase p, prev = PHASE_LAUNCH;

	fprintf(stderr, "rund-helper run: timings (ms):");
	for (p = PHASE_CGROUP; p < PHASE_COUNT; p++) {
		if (!r->t_set[p])
			continue;
		fprintf(stderr, " %s %.1f", phase_names[p], ms_between(&r->t[prev], &r->t[p]));
		prev = p;
	}
	fprintf(stderr, " total %.1f\n", ms_between(&r->t[PHASE_LAUNCH], &r->t[prev]));
	if (r->qemu_pid <= 0)
		fprintf(stderr, "rund-helper run: no guest was started\n");
	else
		fprintf(stderr, "rund-helper run: accelerator %s%s%s%s, %s%s, writable layer from %s\n",
			rund_accel_name(r->vm.accel),
			r->vm.accel_reason ? " (" : "", r->vm.accel_reason ? r->vm.accel_reason : "",
			r->vm.accel_reason ? ")" : "",
			!r->tmpl ? "cold boot" : r->tmpl->kind == RUND_TEMPLATE_PREBOOT ?
			"booted from pre-boot template " : "restored from template ",
			r->tmpl ? r->tmpl->name : "",
			r->have_layer_source ? rund_layer_source_name(r->layer_source) : "nowhere");
	if (r->qemu_pid > 0 && !r->tmpl && strstr(r->template_note, "the newest:"))
		fprintf(stderr, "rund-helper run: cold boot because %s\n", r->template_note);
	if (r->lease)
		fprintf(stderr, "rund-helper run: QEMU pid %d from the VMM pool, ready for %.0f ms\n",
			r->lease->pid, r->lease->waited_ms);
	else if (r->vmm_note[0])
		fprintf(stderr, "rund-helper run: QEMU started on demand: %s\n", r->vmm_note);
	if (r->pool.used)
		fprintf(stderr, "rund-helper run: cgroup slot %u (%s) from the %s pool backend, QEMU placed by %s\n",
			r->pool.slot.index, r->pool.slot.path,
			rund_pool_backend_name(r->pool.backend), r->pool.method);
	else
		fprintf(stderr, "rund-helper run: no cgroup slot: %s\n", r->pool.note);
}

/* The cgroup slot for --json: backend, placement method, slot, or why there is none. */
static json_object *pool_json(const struct run *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "backend", r->pool.used ?
			       json_object_new_string(rund_pool_backend_name(r->pool.backend)) : NULL);
	json_object_object_add(o, "method", json_object_new_string(r->pool.method ? r->pool.method : "none"));
	if (r->pool.used) {
		json_object_object_add(o, "slot", json_object_new_int64(r->pool.slot.index));
		json_object_object_add(o, "path", json_object_new_string(r->pool.slot.path));
		json_object_object_add(o, "claim_ms", json_object_new_double(r->pool.claim_ms));
	} else {
		json_object_object_add(o, "note", json_object_new_string(r->pool.note));
	}
	return o;
}

static void print_json(const struct run *r)
{
	json_object *o = json_object_new_object(), *t = json_object_new_object();
	enum phase p, prev = PHASE_LAUNCH;
	const char *s;

	json_object_object_add(o, "status", json_object_new_int(r->status));
	json_object_object_add(o, "failed_by",
			       r->failed_by ? json_object_new_string(r->failed_by) : NULL);
	json_object_object_add(o, "error",
			       r->failed_by ? json_object_new_string(r->reason) : NULL);
	json_object_object_add(o, "sandbox_id", json_object_new_string(r->id));
	json_object_object_add(o, "accelerator", json_object_new_string(rund_accel_name(r->vm.accel)));
	if (r->vm.accel_reason)
		json_object_object_add(o, "accelerator_reason",
				       json_object_new_string(r->vm.accel_reason));
	json_object_object_add(o, "qemu_pid", json_object_new_int(r->qemu_pid));
	json_object_object_add(o, "template",
			       r->tmpl ? json_object_new_string(r->tmpl->name) : NULL);
	if (!r->tmpl && r->template_note[0])
		json_object_object_add(o, "template_note", json_object_new_string(r->template_note));
	json_object_object_add(o, "layer_source",
			       r->have_layer_source ?
			       json_object_new_string(rund_layer_source_name(r->layer_source)) : NULL);
	for (p = PHASE_CGROUP; p < PHASE_COUNT; p++) {
		if (!r->t_set[p])
			continue;
		json_object_object_add(t, phase_names[p],
				       json_object_new_double(ms_between(&r->t[prev], &r->t[p])));
		prev = p;
	}
	json_object_object_add(t, "total",
			       json_object_new_double(ms_between(&r->t[PHASE_LAUNCH], &r->t[prev])));
	json_object_object_add(o, "timings_ms", t);
	json_object_object_add(o, "cgroup", pool_json(r));
	json_object_object_add(o, "vmm", json_object_new_string(r->lease ? "pool" : "on-demand"));
	if (r->vmm_note[0])
		json_object_object_add(o, "vmm_note", json_object_new_string(r->vmm_note));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	dprintf(r->o->json_fd, "%s\n", s);
	json_object_put(o);
}

/*
 * Wait up to timeout_ms for QEMU to exit, then kill it; returns its wait
 * status. A pooled VMM is the child of its pool's owner, which reaps it and
 * sends the status.
 */
static int reap_vm(struct run *r, int timeout_ms)
{
	int status;

	if (!r->lease)
		return rund_vm_reap(&r->vm, timeout_ms);
	if (r->vm.pidfd < 0)
		return 0;
	status = rund_vmm_lease_reap(r->lease, timeout_ms);
	r->vm.pidfd = -1;
	r->vm.pid = -1;
	return status < 0 ? 0 : status;
}

/* Kill a pooled VMM that still runs and close what its lease holds. */
static void vmm_lease_drop(struct run *r)
{
	if (!r->lease)
		return;
	rund_vmm_lease_close(r->lease);
	r->vm.pidfd = -1;
	r->vm.pid = -1;
}

/* Ask QEMU to quit over QMP, then kill it when it does not go quickly. */
static void stop_qemu(struct run *r)
{
	struct rund_error err = { 0 };
	struct rund_qmp q;

	if (r->vm.pid <= 0)
		return;
	if (r->qmp_fd >= 0) {
		if (!rund_qmp_open(&q, r->qmp_fd, 300, &err))
			rund_qmp_execute(&q, "quit", NULL, NULL, 0, 300, NULL, &err);
		r->qmp_fd = -1;	/* owned and closed by q now */
		rund_qmp_close(&q);
	}
	reap_vm(r, 500);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int setup_signals(struct run *r, sigset_t *old)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, old);
	signal(SIGPIPE, SIG_IGN);
	r->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	return r->sig_fd < 0 ? -errno : 0;
}

/*
 * Choose the template to restore: the one named by --template, which must
 * match, or else the newest snapshot template that matches this sandbox, or
 * the newest matching pre-boot template when no snapshot matches. Sets
 * r->tmpl.
 */
static int pick_template(struct run *r, struct rund_error *err)
{
	struct rund_template_want want = {
		.image = r->o->image,
		.kernel = r->o->kernel,
		.initrd = r->o->initrd,
		.memory_mib = r->o->memory_mib,
		.vcpus = r->o->vcpus,
	};
	struct stat st;
	int ret;

	r->tmpl_picked = true;
	if (r->o->no_template)
		return 0;
	if (fstat(r->layer_fd, &st))
		return rund_error_set(err, errno, "failed to stat the writable layer");
	want.layer_size = (uint64_t)st.st_size;
	r->tmpl = calloc(1, sizeof(*r->tmpl));
	if (!r->tmpl)
		return rund_error_setx(err, ENOMEM, "out of memory");
	if (r->o->template_name) {
		ret = rund_template_load(r->o->template_name, r->tmpl, err);
		if (!ret)
			ret = rund_template_check(r->tmpl, &want, err);
	} else {
		ret = rund_template_find(&want, r->tmpl, err);
		if (ret == -ENOENT) {
			/* No matching template: boot cold, and keep the reason for the report. */
			snprintf(r->template_note, sizeof(r->template_note), "%s", err->msg);
			free(r->tmpl);
			r->tmpl = NULL;
			return 0;
		}
	}
	if (ret) {
		free(r->tmpl);
		r->tmpl = NULL;
	}
	return ret;
}

/* Load the template's device state into the new QEMU, then set up the clone. */
static int restore_template(struct run *r, int qmp_fd, int agent_fd, struct rund_error *err)
{
	/* Each step may take the whole --timeout, as a cold boot's agent may. */
	int timeout_ms = (int)r->o->timeout_s * 1000;
	struct rund_qmp q;
	int ret;

	ret = rund_qmp_open(&q, qmp_fd, timeout_ms, err);
	if (ret)
		return ret;
	ret = rund_template_restore(r->tmpl, &q, timeout_ms, NULL, err);
	/* QEMU keeps running; a later stop_qemu() kills it without QMP. */
	rund_qmp_close(&q);
	if (ret)
		return ret;
	mark(r, PHASE_RESTORE);
	/*
	 * A pre-boot clone boots now, with its own clock and entropy, mounts its
	 * layer as a cold boot does and sends READY to the event loop.
	 */
	if (r->tmpl->kind == RUND_TEMPLATE_PREBOOT)
		return 0;
	ret = rund_template_send_identity(agent_fd, r->id, r->id, timeout_ms, err);
	if (!ret)
		ret = rund_template_wait_ack(agent_fd, "IDENTITY", timeout_ms, err);
	if (ret)
		return ret;
	mark(r, PHASE_IDENTITY);
	return rund_template_wait_ack(agent_fd, "MOUNT_LAYER", timeout_ms, err);
}

/* Is there a VMM pool socket for template name, or for any template when name is NULL? */
static bool vmm_pool_present(const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	struct dirent *e;
	bool found = false;
	DIR *d;

	if (name)
		return !rund_vmm_pool_socket_path(name, path, sizeof(path)) && !stat(path, &st) &&
		       S_ISSOCK(st.st_mode);
	d = opendir(RUND_VMM_POOL_DIR);
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		found = n > 5 && !strcmp(e->d_name + n - 5, ".sock");
	}
	closedir(d);
	return found;
}

/* Give up on a pooled VMM that failed before the function ran: forget its phases. */
static void vmm_pool_abandon(struct run *r, const char *why)
{
	snprintf(r->vmm_note, sizeof(r->vmm_note), "the pooled VMM failed (%.900s)", why);
	vmm_lease_drop(r);
	free(r->lease);
	r->lease = NULL;
	memset(&r->vm, 0, sizeof(r->vm));
	r->vm.pid = -1;
	r->vm.pidfd = -1;
	memset(&r->pool, 0, sizeof(r->pool));
	r->pool.dirs.dir_fd = -1;
	r->pool.method = "none";
	/* The guest may have mounted the layer: the next QEMU gets a new one. */
	close_fd(&r->layer_fd);
	r->t_set[PHASE_HANDOFF] = r->t_set[PHASE_SWAP] = false;
	r->t_set[PHASE_RESTORE] = r->t_set[PHASE_IDENTITY] = false;
}

/*
 * Start the sandbox in a VMM taken from the pool that serves its template
 * (rund-helper vmm-pool serve): clone the layer, pick the template, take a
 * VMM, swap the layer in, restore, personalise, send RUN. Returns 1 when the
 * sandbox runs in a pooled VMM, 0 when QEMU must be started on demand (no
 * template, no pool, pool empty or broken; r->vmm_note gives the reason when
 * a pool was asked), -1 on a failure already recorded with fail_run().
 */
static int vmm_pool_start(struct run *r)
{
	const char *env = getenv("RUND_VMM_POOL");
	int timeout_ms = (int)r->o->timeout_s * 1000;
	struct rund_error err = { 0 };
	struct rund_vmm_lease *l;
	struct rund_qmp q;
	char sock[PATH_MAX];
	int ret;

	/* A retry after a failed attempt (KVM) starts QEMU on demand. */
	if (r->lease) {
		vmm_lease_drop(r);
		free(r->lease);
		r->lease = NULL;
	}
	if (env && *env && strcmp(env, "auto") && strcmp(env, "off")) {
		fail_run(r, RUND_EXIT_FAILED, "rund", "invalid RUND_VMM_POOL '%s': use auto or off", env);
		return -1;
	}
	if (r->o->no_template || r->o->no_vmm_pool || (env && !strcmp(env, "off")) || r->tmpl_picked ||
	    !vmm_pool_present(r->o->template_name))
		return 0;

	r->layer_fd = rund_layer_clone(r->o->layer, r->o->allow_copy ? RUND_LAYER_ALLOW_COPY : 0,
				       &r->layer_source, &err);
	if (r->layer_fd < 0) {
		fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
		return -1;
	}
	r->have_layer_source = true;
	mark(r, PHASE_LAYER);
	if (pick_template(r, &err)) {
		fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
		return -1;
	}
	if (!r->tmpl || r->tmpl->kind != RUND_TEMPLATE_SNAPSHOT ||
	    rund_vmm_pool_socket_path(r->tmpl->name, sock, sizeof(sock)))
		return 0;
	if (!vmm_pool_present(r->tmpl->name)) {
		snprintf(r->vmm_note, sizeof(r->vmm_note), "no VMM pool serves template '%s'",
			 r->tmpl->name);
		return 0;
	}

	l = malloc(sizeof(*l));
	if (!l)
		return 0;
	ret = rund_vmm_pool_take(sock, r->tmpl->name, r->tmpl->memory_path, r->id, 2000, l, &err);
	if (ret) {
		snprintf(r->vmm_note, sizeof(r->vmm_note), "%.900s", err.msg);
		free(l);
		return 0;
	}
	mark(r, PHASE_HANDOFF);
	r->lease = l;
	r->vm.pid = l->pid;
	r->vm.pidfd = l->fds[RUND_VMM_FD_PIDFD];
	r->vm.accel = strcmp(l->accel, "kvm") ? RUND_ACCEL_TCG : RUND_ACCEL_KVM;
	r->vm.accel_reason = l->accel_reason[0] ? l->accel_reason : NULL;
	r->vm.qemu = l->qemu;
	r->vm.in_cgroup = l->in_cgroup;
	r->pool.used = l->has_slot;
	if (l->has_slot) {
		r->pool.backend = strcmp(l->slot_backend, "module") ? RUND_POOL_BACKEND_CGROUPFS :
								     RUND_POOL_BACKEND_MODULE;
		r->pool.slot.index = l->slot_index;
		snprintf(r->pool.slot.path, sizeof(r->pool.slot.path), "%s", l->slot_path);
		r->pool.method = l->slot_method;
	} else {
		snprintf(r->pool.note, sizeof(r->pool.note), "%s", l->slot_note);
	}

	ret = rund_qmp_open(&q, l->fds[RUND_VMM_FD_QMP], timeout_ms, &err);
	l->fds[RUND_VMM_FD_QMP] = -1;	/* owned by q now */
	if (!ret)
		ret = rund_vmm_swap_layer(&q, r->layer_fd, timeout_ms, &err);
	if (!ret) {
		mark(r, PHASE_SWAP);
		ret = rund_template_restore(r->tmpl, &q, timeout_ms, NULL, &err);
	}
	rund_qmp_close(&q);
	if (!ret) {
		mark(r, PHASE_RESTORE);
		ret = rund_template_send_identity(l->fds[RUND_VMM_FD_AGENT], r->id, r->id,
						  timeout_ms, &err);
	}
	if (!ret)
		ret = rund_template_wait_ack(l->fds[RUND_VMM_FD_AGENT], "IDENTITY", timeout_ms, &err);
	if (!ret) {
		mark(r, PHASE_IDENTITY);
		ret = rund_template_wait_ack(l->fds[RUND_VMM_FD_AGENT], "MOUNT_LAYER", timeout_ms, &err);
	}
	if (ret) {
		vmm_pool_abandon(r, err.msg);
		return 0;
	}

	r->agent_fd = l->fds[RUND_VMM_FD_AGENT];
	r->console_fd = l->fds[RUND_VMM_FD_CONSOLE];
	r->qemu_err_fd = l->fds[RUND_VMM_FD_STDERR];
	l->fds[RUND_VMM_FD_AGENT] = l->fds[RUND_VMM_FD_CONSOLE] = l->fds[RUND_VMM_FD_STDERR] = -1;
	fcntl(r->agent_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->console_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->qemu_err_fd, F_SETFL, O_NONBLOCK);
	return send_run(r) ? -1 : 1;
}

static int start(struct run *r)
{
	enum rund_pool_backend backend;
	bool pool_disabled;
	struct rund_vm_config cfg = { 0 };
	struct rund_error err = { 0 };
	int agent[2] = { -1, -1 }, qmp[2] = { -1, -1 }, con[2] = { -1, -1 };
	int errp[2] = { -1, -1 };
	unsigned int flags = 0;
	uint64_t rnd;
	int ret;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	snprintf(r->id, sizeof(r->id), "%016llx", (unsigned long long)rnd);

	ret = vmm_pool_start(r);
	if (ret)
		return ret < 0 ? r->status : 0;

	/*
	 * Claim the cgroup slot first: on v1 the launcher thread moves into it
	 * while the layer is made, so the spawn itself writes no cgroup file.
	 */
	rund_pool_launch_end(&r->pool, &err);
	if (rund_pool_backend_from_env(&backend, &pool_disabled))
		return fail_run(r, RUND_EXIT_FAILED, "rund",
				"invalid RUND_POOL_BACKEND '%s': use auto, module, cgroupfs or none",
				getenv("RUND_POOL_BACKEND"));
	if (rund_pool_launch_claim(&r->pool, backend, pool_disabled, r->id, NULL, &err))
		return fail_run(r, RUND_EXIT_FAILED, "rund", "cgroup slot: %s", err.msg);
	mark(r, PHASE_CGROUP);

	if (access(r->o->kernel, R_OK))
		return fail_run(r, RUND_EXIT_FAILED, "rund",
				"guest kernel %s: %s (run scripts/setup.sh or pass --kernel)",
				r->o->kernel, strerror(errno));
	if (access(r->o->initrd, R_OK))
		return fail_run(r, RUND_EXIT_FAILED, "rund",
				"agent initramfs %s: %s (run scripts/setup.sh or pass --initrd)",
				r->o->initrd, strerror(errno));
	r->image_fd = open_image("image", r->o->image, O_RDONLY, &err);
	if (r->image_fd < 0)
		return fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);

	if (r->o->allow_copy)
		flags |= RUND_LAYER_ALLOW_COPY;
	if (r->layer_fd < 0)	/* vmm_pool_start() may have made it */
		r->layer_fd = rund_layer_clone(r->o->layer, flags, &r->layer_source, &err);
	if (r->layer_fd < 0)
		return fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
	r->have_layer_source = true;
	mark(r, PHASE_LAYER);

	if (!r->tmpl_picked && pick_template(r, &err))
		return fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) ||
	    pipe2(errp, O_CLOEXEC)) {
		ret = fail_run(r, RUND_EXIT_FAILED, "rund", "failed to create sockets: %s",
			       strerror(errno));
		goto out_close;
	}

	cfg.kernel = r->o->kernel;
	cfg.initrd = r->o->initrd;
	cfg.image_fd = r->image_fd;
	cfg.layer_fd = r->layer_fd;
	cfg.agent_fd = agent[1];
	cfg.qmp_fd = qmp[1];
	cfg.console_fd = con[1];
	cfg.stderr_fd = errp[1];
	cfg.memory_mib = r->o->memory_mib;
	cfg.vcpus = r->o->vcpus;
	cfg.cgroup_fd = rund_pool_launch_cgroup_fd(&r->pool);
	if (r->tmpl) {
		cfg.memory_path = r->tmpl->memory_path;
		cfg.memory_share = false;
		cfg.incoming = true;
		/* A pre-boot clone's firmware reads kernel, initramfs and command line from fw_cfg. */
		cfg.boot_files = r->tmpl->kind == RUND_TEMPLATE_PREBOOT;
	}
	ret = rund_vm_start_in_slot(&r->pool, &cfg, &r->vm, &err);
	if (ret) {
		ret = fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
		goto out_close;
	}
	ret = rund_pool_launch_spawned(&r->pool, r->vm.pid, &err);
	if (ret) {
		ret = fail_run(r, RUND_EXIT_FAILED, "rund", "cgroup slot: %s", err.msg);
		rund_vm_reap(&r->vm, 0);
		r->vm.pid = -1;
		goto out_close;
	}
	mark(r, PHASE_SPAWN);
	if (r->tmpl) {
		ret = restore_template(r, qmp[0], agent[0], &err);
		qmp[0] = -1;	/* closed by restore_template() */
		if (ret) {
			ret = fail_run(r, RUND_EXIT_FAILED, "rund", "%s", err.msg);
			rund_vm_reap(&r->vm, 0);
			r->vm.pid = -1;
			goto out_close;
		}
	}

	r->agent_fd = agent[0];
	r->qmp_fd = qmp[0];
	r->console_fd = con[0];
	r->qemu_err_fd = errp[0];
	agent[0] = qmp[0] = con[0] = errp[0] = -1;
	fcntl(r->agent_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->console_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->qemu_err_fd, F_SETFL, O_NONBLOCK);
	ret = r->tmpl && r->tmpl->kind == RUND_TEMPLATE_SNAPSHOT ? send_run(r) : 0;

out_close:
	close_fd(&agent[0]);
	close_fd(&agent[1]);
	close_fd(&qmp[0]);
	close_fd(&qmp[1]);
	close_fd(&con[0]);
	close_fd(&con[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	return ret;
}

static void report_qemu_exit(struct run *r, int status)
{
	char tail[CONSOLE_TAIL];

	if (r->exited || r->failed_by)
		return;
	tail_copy(&r->console, tail, sizeof(tail), 20);
	while (r->qemu_err_len && r->qemu_err[r->qemu_err_len - 1] == '\n')
		r->qemu_err[--r->qemu_err_len] = '\0';
	if (r->qemu_err_len)
		fail_run(r, RUND_EXIT_FAILED, "rund", "QEMU exited (status %d) before the function did: %s",
			 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
			 r->qemu_err);
	else
		fail_run(r, RUND_EXIT_FAILED, "rund",
			 "the guest stopped before the function exited; last console lines:\n%s",
			 tail[0] ? tail : "(no console output)");
}

/* Close what one start opened and forget its state, so that a retry starts clean. */
static void close_attempt(struct run *r)
{
	vmm_lease_drop(r);
	close_fd(&r->agent_fd);
	close_fd(&r->qmp_fd);
	close_fd(&r->console_fd);
	close_fd(&r->qemu_err_fd);
	close_fd(&r->layer_fd);
	close_fd(&r->image_fd);
	rund_agent_reader_init(r->reader);
	memset(&r->console, 0, sizeof(r->console));
	r->qemu_err_len = 0;
	r->qemu_err[0] = '\0';
	r->tx_len = r->tx_off = 0;
	r->stdin_open = false;
	r->kvm_failed = false;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	struct run r = { 0 };
	sigset_t oldmask;
	int status = 0, attempt;

	if (parse_args(argc, argv, &o))
		return RUND_EXIT_FAILED;

	r.o = &o;
	r.image_fd = r.layer_fd = r.agent_fd = r.qmp_fd = -1;
	r.console_fd = r.qemu_err_fd = r.sig_fd = -1;
	r.vm.pid = -1;
	r.vm.pidfd = -1;
	r.pool.dirs.dir_fd = -1;
	r.pool.method = "none";
	mark(&r, PHASE_LAUNCH);

	r.reader = malloc(sizeof(*r.reader));
	r.txbuf = malloc(RUND_AGENT_FRAME_MAX);
	if (!r.reader || !r.txbuf) {
		fprintf(stderr, "rund-helper run: out of memory\n");
		return RUND_EXIT_FAILED;
	}
	rund_agent_reader_init(r.reader);

	if (setup_signals(&r, &oldmask)) {
		fail_run(&r, RUND_EXIT_FAILED, "rund", "failed to set up signal handling: %s",
			 strerror(errno));
		goto out;
	}

	for (attempt = 0;; attempt++) {
		if (start(&r))
			break;
		r.qemu_pid = r.vm.pid;
		event_loop(&r);

		if (r.kvm_failed && attempt == 0) {
			char why[256];

			const char *line = strstr(r.qemu_err, "KVM internal error");

			if (!line)
				line = strstr(r.qemu_err, "kvm run failed");
			if (!line)
				line = r.qemu_err;
			snprintf(why, sizeof(why), "QEMU failed to run the guest under KVM: %.*s",
				 (int)strcspn(line, "\n"), line);
			stop_qemu(&r);
			close_attempt(&r);
			rund_accel_mark_kvm_unusable(why);
			fprintf(stderr, "rund-helper run: %s; using TCG from now on (remove %s to probe KVM again)\n",
				why, RUND_KVM_UNUSABLE_FILE);
			continue;
		}

		if (r.exited || (r.vm.pidfd >= 0 && !r.failed_by)) {
			/* The guest reboots after EXIT, which ends QEMU. */
			status = reap_vm(&r, REBOOT_WAIT_MS);
			report_qemu_exit(&r, status);
		} else {
			stop_qemu(&r);
		}
		mark(&r, PHASE_TEARDOWN);
		break;
	}

out:
	close_attempt(&r);
	close_fd(&r.sig_fd);
	{
		struct rund_error err = { 0 };

		/* QEMU is gone by now: release kills whatever it left in the slot. */
		if (rund_pool_launch_end(&r.pool, &err))
			fprintf(stderr, "rund-helper run: warning: releasing cgroup slot of %s: %s\n",
				r.id, err.msg);
	}

	if (r.failed_by)
		fprintf(stderr, "rund-helper run: %s\n", r.reason);
	if (o.timings)
		print_timings(&r);
	if (o.json)
		print_json(&r);
	free(r.reader);
	free(r.txbuf);
	free(o.env);
	free(r.tmpl);
	free(r.lease);
	return r.status;
}
