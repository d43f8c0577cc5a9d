// SPDX-License-Identifier: GPL-2.0
/*
 * Writable-layer fast path: the root-only misc device /dev/rund.
 *
 * Userspace registers a layer image (an ext4 image on a filesystem with
 * reflink, usually XFS). For each image the module keeps up to K clones
 * ready: unlinked O_TMPFILE files in the image's directory that share the
 * image's blocks through vfs_clone_file_range(). RUND_LAYER_IOC_CLONE hands
 * one out as a new descriptor and a worker makes a replacement in the
 * background. When the pool is empty the clone is made on the spot, so a
 * burst beyond K is slower but never fails for that reason.
 *
 * A handed-out descriptor is a plain open of the clone's inode made with
 * dentry_open(): its file_operations are the filesystem's, so it stays valid
 * after this module is unloaded. Ready clones and the image references are
 * dropped at unregister and at unload.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "layer.h"
#include "uapi/rund.h"

/**
 * struct rund_layer_ready - one clone waiting in an image's pool
 * @node: entry in rund_layer_image.ready
 * @file: an ordinary read-write open of the unlinked clone, ready to install
 * @image_ctime: the image's ctime when the clone was made; a pool clone of
 *	an image that changed since is discarded instead of handed out
 */
struct rund_layer_ready {
	struct list_head node;
	struct file *file;
	struct timespec64 image_ctime;
};

/**
 * struct rund_layer_image - a registered layer image and its pool
 * @id: id in rund_layer_ids
 * @ref: held by the id table and by each request using the image
 * @image: the image, opened by the caller who registered it
 * @dir: the image's directory, where clones are created
 * @cred: credentials of the caller who registered, used to create clones
 * @refill: background work that fills the pool up to @depth
 * @lock: protects @ready, @nr_ready, @depth, @dying and the counters
 * @ready: clones ready to hand out (struct rund_layer_ready)
 * @nr_ready: entries in @ready
 * @depth: number of clones to keep ready (K)
 * @dying: set at unregister, after which nothing is added or queued
 * @handed_out: clones handed out
 * @refills: clones the worker added to @ready
 * @misses: requests that found @ready empty
 * @errors: clones that could not be made
 */
struct rund_layer_image {
	u32 id;
	struct kref ref;
	struct file *image;
	struct path dir;
	const struct cred *cred;
	struct work_struct refill;

	spinlock_t lock;
	struct list_head ready;
	unsigned int nr_ready;
	unsigned int depth;
	bool dying;
	u64 handed_out;
	u64 refills;
	u64 misses;
	u64 errors;
};

/* Registered images by id. The rwsem protects the IDR: readers look up, writers add and remove. */
static DEFINE_IDR(rund_layer_ids);
static DECLARE_RWSEM(rund_layer_ids_rwsem);

static struct workqueue_struct *rund_layer_wq;

static void rund_layer_image_release(struct kref *ref)
{
	struct rund_layer_image *img = container_of(ref, struct rund_layer_image, ref);

	WARN_ON_ONCE(!list_empty(&img->ready));
	put_cred(img->cred);
	path_put(&img->dir);
	fput(img->image);
	kfree(img);
}

static void rund_layer_image_put(struct rund_layer_image *img)
{
	kref_put(&img->ref, rund_layer_image_release);
}

/*
 * Create an unlinked file in the image's directory, clone the whole image
 * into it and return a file ready to install in a file table.
 *
 * vfs_tmpfile_open() gives a file that is not counted in nr_files and must
 * not be installed, so the result is a second, ordinary open of the same
 * dentry with the registering caller's credentials. Doing that here, and not
 * at hand-out, keeps the open off the fast path.
 */
static struct file *rund_layer_make_clone(struct rund_layer_image *img)
{
	struct inode *inode = file_inode(img->image);
	loff_t size = i_size_read(inode);
	const struct cred *old_cred;
	struct file *clone, *file;
	loff_t cloned;
	int ret;

