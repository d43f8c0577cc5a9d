// SPDX-License-Identifier: LGPL-2.1-or-later
/* Writable layers: reflink clones in userspace and the module's pool. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/major.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include "layer.h"
#include "rund.h"
#include "util.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif

#define MIB (1024ULL * 1024)

const char *rund_layer_source_name(enum rund_layer_source source)
{
	switch (source) {
	case RUND_LAYER_SOURCE_MODULE:
		return "module";
	case RUND_LAYER_SOURCE_REFLINK:
		return "reflink";
	case RUND_LAYER_SOURCE_COPY:
		return "copy";
	}
	return "unknown";
}

static void fs_type_name(const struct statfs *st, char *buf, size_t len)
{
	switch ((unsigned long)st->f_type) {
	case XFS_SUPER_MAGIC:
		snprintf(buf, len, "xfs");
		break;
	case EXT4_SUPER_MAGIC:	/* ext2, ext3 and ext4 share it */
		snprintf(buf, len, "ext4");
		break;
	case TMPFS_MAGIC:
		snprintf(buf, len, "tmpfs");
		break;
	case BTRFS_SUPER_MAGIC:
		snprintf(buf, len, "btrfs");
		break;
	case OVERLAYFS_SUPER_MAGIC:
		snprintf(buf, len, "overlay");
		break;
	default:
		snprintf(buf, len, "0x%lx", (unsigned long)st->f_type);
	}
}

/* Directory part of path, in buf. */
static int dir_of(const char *path, char *buf, size_t len,
		  struct rund_error *err)
{
	char tmp[PATH_MAX];

	if (strlen(path) >= sizeof(tmp) || strlen(path) >= len)
		return rund_error_setx(err, ENAMETOOLONG,
				       "path '%s' is too long", path);
	strcpy(tmp, path);
	snprintf(buf, len, "%s", dirname(tmp));
	return 0;
}

int rund_layer_fs_probe(const char *dir, struct rund_layer_fs *fs,
			struct rund_error *err)
{
	_cleanup_close_ int src = -1;
	_cleanup_close_ int dst = -1;
	struct statfs st;

	memset(fs, 0, sizeof(*fs));
	if (statfs(dir, &st) < 0)
		return rund_error_set(err, errno, "statfs '%s'", dir);

	fs_type_name(&st, fs->type, sizeof(fs->type));
	fs->is_xfs = (unsigned long)st.f_type == XFS_SUPER_MAGIC;
	fs->size_bytes = (uint64_t)st.f_blocks * st.f_frsize;
	fs->free_bytes = (uint64_t)st.f_bavail * st.f_frsize;

	/*
	 * No interface reports reflink support across filesystems, so clone
	 * one empty unlinked file into another: XFS without reflink and
	 * filesystems without remap_file_range fail with EOPNOTSUPP.
	 */
	src = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (src < 0) {
		if (errno == EOPNOTSUPP || errno == EISDIR)
			return 0;
		return rund_error_set(err, errno,
				      "create an O_TMPFILE file in '%s'", dir);
	}
	fs->tmpfile = true;

	dst = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (dst < 0)
		return rund_error_set(err, errno,
				      "create an O_TMPFILE file in '%s'", dir);
	fs->reflink = ioctl(dst, FICLONE, src) == 0;
	return 0;
}

int rund_layer_require_reflink(const char *dir, struct rund_error *err)
{
	struct rund_layer_fs fs;
	int ret;

	ret = rund_layer_fs_probe(dir, &fs, err);
	if (ret < 0)
		return ret;

	if (!fs.is_xfs || !fs.reflink || !fs.tmpfile)
		return rund_error_setx(err, EOPNOTSUPP,
				       "layer directory '%s' is on %s%s, not on XFS with reflink; "
				       "put layers on an XFS made with 'mkfs.xfs -m reflink=1' "
				       "(scripts/setup-xfs.sh makes a loop-mounted one at %s)",
				       dir, fs.type,
				       fs.is_xfs ? " without reflink" : "",
				       RUND_LAYER_DIR);
	return 0;
}

int rund_layer_count_extents(int fd, unsigned int *extents,
			     struct rund_error *err)
{
	struct fiemap fm;

	/* With fm_extent_count 0 the kernel only counts the extents. */
	memset(&fm, 0, sizeof(fm));
	fm.fm_length = FIEMAP_MAX_OFFSET;
	fm.fm_flags = FIEMAP_FLAG_SYNC;
	if (ioctl(fd, FS_IOC_FIEMAP, &fm) < 0)
		return rund_error_set(err, errno, "FIEMAP");

	*extents = fm.fm_mapped_extents;
	return 0;
}

/*
 * When dev is a loop device, store its backing file and the free space of
 * the filesystem that file lives on. Leaves space untouched otherwise.
 */
