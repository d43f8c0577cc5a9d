// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rund-helper layer: create, check and list writable-layer images, and manage
 * the module's pool of pre-made clones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "layer.h"
#include "rund.h"
#include "util.h"
#include "verbs.h"

#define MIB ((uint64_t)1 << 20)
/* ext4 superblock: 1024 bytes in, magic 0xEF53 at byte 56 of it. */
#define EXT4_SB_MAGIC_OFFSET (1024 + 56)
#define EXT4_SB_MAGIC 0xEF53
/* Smallest layer image: mkfs.ext4 needs room for its metadata. */
#define LAYER_MIN_MIB 8
/* 1 TiB: far beyond any sandbox's scratch space, so a typo is caught. */
#define LAYER_MAX_MIB ((uint64_t)1 << 20)

struct layer_opts {
	bool json;
	uint64_t size_mib;
	long depth;
	const char *dir;
};

static void layer_usage(FILE *out)
{
	fprintf(out,
		"usage: rund-helper layer SUBCOMMAND [OPTIONS]\n"
		"\n"
		"  create PATH --size MiB  write an unfragmented ext4 layer image on the\n"
		"                          layer filesystem (XFS with reflink)\n"
		"  check PATH              report the image's extents and free space;\n"
		"                          fail on a fragmented image (more than %d extents)\n"
		"                          or a filesystem without reflink\n"
		"  list [--dir DIR]        list layer images (default dir %s)\n"
		"  register PATH [--depth K]  hand PATH to the module, which keeps K clones\n"
		"                          ready (default %d, 1 to %d); prints the image id\n"
		"  unregister ID           drop image ID and its ready clones from the module\n"
		"  depth ID K              set the number of ready clones of image ID\n"
		"  stats                   module counters per registered image\n"
		"\n"
		"options:\n"
		"  --json                  print one JSON object\n"
		"  --size MiB              image size in MiB (%d to %" PRIu64 ")\n",
		RUND_LAYER_MAX_EXTENTS, RUND_LAYER_DIR, RUND_LAYER_DEPTH_DEFAULT,
		RUND_LAYER_DEPTH_MAX, LAYER_MIN_MIB, LAYER_MAX_MIB);
}

static int parse_u64(const char *what, const char *s, uint64_t min,
		     uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr,
			"rund-helper layer: invalid %s '%s': expected an integer from %" PRIu64 " to %" PRIu64 "\n",
			what, s, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct layer_opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "size", required_argument, NULL, 's' },
		{ "depth", required_argument, NULL, 'k' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->depth = -1;
	o->dir = RUND_LAYER_DIR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 's':
			if (parse_u64("--size", optarg, LAYER_MIN_MIB,
				      LAYER_MAX_MIB, &o->size_mib) < 0)
				return -EINVAL;
			break;
		case 'k':
			/* The module checks the range; pass 0 and huge values on. */
			if (parse_u64("--depth", optarg, 0, UINT32_MAX, &v) < 0)
				return -EINVAL;
			o->depth = v;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'h':
			layer_usage(stdout);
			exit(0);
		default:
			layer_usage(stderr);
			return -EINVAL;
		}
	}
	return 0;
}

/* Print err as the failure of this subcommand, as JSON or text. */
static int fail(const struct layer_opts *o, const char *sub,
		const struct rund_error *err)
{
	if (o->json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "ok", json_object_new_boolean(0));
		json_object_object_add(j, "error", json_object_new_string(err->msg));
		json_object_object_add(j, "errno", json_object_new_int(err->code));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	}
	fprintf(stderr, "rund-helper layer %s: %s\n", sub, err->msg);
	return RUND_EXIT_FAILED;
}

static void print_json(json_object *j)
{
	json_object_object_add(j, "ok", json_object_new_boolean(1));
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
}

