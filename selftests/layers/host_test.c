// SPDX-License-Identifier: GPL-2.0
/*
 * Host tests of librund's userspace layer clones (O_TMPFILE + FICLONE).
 *
 * run.sh mounts the filesystems and passes their directories:
 *   RUND_TEST_XFS           XFS with reflink
 *   RUND_TEST_XFS_NOREFLINK XFS made with reflink=0
 *   RUND_TEST_EXT4          ext4
 * Each must be a filesystem of its own, because the space test reads statfs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "layer.h"

#define IMAGE_SIZE (64 << 20)
#define MIB (1 << 20)
/* XFS frees an unlinked inode's blocks in background work after the last close. */
#define SPACE_POLL_MS 10000

static const char *dir_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Write size bytes of a seed-derived pattern to path; return 0 or -1. */
static int make_image(const char *path, size_t size, unsigned int seed)
{
	static char buf[MIB];
	size_t off, i;
	int fd;

	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
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
	return close(fd);
}

/* 0 when fd's content equals the file at path, 1 when it differs, -1 on error. */
static int compare_with(int fd, const char *path, size_t size)
{
	static char a[MIB], b[MIB];
	size_t off;
	int other, ret = 0;

	other = open(path, O_RDONLY | O_CLOEXEC);
	if (other < 0)
		return -1;
	for (off = 0; off < size && !ret; off += sizeof(a)) {
		if (pread(fd, a, sizeof(a), off) != (ssize_t)sizeof(a) ||
		    pread(other, b, sizeof(b), off) != (ssize_t)sizeof(b))
			ret = -1;
		else if (memcmp(a, b, sizeof(a)))
			ret = 1;
	}
	close(other);
	return ret;
}

static int count_entries(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n++;
	closedir(d);
	return n;
}

static uint64_t free_bytes(const char *dir)
{
	struct statfs st;

	if (statfs(dir, &st) < 0)
		return 0;
	return (uint64_t)st.f_bavail * st.f_bsize;
}

FIXTURE(xfs) {
	const char *dir;
	char image[256];
};

FIXTURE_SETUP(xfs)
{
	self->dir = dir_env("RUND_TEST_XFS");
	if (!self->dir)
		SKIP(return, "RUND_TEST_XFS is not set (run.sh mounts a reflink XFS)");
	snprintf(self->image, sizeof(self->image), "%s/image-%d.ext4",
		 self->dir, getpid());
	ASSERT_EQ(0, make_image(self->image, IMAGE_SIZE, getpid()));
}

FIXTURE_TEARDOWN(xfs)
{
	if (self->dir)
		unlink(self->image);
}

TEST_F(xfs, fs_probe_reports_reflink)
{
	struct rund_error err = {};
	struct rund_layer_fs fs;

	ASSERT_EQ(0, rund_layer_fs_probe(self->dir, &fs, &err)) TH_LOG("%s", err.msg);
	EXPECT_TRUE(fs.is_xfs);
	EXPECT_TRUE(fs.reflink);
	EXPECT_TRUE(fs.tmpfile);
	EXPECT_STREQ("xfs", fs.type);
	EXPECT_EQ(0, rund_layer_require_reflink(self->dir, &err)) TH_LOG("%s", err.msg);
}

TEST_F(xfs, clone_content_equals_image)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_COPY;
	struct rund_error err = {};
	struct stat st;
	int fd;

	fd = rund_layer_clone(self->image, RUND_LAYER_NO_MODULE, &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_REFLINK, used);
	EXPECT_STREQ("reflink", rund_layer_source_name(used));
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(0, st.st_nlink);
	EXPECT_EQ(IMAGE_SIZE, st.st_size);
	EXPECT_EQ(0, compare_with(fd, self->image, IMAGE_SIZE));
	close(fd);
}

