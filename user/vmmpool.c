// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rund-helper vmm-pool: keep QEMU processes started ahead of time for one
 * snapshot template, paused at -incoming defer, and hand them to
 * `rund-helper run` over a unix socket (protocol in lib/vmmpool.h).
 *
 * serve is one single-threaded event loop. It starts members one at a time
 * until the pool is full and hands ready members over. It stays every
 * member's parent, so it reaps them, sends a borrower its QEMU's wait status,
 * releases the member's cgroup slot and starts a replacement.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "pool.h"
#include "template.h"
#include "util.h"
#include "verbs.h"
#include "vm.h"
#include "vmmpool.h"

#define POOL_SIZE_MAX 256
#define MAX_CLIENTS 32
#define CLIENT_TIMEOUT_MS 2000		/* a connection must send its request by then */
#define TEMPLATE_CHECK_MS 2000		/* how often the template is looked at again */
#define BACKOFF_MAX_MS 30000
#define REFILL_DELAY_MS 50

static const char *prog = "rund-helper vmm-pool";

enum member_state {
	M_FREE,
	M_STARTING,			/* spawned, QMP greeting not yet sent */
	M_READY,			/* waiting for a borrower */
	M_LENT,				/* handed over, conn is the borrower */
};

static const char *const state_names[] = {
	[M_FREE] = "free", [M_STARTING] = "starting", [M_READY] = "ready", [M_LENT] = "lent",
};

struct member {
	enum member_state state;
	struct rund_vm vm;
	struct rund_pool_launch launch;
	char slot_id[RUND_SANDBOX_ID_MAX + 1];
	int fds[RUND_VMM_FD_STDERR + 1];	/* host ends: QMP, agent, console, stderr */
	int conn;
	bool killed;			/* the owner killed it on purpose */
	long long t_spawn, t_ready;	/* ms, CLOCK_MONOTONIC */
};

struct client {
	int fd;
	long long deadline;
};

struct server {
	struct rund_template tmpl;
	bool stale;			/* the template is gone or was made again */
	char socket_path[PATH_MAX];
	dev_t sock_dev;
	ino_t sock_ino;
	unsigned int size;
	unsigned int refill_delay_ms;
	struct member *m;
	struct client c[MAX_CLIENTS];
	int listen_fd, sig_fd, image_fd;
	enum rund_pool_backend backend;
	bool pool_disabled;
	bool draining, kill_lent;
	unsigned int seq, fail_streak;
	long long next_spawn, next_check;
	unsigned long long started, handoffs, misses, replaced, bad_requests;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rund-helper vmm-pool serve --template NAME [--size N] [--socket PATH]\n"
		"                                  [--refill-delay MS]\n"
		"       rund-helper vmm-pool status [--socket PATH] [--json]\n"
		"\n"
		"Keep N QEMU processes started ahead of time for a snapshot template, paused\n"
		"and waiting for the template's state, and hand them to 'rund-helper run'.\n"
		"\n"
		"serve runs in the foreground until SIGTERM or SIGINT: it then stops taking\n"
		"requests, ends the waiting VMMs, waits for the ones lent to running sandboxes\n"
		"(a second signal ends those too), releases every cgroup slot and removes\n"
		"its socket.\n"
		"\n"
		"  --template NAME  snapshot template whose clones the pool serves\n"
		"  --size N         VMMs kept ready (default 4, 1-%d)\n"
		"  --refill-delay MS  start replacements only MS after the last hand-over, one\n"
		"                   at a time, to leave the CPUs to the clones (default %d)\n"
		"  --socket PATH    socket to serve on or query (default %s/NAME.sock;\n"
		"                   run only looks there)\n"
		"  --json           status: print one JSON object per pool\n"
		"\n"
		"Each VMM is born in a cgroup slot of the node's pool claimed ahead of time and\n"
		"bound to this process (RUND_POOL_BACKEND as for run). run uses a pool when its\n"
		"socket answers, unless given --no-vmm-pool or RUND_VMM_POOL=off.\n",
		POOL_SIZE_MAX, REFILL_DELAY_MS, RUND_VMM_POOL_DIR);
}

/* Members */

static void member_init(struct member *m)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	m->state = M_FREE;
	m->vm.pid = -1;
	m->vm.pidfd = -1;
	m->conn = -1;
	m->launch.dirs.dir_fd = -1;
	m->launch.method = "none";
	for (i = 0; i < ARRAY_SIZE(m->fds); i++)
		m->fds[i] = -1;
}

static void member_close_fds(struct member *m)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(m->fds); i++)
		close_fd(&m->fds[i]);
}