	ret = mnt_want_write(img->dir.mnt);
	if (ret)
		return ERR_PTR(ret);

	old_cred = override_creds(img->cred);
	clone = vfs_tmpfile_open(mnt_user_ns(img->dir.mnt), &img->dir,
				 S_IFREG | 0600, O_RDWR | O_LARGEFILE | O_EXCL,
				 img->cred);
	revert_creds(old_cred);
	mnt_drop_write(img->dir.mnt);
	if (IS_ERR(clone))
		return clone;

	/* A length of 0 clones up to the end of the image. */
	cloned = vfs_clone_file_range(img->image, 0, clone, 0, 0, 0);
	if (cloned < 0) {
		ret = cloned;
		goto out_put_clone;
	}
	if (cloned != size) {
		ret = -EIO;
		goto out_put_clone;
	}

	file = dentry_open(&clone->f_path, O_RDWR | O_LARGEFILE, img->cred);
	fput(clone);
	return file;

out_put_clone:
	fput(clone);
	return ERR_PTR(ret);
}

/* Take the first ready clone, or NULL when the pool is empty. */
static struct rund_layer_ready *rund_layer_pop_locked(struct rund_layer_image *img)
{
	struct rund_layer_ready *r;

	lockdep_assert_held(&img->lock);

	r = list_first_entry_or_null(&img->ready, struct rund_layer_ready, node);
	if (r) {
		list_del(&r->node);
		img->nr_ready--;
	}
	return r;
}

static void rund_layer_ready_free(struct rund_layer_ready *r)
{
	fput(r->file);
	kfree(r);
}

/* Queue a refill unless the image is going away. */
static void rund_layer_queue_refill_locked(struct rund_layer_image *img)
{
	lockdep_assert_held(&img->lock);

	if (!img->dying && img->nr_ready < img->depth)
		queue_work(rund_layer_wq, &img->refill);
}

/*
 * Fill the pool up to its depth. Only this work adds to the pool, and a work
 * item never runs concurrently with itself, so the count read under the lock
 * cannot be overtaken by another refill.
 */
static void rund_layer_refill_work(struct work_struct *work)
{
	struct rund_layer_image *img = container_of(work, struct rund_layer_image, refill);
	struct rund_layer_ready *r;
	struct file *clone;

	for (;;) {
		spin_lock(&img->lock);
		if (img->dying || img->nr_ready >= img->depth) {
			spin_unlock(&img->lock);
			return;
		}
		spin_unlock(&img->lock);

		r = kzalloc(sizeof(*r), GFP_KERNEL);
		if (!r)
			return;
		r->image_ctime = file_inode(img->image)->i_ctime;
		clone = rund_layer_make_clone(img);
		if (IS_ERR(clone)) {
			kfree(r);
			spin_lock(&img->lock);
			img->errors++;
			spin_unlock(&img->lock);
			/* Stop here: the next hand-out queues another try. */
			pr_warn_ratelimited("image %u: background clone failed: %ld\n",
					    img->id, PTR_ERR(clone));
			return;
		}
		r->file = clone;

		spin_lock(&img->lock);
		if (img->dying || img->nr_ready >= img->depth) {
			spin_unlock(&img->lock);
			rund_layer_ready_free(r);
			return;
		}
		list_add_tail(&r->node, &img->ready);
		img->nr_ready++;
		img->refills++;
		spin_unlock(&img->lock);
	}
}

/* Look up image id and take a reference; NULL when it is not registered. */
static struct rund_layer_image *rund_layer_get(u32 id)
{
	struct rund_layer_image *img;

	down_read(&rund_layer_ids_rwsem);
	img = idr_find(&rund_layer_ids, id);
	if (img)
		kref_get(&img->ref);
	up_read(&rund_layer_ids_rwsem);
	return img;
}

/* Find the registered image whose inode is inode's; called with the rwsem held. */
static struct rund_layer_image *rund_layer_find_inode(struct inode *inode)
{
	struct rund_layer_image *img;
	int id;