TEST_F(xfs, clone_writes_isolated)
{
	char marker[4096], buf[4096];
	struct rund_error err = {};
	int a, b, img;

	a = rund_layer_clone(self->image, RUND_LAYER_NO_MODULE, NULL, &err);
	ASSERT_LE(0, a) TH_LOG("%s", err.msg);
	b = rund_layer_clone(self->image, RUND_LAYER_NO_MODULE, NULL, &err);
	ASSERT_LE(0, b) TH_LOG("%s", err.msg);

	memset(marker, 0xa5, sizeof(marker));
	ASSERT_EQ((ssize_t)sizeof(marker), pwrite(a, marker, sizeof(marker), MIB));
	ASSERT_EQ(0, fsync(a));
	ASSERT_EQ((ssize_t)sizeof(buf), pread(a, buf, sizeof(buf), MIB));
	EXPECT_EQ(0, memcmp(buf, marker, sizeof(buf)));

	EXPECT_EQ(0, compare_with(b, self->image, IMAGE_SIZE))
		TH_LOG("a write to one clone showed in another");
	img = open(self->image, O_RDONLY);
	ASSERT_LE(0, img);
	ASSERT_EQ((ssize_t)sizeof(buf), pread(img, buf, sizeof(buf), MIB));
	EXPECT_NE(0, memcmp(buf, marker, sizeof(buf)))
		TH_LOG("a write to a clone reached the image");
	close(img);
	close(a);
	close(b);
}