static void backoff(struct server *s)
{
	long long delay = 1000LL << (s->fail_streak < 5 ? s->fail_streak : 5);

	s->fail_streak++;
	s->next_spawn = rund_now_ms() + (delay < BACKOFF_MAX_MS ? delay : BACKOFF_MAX_MS);
}

/* Claim a slot and start one QEMU in it, exactly as run starts a clone's. */
static int member_spawn(struct server *s, struct member *m)
{
	const struct rund_template_match *t = &s->tmpl.match;
	int agent[2] = { -1, -1 }, qmp[2] = { -1, -1 }, con[2] = { -1, -1 }, errp[2] = { -1, -1 };
	struct rund_vm_config cfg = { 0 };
	struct rund_error err = { 0 };
	int ret;

	member_init(m);
	snprintf(m->slot_id, sizeof(m->slot_id), "vmmpool-%d-%u", (int)getpid(), s->seq++);
	ret = rund_pool_launch_claim(&m->launch, s->backend, s->pool_disabled, m->slot_id, NULL, &err);
	if (ret) {
		fprintf(stderr, "%s: cannot claim a cgroup slot for a VMM: %s\n", prog, err.msg);
		member_init(m);
		return ret;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) ||
	    pipe2(errp, O_CLOEXEC)) {
		ret = rund_error_set(&err, errno, "failed to create sockets");
		goto out;
	}

	cfg.kernel = t->kernel;
	cfg.initrd = t->initrd;
	cfg.image_fd = s->image_fd;
	cfg.layer_fd = -1;
	cfg.layer_placeholder = t->layer_size;
	cfg.agent_fd = agent[1];
	cfg.qmp_fd = qmp[1];
	cfg.console_fd = con[1];
	cfg.stderr_fd = errp[1];
	cfg.memory_mib = t->memory_mib;
	cfg.vcpus = t->vcpus;
	cfg.memory_path = s->tmpl.memory_path;
	cfg.memory_share = false;
	cfg.incoming = true;
	cfg.cgroup_fd = rund_pool_launch_cgroup_fd(&m->launch);
	ret = rund_vm_start_in_slot(&m->launch, &cfg, &m->vm, &err);
	if (ret)
		goto out;
	ret = rund_pool_launch_spawned(&m->launch, m->vm.pid, &err);
	if (ret) {
		rund_vm_reap(&m->vm, 0);
		goto out;
	}
	m->fds[RUND_VMM_FD_QMP] = qmp[0];
	m->fds[RUND_VMM_FD_AGENT] = agent[0];
	m->fds[RUND_VMM_FD_CONSOLE] = con[0];
	m->fds[RUND_VMM_FD_STDERR] = errp[0];
	qmp[0] = agent[0] = con[0] = errp[0] = -1;
	m->state = M_STARTING;
	m->t_spawn = rund_now_ms();
	s->started++;