	lockdep_assert_held(&rund_layer_ids_rwsem);

	idr_for_each_entry(&rund_layer_ids, img, id)
		if (file_inode(img->image) == inode)
			return img;
	return NULL;
}

static struct rund_layer_image *rund_layer_get_by_fd(int fd)
{
	struct rund_layer_image *img;
	struct fd f;

	f = fdget(fd);
	if (!f.file)
		return NULL;

	down_read(&rund_layer_ids_rwsem);
	img = rund_layer_find_inode(file_inode(f.file));
	if (img)
		kref_get(&img->ref);
	up_read(&rund_layer_ids_rwsem);
	fdput(f);
	return img;
}

/* Remove every ready clone of a dying image and wait for its worker. */
static void rund_layer_drain(struct rund_layer_image *img)
{
	struct rund_layer_ready *r;
	LIST_HEAD(drop);

	spin_lock(&img->lock);
	img->dying = true;
	spin_unlock(&img->lock);

	cancel_work_sync(&img->refill);

	spin_lock(&img->lock);
	list_splice_init(&img->ready, &drop);
	img->nr_ready = 0;
	spin_unlock(&img->lock);

	while ((r = list_first_entry_or_null(&drop, struct rund_layer_ready, node))) {
		list_del(&r->node);
		rund_layer_ready_free(r);
	}
}

static long rund_layer_register(struct rund_layer_register __user *uarg)
{
	struct rund_layer_register arg;
	struct rund_layer_image *img;
	struct rund_layer_ready *r;
	struct file *image, *clone;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.id || arg.reserved[0] || arg.reserved[1])
		return -EINVAL;

	image = fget(arg.fd);
	if (!image)
		return -EBADF;
	if (!S_ISREG(file_inode(image)->i_mode) || !(image->f_mode & FMODE_READ) ||
	    !i_size_read(file_inode(image))) {
		ret = -EINVAL;
		goto out_put_image;
	}

	img = kzalloc(sizeof(*img), GFP_KERNEL);
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!img || !r) {
		ret = -ENOMEM;
		goto out_free;
	}
	kref_init(&img->ref);
	spin_lock_init(&img->lock);
	INIT_LIST_HEAD(&img->ready);
	INIT_WORK(&img->refill, rund_layer_refill_work);
	img->depth = RUND_LAYER_DEPTH_DEFAULT;
	img->image = image;
	img->cred = get_current_cred();
	img->dir.mnt = mntget(image->f_path.mnt);
	img->dir.dentry = dget_parent(image->f_path.dentry);

	/*
	 * Make the first clone now: it proves that the directory takes
	 * O_TMPFILE files and the filesystem can clone (tmpfs, ext4 and XFS
	 * without reflink fail here with EOPNOTSUPP), before anything is
	 * registered.
	 */
	r->image_ctime = file_inode(image)->i_ctime;
	clone = rund_layer_make_clone(img);
	if (IS_ERR(clone)) {
		ret = PTR_ERR(clone);
		goto out_put_dir;
	}
	r->file = clone;
	list_add_tail(&r->node, &img->ready);
	img->nr_ready = 1;

	down_write(&rund_layer_ids_rwsem);
	if (rund_layer_find_inode(file_inode(image))) {
		ret = -EEXIST;
		goto out_unlock;
	}
	ret = idr_alloc(&rund_layer_ids, img, 1, RUND_LAYER_IMAGES_MAX + 1, GFP_KERNEL);
	if (ret < 0) {
		if (ret == -ENOSPC)
			ret = -EMFILE;
		goto out_unlock;
	}
	img->id = ret;
	up_write(&rund_layer_ids_rwsem);

	if (put_user(img->id, &uarg->id)) {
		down_write(&rund_layer_ids_rwsem);
		idr_remove(&rund_layer_ids, img->id);
		up_write(&rund_layer_ids_rwsem);
		rund_layer_drain(img);
		rund_layer_image_put(img);
		return -EFAULT;
	}

	spin_lock(&img->lock);
	rund_layer_queue_refill_locked(img);
	spin_unlock(&img->lock);
	pr_info("registered image %u (inode %lu), %u clones ready at most\n",
		img->id, file_inode(image)->i_ino, img->depth);
	return 0;

