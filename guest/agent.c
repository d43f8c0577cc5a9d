// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rund guest agent: PID 1 of every sandbox, started from the initramfs.
 *
 * 1. Mount /proc, /sys and devtmpfs, open the virtio-serial port named
 *    rund.agent.
 * 2. Mount the read-only EROFS image and the ext4 writable layer, join them
 *    with overlayfs and switch the root to it.
 *    A template guest (rund.template=1) mounts only the image here, sends
 *    READY to be saved, and each clone of it gets IDENTITY and MOUNT_LAYER
 *    (template_ready_point()) before it goes on with RUN.
 * 3. Send READY, wait for RUN, run the command with pipes for its stdio and
 *    relay STDIN/STDOUT/STDERR frames until it exits.
 * 4. Send EXIT (or ERROR on any failure) and end the VM with reboot().
 *
 * PID 1 must never return: every path ends in finish(). The wire format is
 * in user/lib/agent_proto.h and docs/protocol.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"

#define NEWROOT "/newroot"
#define RO_MNT "/ro"
#define RW_MNT "/rw"
#define FRAME_MAX (RUND_AGENT_HDRLEN + RUND_AGENT_MAX_PAYLOAD)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int port_fd = -1;
static uint8_t txbuf[FRAME_MAX];
static uint8_t rxbuf[FRAME_MAX];
static char ro_dev[256] = "/dev/vda";
static char rw_dev[256] = "/dev/vdb";
/* rund.template=1: stop at the ready point without the writable layer. */
static int template_guest;

static void console(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void console(const char *fmt, ...)
{
	va_list ap;

	fputs("rund-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static __attribute__((noreturn)) void finish(void)
{
	sync();
	reboot(RB_AUTOBOOT);
	/* reboot() only returns on failure; PID 1 must not exit, so wait. */
	console("reboot failed: %s", strerror(errno));
	for (;;)
		pause();
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_msg(struct rund_agent_msgbuf *m)
{
	if (port_fd < 0)
		return -EBADF;
	rund_agent_msg_finish(m);
	return write_all(port_fd, m->buf, m->len);
}

static int send_data(uint16_t type, const void *data, uint32_t len)
{
	uint8_t hdr[RUND_AGENT_HDRLEN];
	int ret;

	if (port_fd < 0)
		return -EBADF;
	rund_agent_hdr_encode(hdr, type, len);
	ret = write_all(port_fd, hdr, sizeof(hdr));
	if (ret)
		return ret;
	return write_all(port_fd, data, len);
}

/* Report a fatal error on the port (when open) and the console, then reboot. */
static __attribute__((noreturn, format(printf, 3, 4)))
void fail(enum rund_agent_stage stage, int errnum, const char *fmt, ...)
{
	struct rund_agent_msgbuf m;
	char msg[RUND_AGENT_MAX_ERROR_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errnum) {
		size_t n = strlen(msg);

		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
	}
	console("%s", msg);

	rund_agent_msg_init(&m, txbuf, sizeof(txbuf), RUND_AGENT_MSG_ERROR);
	rund_agent_put_u32(&m, RUND_AGENT_ATTR_STAGE, stage);
	rund_agent_put_u32(&m, RUND_AGENT_ATTR_ERRNO, (uint32_t)errnum);
	rund_agent_put_str(&m, RUND_AGENT_ATTR_MESSAGE, msg);
	send_msg(&m);
	finish();
}

static void mount_or_fail(const char *src, const char *dst, const char *type,
			  unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to mount %s (%s) on %s",
		     src, type ? type : "move", dst);
}

/* Read rund.ro= and rund.rw= from the kernel command line. */
static void parse_cmdline(void)
{
	char buf[4096], *tok, *save;
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';

	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strncmp(tok, "rund.ro=", 8))
			snprintf(ro_dev, sizeof(ro_dev), "%s", tok + 8);
		else if (!strncmp(tok, "rund.rw=", 8))
			snprintf(rw_dev, sizeof(rw_dev), "%s", tok + 8);
		else if (!strcmp(tok, "rund.template=1"))
			template_guest = 1;
	}
}

/* Find /dev/vportNpM whose /sys/class/virtio-ports/<port>/name is rund.agent. */
static int open_port(void)
{
	char path[512], name[64];
	struct dirent *de;
	DIR *dir;
	int fd = -1;

	dir = opendir("/sys/class/virtio-ports");
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		ssize_t n;
		int nfd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0)
			continue;
		n = read(nfd, name, sizeof(name) - 1);
		close(nfd);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, RUND_AGENT_PORT_NAME))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		break;
	}
	closedir(dir);
	return fd == -1 ? -ENOENT : fd;
}