static bool is_ext4_image(int fd)
{
	uint16_t magic;

	if (pread(fd, &magic, sizeof(magic), EXT4_SB_MAGIC_OFFSET) != sizeof(magic))
		return false;
	return magic == EXT4_SB_MAGIC;	/* little-endian on disk and on x86 */
}

static int dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return snprintf(buf, len, ".") >= (int)len ? -ENAMETOOLONG : 0;
	if (slash == path)
		return snprintf(buf, len, "/") >= (int)len ? -ENAMETOOLONG : 0;
	if ((size_t)(slash - path) >= len)
		return -ENAMETOOLONG;
	memcpy(buf, path, slash - path);
	buf[slash - path] = '\0';
	return 0;
}

/* Run mkfs.ext4 on path and wait for it. Its error messages go to stderr. */
static int run_mkfs(const char *path, struct rund_error *err)
{
	/*
	 * nodiscard: mke2fs would punch the preallocated blocks out of a
	 * regular file. No journal: a layer lives as long as one sandbox and
	 * is thrown away after a crash, and each journal write would unshare
	 * blocks of the clone. The file is already zero-filled, so
	 * assume_storage_prezeroed marks the inode tables initialised without
	 * writing them: otherwise ext4lazyinit writes them in every sandbox, and
	 * lazy_itable_init=0 zeroes them with fallocate, which splits the
	 * file into unwritten extents. -m 0: sandboxes run as root, so a
	 * reserve only hides space.
	 */
	char *const argv[] = { "mkfs.ext4", "-q", "-F", "-m", "0",
			       "-E", "nodiscard,assume_storage_prezeroed=1,root_owner=0:0",
			       "-O", "^has_journal", "-L", "rund-layer",
			       (char *)path, NULL };
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return rund_error_set(err, errno, "fork for mkfs.ext4");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execvp("mkfs.ext4", argv);
		fprintf(stderr, "rund-helper layer create: failed to run mkfs.ext4: %s (install e2fsprogs)\n",
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return rund_error_set(err, errno, "wait for mkfs.ext4");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return rund_error_setx(err, EIO,
				       "mkfs.ext4 on '%s' failed (status %d)",
				       path, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

/*
 * Allocate the whole file in one go, then write zeros over it: fallocate
 * alone leaves unwritten extents, and mkfs's scattered writes would split
 * them into dozens of written and unwritten pieces, each a separate extent
 * for every clone to copy.
 */
static int fill_image(int fd, uint64_t bytes, const char *path,
		      struct rund_error *err)
{
	_cleanup_free_ char *zeros = NULL;
	const size_t chunk = 4 * MIB;
	uint64_t off;

	if (fallocate(fd, 0, 0, bytes) < 0)
		return rund_error_set(err, errno, "allocate %" PRIu64 " MiB for '%s'",
				      bytes / MIB, path);

	zeros = calloc(1, chunk);
	if (!zeros)
		return rund_error_set(err, ENOMEM, "allocate a write buffer");
	for (off = 0; off < bytes;) {
		size_t n = bytes - off < chunk ? bytes - off : chunk;
		ssize_t w = pwrite(fd, zeros, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return rund_error_set(err, errno, "write '%s'", path);
		off += w;
	}
	if (fsync(fd) < 0)
		return rund_error_set(err, errno, "fsync '%s'", path);
	return 0;
}

static int layer_create(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct rund_error err = {};
	char dir[PATH_MAX], tmp[PATH_MAX];
	struct layer_opts o;
	unsigned int extents = 0;
	const char *path;
	struct stat st;
	int ret;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc - 1 || !o.size_mib) {
		fprintf(stderr, "rund-helper layer create: expected PATH and --size MiB\n");
		return RUND_EXIT_FAILED;
	}
	path = argv[optind];

	if (dir_of(path, dir, sizeof(dir)) < 0 ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		rund_error_setx(&err, ENAMETOOLONG, "path '%s' is too long", path);
		return fail(&o, "create", &err);
	}
	if (lstat(path, &st) == 0) {
		rund_error_setx(&err, EEXIST,
				"'%s' already exists; remove it first or choose another path",
				path);
		return fail(&o, "create", &err);
	}

	ret = rund_layer_require_reflink(dir, &err);
	if (ret < 0)
		return fail(&o, "create", &err);

	/* Build under a temporary name so that a failure leaves nothing at path. */
	fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	if (fd < 0) {
		rund_error_set(&err, errno, "create '%s'", tmp);
		return fail(&o, "create", &err);
	}

	ret = fill_image(fd, o.size_mib * MIB, tmp, &err);
	if (ret == 0)
		ret = run_mkfs(tmp, &err);
	if (ret == 0 && fsync(fd) < 0)
		ret = rund_error_set(&err, errno, "fsync '%s'", tmp);
	if (ret == 0)
		ret = rund_layer_count_extents(fd, &extents, &err);
	if (ret == 0 && extents > RUND_LAYER_MAX_EXTENTS)
		ret = rund_error_setx(&err, EFBIG,
				      "'%s' came out in %u extents (max %d): the layer filesystem's free space is fragmented; "
				      "free space there or run xfs_fsr, then create it again",
				      path, extents, RUND_LAYER_MAX_EXTENTS);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = rund_error_set(&err, errno, "rename '%s' to '%s'", tmp, path);
	if (ret < 0) {
		unlink(tmp);
		return fail(&o, "create", &err);
	}

	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "path", json_object_new_string(path));
		json_object_object_add(j, "size_mib", json_object_new_uint64(o.size_mib));
		json_object_object_add(j, "extents", json_object_new_int(extents));
		print_json(j);
	} else {
		printf("created %s: ext4, %" PRIu64 " MiB, %u extent%s\n", path,
		       o.size_mib, extents, extents == 1 ? "" : "s");
	}
	return 0;
}

static int layer_check(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct rund_layer_space space;
	struct rund_error err = {};
	struct layer_opts o;
	unsigned int extents;
	char dir[PATH_MAX];
	const char *path;
	struct stat st;
	int ret;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc - 1) {
		fprintf(stderr, "rund-helper layer check: expected one PATH\n");
		return RUND_EXIT_FAILED;
	}
	path = argv[optind];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rund_error_set(&err, errno, "open layer image '%s'", path);
		return fail(&o, "check", &err);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rund_error_setx(&err, EINVAL, "'%s' is not a regular file", path);
		return fail(&o, "check", &err);
	}
	if (!is_ext4_image(fd)) {
		rund_error_setx(&err, EINVAL,
				"'%s' is not an ext4 image; make one with 'rund-helper layer create'",
				path);
		return fail(&o, "check", &err);
	}
	if (dir_of(path, dir, sizeof(dir)) < 0) {
		rund_error_setx(&err, ENAMETOOLONG, "path '%s' is too long", path);
		return fail(&o, "check", &err);
	}
	ret = rund_layer_require_reflink(dir, &err);
	if (ret < 0)
		return fail(&o, "check", &err);

	ret = rund_layer_count_extents(fd, &extents, &err);
	if (ret < 0)
		return fail(&o, "check", &err);
	if (extents > RUND_LAYER_MAX_EXTENTS) {
		rund_error_setx(&err, EFBIG,
				"'%s' is fragmented: %u extents (max %d), and each extent slows every clone; "
				"create a new image with 'rund-helper layer create' or defragment it with xfs_fsr",
				path, extents, RUND_LAYER_MAX_EXTENTS);
		return fail(&o, "check", &err);
	}

	ret = rund_layer_space(path, &space, &err);
	if (ret < 0)
		return fail(&o, "check", &err);

	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "path", json_object_new_string(path));
		json_object_object_add(j, "size_bytes", json_object_new_uint64(st.st_size));
		json_object_object_add(j, "extents", json_object_new_int(extents));
		json_object_object_add(j, "max_extents", json_object_new_int(RUND_LAYER_MAX_EXTENTS));
		json_object_object_add(j, "fs_free_bytes", json_object_new_uint64(space.fs_free_bytes));
		json_object_object_add(j, "fs_size_bytes", json_object_new_uint64(space.size_bytes));
		json_object_object_add(j, "usable_free_bytes", json_object_new_uint64(space.free_bytes));
		json_object_object_add(j, "full_layers_fit", json_object_new_uint64(space.layers_fit));
		if (space.backing_file[0]) {
			json_object_object_add(j, "loop_backing_file",
					       json_object_new_string(space.backing_file));
			json_object_object_add(j, "loop_backing_free_bytes",
					       json_object_new_uint64(space.backing_free_bytes));
		}
		print_json(j);
	} else {
		printf("%s: ok, ext4, %" PRIu64 " MiB, %u extent%s (max %d)\n",
		       path, (uint64_t)st.st_size / MIB, extents,
		       extents == 1 ? "" : "s", RUND_LAYER_MAX_EXTENTS);
		printf("layer filesystem: %" PRIu64 " of %" PRIu64 " MiB free, room for %" PRIu64 " fully written layers\n",
		       space.fs_free_bytes / MIB, space.size_bytes / MIB,
		       space.layers_fit);
		if (space.backing_file[0])
			printf("loop device backed by %s: %" PRIu64 " MiB free on its filesystem\n",
			       space.backing_file, space.backing_free_bytes / MIB);
	}
	return 0;
}

