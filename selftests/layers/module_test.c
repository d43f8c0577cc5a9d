// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the writable-layer fast path (/dev/rund). Runs as root inside a
 * guest with rund.ko loaded, an XFS with reflink at RUND_LAYER_XFS (default
 * /mnt/xfs) and a tmpfs at RUND_LAYER_TMPFS (default /mnt/tmp). The last
 * test unloads and reloads the module from RUND_KO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "layer.h"
#include "rund.h"

#define IMAGE_SIZE (16 << 20)
#define POLL_MS 10000

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

/* Fill path with size bytes of a pattern derived from seed; return an O_RDONLY fd. */
static int make_image(const char *path, size_t size, unsigned int seed)
{
	static char buf[1 << 20];
	size_t off, i;
	int fd;

	fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += sizeof(buf)) {
		for (i = 0; i < sizeof(buf); i += 4)
			*(uint32_t *)(buf + i) = seed * 2654435761u + (off + i) / 4;
		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -1;
		}
	}
	if (fsync(fd) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* 0 when the first size bytes of a and b are equal, 1 when not, -1 on error. */
static int compare_fds(int a, int b, size_t size)
{
	static char ba[1 << 20], bb[1 << 20];
	size_t off;

	for (off = 0; off < size; off += sizeof(ba)) {
		if (pread(a, ba, sizeof(ba), off) != (ssize_t)sizeof(ba))
			return -1;
		if (pread(b, bb, sizeof(bb), off) != (ssize_t)sizeof(bb))
			return -1;
		if (memcmp(ba, bb, sizeof(ba)))
			return 1;
	}
	return 0;
}

static int get_stats(int devfd, uint32_t id, struct rund_layer_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	return ioctl(devfd, RUND_LAYER_IOC_STATS, s);
}

static int count_images(int devfd)
{
	struct rund_layer_stats s;
	uint32_t next = 1;
	int n = 0;

	for (;;) {
		memset(&s, 0, sizeof(s));
		s.id = next;
		s.flags = RUND_LAYER_STATS_NEXT;
		if (ioctl(devfd, RUND_LAYER_IOC_STATS, &s) < 0)
			return errno == ENOENT ? n : -1;
		n++;
		next = s.id + 1;
	}
}

static int take_clone(int devfd, uint32_t id, int image_fd, uint32_t *flags)
{
	struct rund_layer_clone c;

	memset(&c, 0, sizeof(c));
	c.id = id;
	c.image_fd = image_fd;
	if (ioctl(devfd, RUND_LAYER_IOC_CLONE, &c) < 0)
		return -1;
	if (flags)
		*flags = c.flags;
	return c.fd;
}

static int set_depth(int devfd, uint32_t id, uint32_t depth)
{
	struct rund_layer_depth d = { .id = id, .depth = depth };

	return ioctl(devfd, RUND_LAYER_IOC_SET_DEPTH, &d);
}

/* Wait until the pool of id has want clones ready; return the last stats read. */
static int wait_pooled(int devfd, uint32_t id, uint32_t want,
		       struct rund_layer_stats *s)
{
	int waited;

	for (waited = 0; waited < POLL_MS; waited += 10) {
		if (get_stats(devfd, id, s) < 0)
			return -1;
		if (s->pooled == want)
			return 0;
		usleep(10000);
	}
	return -1;
}

FIXTURE(layer) {
	int devfd;
	int image_fd;
	uint32_t id;
	char path[256];
};

FIXTURE_SETUP(layer)
{
	struct rund_layer_register reg = {};

	self->devfd = open("/dev/rund", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->devfd) TH_LOG("open /dev/rund: %s", strerror(errno));

	snprintf(self->path, sizeof(self->path), "%s/image-%d.ext4",
		 env_or("RUND_LAYER_XFS", "/mnt/xfs"), getpid());
	self->image_fd = make_image(self->path, IMAGE_SIZE, getpid());
	ASSERT_LE(0, self->image_fd) TH_LOG("create %s: %s", self->path, strerror(errno));

	reg.fd = self->image_fd;
	ASSERT_EQ(0, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg))
		TH_LOG("register %s: %s", self->path, strerror(errno));
	ASSERT_LT(0, reg.id);
	self->id = reg.id;
}

FIXTURE_TEARDOWN(layer)
{
	/* Unregistering fails harmlessly after the unload test reloaded the module. */
	if (self->devfd >= 0) {
		ioctl(self->devfd, RUND_LAYER_IOC_UNREGISTER, &self->id);
		close(self->devfd);
	}
	if (self->image_fd >= 0)
		close(self->image_fd);
	unlink(self->path);
}