static void mount_ro(void)
{
	mount_or_fail(ro_dev, RO_MNT, "erofs", MS_RDONLY, NULL);
}

static void mount_rw_and_switch(void)
{
	mount_or_fail(rw_dev, RW_MNT, "ext4", MS_NOATIME, NULL);
	mkdir(RW_MNT "/upper", 0755);
	mkdir(RW_MNT "/work", 0755);
	mount_or_fail("overlay", NEWROOT, "overlay", 0,
		      "lowerdir=" RO_MNT ",upperdir=" RW_MNT "/upper,workdir=" RW_MNT "/work");

	/* switch_root: move the new root over /, then chroot into it. */
	if (chdir(NEWROOT))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to enter %s", NEWROOT);
	if (mount(NEWROOT, "/", NULL, MS_MOVE, NULL))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to move %s to /", NEWROOT);
	if (chroot(".") || chdir("/"))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to chroot into the new root");

	mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_or_fail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_or_fail("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	mount_or_fail("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_or_fail("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

static void mount_root(void)
{
	mount_ro();
	mount_rw_and_switch();
}

/* Read exactly len bytes from the port; 0 on success, -EPIPE at end of stream. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one frame into rxbuf; fails the agent on a malformed frame. */
static void read_frame(struct rund_agent_hdr *hdr)
{
	int ret;

	ret = read_full(port_fd, rxbuf, RUND_AGENT_HDRLEN);
	if (ret)
		fail(RUND_AGENT_STAGE_PROTOCOL, -ret, "failed to read a frame header from the host");
	rund_agent_hdr_decode(rxbuf, hdr);
	if (hdr->len > RUND_AGENT_MAX_PAYLOAD || hdr->flags)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO,
		     "invalid frame from the host (type %u, flags %#x, length %u)",
		     hdr->type, hdr->flags, hdr->len);
	ret = read_full(port_fd, rxbuf, hdr->len);
	if (ret)
		fail(RUND_AGENT_STAGE_PROTOCOL, -ret, "failed to read a frame payload from the host");
}

struct run_request {
	char *argv[RUND_AGENT_MAX_ARGS + 1];
	char *envp[RUND_AGENT_MAX_ARGS + 1];
	const char *cwd;
	int argc, envc;
};

static void parse_run(uint32_t len, struct run_request *req)
{
	struct rund_agent_attr_iter it;
	const uint8_t *data;
	uint32_t alen;
	uint16_t type;
	int ret;

	memset(req, 0, sizeof(*req));
	rund_agent_attr_iter_init(&it, rxbuf, len);
	while ((ret = rund_agent_attr_next(&it, &type, &data, &alen)) > 0) {
		if (type != RUND_AGENT_ATTR_ARG && type != RUND_AGENT_ATTR_ENV &&
		    type != RUND_AGENT_ATTR_CWD)
			continue;
		if (!rund_agent_attr_is_str(data, alen))
			fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO,
			     "RUN attribute %u is not a string", type);
		/* The strings stay in rxbuf, which RUN is the last reader of. */
		if (type == RUND_AGENT_ATTR_ARG) {
			if (req->argc == RUND_AGENT_MAX_ARGS)
				fail(RUND_AGENT_STAGE_PROTOCOL, E2BIG, "RUN has too many arguments");
			req->argv[req->argc++] = (char *)data;
		} else if (type == RUND_AGENT_ATTR_ENV) {
			if (req->envc == RUND_AGENT_MAX_ARGS)
				fail(RUND_AGENT_STAGE_PROTOCOL, E2BIG, "RUN has too many variables");
			req->envp[req->envc++] = (char *)data;
		} else {
			req->cwd = (const char *)data;
		}
	}
	if (ret < 0)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "RUN holds a truncated attribute");
	if (!req->argc)
		fail(RUND_AGENT_STAGE_PROTOCOL, EINVAL, "RUN holds no command");
}