out:
	close_fd(&agent[0]);
	close_fd(&agent[1]);
	close_fd(&qmp[0]);
	close_fd(&qmp[1]);
	close_fd(&con[0]);
	close_fd(&con[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	if (ret) {
		struct rund_error ignored = { 0 };

		fprintf(stderr, "%s: cannot start a VMM: %s\n", prog, err.msg);
		rund_pool_launch_end(&m->launch, &ignored);
		member_init(m);
	}
	return ret;
}

static void member_kill(struct member *m)
{
	if (m->vm.pidfd >= 0 && !m->killed) {
		syscall(SYS_pidfd_send_signal, m->vm.pidfd, SIGKILL, NULL, 0);
		m->killed = true;
	}
}

/* QEMU's stderr, for the log of a member that died while waiting. */
static void read_stderr(struct member *m, char *buf, size_t size)
{
	ssize_t n = 0;

	buf[0] = '\0';
	if (m->fds[RUND_VMM_FD_STDERR] >= 0) {
		fcntl(m->fds[RUND_VMM_FD_STDERR], F_SETFL, O_NONBLOCK);
		n = read(m->fds[RUND_VMM_FD_STDERR], buf, size - 1);
	}
	if (n > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
	}
}

/* The member's QEMU exited: reap it, tell its borrower, free its slot. */
static void member_reaped(struct server *s, struct member *m)
{
	struct rund_error err = { 0 };
	char why[512];
	int status = 0;

	TEMP_FAILURE_RETRY(waitpid(m->vm.pid, &status, 0));
	if (m->state == M_LENT) {
		json_object *msg = json_object_new_object();

		json_object_object_add(msg, "exit", json_object_new_int(status));
		rund_vmm_send(m->conn, msg, NULL, 0, &err);	/* a borrower that left needs none */
		json_object_put(msg);
	} else if (!m->killed) {
		read_stderr(m, why, sizeof(why));
		fprintf(stderr, "%s: waiting VMM pid %d %s %d%s%s; starting a replacement\n", prog,
			(int)m->vm.pid, WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
			why[0] ? ": " : "", why);
		s->replaced++;
		/* A QEMU that fails at once would fail again: do not spin. */
		if (m->state == M_STARTING || rund_now_ms() - m->t_spawn < 5000)
			backoff(s);
	}
	close_fd(&m->vm.pidfd);
	close_fd(&m->conn);
	member_close_fds(m);
	if (rund_pool_launch_end(&m->launch, &err))
		fprintf(stderr, "%s: warning: releasing cgroup slot %s: %s\n", prog, m->slot_id, err.msg);
	member_init(m);
}

/* Requests */

static void reply_error(struct server *s, int fd, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_error(struct server *s, int fd, const char *reason, const char *fmt, ...)
{
	struct rund_error err = { 0 };
	json_object *msg = json_object_new_object();
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_object_object_add(msg, "ok", json_object_new_boolean(false));
	json_object_object_add(msg, "reason", json_object_new_string(reason));
	json_object_object_add(msg, "error", json_object_new_string(text));
	rund_vmm_send(fd, msg, NULL, 0, &err);
	json_object_put(msg);
}

static unsigned int count(const struct server *s, enum member_state st)
{
	unsigned int i, n = 0;

	for (i = 0; i < s->size; i++)
		n += s->m[i].state == st;
	return n;
}

static json_object *status_json(const struct server *s)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	long long now = rund_now_ms();
	unsigned int i;

	json_object_object_add(o, "ok", json_object_new_boolean(true));
	json_object_object_add(o, "template", json_object_new_string(s->tmpl.name));
	json_object_object_add(o, "memory", json_object_new_string(s->tmpl.memory_path));
	json_object_object_add(o, "socket", json_object_new_string(s->socket_path));
	json_object_object_add(o, "owner_pid", json_object_new_int(getpid()));
	json_object_object_add(o, "size", json_object_new_int((int)s->size));
	json_object_object_add(o, "ready", json_object_new_int((int)count(s, M_READY)));
	json_object_object_add(o, "starting", json_object_new_int((int)count(s, M_STARTING)));
	json_object_object_add(o, "lent", json_object_new_int((int)count(s, M_LENT)));
	json_object_object_add(o, "draining", json_object_new_boolean(s->draining));
	json_object_object_add(o, "template_stale", json_object_new_boolean(s->stale));
	json_object_object_add(o, "started", json_object_new_int64((int64_t)s->started));
	json_object_object_add(o, "handoffs", json_object_new_int64((int64_t)s->handoffs));
	json_object_object_add(o, "misses", json_object_new_int64((int64_t)s->misses));
	json_object_object_add(o, "replaced", json_object_new_int64((int64_t)s->replaced));
	json_object_object_add(o, "bad_requests", json_object_new_int64((int64_t)s->bad_requests));
	for (i = 0; i < s->size; i++) {
		const struct member *m = &s->m[i];
		json_object *e;

		if (m->state == M_FREE)
			continue;
		e = json_object_new_object();
		json_object_object_add(e, "pid", json_object_new_int(m->vm.pid));
		json_object_object_add(e, "state", json_object_new_string(state_names[m->state]));
		json_object_object_add(e, "slot", m->launch.claimed ?
				       json_object_new_string(m->launch.slot.path) : NULL);
		json_object_object_add(e, "age_ms", json_object_new_int64(now - m->t_spawn));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "members", arr);
	return o;
}

/* Send member m to the borrower on fd; on success the member is lent. */
static int hand_over(struct server *s, struct member *m, int fd)
{
	struct rund_error err = { 0 };
	json_object *msg = json_object_new_object();
	int fds[RUND_VMM_NR_FDS];
	int ret;

	json_object_object_add(msg, "ok", json_object_new_boolean(true));
	json_object_object_add(msg, "pid", json_object_new_int(m->vm.pid));
	json_object_object_add(msg, "accel", json_object_new_string(rund_accel_name(m->vm.accel)));
	json_object_object_add(msg, "qemu", json_object_new_string(m->vm.qemu));
	if (m->vm.accel_reason)
		json_object_object_add(msg, "accel_reason", json_object_new_string(m->vm.accel_reason));
	json_object_object_add(msg, "in_cgroup", json_object_new_boolean(m->vm.in_cgroup));
	json_object_object_add(msg, "waited_ms", json_object_new_int64(rund_now_ms() - m->t_ready));
	if (m->launch.claimed) {
		json_object *slot = json_object_new_object();

		json_object_object_add(slot, "index", json_object_new_int64(m->launch.slot.index));
		json_object_object_add(slot, "path", json_object_new_string(m->launch.slot.path));
		json_object_object_add(slot, "backend",
				       json_object_new_string(rund_pool_backend_name(m->launch.backend)));
		json_object_object_add(slot, "method", json_object_new_string(m->launch.method));
		json_object_object_add(slot, "id", json_object_new_string(m->slot_id));
		json_object_object_add(msg, "slot", slot);
	} else {
		json_object_object_add(msg, "slot", NULL);
		json_object_object_add(msg, "slot_note", json_object_new_string(m->launch.note));
	}
	fds[RUND_VMM_FD_QMP] = m->fds[RUND_VMM_FD_QMP];
	fds[RUND_VMM_FD_AGENT] = m->fds[RUND_VMM_FD_AGENT];
	fds[RUND_VMM_FD_CONSOLE] = m->fds[RUND_VMM_FD_CONSOLE];
	fds[RUND_VMM_FD_STDERR] = m->fds[RUND_VMM_FD_STDERR];
	fds[RUND_VMM_FD_PIDFD] = m->vm.pidfd;
	ret = rund_vmm_send(fd, msg, fds, RUND_VMM_NR_FDS, &err);
	json_object_put(msg);
	if (ret)
		return ret;	/* the member stays ready for the next borrower */
	member_close_fds(m);
	m->conn = fd;
	m->state = M_LENT;
	s->handoffs++;
	/* Keep the refill's QEMU start-up off the CPUs while this clone starts. */
	if (s->next_spawn < rund_now_ms() + s->refill_delay_ms)
		s->next_spawn = rund_now_ms() + s->refill_delay_ms;
	return 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Handle the one request of a client. Returns true when fd now belongs to a lent member. */
static bool handle_request(struct server *s, int fd)
{
	struct rund_error err = { 0 };
	json_object *req = NULL;
	const char *op, *name, *mem;
	int fds[1], nfds, ret;
	unsigned int i;
	bool lent = false;

	ret = rund_vmm_recv(fd, 0, &req, fds, 0, &nfds, &err);
	if (ret == -ECONNRESET)
		return false;
	if (ret) {
		s->bad_requests++;
		reply_error(s, fd, "bad-request", "bad request: %s", err.msg);
		return false;
	}
	op = jstr(req, "op");
	if (op && !strcmp(op, "status")) {
		json_object *st = status_json(s);

		rund_vmm_send(fd, st, NULL, 0, &err);
		json_object_put(st);
		goto out;
	}
	if (!op || strcmp(op, "take")) {
		s->bad_requests++;
		reply_error(s, fd, "bad-request", "bad request: \"op\" must be \"take\" or \"status\"");
		goto out;
	}
	name = jstr(req, "template");
	mem = jstr(req, "memory");
	if (!name || !mem) {
		s->bad_requests++;
		reply_error(s, fd, "bad-request",
			    "bad request: \"take\" needs the strings \"template\" and \"memory\"");
		goto out;
	}
	if (s->draining) {
		reply_error(s, fd, "draining", "the pool is shutting down");
		goto out;
	}
	if (strcmp(name, s->tmpl.name) || strcmp(mem, s->tmpl.memory_path) || s->stale) {
		reply_error(s, fd, "mismatch",
			    "this pool serves template '%s' with memory file %s%s, not '%s' with %s",
			    s->tmpl.name, s->tmpl.memory_path,
			    s->stale ? " (gone or made again since; the pool is reloading it)" : "",
			    name, mem);
		goto out;
	}
	/* The VMM that has waited longest: its start-up is surely over. */
	{
		struct member *best = NULL;

		for (i = 0; i < s->size; i++)
			if (s->m[i].state == M_READY && (!best || s->m[i].t_ready < best->t_ready))
				best = &s->m[i];
		if (!best) {
			s->misses++;
			reply_error(s, fd, "empty", "no VMM ready (%u starting of %u)",
				    count(s, M_STARTING), s->size);
			goto out;
		}
		lent = !hand_over(s, best, fd);
	}
out:
	json_object_put(req);
	return lent;
}

/* Template changes */

/* Check that clones of t could start on this host now, as run would. */
static int template_usable(const struct rund_template *t, struct rund_error *err)
{
	struct rund_template_want want = {
		.image = t->match.image,
		.kernel = t->match.kernel,
		.initrd = t->match.initrd,
		.memory_mib = t->match.memory_mib,
		.vcpus = t->match.vcpus,
		.layer_size = t->match.layer_size,
	};

	if (t->kind != RUND_TEMPLATE_SNAPSHOT)
		return rund_error_setx(err, EINVAL, "template '%s' is a %s template; the VMM pool serves snapshot templates only",
				       t->name, rund_template_kind_name(t->kind));
	if (access(t->memory_path, R_OK))
		return rund_error_set(err, errno, "template '%s': memory file %s", t->name, t->memory_path);
	return rund_template_check(t, &want, err);
}

static void kill_waiting(struct server *s)
{
	unsigned int i;

	for (i = 0; i < s->size; i++)
		if (s->m[i].state == M_READY || s->m[i].state == M_STARTING)
			member_kill(&s->m[i]);
}

/*
 * Look at the template again. When it was deleted or can no longer start on
 * this host (a new guest kernel, say), end the waiting VMMs and start none
 * until it can. When it was made again, end them and serve the new one.
 */
static void check_template(struct server *s)
{
	struct rund_error err = { 0 };
	struct rund_template t;

	s->next_check = rund_now_ms() + TEMPLATE_CHECK_MS;
	if (rund_template_load(s->tmpl.name, &t, &err) || template_usable(&t, &err)) {
		if (!s->stale) {
			fprintf(stderr, "%s: cannot serve template '%s' now, ending the waiting VMMs: %s\n",
				prog, s->tmpl.name, err.msg);
			kill_waiting(s);
		}
		s->stale = true;
		return;
	}
	if (!strcmp(t.memory_path, s->tmpl.memory_path) && t.created_ns == s->tmpl.created_ns) {
		if (s->stale)
			fprintf(stderr, "%s: template '%s' is usable again\n", prog, t.name);
		s->stale = false;
		return;
	}
	fprintf(stderr, "%s: template '%s' was made again; serving the new one\n", prog, t.name);
	kill_waiting(s);
	s->tmpl = t;
	s->stale = false;
	s->fail_streak = 0;
	s->next_spawn = 0;
}

/* Socket */

static int open_socket(struct server *s, struct rund_error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	char dir[PATH_MAX], *slash;
	int fd, probe;

	if (strlen(s->socket_path) >= sizeof(sun.sun_path))
		return rund_error_setx(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes",
				       s->socket_path, sizeof(sun.sun_path) - 1);
	strcpy(sun.sun_path, s->socket_path);
	snprintf(dir, sizeof(dir), "%s", s->socket_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (!strcmp(dir, RUND_VMM_POOL_DIR)) {
			mkdir("/run/rund", 0755);
			mkdir(dir, 0755);
		}
	}

	/* A socket that accepts a connection belongs to a running pool; any other is stale. */
	probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !connect(probe, (struct sockaddr *)&sun, sizeof(sun))) {
		close(probe);
		return rund_error_setx(err, EADDRINUSE,
				       "a VMM pool already serves on %s; stop it first or pass another --socket",
				       s->socket_path);
	}
	if (probe >= 0)
		close(probe);
	if (!lstat(s->socket_path, &st)) {
		if (!S_ISSOCK(st.st_mode))
			return rund_error_setx(err, EEXIST, "%s exists and is not a socket; remove it or pass another --socket",
					       s->socket_path);
		unlink(s->socket_path);
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return rund_error_set(err, errno, "failed to create a socket");
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(s->socket_path, 0600) ||
	    listen(fd, 64) || stat(s->socket_path, &st)) {
		int e = errno;

		close(fd);
		return rund_error_set(err, e, "failed to listen on %s", s->socket_path);
	}
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	s->listen_fd = fd;
	return 0;
}

/* Remove the socket unless another pool has put its own there since. */
static void close_socket(struct server *s)
{
	struct stat st;

	if (s->listen_fd < 0)
		return;
	if (!lstat(s->socket_path, &st) && st.st_dev == s->sock_dev && st.st_ino == s->sock_ino)
		unlink(s->socket_path);
	close_fd(&s->listen_fd);
}

static void accept_clients(struct server *s)
{
	struct ucred cred;
	socklen_t len;
	unsigned int i;
	int fd;

	while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != 0) {
			/* The socket is 0600 already; a second lock on the same door. */
			reply_error(s, fd, "bad-request", "only root may use the VMM pool");
			close(fd);
			continue;
		}
		for (i = 0; i < MAX_CLIENTS && s->c[i].fd >= 0; i++)
			;
		if (i == MAX_CLIENTS) {
			s->misses++;
			reply_error(s, fd, "empty", "too many requests at once");
			close(fd);
			continue;
		}
		s->c[i].fd = fd;
		s->c[i].deadline = rund_now_ms() + CLIENT_TIMEOUT_MS;
	}
}