out_unlock:
	up_write(&rund_layer_ids_rwsem);
	list_del(&r->node);
	fput(r->file);
out_put_dir:
	path_put(&img->dir);
	put_cred(img->cred);
out_free:
	kfree(r);
	kfree(img);
out_put_image:
	fput(image);
	return ret;
}

static long rund_layer_unregister(u32 __user *uarg)
{
	struct rund_layer_image *img;
	u32 id;

	if (get_user(id, uarg))
		return -EFAULT;

	down_write(&rund_layer_ids_rwsem);
	img = idr_remove(&rund_layer_ids, id);
	up_write(&rund_layer_ids_rwsem);
	if (!img)
		return -ENOENT;

	rund_layer_drain(img);
	pr_info("unregistered image %u\n", id);
	rund_layer_image_put(img);
	return 0;
}

static long rund_layer_set_depth(struct rund_layer_depth __user *uarg)
{
	struct rund_layer_depth arg;
	struct rund_layer_image *img;
	struct rund_layer_ready *r;
	LIST_HEAD(drop);

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved)
		return -EINVAL;
	if (arg.depth < 1 || arg.depth > RUND_LAYER_DEPTH_MAX)
		return -ERANGE;

	img = rund_layer_get(arg.id);
	if (!img)
		return -ENOENT;

	spin_lock(&img->lock);
	img->depth = arg.depth;
	while (img->nr_ready > img->depth) {
		r = list_last_entry(&img->ready, struct rund_layer_ready, node);
		list_move(&r->node, &drop);
		img->nr_ready--;
	}
	rund_layer_queue_refill_locked(img);
	spin_unlock(&img->lock);

	while ((r = list_first_entry_or_null(&drop, struct rund_layer_ready, node))) {
		list_del(&r->node);
		rund_layer_ready_free(r);
	}
	rund_layer_image_put(img);
	return 0;
}

/*
 * Return a file for the caller: a ready clone when one is valid, else a clone
 * made now. Either way it is opened with the registering caller's credentials
 * and the filesystem's own file_operations.
 */
static struct file *rund_layer_take(struct rund_layer_image *img, bool *pooled)
{
	struct inode *inode = file_inode(img->image);
	struct rund_layer_ready *r;
	struct file *file;

	spin_lock(&img->lock);
	r = rund_layer_pop_locked(img);
	if (!r)
		img->misses++;
	rund_layer_queue_refill_locked(img);
	spin_unlock(&img->lock);

	/* The image changed after this clone was made, so it is stale. */
	if (r && !timespec64_equal(&r->image_ctime, &inode->i_ctime)) {
		rund_layer_ready_free(r);
		r = NULL;
	}

	if (r) {
		file = r->file;
		kfree(r);
		*pooled = true;
	} else {
		file = rund_layer_make_clone(img);
		*pooled = false;
	}

	spin_lock(&img->lock);
	if (IS_ERR(file))
		img->errors++;
	else
		img->handed_out++;
	spin_unlock(&img->lock);
	return file;
}

static long rund_layer_clone(struct rund_layer_clone __user *uarg)
{
	struct rund_layer_clone arg;
	struct rund_layer_image *img;
	struct file *file;
	bool pooled;
	int fd, ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved)
		return -EINVAL;

	img = arg.id ? rund_layer_get(arg.id) : rund_layer_get_by_fd(arg.image_fd);
	if (!img)
		return -ENOENT;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		ret = fd;
		goto out_put_image;
	}

	file = rund_layer_take(img, &pooled);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto out_put_fd;
	}

	arg.id = img->id;
	arg.fd = fd;
	arg.flags = pooled ? RUND_LAYER_CLONE_POOLED : 0;
	if (copy_to_user(uarg, &arg, sizeof(arg))) {
		ret = -EFAULT;
		goto out_put_file;
	}

	fd_install(fd, file);
	rund_layer_image_put(img);
	return 0;