static void send_ready(void)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, txbuf, sizeof(txbuf), RUND_AGENT_MSG_READY);
	rund_agent_put_u32(&m, RUND_AGENT_ATTR_VERSION, RUND_AGENT_PROTO_VERSION);
	rund_agent_put_u64(&m, RUND_AGENT_ATTR_CAPS, RUND_AGENT_CAP_STDIN);
	if (send_msg(&m))
		fail(RUND_AGENT_STAGE_IO, errno, "failed to send READY");
}

/*
 * Child side of the fork: set up stdio and run the command. A failure is
 * written as {stage, errno} to err_fd (close-on-exec), which the parent reads.
 */
static __attribute__((noreturn)) void child_exec(struct run_request *req, int in_fd,
						 int out_fd, int errout_fd, int err_fd,
						 const sigset_t *mask)
{
	extern char **environ;
	uint32_t report[2];
	int i;

	sigprocmask(SIG_SETMASK, mask, NULL);
	setsid();
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(errout_fd, 2) < 0) {
		report[0] = RUND_AGENT_STAGE_SPAWN;
		goto out_report;
	}
	if (req->cwd && chdir(req->cwd)) {
		report[0] = RUND_AGENT_STAGE_CWD;
		goto out_report;
	}

	/* execvp() searches the PATH of environ, so install the request's. */
	for (i = 0; i < req->envc; i++)
		if (!strncmp(req->envp[i], "PATH=", 5))
			break;
	if (i == req->envc && req->envc < RUND_AGENT_MAX_ARGS)
		req->envp[req->envc++] = "PATH=" DEFAULT_PATH;
	req->envp[req->envc] = NULL;
	req->argv[req->argc] = NULL;
	environ = req->envp;
	execvp(req->argv[0], req->argv);
	report[0] = RUND_AGENT_STAGE_EXEC;

out_report:
	report[1] = (uint32_t)errno;
	if (write(err_fd, report, sizeof(report)) < 0)
		_exit(127);
	_exit(127);
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Send the bytes a pipe contains now as frames; returns 0 at EOF, 1 otherwise. */
static int relay_output(int fd, uint16_t type, int drain)
{
	static uint8_t buf[RUND_AGENT_MAX_PAYLOAD];

	do {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			fail(RUND_AGENT_STAGE_IO, errno, "failed to read the command's output");
		}
		if (send_data(type, buf, (uint32_t)n))
			fail(RUND_AGENT_STAGE_IO, errno, "failed to send output to the host");
	} while (drain);
	return 1;
}

struct stdin_state {
	int fd;			/* write end of the child's stdin, -1 once closed */
	uint32_t off, len;	/* pending bytes in rxbuf */
	int eof;		/* STDIN_EOF received, close after pending bytes */
};

static void handle_host_frame(struct stdin_state *in)
{
	struct rund_agent_hdr hdr;

	read_frame(&hdr);
	switch (hdr.type) {
	case RUND_AGENT_MSG_STDIN:
		if (in->eof || hdr.len == 0)
			fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "unexpected STDIN frame");
		in->off = 0;
		in->len = in->fd >= 0 ? hdr.len : 0;	/* drop input of a closed stdin */
		break;
	case RUND_AGENT_MSG_STDIN_EOF:
		in->eof = 1;
		break;
	default:
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO,
		     "unexpected message type %u while the command runs", hdr.type);
	}
}

static void flush_stdin(struct stdin_state *in)
{
	while (in->fd >= 0 && in->len > in->off) {
		ssize_t n = write(in->fd, rxbuf + in->off, in->len - in->off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the command closed its stdin; drop the rest. */
			close(in->fd);
			in->fd = -1;
			break;
		}
		in->off += (uint32_t)n;
	}
	if (in->len <= in->off)
		in->off = in->len = 0;
	if (in->eof && in->fd >= 0 && !in->len) {
		close(in->fd);
		in->fd = -1;
	}
}

static void send_exit(int status)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, txbuf, sizeof(txbuf), RUND_AGENT_MSG_EXIT);
	if (WIFSIGNALED(status))
		rund_agent_put_u32(&m, RUND_AGENT_ATTR_EXIT_SIGNAL, (uint32_t)WTERMSIG(status));
	else
		rund_agent_put_u32(&m, RUND_AGENT_ATTR_EXIT_CODE, (uint32_t)WEXITSTATUS(status));
	if (send_msg(&m))
		console("failed to send EXIT: %s", strerror(errno));
}