TEST_F(xfs, space_returns_after_close)
{
	static char data[MIB];
	struct rund_error err = {};
	uint64_t before, during, after = 0;
	int dirfd, fd, i, waited;

	dirfd = open(self->dir, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, dirfd);
	ASSERT_EQ(0, syncfs(dirfd));
	close(dirfd);
	before = free_bytes(self->dir);

	fd = rund_layer_clone(self->image, RUND_LAYER_NO_MODULE, NULL, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	/* Overwrite 32 MiB so that the clone owns blocks of its own. */
	memset(data, 0x77, sizeof(data));
	for (i = 0; i < 32; i++)
		ASSERT_EQ((ssize_t)sizeof(data), pwrite(fd, data, sizeof(data), (off_t)i * MIB));
	ASSERT_EQ(0, fsync(fd));
	during = free_bytes(self->dir);
	EXPECT_GE(before, during + 30 * MIB)
		TH_LOG("free space fell by only %llu MiB after 32 MiB of writes",
		       (unsigned long long)((before - during) / MIB));

	ASSERT_EQ(0, close(fd));
	for (waited = 0; waited < SPACE_POLL_MS; waited += 20) {
		after = free_bytes(self->dir);
		if (after + MIB >= before)
			break;
		usleep(20000);
	}
	EXPECT_LE(before, after + MIB)
		TH_LOG("%llu MiB still used %d ms after the last close",
		       (unsigned long long)((before - after) / MIB), SPACE_POLL_MS);
	TH_LOG("space returned within %d ms", waited);
}

TEST_F(xfs, missing_image_rejected)
{
	struct rund_error err = {};
	char path[300];
	int entries;

	snprintf(path, sizeof(path), "%s/no-such-image.ext4", self->dir);
	entries = count_entries(self->dir);
	EXPECT_EQ(-ENOENT, rund_layer_clone(path, RUND_LAYER_NO_MODULE, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, path)) TH_LOG("message: %s", err.msg);
	EXPECT_NE(NULL, strstr(err.msg, "layer create")) TH_LOG("message: %s", err.msg);
	EXPECT_EQ(entries, count_entries(self->dir));
}

TEST_F(xfs, directory_as_image_rejected)
{
	struct rund_error err = {};

	EXPECT_EQ(-EINVAL, rund_layer_clone(self->dir, RUND_LAYER_NO_MODULE, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, "not a regular file")) TH_LOG("message: %s", err.msg);
}

TEST_F(xfs, image_larger_than_free_space_rejected)
{
	struct rund_error err = {};
	char path[300];
	uint64_t before;
	int fd;

	/* A sparse image that could grow past the filesystem's free space. */
	snprintf(path, sizeof(path), "%s/huge-%d.ext4", self->dir, getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	ASSERT_LE(0, fd);
	before = free_bytes(self->dir);
	ASSERT_EQ(0, ftruncate(fd, before + 64 * MIB));
	close(fd);

	EXPECT_EQ(-ENOSPC, rund_layer_clone(path, RUND_LAYER_NO_MODULE, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, "MiB free")) TH_LOG("message: %s", err.msg);
	unlink(path);
}

TEST_F(xfs, space_report_counts_layers)
{
	struct rund_layer_space space;
	struct rund_error err = {};

	ASSERT_EQ(0, rund_layer_space(self->image, &space, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(IMAGE_SIZE, space.image_bytes);
	EXPECT_LT(0, space.free_bytes);
	EXPECT_EQ(space.free_bytes / IMAGE_SIZE, space.layers_fit);
}

TEST_F(xfs, module_absent_falls_back)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_MODULE;
	struct rund_error err = {};
	int fd;

	if (access(RUND_LAYER_DEVICE, F_OK) == 0)
		SKIP(return, "%s exists; this test needs a host without the module", RUND_LAYER_DEVICE);
	fd = rund_layer_clone(self->image, 0, &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_REFLINK, used);
	close(fd);
}

/* Filesystems without reflink: the XFS variant and ext4. */
FIXTURE(noreflink) {
	const char *dir;
	char image[256];
	int entries;
};

FIXTURE_VARIANT(noreflink) {
	const char *env;
	const char *type;
};

FIXTURE_VARIANT_ADD(noreflink, xfs) {
	.env = "RUND_TEST_XFS_NOREFLINK",
	.type = "xfs without reflink",
};

FIXTURE_VARIANT_ADD(noreflink, ext4) {
	.env = "RUND_TEST_EXT4",
	.type = "ext4",
};

FIXTURE_SETUP(noreflink)
{
	self->dir = dir_env(variant->env);
	if (!self->dir)
		SKIP(return, "%s is not set (run.sh mounts one)", variant->env);
	snprintf(self->image, sizeof(self->image), "%s/image-%d.ext4",
		 self->dir, getpid());
	ASSERT_EQ(0, make_image(self->image, 8 * MIB, 3));
	self->entries = count_entries(self->dir);
}

FIXTURE_TEARDOWN(noreflink)
{
	if (self->dir)
		unlink(self->image);
}

TEST_F(noreflink, clone_rejected_naming_fix)
{
	struct rund_error err = {};
	uint64_t before;

	before = free_bytes(self->dir);
	EXPECT_EQ(-EOPNOTSUPP, rund_layer_clone(self->image, RUND_LAYER_NO_MODULE, NULL, &err));
	EXPECT_NE(NULL, strstr(err.msg, "scripts/setup-xfs.sh")) TH_LOG("message: %s", err.msg);
	EXPECT_NE(NULL, strstr(err.msg, "--allow-copy")) TH_LOG("message: %s", err.msg);
	EXPECT_EQ(self->entries, count_entries(self->dir));
	EXPECT_LE(before, free_bytes(self->dir) + MIB);
}

TEST_F(noreflink, require_reflink_rejected)
{
	struct rund_error err = {};

	EXPECT_EQ(-EOPNOTSUPP, rund_layer_require_reflink(self->dir, &err));
	EXPECT_NE(NULL, strstr(err.msg, variant->type)) TH_LOG("message: %s", err.msg);
	EXPECT_NE(NULL, strstr(err.msg, "scripts/setup-xfs.sh")) TH_LOG("message: %s", err.msg);
}

TEST_F(noreflink, allow_copy_copies)
{
	enum rund_layer_source used = RUND_LAYER_SOURCE_REFLINK;
	struct rund_error err = {};
	int fd;

	fd = rund_layer_clone(self->image, RUND_LAYER_NO_MODULE | RUND_LAYER_ALLOW_COPY,
			      &used, &err);
	ASSERT_LE(0, fd) TH_LOG("%s", err.msg);
	EXPECT_EQ(RUND_LAYER_SOURCE_COPY, used);
	EXPECT_EQ(0, compare_with(fd, self->image, 8 * MIB));
	close(fd);
	EXPECT_EQ(self->entries, count_entries(self->dir));
}

TEST(tmpfs_probe_no_reflink)
{
	struct rund_error err = {};
	struct rund_layer_fs fs;

	ASSERT_EQ(0, rund_layer_fs_probe("/dev/shm", &fs, &err)) TH_LOG("%s", err.msg);
	EXPECT_FALSE(fs.is_xfs);
	EXPECT_FALSE(fs.reflink);
	EXPECT_STREQ("tmpfs", fs.type);
}

TEST_HARNESS_MAIN
