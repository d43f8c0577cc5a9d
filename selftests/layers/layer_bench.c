// SPDX-License-Identifier: GPL-2.0
/*
 * layer_bench: time the creation of writable layers.
 *
 *   layer_bench --dir DIR --method METHOD [--count N] [--threads T]
 *               [--size-mib S] [--depth K] [--interval-us U]
 *
 * Methods:
 *   copy-fsync   O_TMPFILE, read/write copy of the image, fsync
 *   copy         the same without fsync
 *   reflink      O_TMPFILE + FICLONE
 *   module       RUND_LAYER_IOC_CLONE on /dev/rund with the pool depth set to K
 *
 * The image (S MiB, default 64) is written in DIR by the benchmark itself:
 * preallocated, filled and synced, so it is a few extents as `rund-helper
 * layer create` makes it. Each layer is closed right after it is made, so a
 * run measures creation only and copies do not need N times the image size.
 * With --interval-us each thread waits U * T microseconds between requests,
 * so requests arrive at about one per U microseconds in total (a paced load
 * instead of a burst). Prints one line per run: median, p99, mean and max
 * latency, and the rate; module runs add the same figures for the requests
 * served from the pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rund.h"

#define MIB (1 << 20)

enum method { M_COPY_FSYNC, M_COPY, M_REFLINK, M_MODULE };
static const char *const method_names[] = { "copy-fsync", "copy", "reflink", "module" };

struct bench {
	enum method method;
	const char *dir;
	int image_fd;
	off_t image_size;
	int devfd;
	uint32_t id;
	unsigned int count;
	atomic_uint next;
	uint64_t *lat_ns;
	bool *pooled;
	unsigned int threads;
	unsigned int interval_us;
	pthread_barrier_t start;
	atomic_int failed;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "layer_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned int count_extents(int fd)
{
	struct fiemap fm = { .fm_length = FIEMAP_MAX_OFFSET, .fm_flags = FIEMAP_FLAG_SYNC };

	if (ioctl(fd, FS_IOC_FIEMAP, &fm) < 0)
		return 0;
	return fm.fm_mapped_extents;
}

static int make_image(const char *dir, unsigned int mib, char *path, size_t len)
{
	static char buf[MIB];
	unsigned int i;
	int fd;

	snprintf(path, len, "%s/bench-image-%d.ext4", dir, getpid());
	fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		die("create the image");
	if (fallocate(fd, 0, 0, (off_t)mib * MIB) < 0)
		die("fallocate the image");
	for (i = 0; i < mib; i++) {
		memset(buf, i & 0xff, sizeof(buf));
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * MIB) != MIB)
			die("write the image");
	}
	if (fsync(fd) < 0)
		die("fsync the image");
	return fd;
}

static int copy_layer(struct bench *b, bool sync)
{
	static __thread char *buf;
	off_t off;
	int fd;

	if (!buf && !(buf = malloc(MIB)))
		return -1;
	fd = open(b->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (off = 0; off < b->image_size; off += MIB) {
		if (pread(b->image_fd, buf, MIB, off) != MIB ||
		    pwrite(fd, buf, MIB, off) != MIB) {
			/* A short transfer leaves errno unset. */
			if (!errno)
				errno = EIO;
			goto out_close;
		}
	}
	if (sync && fsync(fd) < 0)
		goto out_close;
	return fd;

out_close:
	close(fd);
	return -1;
}