static __attribute__((noreturn)) void run_command(struct run_request *req)
{
	int inp[2], outp[2], errp[2], errpipe[2], sfd;
	struct stdin_state in = { .fd = -1 };
	struct rund_agent_msgbuf m;
	sigset_t mask, oldmask;
	int out_open = 1, err_open = 1, status = 0;
	uint32_t report[2];
	pid_t pid;
	ssize_t n;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail(RUND_AGENT_STAGE_SPAWN, errno, "failed to create a signalfd");

	if (pipe2(inp, O_CLOEXEC) || pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ||
	    pipe2(errpipe, O_CLOEXEC))
		fail(RUND_AGENT_STAGE_SPAWN, errno, "failed to create pipes");

	pid = fork();
	if (pid < 0)
		fail(RUND_AGENT_STAGE_SPAWN, errno, "failed to fork");
	if (pid == 0)
		child_exec(req, inp[0], outp[1], errp[1], errpipe[1], &oldmask);

	close(inp[0]);
	close(outp[1]);
	close(errp[1]);
	close(errpipe[1]);
	n = read(errpipe[0], report, sizeof(report));
	close(errpipe[0]);
	if (n == sizeof(report)) {
		waitpid(pid, NULL, 0);
		if (report[0] == RUND_AGENT_STAGE_CWD)
			fail(RUND_AGENT_STAGE_CWD, (int)report[1],
			     "failed to change to working directory %s", req->cwd);
		fail((enum rund_agent_stage)report[0], (int)report[1],
		     "failed to run %s", req->argv[0]);
	}

	rund_agent_msg_init(&m, txbuf, sizeof(txbuf), RUND_AGENT_MSG_STARTED);
	rund_agent_put_u32(&m, RUND_AGENT_ATTR_PID, (uint32_t)pid);
	if (send_msg(&m))
		fail(RUND_AGENT_STAGE_IO, errno, "failed to send STARTED");

	in.fd = inp[1];
	set_nonblock(in.fd);
	set_nonblock(outp[0]);
	set_nonblock(errp[0]);

	for (;;) {
		struct pollfd pfd[5];
		struct signalfd_siginfo si;
		int nfds = 0, i_port = -1, i_out = -1, i_err = -1;
		int done = 0;

		pfd[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		/* Read the next host frame only once the last STDIN chunk is written. */
		if (!in.len && !in.eof) {
			i_port = nfds;
			pfd[nfds++] = (struct pollfd){ .fd = port_fd, .events = POLLIN };
		}
		if (in.len && in.fd >= 0)
			pfd[nfds++] = (struct pollfd){ .fd = in.fd, .events = POLLOUT };
		if (out_open) {
			i_out = nfds;
			pfd[nfds++] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
		}
		if (err_open) {
			i_err = nfds;
			pfd[nfds++] = (struct pollfd){ .fd = errp[0], .events = POLLIN };
		}

		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(RUND_AGENT_STAGE_IO, errno, "poll failed");
		}

		if (i_out >= 0 && pfd[i_out].revents)
			out_open = relay_output(outp[0], RUND_AGENT_MSG_STDOUT, 0);
		if (i_err >= 0 && pfd[i_err].revents)
			err_open = relay_output(errp[0], RUND_AGENT_MSG_STDERR, 0);
		if (i_port >= 0 && pfd[i_port].revents) {
			if (pfd[i_port].revents & POLLHUP && !(pfd[i_port].revents & POLLIN))
				fail(RUND_AGENT_STAGE_IO, EPIPE, "the host closed the agent port");
			handle_host_frame(&in);
		}
		if (in.len || in.eof)
			flush_stdin(&in);

		if (pfd[0].revents) {
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			/* PID 1 reaps every orphan; only the command's status counts. */
			for (;;) {
				int st;
				pid_t w = waitpid(-1, &st, WNOHANG);

				if (w <= 0)
					break;
				if (w == pid) {
					status = st;
					done = 1;
				}
			}
		}
		if (done) {
			/*
			 * Output written before the exit is in the pipes now; a
			 * background process may keep them open, so take what
			 * is there and stop.
			 */
			if (out_open)
				relay_output(outp[0], RUND_AGENT_MSG_STDOUT, 1);
			if (err_open)
				relay_output(errp[0], RUND_AGENT_MSG_STDERR, 1);
			send_exit(status);
			finish();
		}
	}
}

