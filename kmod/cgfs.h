/* SPDX-License-Identifier: GPL-2.0 */
/* Cgroup filesystem access through the VFS: directories and control files. */
#ifndef RUND_KMOD_CGFS_H
#define RUND_KMOD_CGFS_H

#include <linux/fs.h>
#include <linux/path.h>

int rund_cgfs_lookup_root(const char *name, bool v2, struct path *root);
int rund_cgfs_mkdir(const struct path *parent, const char *name, struct dentry **child);
int rund_cgfs_rmdir(const struct path *parent, struct dentry *child);
int rund_cgfs_rename(const struct path *parent, struct dentry *child, const char *new_name);
struct file *rund_cgfs_open(const struct path *parent, struct dentry *dir,
			    const char *name, int flags);
void rund_cgfs_close(struct file *file);
ssize_t rund_cgfs_read_at(const struct path *parent, struct dentry *dir, const char *name,
			  char *buf, size_t size);
int rund_cgfs_write(struct file *file, const char *buf);
int rund_cgfs_printf(struct file *file, const char *fmt, ...) __printf(2, 3);
ssize_t rund_cgfs_read(struct file *file, char *buf, size_t size);

#endif /* RUND_KMOD_CGFS_H */