/* Find the module's id for (dev, ino); 0 when not registered or no module. */
static uint32_t module_id_of(int devfd, const struct stat *st)
{
	struct rund_layer_stats s;
	uint32_t next = 1;

	if (devfd < 0)
		return 0;
	for (;;) {
		memset(&s, 0, sizeof(s));
		s.id = next;
		s.flags = RUND_LAYER_STATS_NEXT;
		if (ioctl(devfd, RUND_LAYER_IOC_STATS, &s) < 0)
			return 0;
		if (s.ino == st->st_ino && s.dev == st->st_dev)
			return s.id;
		next = s.id + 1;
	}
}

static int layer_list(int argc, char **argv)
{
	_cleanup_close_ int devfd = -1;
	struct rund_layer_fs fs;
	struct rund_error err = {};
	json_object *j = NULL, *arr = NULL;
	struct layer_opts o;
	struct dirent *de;
	DIR *d;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc) {
		fprintf(stderr, "rund-helper layer list: unexpected argument '%s'\n",
			argv[optind]);
		return RUND_EXIT_FAILED;
	}

	d = opendir(o.dir);
	if (!d) {
		rund_error_set(&err, errno, "open layer directory '%s'%s", o.dir,
			       errno == ENOENT ? " (run scripts/setup-xfs.sh)" : "");
		return fail(&o, "list", &err);
	}
	if (rund_layer_fs_probe(o.dir, &fs, &err) < 0) {
		closedir(d);
		return fail(&o, "list", &err);
	}
	devfd = open(RUND_LAYER_DEVICE, O_RDWR | O_CLOEXEC);

	if (o.json) {
		j = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(j, "dir", json_object_new_string(o.dir));
		json_object_object_add(j, "fs_type", json_object_new_string(fs.type));
		json_object_object_add(j, "reflink", json_object_new_boolean(fs.reflink));
		json_object_object_add(j, "fs_free_bytes", json_object_new_uint64(fs.free_bytes));
		json_object_object_add(j, "fs_size_bytes", json_object_new_uint64(fs.size_bytes));
	} else {
		printf("%s: %s%s, %" PRIu64 " of %" PRIu64 " MiB free\n", o.dir,
		       fs.type, fs.reflink ? " with reflink" : " WITHOUT reflink",
		       fs.free_bytes / MIB, fs.size_bytes / MIB);
		printf("%-32s %10s %8s %5s %9s\n", "IMAGE", "SIZE_MIB", "EXTENTS",
		       "EXT4", "MODULE_ID");
	}

	while ((de = readdir(d))) {
		_cleanup_close_ int fd = -1;
		unsigned int extents = 0;
		struct stat st;
		uint32_t id;
		bool ext4;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		ext4 = is_ext4_image(fd);
		if (rund_layer_count_extents(fd, &extents, NULL) < 0)
			extents = 0;
		id = module_id_of(devfd, &st);

		if (o.json) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "name", json_object_new_string(de->d_name));
			json_object_object_add(e, "size_bytes", json_object_new_uint64(st.st_size));
			json_object_object_add(e, "extents", json_object_new_int(extents));
			json_object_object_add(e, "fragmented",
					       json_object_new_boolean(extents > RUND_LAYER_MAX_EXTENTS));
			json_object_object_add(e, "ext4", json_object_new_boolean(ext4));
			json_object_object_add(e, "module_id", json_object_new_int(id));
			json_object_array_add(arr, e);
		} else {
			char idbuf[16] = "-";

			if (id)
				snprintf(idbuf, sizeof(idbuf), "%u", id);
			printf("%-32s %10" PRIu64 " %7u%s %5s %9s\n", de->d_name,
			       (uint64_t)st.st_size / MIB, extents,
			       extents > RUND_LAYER_MAX_EXTENTS ? "!" : " ",
			       ext4 ? "yes" : "no", idbuf);
		}
	}
	closedir(d);

	if (o.json) {
		json_object_object_add(j, "images", arr);
		print_json(j);
	}
	return 0;
}