static int make_layer(struct bench *b, bool *pooled)
{
	struct rund_layer_clone c;
	int fd;

	switch (b->method) {
	case M_COPY_FSYNC:
		return copy_layer(b, true);
	case M_COPY:
		return copy_layer(b, false);
	case M_REFLINK:
		fd = open(b->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (ioctl(fd, FICLONE, b->image_fd) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	case M_MODULE:
		memset(&c, 0, sizeof(c));
		c.id = b->id;
		if (ioctl(b->devfd, RUND_LAYER_IOC_CLONE, &c) < 0)
			return -1;
		*pooled = c.flags & RUND_LAYER_CLONE_POOLED;
		return c.fd;
	}
	return -1;
}

static void *worker(void *arg)
{
	struct bench *b = arg;
	unsigned int i;
	uint64_t t0;
	int fd;

	pthread_barrier_wait(&b->start);
	errno = 0;
	while ((i = atomic_fetch_add(&b->next, 1)) < b->count) {
		if (b->interval_us && i >= b->threads)
			usleep(b->interval_us * b->threads);
		t0 = now_ns();
		fd = make_layer(b, &b->pooled[i]);
		b->lat_ns[i] = now_ns() - t0;
		if (fd < 0) {
			if (!atomic_exchange(&b->failed, errno ? errno : EIO))
				fprintf(stderr, "layer_bench: %s failed: %s\n",
					method_names[b->method], strerror(errno));
			return NULL;
		}
		close(fd);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: layer_bench --dir DIR --method copy-fsync|copy|reflink|module\n"
		"                   [--count N] [--threads T] [--size-mib S] [--depth K]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "method", required_argument, NULL, 'm' },
		{ "count", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "size-mib", required_argument, NULL, 's' },
		{ "depth", required_argument, NULL, 'k' },
		{ "interval-us", required_argument, NULL, 'i' },
		{}
	};
	struct rund_layer_stats before = {}, after = {};
	unsigned int threads = 1, size_mib = 64, depth = 8, i;
	struct bench b = { .method = -1, .count = 200, .devfd = -1 };
	uint64_t t0, elapsed, sum = 0, *hits;
	unsigned int nhits = 0;
	char image[4096];
	pthread_t *tids;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': b.dir = optarg; break;
		case 'm':
			for (i = 0; i < 4; i++)
				if (!strcmp(optarg, method_names[i]))
					b.method = i;
			break;
		case 'n': b.count = strtoul(optarg, NULL, 10); break;
		case 't': threads = strtoul(optarg, NULL, 10); break;
		case 's': size_mib = strtoul(optarg, NULL, 10); break;
		case 'k': depth = strtoul(optarg, NULL, 10); break;
		case 'i': b.interval_us = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!b.dir || (int)b.method < 0 || !b.count || !threads || !size_mib)
		usage();

	b.image_fd = make_image(b.dir, size_mib, image, sizeof(image));
	b.image_size = (off_t)size_mib * MIB;
	b.lat_ns = calloc(b.count, sizeof(*b.lat_ns));
	b.pooled = calloc(b.count, sizeof(*b.pooled));
	b.threads = threads;
	tids = calloc(threads, sizeof(*tids));
	if (!b.lat_ns || !b.pooled || !tids)
		die("allocate");

	if (b.method == M_MODULE) {
		struct rund_layer_register reg = { .fd = b.image_fd };
		struct rund_layer_depth d = {};

		b.devfd = open("/dev/rund", O_RDWR | O_CLOEXEC);
		if (b.devfd < 0)
			die("open /dev/rund");
		if (ioctl(b.devfd, RUND_LAYER_IOC_REGISTER, &reg) < 0)
			die("register the image");
		b.id = reg.id;
		d.id = b.id;
		d.depth = depth;
		if (ioctl(b.devfd, RUND_LAYER_IOC_SET_DEPTH, &d) < 0)
			die("set the pool depth");
		/* Start from a full pool, as a node does between bursts. */
		for (i = 0; i < 10000; i++) {
			before.id = b.id;
			if (ioctl(b.devfd, RUND_LAYER_IOC_STATS, &before) < 0)
				die("read stats");
			if (before.pooled == depth)
				break;
			usleep(1000);
		}
	}

	pthread_barrier_init(&b.start, NULL, threads + 1);
	for (i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, worker, &b))
			die("start a thread");
	pthread_barrier_wait(&b.start);
	t0 = now_ns();
	for (i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	elapsed = now_ns() - t0;

	if (b.method == M_MODULE) {
		after.id = b.id;
		if (ioctl(b.devfd, RUND_LAYER_IOC_STATS, &after) < 0)
			die("read stats");
		ioctl(b.devfd, RUND_LAYER_IOC_UNREGISTER, &b.id);
	}
	unlink(image);
	if (b.failed)
		return 1;

	/* Latencies of pool hits, taken before the sort loses the pairing. */
	hits = calloc(b.count, sizeof(*hits));
	if (!hits)
		die("allocate");
	for (i = 0; i < b.count; i++)
		if (b.pooled[i])
			hits[nhits++] = b.lat_ns[i];
	qsort(hits, nhits, sizeof(*hits), cmp_u64);

	qsort(b.lat_ns, b.count, sizeof(*b.lat_ns), cmp_u64);
	for (i = 0; i < b.count; i++)
		sum += b.lat_ns[i];
	printf("method=%s threads=%u count=%u size_mib=%u image_extents=%u",
	       method_names[b.method], threads, b.count, size_mib,
	       count_extents(b.image_fd));
	if (b.interval_us)
		printf(" interval_us=%u", b.interval_us);
	printf(" median_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f rate_per_s=%.0f",
	       b.lat_ns[b.count / 2] / 1e3,
	       b.lat_ns[(b.count * 99 + 99) / 100 - 1] / 1e3,
	       sum / (double)b.count / 1e3, b.lat_ns[b.count - 1] / 1e3,
	       b.count / (elapsed / 1e9));
	if (b.method == M_MODULE) {
		printf(" depth=%u from_pool=%u misses=%llu refills=%llu",
		       depth, nhits,
		       (unsigned long long)(after.misses - before.misses),
		       (unsigned long long)(after.refills - before.refills));
		if (nhits)
			printf(" pool_hit_median_us=%.1f pool_hit_p99_us=%.1f",
			       hits[nhits / 2] / 1e3,
			       hits[(nhits * 99 + 99) / 100 - 1] / 1e3);
	}
	printf("\n");
	return 0;
}