TEST_F(layer, clone_content_equals_image)
{
	int by_id, by_fd;

	by_id = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, by_id) TH_LOG("clone by id: %s", strerror(errno));
	EXPECT_EQ(0, compare_fds(by_id, self->image_fd, IMAGE_SIZE));

	by_fd = take_clone(self->devfd, 0, self->image_fd, NULL);
	ASSERT_LE(0, by_fd) TH_LOG("clone by image fd: %s", strerror(errno));
	EXPECT_EQ(0, compare_fds(by_fd, self->image_fd, IMAGE_SIZE));

	close(by_id);
	close(by_fd);
}

TEST_F(layer, clone_is_writable_unlinked_cloexec)
{
	struct stat st;
	int fd, flags;

	fd = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(0, st.st_nlink);
	EXPECT_EQ(IMAGE_SIZE, st.st_size);
	EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
	flags = fcntl(fd, F_GETFD);
	EXPECT_TRUE(flags & FD_CLOEXEC);
	close(fd);
}

TEST_F(layer, clone_writes_isolated)
{
	char marker[4096], buf[4096];
	int a, b, cmp;

	a = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, a);
	b = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, b);

	memset(marker, 0xa5, sizeof(marker));
	ASSERT_EQ((ssize_t)sizeof(marker), pwrite(a, marker, sizeof(marker), 8192));
	ASSERT_EQ(0, fsync(a));

	ASSERT_EQ((ssize_t)sizeof(buf), pread(a, buf, sizeof(buf), 8192));
	EXPECT_EQ(0, memcmp(buf, marker, sizeof(buf)));
	cmp = compare_fds(b, self->image_fd, IMAGE_SIZE);
	EXPECT_EQ(0, cmp) TH_LOG("a write to one clone showed in another");
	ASSERT_EQ((ssize_t)sizeof(buf), pread(self->image_fd, buf, sizeof(buf), 8192));
	EXPECT_NE(0, memcmp(buf, marker, sizeof(buf))) TH_LOG("a write to a clone reached the image");

	close(a);
	close(b);
}

TEST_F(layer, pool_refills_to_depth)
{
	struct rund_layer_stats before, after;
	uint32_t flags;
	int fds[8], i;

	ASSERT_EQ(0, set_depth(self->devfd, self->id, 8));
	ASSERT_EQ(0, wait_pooled(self->devfd, self->id, 8, &before))
		TH_LOG("pool did not fill to 8 within %d ms", POLL_MS);
	EXPECT_EQ(8, before.depth);

	for (i = 0; i < 8; i++) {
		fds[i] = take_clone(self->devfd, self->id, -1, &flags);
		ASSERT_LE(0, fds[i]);
	}
	ASSERT_EQ(0, wait_pooled(self->devfd, self->id, 8, &after))
		TH_LOG("pool did not refill to 8 within %d ms", POLL_MS);
	EXPECT_EQ(before.handed_out + 8, after.handed_out);
	/* Every clone taken from the pool was replaced; a miss took none. */
	EXPECT_EQ(8 - (after.misses - before.misses), after.refills - before.refills);
	EXPECT_EQ(0, after.errors);

	for (i = 0; i < 8; i++)
		close(fds[i]);
}

TEST_F(layer, first_clone_comes_from_pool)
{
	struct rund_layer_stats s;
	uint32_t flags = 0;
	int fd;

	ASSERT_EQ(0, wait_pooled(self->devfd, self->id, RUND_LAYER_DEPTH_DEFAULT, &s));
	fd = take_clone(self->devfd, self->id, -1, &flags);
	ASSERT_LE(0, fd);
	EXPECT_EQ(RUND_LAYER_CLONE_POOLED, flags);
	close(fd);
}

TEST_F(layer, depth_zero_rejected)
{
	struct rund_layer_stats s;

	EXPECT_EQ(-1, set_depth(self->devfd, self->id, 0));
	EXPECT_EQ(ERANGE, errno);
	ASSERT_EQ(0, get_stats(self->devfd, self->id, &s));
	EXPECT_EQ(RUND_LAYER_DEPTH_DEFAULT, s.depth);
}