/* Template guests */

/*
 * Files every start reads, read once before the snapshot so that their pages
 * sit in the guest page cache that all clones share. The image may list more
 * in /etc/rund/hot-files, one absolute path per line.
 */
static const char *const default_hot_files[] = {
	"/lib64/ld-linux-x86-64.so.2",
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/bin/sh",
	"/usr/bin/env",
};

static void read_file(const char *path)
{
	static char buf[65536];
	char full[512];
	int fd;

	snprintf(full, sizeof(full), "%s%s", RO_MNT, path);
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static void read_hot_files(void)
{
	char line[512];
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(default_hot_files) / sizeof(default_hot_files[0]); i++)
		read_file(default_hot_files[i]);
	f = fopen(RO_MNT "/etc/rund/hot-files", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '/')
			read_file(line);
	}
	fclose(f);
}

static void send_ack(void)
{
	struct rund_agent_msgbuf m;

	rund_agent_msg_init(&m, txbuf, sizeof(txbuf), RUND_AGENT_MSG_ACK);
	if (send_msg(&m))
		fail(RUND_AGENT_STAGE_IO, errno, "failed to send ACK");
}

static char boot_id[37];

/*
 * Give this clone its own clock, random state and names: every clone of one
 * template resumes with the snapshot's clock and the same CRNG state.
 */
static void apply_identity(uint32_t len)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[256];
	} pool;
	struct rund_agent_attr_iter it;
	const uint8_t *data, *ent = NULL;
	uint32_t alen, ent_len = 0;
	uint64_t time_ns = 0;
	uint16_t type;
	int ret, fd;

	rund_agent_attr_iter_init(&it, rxbuf, len);
	while ((ret = rund_agent_attr_next(&it, &type, &data, &alen)) > 0) {
		switch (type) {
		case RUND_AGENT_ATTR_TIME_NS:
			if (alen != 8)
				fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "IDENTITY: TIME_NS is not a u64");
			time_ns = rund_agent_get_le64(data);
			break;
		case RUND_AGENT_ATTR_ENTROPY:
			if (alen < 32 || alen > 256)
				fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO,
				     "IDENTITY: ENTROPY has %u bytes, expected 32-256", alen);
			ent = data;
			ent_len = alen;
			break;
		case RUND_AGENT_ATTR_HOSTNAME:
			if (!rund_agent_attr_is_str(data, alen) || sethostname((const char *)data, alen - 1))
				fail(RUND_AGENT_STAGE_PROTOCOL, errno ? errno : EPROTO,
				     "IDENTITY: failed to set the hostname");
			break;
		case RUND_AGENT_ATTR_BOOT_ID:
			if (alen != 16)
				fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "IDENTITY: BOOT_ID is not 16 bytes");
			snprintf(boot_id, sizeof(boot_id),
				 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
				 data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7],
				 data[8], data[9], data[10], data[11], data[12], data[13], data[14],
				 data[15]);
			break;
		default:
			break;
		}
	}
	if (ret < 0)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "IDENTITY holds a truncated attribute");
	if (!time_ns || !ent)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "IDENTITY lacks TIME_NS or ENTROPY");

	{
		struct timespec ts = {
			.tv_sec = (time_t)(time_ns / 1000000000),
			.tv_nsec = (long)(time_ns % 1000000000),
		};

		if (clock_settime(CLOCK_REALTIME, &ts))
			fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to set the clock");
	}

	/* Credit the host's bytes, then make the CRNG reseed from them now. */
	fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to open /dev/urandom");
	pool.info.entropy_count = (int)ent_len * 8;
	pool.info.buf_size = (int)ent_len;
	memcpy(pool.buf, ent, ent_len);
	if (ioctl(fd, RNDADDENTROPY, &pool) || ioctl(fd, RNDRESEEDCRNG))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to reseed the kernel's random generator");
	memset(&pool, 0, sizeof(pool));
	close(fd);
}