/* The loop */

static void start_drain(struct server *s)
{
	unsigned int i;

	if (!s->draining) {
		if (count(s, M_LENT))
			fprintf(stderr, "%s: stopping: ending the waiting VMMs, waiting for the %u lent to sandboxes (signal again to end those)\n",
				prog, count(s, M_LENT));
		else
			fprintf(stderr, "%s: stopping: ending the waiting VMMs\n", prog);
		s->draining = true;
		close_socket(s);
	} else {
		s->kill_lent = true;
	}
	for (i = 0; i < s->size; i++)
		if (s->m[i].state != M_FREE && (s->m[i].state != M_LENT || s->kill_lent))
			member_kill(&s->m[i]);
}

static int serve_loop(struct server *s)
{
	struct pollfd *p;
	int *fd_owner;		/* what each pollfd is: see the encoding below */
	size_t cap = 2 + MAX_CLIENTS + 2 * (size_t)s->size;

	p = calloc(cap, sizeof(*p));
	fd_owner = calloc(cap, sizeof(*fd_owner));
	if (!p || !fd_owner) {
		free(p);
		free(fd_owner);
		fprintf(stderr, "%s: out of memory\n", prog);
		return RUND_EXIT_FAILED;
	}

	for (;;) {
		long long now = rund_now_ms(), wake = now + 1000;
		unsigned int i, active = 0;
		int n = 0, timeout, k;

		for (i = 0; i < s->size; i++)
			active += s->m[i].state != M_FREE;
		if (s->draining && !active)
			break;

		if (!s->draining && now >= s->next_check)
			check_template(s);
		/*
		 * One QEMU starting at a time, so that refilling the pool takes at
		 * most one CPU from the clones it serves.
		 */
		if (!s->draining && !s->stale && active < s->size && now >= s->next_spawn &&
		    !count(s, M_STARTING)) {
			for (i = 0; i < s->size && s->m[i].state != M_FREE; i++)
				;
			if (member_spawn(s, &s->m[i]))
				backoff(s);
		}

		/* fd_owner[]: -1 signal, -2 listener, 0..: client c-index, 1000+i member pidfd, 2000+i member QMP/conn. */
		p[n] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		fd_owner[n++] = -1;
		if (s->listen_fd >= 0) {
			p[n] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
			fd_owner[n++] = -2;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (s->c[i].fd < 0)
				continue;
			p[n] = (struct pollfd){ .fd = s->c[i].fd, .events = POLLIN };
			fd_owner[n++] = (int)i;
			if (s->c[i].deadline < wake)
				wake = s->c[i].deadline;
		}
		for (i = 0; i < s->size; i++) {
			struct member *m = &s->m[i];

			if (m->state == M_FREE)
				continue;
			p[n] = (struct pollfd){ .fd = m->vm.pidfd, .events = POLLIN };
			fd_owner[n++] = 1000 + (int)i;
			if (m->state == M_STARTING) {
				p[n] = (struct pollfd){ .fd = m->fds[RUND_VMM_FD_QMP], .events = POLLIN };
				fd_owner[n++] = 2000 + (int)i;
			} else if (m->state == M_LENT && m->conn >= 0) {
				p[n] = (struct pollfd){ .fd = m->conn, .events = POLLIN };
				fd_owner[n++] = 2000 + (int)i;
			}
		}
		if (s->next_spawn > now && s->next_spawn < wake)
			wake = s->next_spawn;
		if (s->next_check > now && s->next_check < wake)
			wake = s->next_check;
		timeout = (int)(wake > now ? wake - now : 0);

		if (poll(p, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll failed: %s\n", prog, strerror(errno));
			break;
		}
		now = rund_now_ms();
		for (k = 0; k < n; k++) {
			int w = fd_owner[k];

			if (w == -1 && p[k].revents) {
				struct signalfd_siginfo si;

				if (read(s->sig_fd, &si, sizeof(si)) == sizeof(si))
					start_drain(s);
			} else if (w == -2 && p[k].revents && s->listen_fd >= 0) {
				accept_clients(s);
			} else if (w >= 0 && w < MAX_CLIENTS) {
				struct client *c = &s->c[w];

				if (c->fd < 0)
					continue;
				if (p[k].revents) {
					if (!handle_request(s, c->fd))
						close(c->fd);
					c->fd = -1;
				} else if (now >= c->deadline) {
					s->bad_requests++;
					reply_error(s, c->fd, "bad-request", "no request within %d ms",
						    CLIENT_TIMEOUT_MS);
					close_fd(&c->fd);
				}
			} else if (w >= 2000) {
				struct member *m = &s->m[w - 2000];

				if (!p[k].revents)
					continue;
				if (m->state == M_STARTING) {
					char b;

					/* No greeting but an end: the exit is reaped below. */
					if (recv(m->fds[RUND_VMM_FD_QMP], &b, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
						continue;
					/* QEMU's QMP greeting: its start-up is over. */
					m->state = M_READY;
					m->t_ready = now;
					s->fail_streak = 0;
				} else if (m->state == M_LENT) {
					char b;

					/* The borrower left (or broke the protocol): its VMM goes too. */
					if (recv(m->conn, &b, 1, MSG_DONTWAIT) >= 0 || errno != EAGAIN) {
						close_fd(&m->conn);
						member_kill(m);
					}
				}
			}
		}
		/* Exits last: a member's QMP and pidfd may both be ready in one turn. */
		for (k = 0; k < n; k++)
			if (fd_owner[k] >= 1000 && fd_owner[k] < 2000 && p[k].revents &&
			    s->m[fd_owner[k] - 1000].state != M_FREE)
				member_reaped(s, &s->m[fd_owner[k] - 1000]);
	}
	free(p);
	free(fd_owner);
	return 0;
}

/* Verbs */

static int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "template", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 's' },
		{ "refill-delay", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server s = {
		.size = 4, .refill_delay_ms = REFILL_DELAY_MS,
		.listen_fd = -1, .sig_fd = -1, .image_fd = -1,
	};
	struct rund_error err = { 0 };
	const char *name = NULL, *sock = NULL;
	sigset_t mask;
	unsigned int i;
	char *end;
	long v;
	int c, ret = RUND_EXIT_FAILED;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': name = optarg; break;
		case 's': sock = optarg; break;
		case 'n':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > POOL_SIZE_MAX) {
				fprintf(stderr, "%s serve: invalid --size '%s': expected an integer from 1 to %d\n",
					prog, optarg, POOL_SIZE_MAX);
				return RUND_EXIT_FAILED;
			}
			s.size = (unsigned int)v;
			break;
		case 'd':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 || v > 60000) {
				fprintf(stderr, "%s serve: invalid --refill-delay '%s': expected milliseconds from 0 to 60000\n",
					prog, optarg);
				return RUND_EXIT_FAILED;
			}
			s.refill_delay_ms = (unsigned int)v;
			break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "%s: see 'rund-helper vmm-pool --help'\n", prog);
			return RUND_EXIT_FAILED;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s serve: unexpected argument '%s'; see 'rund-helper vmm-pool --help'\n", prog, argv[optind]);
		return RUND_EXIT_FAILED;
	}
	if (!name) {
		fprintf(stderr, "%s serve: --template NAME is required ('rund-helper template list' shows them)\n",
			prog);
		return RUND_EXIT_FAILED;
	}
	if (rund_pool_backend_from_env(&s.backend, &s.pool_disabled)) {
		fprintf(stderr, "%s serve: invalid RUND_POOL_BACKEND '%s': use auto, module, cgroupfs or none\n",
			prog, getenv("RUND_POOL_BACKEND"));
		return RUND_EXIT_FAILED;
	}
	if (rund_template_load(name, &s.tmpl, &err)) {
		fprintf(stderr, "%s serve: %s\n", prog, err.msg);
		return RUND_EXIT_FAILED;
	}
	/* The pool's VMMs must be what run would accept for this template. */
	if (template_usable(&s.tmpl, &err)) {
		fprintf(stderr, "%s serve: %s\n", prog, err.msg);
		return RUND_EXIT_FAILED;
	}
	if (sock)
		snprintf(s.socket_path, sizeof(s.socket_path), "%s", sock);
	else if (rund_vmm_pool_socket_path(name, s.socket_path, sizeof(s.socket_path))) {
		fprintf(stderr, "%s serve: template name '%s' makes a socket path that is too long; pass --socket\n",
			prog, name);
		return RUND_EXIT_FAILED;
	}
	s.image_fd = open(s.tmpl.match.image, O_RDONLY | O_CLOEXEC);
	if (s.image_fd < 0) {
		fprintf(stderr, "%s serve: failed to open image %s: %s\n", prog, s.tmpl.match.image,
			strerror(errno));
		return RUND_EXIT_FAILED;
	}
	s.m = calloc(s.size, sizeof(*s.m));
	if (!s.m) {
		fprintf(stderr, "%s serve: out of memory\n", prog);
		goto out;
	}
	for (i = 0; i < s.size; i++)
		member_init(&s.m[i]);
	for (i = 0; i < MAX_CLIENTS; i++)
		s.c[i].fd = -1;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.sig_fd < 0) {
		fprintf(stderr, "%s serve: failed to set up signal handling: %s\n", prog, strerror(errno));
		goto out;
	}
	if (open_socket(&s, &err)) {
		fprintf(stderr, "%s serve: %s\n", prog, err.msg);
		goto out;
	}
	s.next_check = rund_now_ms() + TEMPLATE_CHECK_MS;
	fprintf(stderr, "%s: serving template '%s' on %s, pool size %u\n", prog, name, s.socket_path,
		s.size);
	ret = serve_loop(&s);
	fprintf(stderr, "%s: stopped; hand-overs %llu, misses %llu, replaced %llu\n", prog,
		s.handoffs, s.misses, s.replaced);
