// SPDX-License-Identifier: GPL-2.0
/*
 * Cgroup filesystem access through the VFS.
 *
 * The pool works on cgroup directories the way a process does (mkdir,
 * rename, rmdir, reads and writes of control files) so that it needs no
 * unexported cgroup internals and behaves the same on v1 and v2.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "cgfs.h"

/**
 * rund_cgfs_lookup_root() - resolve a pool root directory on a cgroup filesystem
 * @name: absolute path
 * @v2: expect cgroup2 when true, a v1 hierarchy otherwise
 * @root: pinned path on success, to be released with path_put()
 *
 * Return: 0, -ENOENT or -ENOTDIR from the lookup, or -EXDEV when the
 * directory is not on the expected cgroup filesystem.
 */
int rund_cgfs_lookup_root(const char *name, bool v2, struct path *root)
{
	unsigned long magic;
	int err;

	err = kern_path(name, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, root);
	if (err)
		return err;

	magic = root->dentry->d_sb->s_magic;
	if (magic != (v2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC)) {
		path_put(root);
		return -EXDEV;
	}
	return 0;
}

/* Returns a new reference to the positive dentry of @name in @parent. */
int rund_cgfs_mkdir(const struct path *parent, const char *name, struct dentry **child)
{
	struct inode *dir = d_inode(parent->dentry);
	struct dentry *dentry;
	int err;

	err = mnt_want_write(parent->mnt);
	if (err)
		return err;

	inode_lock_nested(dir, I_MUTEX_PARENT);
	dentry = lookup_one_len(name, parent->dentry, strlen(name));
	if (IS_ERR(dentry)) {
		err = PTR_ERR(dentry);
		goto out_unlock;
	}
	err = vfs_mkdir(&init_user_ns, dir, dentry, 0755);
	dput(dentry);
	if (err)
		goto out_unlock;

	/*
	 * kernfs leaves the dentry passed to mkdir negative; a second lookup
	 * revalidates it and returns the new directory.
	 */
	dentry = lookup_one_len(name, parent->dentry, strlen(name));
	if (IS_ERR(dentry)) {
		err = PTR_ERR(dentry);
		goto out_unlock;
	}
	if (d_really_is_negative(dentry)) {
		dput(dentry);
		err = -ENOENT;
		goto out_unlock;
	}
	*child = dentry;

out_unlock:
	inode_unlock(dir);
	mnt_drop_write(parent->mnt);
	return err;
}

/* Removes @child from @parent and drops the caller's reference to it. */
int rund_cgfs_rmdir(const struct path *parent, struct dentry *child)
{
	struct inode *dir = d_inode(parent->dentry);
	int err;

	err = mnt_want_write(parent->mnt);
	if (err)
		goto out_put;

	inode_lock_nested(dir, I_MUTEX_PARENT);
	if (child->d_parent == parent->dentry && d_really_is_positive(child))
		err = vfs_rmdir(&init_user_ns, dir, child);
	else
		err = -ENOENT;
	inode_unlock(dir);
	mnt_drop_write(parent->mnt);
out_put:
	dput(child);
	return err;
}

/* Renames @child within @parent; @child keeps pointing at the directory. */
int rund_cgfs_rename(const struct path *parent, struct dentry *child, const char *new_name)
{
	struct renamedata rd = {};
	struct dentry *target;
	struct dentry *trap;
	int err;

	err = mnt_want_write(parent->mnt);
	if (err)
		return err;

	trap = lock_rename(parent->dentry, parent->dentry);
	target = lookup_one_len(new_name, parent->dentry, strlen(new_name));
	if (IS_ERR(target)) {
		err = PTR_ERR(target);
		goto out_unlock;
	}
	if (d_really_is_positive(target)) {
		err = -EEXIST;
		goto out_put_target;
	}
	if (child->d_parent != parent->dentry || target == trap) {
		err = -EINVAL;
		goto out_put_target;
	}

	rd.old_mnt_userns = &init_user_ns;
	rd.old_dir = d_inode(parent->dentry);
	rd.old_dentry = child;
	rd.new_mnt_userns = &init_user_ns;
	rd.new_dir = d_inode(parent->dentry);
	rd.new_dentry = target;
	err = vfs_rename(&rd);

out_put_target:
	dput(target);
out_unlock:
	unlock_rename(parent->dentry, parent->dentry);
	mnt_drop_write(parent->mnt);
	return err;
}

/* Opens control file @name of directory @dir, which lives on @parent's mount. */
struct file *rund_cgfs_open(const struct path *parent, struct dentry *dir,
			    const char *name, int flags)
{
	struct path where = { .mnt = parent->mnt, .dentry = dir };

	return file_open_root(&where, name, flags, 0);
}

/* Writes @buf at offset 0, as one write(2); cgroup files parse each write whole. */
int rund_cgfs_write(struct file *file, const char *buf)
{
	size_t len = strlen(buf);
	loff_t pos = 0;
	ssize_t ret;

	ret = kernel_write(file, buf, len, &pos);
	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}

int rund_cgfs_printf(struct file *file, const char *fmt, ...)
{
	char buf[64];
	va_list args;
	int len;

	va_start(args, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	if (len >= sizeof(buf))
		return -E2BIG;
	return rund_cgfs_write(file, buf);
}

/*
 * Reads up to @size - 1 bytes from offset 0 and terminates them with a NUL.
 * Returns the byte count or -errno.
 */
ssize_t rund_cgfs_read(struct file *file, char *buf, size_t size)
{
	size_t done = 0;
	loff_t pos = 0;
	ssize_t ret;

	while (done < size - 1) {
		ret = kernel_read(file, buf + done, size - 1 - done, &pos);
		if (ret < 0)
			return ret;
		if (ret == 0)
			break;
		done += ret;
	}
	buf[done] = '\0';
	return done;
}

/* Closes @file now in a kernel thread (no task work runs there), else on return to user space. */
void rund_cgfs_close(struct file *file)
{
	if (current->flags & PF_KTHREAD)
		__fput_sync(file);
	else
		fput(file);
}

/*
 * Reads control file @name of @dir through a fresh open file. v1
 * cgroup.procs caches its pid list per open file for as long as it is read
 * again within a second, so a poll through one long-lived file never sees
 * the list shrink.
 */
ssize_t rund_cgfs_read_at(const struct path *parent, struct dentry *dir, const char *name,
			  char *buf, size_t size)
{
	struct file *file;
	ssize_t ret;

	file = rund_cgfs_open(parent, dir, name, O_RDONLY);
	if (IS_ERR(file))
		return PTR_ERR(file);
	ret = rund_cgfs_read(file, buf, size);
	rund_cgfs_close(file);
	return ret;
}