/*
 * The kernel read the placeholder layer device when it probed it (partition
 * scan); drop those cached blocks before the clone's own layer is mounted.
 */
static void mount_layer(uint32_t len)
{
	struct rund_agent_attr_iter it;
	const uint8_t *data;
	uint32_t alen;
	uint16_t type;
	int ret, fd;

	rund_agent_attr_iter_init(&it, rxbuf, len);
	while ((ret = rund_agent_attr_next(&it, &type, &data, &alen)) > 0) {
		if (type != RUND_AGENT_ATTR_LAYER_DEVICE && type != RUND_AGENT_ATTR_LAYER_FSTYPE)
			continue;
		if (!rund_agent_attr_is_str(data, alen))
			fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "MOUNT_LAYER attribute %u is not a string",
			     type);
		if (type == RUND_AGENT_ATTR_LAYER_DEVICE)
			snprintf(rw_dev, sizeof(rw_dev), "%s", (const char *)data);
		else if (strcmp((const char *)data, "ext4"))
			fail(RUND_AGENT_STAGE_PROTOCOL, EINVAL,
			     "MOUNT_LAYER: unsupported layer filesystem '%s', expected ext4",
			     (const char *)data);
	}
	if (ret < 0)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "MOUNT_LAYER holds a truncated attribute");

	fd = open(rw_dev, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, BLKFLSBUF, 0))
		fail(RUND_AGENT_STAGE_MOUNT, errno, "failed to drop cached blocks of %s", rw_dev);
	close(fd);
	mount_rw_and_switch();
	if (boot_id[0]) {
		/* The kernel's boot_id cannot be written: show the host's over it. */
		fd = open("/tmp/.rund-boot-id", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
		if (fd >= 0) {
			dprintf(fd, "%s\n", boot_id);
			close(fd);
			if (mount("/tmp/.rund-boot-id", "/proc/sys/kernel/random/boot_id", NULL,
				  MS_BIND, NULL))
				console("failed to bind the boot id: %s", strerror(errno));
		}
	}
}

/*
 * A template guest stops here: on READY the host saves it. Each clone
 * resumes in read_frame() below and gets IDENTITY and MOUNT_LAYER before RUN.
 */
static void template_ready_point(void)
{
	struct rund_agent_hdr hdr;
	int have_identity = 0, have_layer = 0;

	mount_ro();
	read_hot_files();
	send_ready();

	for (;;) {
		read_frame(&hdr);
		switch (hdr.type) {
		case RUND_AGENT_MSG_IDENTITY:
			apply_identity(hdr.len);
			have_identity = 1;
			send_ack();
			break;
		case RUND_AGENT_MSG_MOUNT_LAYER:
			if (!have_identity)
				fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "MOUNT_LAYER before IDENTITY");
			mount_layer(hdr.len);
			have_layer = 1;
			send_ack();
			break;
		default:
			fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO,
			     "expected IDENTITY or MOUNT_LAYER in a template clone, got message type %u",
			     hdr.type);
		}
		if (have_identity && have_layer)
			return;
	}
}

int main(int argc, char **argv)
{
	struct run_request *req;
	struct rund_agent_hdr hdr;
	int fd;

	if (getpid() != 1) {
		fprintf(stderr, "rund-agent: must run as PID 1 of a rund guest\n");
		return 1;
	}

	mount_or_fail("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_or_fail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	parse_cmdline();

	port_fd = open_port();
	if (port_fd < 0) {
		console("no virtio-serial port named %s: %s", RUND_AGENT_PORT_NAME,
			strerror(-port_fd));
		finish();
	}

	/* The initramfs mounts stay behind, hidden under the new root. */
	if (template_guest) {
		template_ready_point();
	} else {
		mount_root();
		send_ready();
	}

	read_frame(&hdr);
	if (hdr.type != RUND_AGENT_MSG_RUN)
		fail(RUND_AGENT_STAGE_PROTOCOL, EPROTO, "expected RUN, got message type %u",
		     hdr.type);
	req = malloc(sizeof(*req));
	if (!req)
		fail(RUND_AGENT_STAGE_SPAWN, ENOMEM, "failed to allocate the request");
	parse_run(hdr.len, req);
	run_command(req);
}