out:
	close_socket(&s);
	for (i = 0; i < MAX_CLIENTS; i++)
		close_fd(&s.c[i].fd);
	/* Only on a failed loop: end whatever is left before the slots go. */
	for (i = 0; s.m && i < s.size; i++) {
		if (s.m[i].state == M_FREE)
			continue;
		s.m[i].state = M_READY;
		member_kill(&s.m[i]);
		member_reaped(&s, &s.m[i]);
	}
	free(s.m);
	close_fd(&s.sig_fd);
	close_fd(&s.image_fd);
	return ret;
}

static void print_status(json_object *st)
{
	json_object *members, *v;
	size_t i;

	printf("%s: template %s%s, %d of %d ready, %d starting, %d lent; hand-overs %lld, misses %lld, replaced %lld%s\n",
	       json_object_get_string(json_object_object_get(st, "socket")),
	       json_object_get_string(json_object_object_get(st, "template")),
	       json_object_get_boolean(json_object_object_get(st, "template_stale")) ?
	       " (not usable now, see the pool's log)" : "",
	       json_object_get_int(json_object_object_get(st, "ready")),
	       json_object_get_int(json_object_object_get(st, "size")),
	       json_object_get_int(json_object_object_get(st, "starting")),
	       json_object_get_int(json_object_object_get(st, "lent")),
	       (long long)json_object_get_int64(json_object_object_get(st, "handoffs")),
	       (long long)json_object_get_int64(json_object_object_get(st, "misses")),
	       (long long)json_object_get_int64(json_object_object_get(st, "replaced")),
	       json_object_get_boolean(json_object_object_get(st, "draining")) ? ", stopping" : "");
	if (!json_object_object_get_ex(st, "members", &members))
		return;
	for (i = 0; i < json_object_array_length(members); i++) {
		v = json_object_array_get_idx(members, i);
		printf("  pid %-8d %-9s %6.1f s  %s\n",
		       json_object_get_int(json_object_object_get(v, "pid")),
		       json_object_get_string(json_object_object_get(v, "state")),
		       json_object_get_int64(json_object_object_get(v, "age_ms")) / 1000.0,
		       json_object_get_string(json_object_object_get(v, "slot")) ?: "(no cgroup slot)");
	}
}