TEST_F(layer, depth_huge_rejected)
{
	struct rund_layer_stats s;

	EXPECT_EQ(-1, set_depth(self->devfd, self->id, RUND_LAYER_DEPTH_MAX + 1));
	EXPECT_EQ(ERANGE, errno);
	EXPECT_EQ(-1, set_depth(self->devfd, self->id, UINT32_MAX));
	EXPECT_EQ(ERANGE, errno);
	ASSERT_EQ(0, get_stats(self->devfd, self->id, &s));
	EXPECT_EQ(RUND_LAYER_DEPTH_DEFAULT, s.depth);
	EXPECT_EQ(0, set_depth(self->devfd, self->id, RUND_LAYER_DEPTH_MAX));
}

TEST_F(layer, unregistered_id_rejected)
{
	struct rund_layer_stats s;
	uint32_t bad = self->id + 1000;

	EXPECT_EQ(-1, take_clone(self->devfd, bad, -1, NULL));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, set_depth(self->devfd, bad, 2));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_UNREGISTER, &bad));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, get_stats(self->devfd, bad, &s));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, get_stats(self->devfd, UINT32_MAX, &s));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, take_clone(self->devfd, UINT32_MAX, -1, NULL));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(layer, unregister_then_clone_rejected)
{
	uint32_t id = self->id;

	ASSERT_EQ(0, ioctl(self->devfd, RUND_LAYER_IOC_UNREGISTER, &id));
	EXPECT_EQ(-1, take_clone(self->devfd, id, -1, NULL));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, take_clone(self->devfd, 0, self->image_fd, NULL));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(layer, tmpfs_image_rejected)
{
	struct rund_layer_register reg = {};
	char path[256];
	int before, fd;

	snprintf(path, sizeof(path), "%s/image-%d.ext4",
		 env_or("RUND_LAYER_TMPFS", "/mnt/tmp"), getpid());
	fd = make_image(path, 1 << 20, 7);
	ASSERT_LE(0, fd);
	before = count_images(self->devfd);

	reg.fd = fd;
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(before, count_images(self->devfd));

	/* A file on another filesystem does not name a registered image. */
	EXPECT_EQ(-1, take_clone(self->devfd, 0, fd, NULL));
	EXPECT_EQ(ENOENT, errno);

	close(fd);
	unlink(path);
}

TEST_F(layer, missing_image_rejected)
{
	struct rund_layer_register reg = {};
	int before, fd, dirfd, empty;
	char path[300];

	before = count_images(self->devfd);

	reg.fd = -1;
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EBADF, errno);

	fd = open("/dev/null", O_RDONLY);
	ASSERT_LE(0, fd);
	close(fd);
	reg.fd = fd;	/* closed: no image behind it */
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EBADF, errno);

	dirfd = open(env_or("RUND_LAYER_XFS", "/mnt/xfs"), O_RDONLY | O_DIRECTORY);
	ASSERT_LE(0, dirfd);
	reg.fd = dirfd;
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EINVAL, errno);
	close(dirfd);

	snprintf(path, sizeof(path), "%s.empty", self->path);
	empty = open(path, O_CREAT | O_RDWR, 0600);
	ASSERT_LE(0, empty);
	reg.fd = empty;
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EINVAL, errno);
	close(empty);
	unlink(path);

	EXPECT_EQ(-1, take_clone(self->devfd, 0, -1, NULL));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(before, count_images(self->devfd));
}

TEST_F(layer, duplicate_register_rejected)
{
	struct rund_layer_register reg = { .fd = self->image_fd };
	int before = count_images(self->devfd);

	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(before, count_images(self->devfd));
}

TEST_F(layer, reserved_fields_rejected)
{
	struct rund_layer_register reg = { .fd = self->image_fd, .reserved = { 1 } };
	struct rund_layer_depth d = { .id = self->id, .depth = 2, .reserved = 1 };
	struct rund_layer_clone c = { .id = self->id, .reserved = 1 };
	struct rund_layer_stats s = { .id = self->id, .flags = 0x80 };

	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_REGISTER, &reg));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_SET_DEPTH, &d));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_CLONE, &c));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->devfd, RUND_LAYER_IOC_STATS, &s));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->devfd, _IO(RUND_LAYER_IOC_MAGIC, 99)));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(layer, changed_image_not_served_stale)
{
	struct rund_layer_stats s;
	char marker[4096], buf[4096];
	int wfd, fd;

	ASSERT_EQ(0, wait_pooled(self->devfd, self->id, RUND_LAYER_DEPTH_DEFAULT, &s));
	/* ctime has a resolution of a jiffy or coarser; make the change visible. */
	usleep(20000);
	wfd = open(self->path, O_WRONLY);
	ASSERT_LE(0, wfd);
	memset(marker, 0x5a, sizeof(marker));
	ASSERT_EQ((ssize_t)sizeof(marker), pwrite(wfd, marker, sizeof(marker), 0));
	ASSERT_EQ(0, fsync(wfd));
	close(wfd);

	fd = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(buf), pread(fd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, marker, sizeof(buf))) TH_LOG("clone predates the image's change");
	close(fd);
}

