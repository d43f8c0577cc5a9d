// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host-side tests of rund_template_restore() against a test double of QEMU:
 * a child process that speaks just enough QMP on one end of a socket pair
 * (greeting, qmp_capabilities, canned replies to the queries a restore
 * makes). It replaces a QEMU build without the x-ignore-shared
 * capability, which this machine does not have.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "template.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"fake\"}, \"capabilities\": []}}\r\n"

#define CAPS_WITHOUT "{\"return\": [{\"state\": false, \"capability\": \"xbzrle\"}, " \
	"{\"state\": false, \"capability\": \"postcopy-ram\"}]}\r\n"
#define CAPS_WITH "{\"return\": [{\"state\": false, \"capability\": \"xbzrle\"}, " \
	"{\"state\": false, \"capability\": \"x-ignore-shared\"}]}\r\n"

/*
 * Fake QMP peer: reply to each request by its command name. Requests
 * not in the table get an empty return. Exits when the socket closes.
 */
static void fake_qmp(int fd, const char *caps_reply, const char *cpu_type)
{
	char buf[8192];
	size_t len = 0;

	if (write(fd, GREETING, strlen(GREETING)) < 0)
		_exit(1);
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			_exit(0);
		len += (size_t)n;
		buf[len] = '\0';
		/* The client waits for each reply, so one read contains one whole request. */
		if (strchr(buf, '}')) {
			char reply[512];
			const char *r = "{\"return\": {}}\r\n";

			if (strstr(buf, "query-migrate-capabilities"))
				r = caps_reply;
			else if (strstr(buf, "query-cpus-fast"))
				r = "{\"return\": [{\"cpu-index\": 0, \"qom-path\": \"/machine/unattached/device[0]\", \"thread-id\": 1, \"target\": \"x86_64\"}]}\r\n";
			else if (strstr(buf, "qom-get")) {
				snprintf(reply, sizeof(reply), "{\"return\": \"%s\"}\r\n", cpu_type);
				r = reply;
			} else if (strstr(buf, "query-migrate"))
				r = "{\"return\": {\"status\": \"completed\"}}\r\n";
			if (write(fd, r, strlen(r)) < 0)
				_exit(1);
			/* Drop everything up to the end of this request. */
			len = 0;
			buf[0] = '\0';
		}
	}
}

static pid_t start_fake(int *client, const char *caps_reply, const char *cpu_type)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		fake_qmp(sv[1], caps_reply, cpu_type);
		_exit(0);
	}
	close(sv[1]);
	*client = sv[0];
	return pid;
}

static void fill_template(struct rund_template *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "fake");
	snprintf(t->match.qemu, sizeof(t->match.qemu), "/usr/bin/fake-qemu");
	snprintf(t->match.cpu_model, sizeof(t->match.cpu_model), "qemu64-x86_64-cpu");
	snprintf(t->state_path, sizeof(t->state_path), "/dev/null");
}

TEST(restore_rejects_qemu_without_ignore_shared)
{
	struct rund_error err = { 0 };
	struct rund_template t;
	struct rund_qmp q;
	int fd, ret;
	pid_t pid;

	fill_template(&t);
	pid = start_fake(&fd, CAPS_WITHOUT, "qemu64-x86_64-cpu");
	ASSERT_GT(pid, 0);
	ASSERT_EQ(0, rund_qmp_open(&q, fd, 2000, &err)) TH_LOG("%s", err.msg);

	ret = rund_template_restore(&t, &q, 2000, NULL, &err);
	EXPECT_EQ(-EOPNOTSUPP, ret);
	EXPECT_NE(NULL, strstr(err.msg, "x-ignore-shared")) TH_LOG("message: %s", err.msg);
	EXPECT_NE(NULL, strstr(err.msg, "--no-template")) TH_LOG("message: %s", err.msg);

	rund_qmp_close(&q);
	waitpid(pid, NULL, 0);
}

TEST(restore_rejects_other_cpu_model)
{
	struct rund_error err = { 0 };
	struct rund_template t;
	struct rund_qmp q;
	int fd, ret;
	pid_t pid;

	fill_template(&t);
	pid = start_fake(&fd, CAPS_WITH, "max-x86_64-cpu");
	ASSERT_GT(pid, 0);
	ASSERT_EQ(0, rund_qmp_open(&q, fd, 2000, &err)) TH_LOG("%s", err.msg);

	ret = rund_template_restore(&t, &q, 2000, NULL, &err);
	EXPECT_EQ(-ESTALE, ret);
	EXPECT_NE(NULL, strstr(err.msg, "max-x86_64-cpu")) TH_LOG("message: %s", err.msg);

	rund_qmp_close(&q);
	waitpid(pid, NULL, 0);
}

TEST(restore_accepts_capable_peer)
{
	struct rund_error err = { 0 };
	struct rund_template t;
	struct rund_qmp q;
	int fd;
	pid_t pid;

	fill_template(&t);
	pid = start_fake(&fd, CAPS_WITH, "qemu64-x86_64-cpu");
	ASSERT_GT(pid, 0);
	ASSERT_EQ(0, rund_qmp_open(&q, fd, 2000, &err)) TH_LOG("%s", err.msg);

	EXPECT_EQ(0, rund_template_restore(&t, &q, 2000, NULL, &err)) TH_LOG("%s", err.msg);

	rund_qmp_close(&q);
	waitpid(pid, NULL, 0);
}

TEST(template_name_check)
{
	static const char *const bad[] = { "", ".hidden", "a/b", "a b", "x;rm" };
	static const char *const good[] = { "debian", "py-3.11_fn", "A.b-c" };
	struct rund_error err = { 0 };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EINVAL, rund_template_name_check(bad[i], &err)) TH_LOG("'%s'", bad[i]);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		EXPECT_EQ(0, rund_template_name_check(good[i], &err)) TH_LOG("'%s': %s", good[i], err.msg);
}

TEST_HARNESS_MAIN