static int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char paths[64][PATH_MAX];
	const char *sock = NULL;
	bool json = false;
	int c, n = 0, i, bad = 0;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "%s: see 'rund-helper vmm-pool --help'\n", prog);
			return RUND_EXIT_FAILED;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s status: unexpected argument '%s'; see 'rund-helper vmm-pool --help'\n", prog, argv[optind]);
		return RUND_EXIT_FAILED;
	}
	if (sock) {
		snprintf(paths[n++], PATH_MAX, "%s", sock);
	} else {
		struct dirent **ents = NULL;
		int k, ne = scandir(RUND_VMM_POOL_DIR, &ents, NULL, alphasort);

		for (k = 0; k < ne; k++) {
			size_t len = strlen(ents[k]->d_name);

			if (n < 64 && len > 5 && !strcmp(ents[k]->d_name + len - 5, ".sock"))
				snprintf(paths[n++], PATH_MAX, "%s/%s", RUND_VMM_POOL_DIR, ents[k]->d_name);
			free(ents[k]);
		}
		free(ents);
	}
	if (!n && !json)
		printf("no VMM pool serves on this node (%s has no socket)\n", RUND_VMM_POOL_DIR);
	for (i = 0; i < n; i++) {
		struct rund_error err = { 0 };
		json_object *st = NULL;

		if (rund_vmm_pool_status(paths[i], 2000, &st, &err)) {
			/* A socket left by a killed pool is reported but fails only a --socket query. */
			if (sock || err.code != ECONNREFUSED)
				bad++;
			if (json) {
				json_object *o = json_object_new_object();

				json_object_object_add(o, "socket", json_object_new_string(paths[i]));
				json_object_object_add(o, "ok", json_object_new_boolean(false));
				json_object_object_add(o, "error", json_object_new_string(err.msg));
				printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
				json_object_put(o);
			} else {
				if (strstr(err.msg, paths[i]))
					fprintf(stderr, "%s: %s\n", prog, err.msg);
				else
					fprintf(stderr, "%s: %s: %s\n", prog, paths[i], err.msg);
			}
			continue;
		}
		if (json)
			printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
		else
			print_status(st);
		json_object_put(st);
	}
	return bad ? RUND_EXIT_FAILED : 0;
}

int cmd_vmm_pool(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? RUND_EXIT_FAILED : 0;
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'; use serve or status\n", prog, argv[1]);
	return RUND_EXIT_FAILED;
}