TEST_F(layer, unprivileged_caller_rejected)
{
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Keep the root-opened descriptor but drop every capability. */
		if (setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		if (take_clone(self->devfd, self->id, -1, NULL) >= 0)
			_exit(3);
		_exit(errno == EPERM ? 0 : 4);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(layer, librund_clone_uses_module)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_COPY;
	struct rund_error err = {};
	struct rund_layer_stats before, after;
	int fd;

	ASSERT_EQ(0, get_stats(self->devfd, self->id, &before));
	fd = rund_layer_clone(self->path, 0, &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_MODULE, used);
	EXPECT_EQ(0, compare_fds(fd, self->image_fd, IMAGE_SIZE));
	ASSERT_EQ(0, get_stats(self->devfd, self->id, &after));
	EXPECT_EQ(before.handed_out + 1, after.handed_out);
	close(fd);
}

TEST_F(layer, librund_clone_no_module_flag)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_MODULE;
	struct rund_error err = {};
	struct rund_layer_stats before, after;
	int fd;

	ASSERT_EQ(0, get_stats(self->devfd, self->id, &before));
	fd = rund_layer_clone(self->path, RUND_LAYER_NO_MODULE, &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_REFLINK, used);
	ASSERT_EQ(0, get_stats(self->devfd, self->id, &after));
	EXPECT_EQ(before.handed_out, after.handed_out);
	close(fd);
}

TEST_F(layer, librund_unregistered_falls_back)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_MODULE;
	struct rund_error err = {};
	uint32_t id = self->id;
	int fd;

	ASSERT_EQ(0, ioctl(self->devfd, RUND_LAYER_IOC_UNREGISTER, &id));
	fd = rund_layer_clone(self->path, 0, &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_REFLINK, used);
	EXPECT_EQ(0, compare_fds(fd, self->image_fd, IMAGE_SIZE));
	close(fd);
}

/* Keep this test last: it unloads the module and loads it again. */
TEST_F(layer, unload_with_clones_handed_out)
{
	char marker[4096], buf[4096];
	const char *ko = env_or("RUND_KO", "/lib/modules/rund.ko");
	struct rund_layer_stats s;
	int clone, kofd, devfd;

	ASSERT_EQ(0, wait_pooled(self->devfd, self->id, RUND_LAYER_DEPTH_DEFAULT, &s));
	clone = take_clone(self->devfd, self->id, -1, NULL);
	ASSERT_LE(0, clone);

	/* An open /dev/rund holds the module. */
	EXPECT_NE(0, syscall(__NR_delete_module, "rund", O_NONBLOCK));
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);

	close(self->devfd);
	self->devfd = -1;
	ASSERT_EQ(0, syscall(__NR_delete_module, "rund", O_NONBLOCK))
		TH_LOG("rmmod rund: %s", strerror(errno));
	EXPECT_EQ(-1, access("/dev/rund", F_OK));

	/* The clone outlives the module: read, write, sync and close it. */
	EXPECT_EQ(0, compare_fds(clone, self->image_fd, IMAGE_SIZE));
	memset(marker, 0x3c, sizeof(marker));
	EXPECT_EQ((ssize_t)sizeof(marker), pwrite(clone, marker, sizeof(marker), 0));
	EXPECT_EQ(0, fsync(clone));
	EXPECT_EQ((ssize_t)sizeof(buf), pread(clone, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, marker, sizeof(buf)));
	EXPECT_EQ(0, close(clone));

	kofd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, kofd) TH_LOG("open %s: %s", ko, strerror(errno));
	ASSERT_EQ(0, syscall(__NR_finit_module, kofd, "", 0))
		TH_LOG("reload %s: %s", ko, strerror(errno));
	close(kofd);
	devfd = open("/dev/rund", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, devfd) TH_LOG("/dev/rund after reload: %s", strerror(errno));
	EXPECT_EQ(0, count_images(devfd));
	close(devfd);
}

TEST_HARNESS_MAIN
