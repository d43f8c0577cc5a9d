// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Client side of the pool of pre-started VMMs (see vmmpool.h): the
 * hand-over protocol, the checks on what the owner sends, and the layer
 * swap over QMP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "vmmpool.h"

int rund_vmm_pool_socket_path(const char *template_name, char *buf, size_t size)
{
	struct sockaddr_un sun;
	int n;

	n = snprintf(buf, size, "%s/%s.sock", RUND_VMM_POOL_DIR, template_name);
	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int rund_vmm_send(int fd, json_object *msg, const int *fds, int nfds, struct rund_error *err)
{
	char control[CMSG_SPACE(sizeof(int) * RUND_VMM_NR_FDS)];
	const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (iov.iov_len > RUND_VMM_MSG_MAX)
		return rund_error_setx(err, EMSGSIZE, "VMM pool message of %zu bytes exceeds %d",
				       iov.iov_len, RUND_VMM_MSG_MAX);
	if (nfds > RUND_VMM_NR_FDS)
		return rund_error_setx(err, EINVAL, "cannot pass %d descriptors", nfds);
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	if (TEMP_FAILURE_RETRY(sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0)
		return rund_error_set(err, errno, "failed to send to the VMM pool socket");
	return 0;
}

int rund_vmm_recv(int fd, int timeout_ms, json_object **msg, int *fds, int maxfds, int *nfds,
		  struct rund_error *err)
{
	char control[CMSG_SPACE(sizeof(int) * (RUND_VMM_NR_FDS + 4))];
	_cleanup_free_ char *buf = malloc(RUND_VMM_MSG_MAX + 1);
	struct iovec iov = { .iov_base = buf, .iov_len = RUND_VMM_MSG_MAX + 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int got[RUND_VMM_NR_FDS + 4];
	struct cmsghdr *cm;
	json_tokener *tok;
	int i, n = 0, ret = 0;
	ssize_t len;

	*msg = NULL;
	*nfds = 0;
	if (!buf)
		return rund_error_set(err, ENOMEM, "failed to allocate a message buffer");
	ret = TEMP_FAILURE_RETRY(poll(&p, 1, timeout_ms));
	if (ret < 0)
		return rund_error_set(err, errno, "failed to poll the VMM pool socket");
	if (ret == 0)
		return rund_error_setx(err, ETIMEDOUT, "no message on the VMM pool socket within %d ms",
				       timeout_ms);
	ret = 0;
	len = TEMP_FAILURE_RETRY(recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
	if (len < 0)
		return rund_error_set(err, errno, "failed to receive from the VMM pool socket");

	/* Collect every descriptor first, so that none leaks on a rejection. */
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k, cnt;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt && n < (int)ARRAY_SIZE(got); k++)
			memcpy(&got[n++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
	}
	if (mh.msg_flags & MSG_CTRUNC)
		ret = rund_error_setx(err, EPROTO, "VMM pool message carried too many descriptors");
	else if (n > maxfds)
		ret = rund_error_setx(err, EPROTO,
				      "VMM pool message carried %d descriptors, expected at most %d",
				      n, maxfds);
	else if (len == 0)
		ret = rund_error_setx(err, ECONNRESET, "the VMM pool peer closed the connection");
	else if (mh.msg_flags & MSG_TRUNC || len > RUND_VMM_MSG_MAX)
		ret = rund_error_setx(err, EPROTO, "VMM pool message exceeds %d bytes",
				      RUND_VMM_MSG_MAX);
	if (ret) {
		for (i = 0; i < n; i++)
			close(got[i]);
		return ret;
	}

	tok = json_tokener_new();
	if (!tok) {
		ret = rund_error_set(err, ENOMEM, "failed to create a JSON tokener");
	} else {
		*msg = json_tokener_parse_ex(tok, buf, (int)len);
		if (!*msg || json_tokener_get_parse_end(tok) != (size_t)len ||
		    !json_object_is_type(*msg, json_type_object)) {
			json_object_put(*msg);
			*msg = NULL;
			ret = rund_error_setx(err, EPROTO,
					      "VMM pool message is not one JSON object (%zd bytes)", len);
		}
		json_tokener_free(tok);
	}
	if (ret) {
		for (i = 0; i < n; i++)
			close(got[i]);
		return ret;
	}
	memcpy(fds, got, sizeof(int) * n);
	*nfds = n;
	return 0;
}

static int connect_pool(const char *socket_path, struct rund_error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(socket_path) >= sizeof(sun.sun_path))
		return rund_error_setx(err, ENAMETOOLONG, "VMM pool socket path %s is too long",
				       socket_path);
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return rund_error_set(err, errno, "failed to create a socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int e = errno;

		close(fd);
		if (e == ECONNREFUSED)
			return rund_error_set(err, e,
					      "no VMM pool answers at %s: the pool that made it has ended (the next 'vmm-pool serve' for this template replaces the socket)",
					      socket_path);
		return rund_error_set(err, e, "no VMM pool at %s", socket_path);
	}
	return fd;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool jint(json_object *o, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

/* The pid a pidfd refers to, from its fdinfo; -1 when fd is not a pidfd. */
static pid_t pidfd_pid(int fd)
{
	char path[64], line[256];
	pid_t pid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	fclose(f);
	return pid;
}

/* Parent pid and binary name of pid, from /proc. */
static int proc_parent_exe(pid_t pid, pid_t *ppid, char *exe, size_t size)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", ppid) != 1)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	p = strrchr(buf, '/');
	snprintf(exe, size, "%s", p ? p + 1 : buf);
	return 0;
}

static bool fd_is(int fd, mode_t type)
{
	struct stat st;

	return !fstat(fd, &st) && (st.st_mode & S_IFMT) == type;
}

/* Check that the descriptors and the process are what a pool VMM must be. */
static int check_lease(struct rund_vmm_lease *l, struct rund_error *err)
{
	static const char *const names[] = { "QMP", "agent", "console" };
	struct pollfd p = { .fd = l->fds[RUND_VMM_FD_PIDFD], .events = POLLIN };
	char exe[512];
	pid_t ppid;
	int i;

	for (i = RUND_VMM_FD_QMP; i <= RUND_VMM_FD_CONSOLE; i++)
		if (!fd_is(l->fds[i], S_IFSOCK))
			return rund_error_setx(err, EPROTO, "the VMM pool sent a %s descriptor that is not a socket",
					       names[i]);
	if (!fd_is(l->fds[RUND_VMM_FD_STDERR], S_IFIFO))
		return rund_error_setx(err, EPROTO, "the VMM pool sent a stderr descriptor that is not a pipe");
	if (pidfd_pid(l->fds[RUND_VMM_FD_PIDFD]) != l->pid)
		return rund_error_setx(err, EPROTO, "the VMM pool sent a pidfd that does not refer to pid %d",
				       (int)l->pid);
	if (proc_parent_exe(l->pid, &ppid, exe, sizeof(exe)))
		return rund_error_setx(err, EPROTO, "the VMM pool's QEMU pid %d is gone", (int)l->pid);
	if (ppid != l->owner)
		return rund_error_setx(err, EPROTO,
				       "the VMM pool's pid %d is a child of %d, not of the pool's owner %d",
				       (int)l->pid, (int)ppid, (int)l->owner);
	if (strncmp(exe, "qemu-system-", 12) || strcmp(exe, l->qemu))
		return rund_error_setx(err, EPROTO, "the VMM pool's pid %d runs %s, not %s",
				       (int)l->pid, exe, l->qemu);
	/* A pid checked in /proc could be reused only after the process ended. */
	if (poll(&p, 1, 0) != 0)
		return rund_error_setx(err, EPROTO, "the VMM pool's QEMU pid %d exited during the hand-over",
				       (int)l->pid);
	return 0;
}

static void lease_init(struct rund_vmm_lease *l)
{
	int i;

	memset(l, 0, sizeof(*l));
	l->conn = -1;
	for (i = 0; i < RUND_VMM_NR_FDS; i++)
		l->fds[i] = -1;
}

/* Fill the lease from a positive reply. */
static int parse_lease(json_object *m, struct rund_vmm_lease *l, struct rund_error *err)
{
	json_object *slot, *v;
	const char *s;
	int64_t pid;

	if (!jint(m, "pid", &pid) || pid <= 1 || pid > INT32_MAX)
		return rund_error_setx(err, EPROTO, "the VMM pool's reply has no valid pid");
	l->pid = (pid_t)pid;
	s = jstr(m, "accel");
	if (!s || (strcmp(s, "tcg") && strcmp(s, "kvm")))
		return rund_error_setx(err, EPROTO, "the VMM pool's reply has no valid accel");
	snprintf(l->accel, sizeof(l->accel), "%s", s);
	snprintf(l->accel_reason, sizeof(l->accel_reason), "%s", jstr(m, "accel_reason") ?: "");
	s = jstr(m, "qemu");
	if (!s || strlen(s) >= sizeof(l->qemu) || strchr(s, '/'))
		return rund_error_setx(err, EPROTO, "the VMM pool's reply has no valid qemu");
	snprintf(l->qemu, sizeof(l->qemu), "%s", s);
	if (json_object_object_get_ex(m, "in_cgroup", &v))
		l->in_cgroup = json_object_get_boolean(v);
	if (json_object_object_get_ex(m, "waited_ms", &v))
		l->waited_ms = json_object_get_double(v);
	if (json_object_object_get_ex(m, "slot", &slot) && json_object_is_type(slot, json_type_object)) {
		int64_t idx;

		if (!jint(slot, "index", &idx) || idx < 0 || idx > UINT32_MAX)
			return rund_error_setx(err, EPROTO, "the VMM pool's reply has no valid slot index");
		l->has_slot = true;
		l->slot_index = (uint32_t)idx;
		snprintf(l->slot_path, sizeof(l->slot_path), "%s", jstr(slot, "path") ?: "");
		snprintf(l->slot_backend, sizeof(l->slot_backend), "%s", jstr(slot, "backend") ?: "");
		snprintf(l->slot_method, sizeof(l->slot_method), "%s", jstr(slot, "method") ?: "");
	}
	snprintf(l->slot_note, sizeof(l->slot_note), "%s", jstr(m, "slot_note") ?: "");
	return 0;
}

int rund_vmm_pool_take(const char *socket_path, const char *template_name,
		       const char *memory_path, const char *sandbox_id, int timeout_ms,
		       struct rund_vmm_lease *l, struct rund_error *err)
{
	long long deadline = rund_now_ms() + timeout_ms;
	json_object *req, *reply = NULL, *v;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	const char *reason;
	int fds[RUND_VMM_NR_FDS];
	int i, nfds = 0, ret;

	lease_init(l);
	l->conn = connect_pool(socket_path, err);
	if (l->conn < 0)
		return l->conn;
	/* Only root may run the pool: a socket of anyone else is not one. */
	if (getsockopt(l->conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) || cred.uid != 0) {
		rund_vmm_lease_close(l);
		return rund_error_setx(err, EPERM, "the VMM pool at %s is not run by root", socket_path);
	}
	l->owner = cred.pid;

	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("take"));
	json_object_object_add(req, "template", json_object_new_string(template_name));
	json_object_object_add(req, "memory", json_object_new_string(memory_path));
	json_object_object_add(req, "sandbox_id", json_object_new_string(sandbox_id));
	ret = rund_vmm_send(l->conn, req, NULL, 0, err);
	json_object_put(req);
	if (!ret)
		ret = rund_vmm_recv(l->conn, rund_ms_left(deadline), &reply, fds, RUND_VMM_NR_FDS,
				    &nfds, err);
	if (ret) {
		rund_error_prefix(err, "VMM pool %s: ", socket_path);
		rund_vmm_lease_close(l);
		return ret;
	}

	if (!json_object_object_get_ex(reply, "ok", &v) || !json_object_get_boolean(v)) {
		const char *msg = jstr(reply, "error");

		reason = jstr(reply, "reason");
		ret = -EPROTO;
		if (reason && !strcmp(reason, "empty"))
			ret = -EAGAIN;
		else if (reason && !strcmp(reason, "mismatch"))
			ret = -ESTALE;
		else if (reason && !strcmp(reason, "draining"))
			ret = -ECONNREFUSED;
		rund_error_setx(err, -ret, "VMM pool %s: %s", socket_path,
				msg ? msg : "refused without a reason");
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		goto out;
	}
	if (nfds != RUND_VMM_NR_FDS) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		ret = rund_error_setx(err, EPROTO, "VMM pool %s sent %d descriptors, expected %d",
				      socket_path, nfds, RUND_VMM_NR_FDS);
		goto out;
	}
	memcpy(l->fds, fds, sizeof(fds));
	ret = parse_lease(reply, l, err);
	if (!ret)
		ret = check_lease(l, err);
	l->checked = !ret;
	if (ret)
		rund_error_prefix(err, "VMM pool %s: ", socket_path);
out:
	json_object_put(reply);
	if (ret)
		rund_vmm_lease_close(l);
	return ret;
}

static int qmp_do(struct rund_qmp *q, const char *cmd, json_object *args, const int *fds,
		  int nfds, int timeout_ms, struct rund_error *err)
{
	int ret = rund_qmp_execute(q, cmd, args, fds, nfds, timeout_ms, NULL, err);

	json_object_put(args);
	return ret;
}

int rund_vmm_swap_layer(struct rund_qmp *q, int layer_fd, int timeout_ms, struct rund_error *err)
{
	long long deadline = rund_now_ms() + timeout_ms;
	json_object *a, *opts, *raw;
	int ret;

	/* Same fdset number and options as the layer of a VMM started on demand. */
	a = json_object_new_object();
	json_object_object_add(a, "fdset-id", json_object_new_int(2));
	json_object_object_add(a, "opaque", json_object_new_string("rund-layer"));
	ret = qmp_do(q, "add-fd", a, &layer_fd, 1, rund_ms_left(deadline), err);
	if (ret)
		goto fail;

	a = json_object_new_object();
	json_object_object_add(a, "driver", json_object_new_string("file"));
	json_object_object_add(a, "node-name", json_object_new_string("layer-own"));
	json_object_object_add(a, "filename", json_object_new_string("/dev/fdset/2"));
	json_object_object_add(a, "locking", json_object_new_string("off"));
	ret = qmp_do(q, "blockdev-add", a, NULL, 0, rund_ms_left(deadline), err);
	if (ret)
		goto fail;

	/*
	 * Reopen takes the node's whole option set: anything left out returns to
	 * its default. The raw node was made with no option but its child.
	 */
	raw = json_object_new_object();
	json_object_object_add(raw, "driver", json_object_new_string("raw"));
	json_object_object_add(raw, "node-name", json_object_new_string("layer"));
	json_object_object_add(raw, "file", json_object_new_string("layer-own"));
	opts = json_object_new_array();
	json_object_array_add(opts, raw);
	a = json_object_new_object();
	json_object_object_add(a, "options", opts);
	ret = qmp_do(q, "blockdev-reopen", a, NULL, 0, rund_ms_left(deadline), err);
	if (ret)
		goto fail;

	a = json_object_new_object();
	json_object_object_add(a, "node-name", json_object_new_string("layer-file"));
	ret = qmp_do(q, "blockdev-del", a, NULL, 0, rund_ms_left(deadline), err);
	if (ret)
		goto fail;
	return 0;
fail:
	rund_error_prefix(err, "failed to give the pooled VMM its writable layer: ");
	return ret;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Only a process that passed check_lease() is killed. */
static void kill_leased(struct rund_vmm_lease *l)
{
	if (l->checked && l->fds[RUND_VMM_FD_PIDFD] >= 0)
		syscall(SYS_pidfd_send_signal, l->fds[RUND_VMM_FD_PIDFD], SIGKILL, NULL, 0);
}

int rund_vmm_lease_reap(struct rund_vmm_lease *l, int timeout_ms)
{
	struct pollfd p = { .fd = l->fds[RUND_VMM_FD_PIDFD], .events = POLLIN };
	struct rund_error err = { 0 };
	json_object *msg = NULL;
	int status = -1, nfds, fds[1];
	int64_t v;

	if (p.fd >= 0 && TEMP_FAILURE_RETRY(poll(&p, 1, timeout_ms)) == 0) {
		kill_leased(l);
		TEMP_FAILURE_RETRY(poll(&p, 1, 5000));
	}
	/* The owner reaps its child and sends the status right after. */
	if (l->conn >= 0 && !rund_vmm_recv(l->conn, 2000, &msg, fds, 0, &nfds, &err) &&
	    jint(msg, "exit", &v) && v >= 0 && v <= 0xffff)
		status = (int)v;
	json_object_put(msg);
	rund_vmm_lease_close(l);
	return status;
}

void rund_vmm_lease_close(struct rund_vmm_lease *l)
{
	int i;

	kill_leased(l);
	for (i = 0; i < RUND_VMM_NR_FDS; i++)
		close_fd(&l->fds[i]);
	close_fd(&l->conn);
}

int rund_vmm_pool_status(const char *socket_path, int timeout_ms, json_object **status,
			 struct rund_error *err)
{
	_cleanup_close_ int fd = -1;
	json_object *req;
	int fds[1], nfds, ret;

	*status = NULL;
	fd = connect_pool(socket_path, err);
	if (fd < 0)
		return fd;
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("status"));
	ret = rund_vmm_send(fd, req, NULL, 0, err);
	json_object_put(req);
	if (!ret)
		ret = rund_vmm_recv(fd, timeout_ms, status, fds, 0, &nfds, err);
	return ret;
}