static int parse_id(const char *s, uint32_t *id)
{
	uint64_t v;

	if (parse_u64("image id", s, 1, UINT32_MAX, &v) < 0)
		return -EINVAL;
	*id = v;
	return 0;
}

static int layer_register(int argc, char **argv)
{
	_cleanup_close_ int devfd = -1;
	struct rund_error err = {};
	struct layer_opts o;
	int id;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc - 1) {
		fprintf(stderr, "rund-helper layer register: expected one PATH\n");
		return RUND_EXIT_FAILED;
	}

	devfd = rund_layer_module_open(&err);
	if (devfd < 0)
		return fail(&o, "register", &err);
	id = rund_layer_module_register(devfd, argv[optind], &err);
	if (id < 0)
		return fail(&o, "register", &err);
	if (o.depth >= 0 &&
	    rund_layer_module_set_depth(devfd, id, o.depth, &err) < 0) {
		/* Leave nothing half-configured behind. */
		rund_layer_module_unregister(devfd, id, NULL);
		return fail(&o, "register", &err);
	}

	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "id", json_object_new_int(id));
		json_object_object_add(j, "path", json_object_new_string(argv[optind]));
		print_json(j);
	} else {
		printf("%d\n", id);
	}
	return 0;
}

static int layer_unregister(int argc, char **argv)
{
	_cleanup_close_ int devfd = -1;
	struct rund_error err = {};
	struct layer_opts o;
	uint32_t id;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc - 1 || parse_id(argv[optind], &id) < 0) {
		fprintf(stderr, "rund-helper layer unregister: expected one image ID (see 'layer stats')\n");
		return RUND_EXIT_FAILED;
	}

	devfd = rund_layer_module_open(&err);
	if (devfd < 0 || rund_layer_module_unregister(devfd, id, &err) < 0)
		return fail(&o, "unregister", &err);
	if (o.json)
		print_json(json_object_new_object());
	return 0;
}