out_put_file:
	fput(file);
out_put_fd:
	put_unused_fd(fd);
out_put_image:
	rund_layer_image_put(img);
	return ret;
}

static long rund_layer_stats(struct rund_layer_stats __user *uarg)
{
	struct rund_layer_stats arg;
	struct rund_layer_image *img;
	struct inode *inode;
	int id;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags & ~RUND_LAYER_STATS_NEXT)
		return -EINVAL;
	if (arg.reserved[0] || arg.reserved[1])
		return -EINVAL;
	/* IDR ids are ints; larger values name no image. */
	if (arg.id > INT_MAX)
		return -ENOENT;

	down_read(&rund_layer_ids_rwsem);
	id = arg.id;
	if (arg.flags & RUND_LAYER_STATS_NEXT)
		img = idr_get_next(&rund_layer_ids, &id);
	else
		img = idr_find(&rund_layer_ids, id);
	if (img)
		kref_get(&img->ref);
	up_read(&rund_layer_ids_rwsem);
	if (!img)
		return -ENOENT;

	inode = file_inode(img->image);
	arg.id = img->id;
	arg.dev = new_encode_dev(inode->i_sb->s_dev);
	arg.ino = inode->i_ino;
	spin_lock(&img->lock);
	arg.depth = img->depth;
	arg.pooled = img->nr_ready;
	arg.handed_out = img->handed_out;
	arg.refills = img->refills;
	arg.misses = img->misses;
	arg.errors = img->errors;
	spin_unlock(&img->lock);
	rund_layer_image_put(img);

	if (copy_to_user(uarg, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static long rund_layer_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	/* The device node is 0600, but a descriptor can be passed on. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case RUND_LAYER_IOC_REGISTER:
		return rund_layer_register(uarg);
	case RUND_LAYER_IOC_UNREGISTER:
		return rund_layer_unregister(uarg);
	case RUND_LAYER_IOC_SET_DEPTH:
		return rund_layer_set_depth(uarg);
	case RUND_LAYER_IOC_CLONE:
		return rund_layer_clone(uarg);
	case RUND_LAYER_IOC_STATS:
		return rund_layer_stats(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations rund_layer_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = rund_layer_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice rund_layer_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = RUND_DEVICE_NAME,
	.fops = &rund_layer_fops,
	.mode = 0600,
};

/**
 * rund_layer_init() - create the layer workqueue and /dev/rund
 *
 * Return: 0 or a negative errno.
 */
int rund_layer_init(void)
{
	int ret;

	rund_layer_wq = alloc_workqueue("rund_layer", WQ_UNBOUND, 0);
	if (!rund_layer_wq)
		return -ENOMEM;

	ret = misc_register(&rund_layer_dev);
	if (ret)
		goto out_destroy_wq;
	return 0;

out_destroy_wq:
	destroy_workqueue(rund_layer_wq);
	return ret;
}

/**
 * rund_layer_exit() - remove /dev/rund and drop every image and ready clone
 *
 * No ioctl can be running: each open /dev/rund holds a module reference.
 * Clones already handed out are untouched.
 */
void rund_layer_exit(void)
{
	struct rund_layer_image *img;
	int id;

	misc_deregister(&rund_layer_dev);

	idr_for_each_entry(&rund_layer_ids, img, id) {
		idr_remove(&rund_layer_ids, id);
		rund_layer_drain(img);
		rund_layer_image_put(img);
	}
	idr_destroy(&rund_layer_ids);
	destroy_workqueue(rund_layer_wq);
}