static void loop_backing_space(dev_t dev, struct rund_layer_space *space)
{
	char sys[64], path[sizeof(space->backing_file)];
	struct statfs sfs;
	ssize_t n;
	FILE *f;

	if (major(dev) != LOOP_MAJOR)
		return;
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file",
		 major(dev), minor(dev));
	f = fopen(sys, "re");
	if (!f)
		return;
	n = fgets(path, sizeof(path), f) ? (ssize_t)strlen(path) : 0;
	fclose(f);
	if (n > 0 && path[n - 1] == '\n')
		path[--n] = '\0';
	if (n <= 0 || statfs(path, &sfs) < 0)
		return;

	snprintf(space->backing_file, sizeof(space->backing_file), "%s", path);
	space->backing_free_bytes = (uint64_t)sfs.f_bavail * sfs.f_frsize;
}

static int space_of_fd(int fd, const char *image_path,
		       struct rund_layer_space *space, struct rund_error *err)
{
	struct statfs sfs;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return rund_error_set(err, errno, "stat '%s'", image_path);
	if (fstatfs(fd, &sfs) < 0)
		return rund_error_set(err, errno, "statfs '%s'", image_path);

	space->image_bytes = st.st_size;
	space->fs_free_bytes = (uint64_t)sfs.f_bavail * sfs.f_frsize;
	space->size_bytes = (uint64_t)sfs.f_blocks * sfs.f_frsize;
	space->free_bytes = space->fs_free_bytes;
	loop_backing_space(st.st_dev, space);
	if (space->backing_file[0] && space->backing_free_bytes < space->free_bytes)
		space->free_bytes = space->backing_free_bytes;
	space->layers_fit = st.st_size ? space->free_bytes / st.st_size : 0;

	if (space->free_bytes >= space->image_bytes)
		return 0;

	if (space->free_bytes < space->fs_free_bytes)
		return rund_error_setx(err, ENOSPC,
				       "layer filesystem of '%s' is a loop device on '%s', whose filesystem has %llu MiB free, "
				       "less than the %llu MiB one layer can grow to; a full backing filesystem turns guest writes "
				       "into I/O errors, so free space there",
				       image_path, space->backing_file,
				       (unsigned long long)(space->free_bytes / MIB),
				       (unsigned long long)((space->image_bytes + MIB - 1) / MIB));
	return rund_error_setx(err, ENOSPC,
			       "layer filesystem of '%s' has %llu MiB free, less than the %llu MiB one layer can grow to; "
			       "a full layer filesystem turns guest writes into I/O errors, so free space there or enlarge it",
			       image_path,
			       (unsigned long long)(space->free_bytes / MIB),
			       (unsigned long long)((space->image_bytes + MIB - 1) / MIB));
}

int rund_layer_space(const char *image_path, struct rund_layer_space *space,
		     struct rund_error *err)
{
	_cleanup_close_ int fd = -1;

	memset(space, 0, sizeof(*space));
	fd = open(image_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rund_error_set(err, errno, "open layer image '%s'",
				      image_path);
	return space_of_fd(fd, image_path, space, err);
}

/* Copy only the data ranges of src, so that holes stay holes in dst. */
static int copy_data(int src, int dst, off_t size, const char *image_path,
		     struct rund_error *err)
{
	off_t data = 0, hole, pos;
	ssize_t n;

	if (ftruncate(dst, size) < 0)
		return rund_error_set(err, errno, "size a copy of '%s'",
				      image_path);

	for (;;) {
		data = lseek(src, data, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				return 0;
			return rund_error_set(err, errno, "seek in '%s'",
					      image_path);
		}
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return rund_error_set(err, errno, "seek in '%s'",
					      image_path);

		for (pos = data; pos < hole;) {
			loff_t in = pos, out = pos;

			n = copy_file_range(src, &in, dst, &out, hole - pos, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return rund_error_set(err, errno, "copy '%s'",
						      image_path);
			if (n == 0)
				return rund_error_setx(err, EIO,
						       "copy '%s': file shrank while copying",
						       image_path);
			pos += n;
		}
		data = hole;
	}
}

static int clone_in_userspace(int image_fd, const char *image_path,
			      unsigned int flags,
			      enum rund_layer_source *used,
			      struct rund_error *err)
{
	_cleanup_close_ int fd = -1;
	char dir[PATH_MAX];
	struct stat st;
	int ret;

	ret = dir_of(image_path, dir, sizeof(dir), err);
	if (ret < 0)
		return ret;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return rund_error_set(err, errno,
				      "create an unlinked layer file in '%s' (O_TMPFILE)%s",
				      dir,
				      errno == EOPNOTSUPP ? "; put layers on XFS (scripts/setup-xfs.sh)" : "");

	if (ioctl(fd, FICLONE, image_fd) == 0) {
		*used = RUND_LAYER_SOURCE_REFLINK;
		ret = fd;
		fd = -1;
		return ret;
	}
	if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL)
		return rund_error_set(err, errno, "clone '%s' (FICLONE)",
				      image_path);

	if (!(flags & RUND_LAYER_ALLOW_COPY))
		return rund_error_setx(err, EOPNOTSUPP,
				       "cannot clone '%s': its filesystem has no reflink; "
				       "move layer images to an XFS made with 'mkfs.xfs -m reflink=1' "
				       "(scripts/setup-xfs.sh makes one at %s), "
				       "or pass --allow-copy to copy the whole image for each sandbox",
				       image_path, RUND_LAYER_DIR);