static int layer_depth(int argc, char **argv)
{
	_cleanup_close_ int devfd = -1;
	struct rund_error err = {};
	struct layer_opts o;
	uint64_t depth;
	uint32_t id;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;
	if (optind != argc - 2 || parse_id(argv[optind], &id) < 0 ||
	    parse_u64("depth", argv[optind + 1], 0, UINT32_MAX, &depth) < 0) {
		fprintf(stderr, "rund-helper layer depth: expected an image ID and a depth K\n");
		return RUND_EXIT_FAILED;
	}

	devfd = rund_layer_module_open(&err);
	if (devfd < 0 || rund_layer_module_set_depth(devfd, id, depth, &err) < 0)
		return fail(&o, "depth", &err);
	if (o.json)
		print_json(json_object_new_object());
	return 0;
}

static int layer_stats(int argc, char **argv)
{
	_cleanup_close_ int devfd = -1;
	struct rund_error err = {};
	struct rund_layer_stats s;
	json_object *j = NULL, *arr = NULL;
	struct layer_opts o;
	uint32_t next = 1;

	if (parse_opts(argc, argv, &o) < 0)
		return RUND_EXIT_FAILED;

	devfd = rund_layer_module_open(&err);
	if (devfd < 0)
		return fail(&o, "stats", &err);

	if (o.json) {
		j = json_object_new_object();
		arr = json_object_new_array();
	} else {
		printf("%4s %12s %12s %5s %6s %10s %10s %8s %6s\n", "ID", "DEV",
		       "INODE", "K", "READY", "HANDED_OUT", "REFILLS", "MISSES",
		       "ERRORS");
	}

	for (;;) {
		memset(&s, 0, sizeof(s));
		s.id = next;
		s.flags = RUND_LAYER_STATS_NEXT;
		if (ioctl(devfd, RUND_LAYER_IOC_STATS, &s) < 0) {
			if (errno == ENOENT)
				break;
			rund_error_set(&err, errno, "read layer stats");
			json_object_put(j);
			json_object_put(arr);
			return fail(&o, "stats", &err);
		}
		next = s.id + 1;

		if (o.json) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "id", json_object_new_int(s.id));
			json_object_object_add(e, "dev", json_object_new_uint64(s.dev));
			json_object_object_add(e, "ino", json_object_new_uint64(s.ino));
			json_object_object_add(e, "depth", json_object_new_int(s.depth));
			json_object_object_add(e, "ready", json_object_new_int(s.pooled));
			json_object_object_add(e, "handed_out", json_object_new_uint64(s.handed_out));
			json_object_object_add(e, "refills", json_object_new_uint64(s.refills));
			json_object_object_add(e, "misses", json_object_new_uint64(s.misses));
			json_object_object_add(e, "errors", json_object_new_uint64(s.errors));
			json_object_array_add(arr, e);
		} else {
			char dev[16];

			snprintf(dev, sizeof(dev), "%u:%u", major(s.dev), minor(s.dev));
			printf("%4u %12s %12" PRIu64 " %5u %6u %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %6" PRIu64 "\n",
			       s.id, dev, (uint64_t)s.ino, s.depth, s.pooled,
			       (uint64_t)s.handed_out, (uint64_t)s.refills,
			       (uint64_t)s.misses, (uint64_t)s.errors);
		}
	}

	if (o.json) {
		json_object_object_add(j, "images", arr);
		print_json(j);
	}
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} layer_subs[] = {
	{ "create", layer_create },
	{ "check", layer_check },
	{ "list", layer_list },
	{ "register", layer_register },
	{ "unregister", layer_unregister },
	{ "depth", layer_depth },
	{ "stats", layer_stats },
};

int cmd_layer(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		layer_usage(stderr);
		return RUND_EXIT_FAILED;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		layer_usage(stdout);
		return 0;
	}

	for (i = 0; i < ARRAY_SIZE(layer_subs); i++)
		if (!strcmp(argv[1], layer_subs[i].name))
			return layer_subs[i].fn(argc - 1, argv + 1);

	fprintf(stderr, "rund-helper layer: unknown subcommand '%s'; run 'rund-helper layer --help'\n",
		argv[1]);
	return RUND_EXIT_FAILED;
}