	if (fstat(image_fd, &st) < 0)
		return rund_error_set(err, errno, "stat '%s'", image_path);
	ret = copy_data(image_fd, fd, st.st_size, image_path, err);
	if (ret < 0)
		return ret;

	*used = RUND_LAYER_SOURCE_COPY;
	ret = fd;
	fd = -1;
	return ret;
}

int rund_layer_clone(const char *image_path, unsigned int flags,
		     enum rund_layer_source *used, struct rund_error *err)
{
	_cleanup_close_ int image_fd = -1;
	enum rund_layer_source source;
	struct rund_layer_space space;
	struct stat st;
	int ret;

	image_fd = open(image_path, O_RDONLY | O_CLOEXEC);
	if (image_fd < 0)
		return rund_error_set(err, errno, "open layer image '%s'%s",
				      image_path,
				      errno == ENOENT ? "; create one with 'rund-helper layer create'" : "");
	if (fstat(image_fd, &st) < 0)
		return rund_error_set(err, errno, "stat '%s'", image_path);
	if (!S_ISREG(st.st_mode))
		return rund_error_setx(err, EINVAL,
				       "layer image '%s' is not a regular file",
				       image_path);

	ret = space_of_fd(image_fd, image_path, &space, err);
	if (ret < 0)
		return ret;

	if (!(flags & RUND_LAYER_NO_MODULE) &&
	    access(RUND_LAYER_DEVICE, F_OK) == 0) {
		_cleanup_close_ int devfd = -1;

		/*
		 * Any failure here (no permission, image not registered,
		 * module without the layer ioctls) falls back to a clone
		 * made here, which is what a caller without the module gets.
		 */
		devfd = open(RUND_LAYER_DEVICE, O_RDWR | O_CLOEXEC);
		if (devfd >= 0) {
			ret = rund_layer_module_clone(devfd, 0, image_fd, NULL,
						      NULL);
			if (ret >= 0) {
				if (used)
					*used = RUND_LAYER_SOURCE_MODULE;
				return ret;
			}
		}
	}

	ret = clone_in_userspace(image_fd, image_path, flags, &source, err);
	if (ret >= 0 && used)
		*used = source;
	return ret;
}

int rund_layer_module_open(struct rund_error *err)
{
	int fd;

	fd = open(RUND_LAYER_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return rund_error_set(err, errno, "open %s%s", RUND_LAYER_DEVICE,
				      errno == ENOENT ? " (is rund.ko loaded?)" :
				      errno == EACCES ? " (needs root)" : "");
	return fd;
}

int rund_layer_module_register(int devfd, const char *image_path,
			       struct rund_error *err)
{
	_cleanup_close_ int fd = -1;
	struct rund_layer_register reg;

	fd = open(image_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rund_error_set(err, errno, "open layer image '%s'",
				      image_path);

	memset(&reg, 0, sizeof(reg));
	reg.fd = fd;
	if (ioctl(devfd, RUND_LAYER_IOC_REGISTER, &reg) < 0)
		return rund_error_set(err, errno,
				      "register '%s' with the module%s",
				      image_path,
				      errno == EEXIST ? " (already registered)" :
				      errno == EOPNOTSUPP ? " (its filesystem has no reflink or O_TMPFILE)" : "");
	return reg.id;
}

int rund_layer_module_unregister(int devfd, uint32_t id,
				 struct rund_error *err)
{
	if (ioctl(devfd, RUND_LAYER_IOC_UNREGISTER, &id) < 0)
		return rund_error_set(err, errno, "unregister layer image %u",
				      id);
	return 0;
}

int rund_layer_module_set_depth(int devfd, uint32_t id, uint32_t depth,
				struct rund_error *err)
{
	struct rund_layer_depth d;

	memset(&d, 0, sizeof(d));
	d.id = id;
	d.depth = depth;
	if (ioctl(devfd, RUND_LAYER_IOC_SET_DEPTH, &d) < 0) {
		if (errno == ERANGE)
			return rund_error_set(err, errno,
					      "set pool depth of layer image %u to %u (accepted: 1 to %d)",
					      id, depth, RUND_LAYER_DEPTH_MAX);
		return rund_error_set(err, errno,
				      "set pool depth of layer image %u to %u",
				      id, depth);
	}
	return 0;
}

int rund_layer_module_clone(int devfd, uint32_t id, int image_fd,
			    bool *pooled, struct rund_error *err)
{
	struct rund_layer_clone c;

	memset(&c, 0, sizeof(c));
	c.id = id;
	c.image_fd = id ? -1 : image_fd;
	if (ioctl(devfd, RUND_LAYER_IOC_CLONE, &c) < 0) {
		if (id)
			return rund_error_set(err, errno,
					      "take a clone of layer image %u from the module",
					      id);
		return rund_error_set(err, errno,
				      "take a clone from the module%s",
				      errno == ENOENT ? " (image not registered)" : "");
	}
	if (pooled)
		*pooled = c.flags & RUND_LAYER_CLONE_POOLED;
	return c.fd;
}
