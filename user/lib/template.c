// SPDX-License-Identifier: LGPL-2.1-or-later
/* VM templates: make, describe, check and restore (see template.h). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <linux/magic.h>

#include "agent.h"
#include "prepatch.h"
#include "template.h"
#include "util.h"

#define CREATE_QMP_TIMEOUT_MS 5000
#define MIGRATE_POLL_US 500
#define ENTROPY_BYTES 64

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms_since(int64_t start_ns)
{
	return (double)(now_ns(CLOCK_MONOTONIC) - start_ns) / 1e6;
}

const char *rund_template_kind_name(enum rund_template_kind kind)
{
	return kind == RUND_TEMPLATE_PREBOOT ? "preboot" : "snapshot";
}

int rund_template_kind_parse(const char *name, enum rund_template_kind *kind)
{
	if (!strcmp(name, "snapshot"))
		*kind = RUND_TEMPLATE_SNAPSHOT;
	else if (!strcmp(name, "preboot"))
		*kind = RUND_TEMPLATE_PREBOOT;
	else
		return -EINVAL;
	return 0;
}

int rund_template_name_check(const char *name, struct rund_error *err)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > RUND_TEMPLATE_NAME_MAX || name[0] == '.')
		goto invalid;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			goto invalid;
	}
	return 0;

invalid:
	return rund_error_setx(err, EINVAL,
			       "invalid template name '%s': use 1-%d letters, digits, '_', '-' or '.', not starting with '.'",
			       name, RUND_TEMPLATE_NAME_MAX);
}

static int file_id_get(const char *path, struct rund_file_id *id, struct rund_error *err)
{
	struct stat st;

	if (stat(path, &st))
		return rund_error_set(err, errno, "failed to stat %s", path);
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

static bool file_id_equal(const struct rund_file_id *a, const struct rund_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

/* Read the NT_GNU_BUILD_ID note of an ELF64 vmlinux as hex. */
static int kernel_build_id(const char *path, char *hex, size_t size, struct rund_error *err)
{
	_cleanup_close_ int fd = -1;
	Elf64_Ehdr eh;
	int i;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rund_error_set(err, errno, "failed to open guest kernel %s", path);
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return rund_error_setx(err, ENOEXEC,
				       "guest kernel %s is not an ELF64 vmlinux; templates need the vmlinux with its build id",
				       path);

	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		_cleanup_free_ uint8_t *notes = NULL;
		size_t off = 0;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    sizeof(ph))
			break;
		if (ph.p_type != PT_NOTE || ph.p_filesz > 1 << 20)
			continue;
		notes = malloc(ph.p_filesz);
		if (!notes)
			return rund_error_setx(err, ENOMEM, "out of memory");
		if (pread(fd, notes, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			continue;
		while (off + sizeof(Elf64_Nhdr) <= ph.p_filesz) {
			Elf64_Nhdr *nh = (Elf64_Nhdr *)(notes + off);
			size_t name_off = off + sizeof(*nh);
			size_t desc_off = name_off + ((nh->n_namesz + 3) & ~3u);
			size_t next = desc_off + ((nh->n_descsz + 3) & ~3u);

			if (next > ph.p_filesz)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !memcmp(notes + name_off, "GNU", 4) && nh->n_descsz * 2 < size) {
				uint32_t j;

				for (j = 0; j < nh->n_descsz; j++)
					sprintf(hex + 2 * j, "%02x", notes[desc_off + j]);
				return 0;
			}
			off = next;
		}
	}
	return rund_error_setx(err, ENOENT,
			       "guest kernel %s has no GNU build id; build it with the default linker options",
			       path);
}

/* Resolve name through PATH, as the launcher does. */
static int resolve_exe(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	const char *p;

	if (strchr(name, '/')) {
		if (!realpath(name, out))
			return -errno;
		return 0;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p;) {
		size_t n = strcspn(p, ":");
		char cand[PATH_MAX];

		snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, name);
		if (!access(cand, X_OK) && realpath(cand, out) && strlen(out) < size)
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

int rund_template_match_fill(struct rund_template_match *m, enum rund_template_kind kind,
			     const struct rund_template_want *want, struct rund_error *err)
{
	enum rund_accel accel;
	const char *why;
	int ret;

	memset(m, 0, sizeof(*m));
	accel = rund_accel_detect(&why);
	snprintf(m->accel, sizeof(m->accel), "%s", rund_accel_name(accel));
	ret = resolve_exe(accel == RUND_ACCEL_KVM ? RUND_QEMU_MICROVM : RUND_QEMU_FULL,
			  m->qemu, sizeof(m->qemu));
	if (ret)
		return rund_error_set(err, -ret, "failed to find %s in PATH",
				      accel == RUND_ACCEL_KVM ? RUND_QEMU_MICROVM : RUND_QEMU_FULL);
	ret = file_id_get(m->qemu, &m->qemu_id, err);
	if (ret)
		return ret;

	/* An absolute path, so that the same file given another way still matches. */
	if (!realpath(want->kernel, m->kernel))
		snprintf(m->kernel, sizeof(m->kernel), "%s", want->kernel);
	ret = file_id_get(want->kernel, &m->kernel_id, err);
	if (ret)
		return ret;
	ret = kernel_build_id(want->kernel, m->kernel_build_id, sizeof(m->kernel_build_id), err);
	if (ret)
		return ret;
	snprintf(m->initrd, sizeof(m->initrd), "%s", want->initrd);
	ret = file_id_get(want->initrd, &m->initrd_id, err);
	if (ret)
		return ret;
	snprintf(m->image, sizeof(m->image), "%s", want->image);
	ret = file_id_get(want->image, &m->image_id, err);
	if (ret)
		return ret;

	/* A pre-boot clone boots as a cold boot does, with the agent's normal path. */
	rund_vm_cmdline(accel, kind == RUND_TEMPLATE_SNAPSHOT, m->cmdline, sizeof(m->cmdline));
	m->vcpus = want->vcpus;
	m->memory_mib = want->memory_mib;
	snprintf(m->devices, sizeof(m->devices), "%s", RUND_VM_DEVICE_LAYOUT);
	m->tsc_khz = rund_host_tsc_khz();
	m->layer_size = want->layer_size;
	return 0;
}

/* template.json */

static json_object *file_id_json(const struct rund_file_id *id)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "dev", json_object_new_int64((int64_t)id->dev));
	json_object_object_add(o, "ino", json_object_new_int64((int64_t)id->ino));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)id->size));
	json_object_object_add(o, "mtime_ns", json_object_new_int64(id->mtime_ns));
	return o;
}

static json_object *template_json(const struct rund_template *t)
{
	const struct rund_template_match *m = &t->match;
	json_object *o = json_object_new_object();
	json_object *mo = json_object_new_object();

	json_object_object_add(o, "format",
			       json_object_new_int(t->kind == RUND_TEMPLATE_SNAPSHOT ?
						   RUND_TEMPLATE_FORMAT_SNAPSHOT :
						   RUND_TEMPLATE_FORMAT));
	json_object_object_add(o, "name", json_object_new_string(t->name));
	json_object_object_add(o, "kind", json_object_new_string(rund_template_kind_name(t->kind)));
	json_object_object_add(o, "memory_path", json_object_new_string(t->memory_path));
	json_object_object_add(o, "layer_image", json_object_new_string(t->layer_image));
	json_object_object_add(o, "created_ns", json_object_new_int64(t->created_ns));
	json_object_object_add(o, "boot_ms", json_object_new_double(t->boot_ms));
	json_object_object_add(o, "save_ms", json_object_new_double(t->save_ms));
	json_object_object_add(o, "state_bytes", json_object_new_int64((int64_t)t->state_bytes));
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)t->memory_bytes));

	json_object_object_add(mo, "qemu", json_object_new_string(m->qemu));
	json_object_object_add(mo, "qemu_file", file_id_json(&m->qemu_id));
	json_object_object_add(mo, "qemu_version", json_object_new_string(m->qemu_version));
	json_object_object_add(mo, "accel", json_object_new_string(m->accel));
	json_object_object_add(mo, "kernel", json_object_new_string(m->kernel));
	json_object_object_add(mo, "kernel_file", file_id_json(&m->kernel_id));
	json_object_object_add(mo, "kernel_build_id", json_object_new_string(m->kernel_build_id));
	json_object_object_add(mo, "initrd", json_object_new_string(m->initrd));
	json_object_object_add(mo, "initrd_file", file_id_json(&m->initrd_id));
	json_object_object_add(mo, "cmdline", json_object_new_string(m->cmdline));
	json_object_object_add(mo, "cpu_model", json_object_new_string(m->cpu_model));
	json_object_object_add(mo, "vcpus", json_object_new_int((int)m->vcpus));
	json_object_object_add(mo, "memory_mib", json_object_new_int((int)m->memory_mib));
	json_object_object_add(mo, "devices", json_object_new_string(m->devices));
	json_object_object_add(mo, "tsc_khz", json_object_new_int64((int64_t)m->tsc_khz));
	json_object_object_add(mo, "image", json_object_new_string(m->image));
	json_object_object_add(mo, "image_file", file_id_json(&m->image_id));
	json_object_object_add(mo, "layer_size", json_object_new_int64((int64_t)m->layer_size));
	json_object_object_add(o, "match", mo);
	return o;
}

struct json_reader {
	json_object *root;
	const char *missing;		/* first key not found or of the wrong type */
};

static json_object *jget(struct json_reader *r, json_object *o, const char *key, json_type type)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type)) {
		if (!r->missing)
			r->missing = key;
		return NULL;
	}
	return v;
}

static void jstr(struct json_reader *r, json_object *o, const char *key, char *out, size_t size)
{
	json_object *v = jget(r, o, key, json_type_string);

	snprintf(out, size, "%s", v ? json_object_get_string(v) : "");
}

static int64_t jint(struct json_reader *r, json_object *o, const char *key)
{
	json_object *v = jget(r, o, key, json_type_int);

	return v ? json_object_get_int64(v) : 0;
}

static double jdouble(struct json_reader *r, json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_double(v);
}

static void jfile(struct json_reader *r, json_object *o, const char *key, struct rund_file_id *id)
{
	json_object *f = jget(r, o, key, json_type_object);

	id->dev = (uint64_t)jint(r, f, "dev");
	id->ino = (uint64_t)jint(r, f, "ino");
	id->size = (uint64_t)jint(r, f, "size");
	id->mtime_ns = jint(r, f, "mtime_ns");
}

int rund_template_load(const char *name, struct rund_template *t, struct rund_error *err)
{
	struct json_reader r = { 0 };
	struct rund_template_match *m = &t->match;
	char path[PATH_MAX], kind[16];
	json_object *mo, *v;
	int64_t format;
	int ret;

	ret = rund_template_name_check(name, err);
	if (ret)
		return ret;
	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/%s", RUND_TEMPLATE_DIR, name);
	snprintf(path, sizeof(path), "%s/template.json", t->dir);
	if (access(path, F_OK))
		return rund_error_setx(err, ENOENT,
				       "template '%s' not found in %s; create it with 'rund-helper template create %s' or list them with 'rund-helper template list'",
				       name, RUND_TEMPLATE_DIR, name);
	r.root = json_object_from_file(path);
	if (!r.root)
		return rund_error_setx(err, EINVAL, "failed to parse %s: %s", path,
				       json_util_get_last_err());

	format = jint(&r, r.root, "format");
	if (format < RUND_TEMPLATE_FORMAT_SNAPSHOT || format > RUND_TEMPLATE_FORMAT) {
		json_object_put(r.root);
		return rund_error_setx(err, ESTALE,
				       "template '%s' has format %s, this rund reads formats %d-%d; delete and create it again",
				       name, r.missing ? "(missing)" : "another",
				       RUND_TEMPLATE_FORMAT_SNAPSHOT, RUND_TEMPLATE_FORMAT);
	}
	/* Format 1 was written before pre-boot templates: no "kind" means a snapshot. */
	if (format == RUND_TEMPLATE_FORMAT_SNAPSHOT &&
	    !json_object_object_get_ex(r.root, "kind", NULL))
		snprintf(kind, sizeof(kind), "snapshot");
	else
		jstr(&r, r.root, "kind", kind, sizeof(kind));
	if (!r.missing && (rund_template_kind_parse(kind, &t->kind) ||
			   (format == RUND_TEMPLATE_FORMAT_SNAPSHOT) !=
			   (t->kind == RUND_TEMPLATE_SNAPSHOT))) {
		json_object_put(r.root);
		return rund_error_setx(err, EINVAL,
				       "invalid %s: kind '%s' with format %" PRId64 "; delete the template and create it again",
				       path, kind, format);
	}
	jstr(&r, r.root, "name", t->name, sizeof(t->name));
	jstr(&r, r.root, "memory_path", t->memory_path, sizeof(t->memory_path));
	jstr(&r, r.root, "layer_image", t->layer_image, sizeof(t->layer_image));
	t->created_ns = jint(&r, r.root, "created_ns");
	t->boot_ms = jdouble(&r, r.root, "boot_ms");
	t->save_ms = jdouble(&r, r.root, "save_ms");
	t->state_bytes = (uint64_t)jint(&r, r.root, "state_bytes");
	t->memory_bytes = (uint64_t)jint(&r, r.root, "memory_bytes");

	mo = jget(&r, r.root, "match", json_type_object);
	jstr(&r, mo, "qemu", m->qemu, sizeof(m->qemu));
	jfile(&r, mo, "qemu_file", &m->qemu_id);
	jstr(&r, mo, "qemu_version", m->qemu_version, sizeof(m->qemu_version));
	jstr(&r, mo, "accel", m->accel, sizeof(m->accel));
	jstr(&r, mo, "kernel", m->kernel, sizeof(m->kernel));
	/* Written since pre-boot templates exist; a snapshot never compares it. */
	if (json_object_object_get_ex(mo, "kernel_file", &v))
		jfile(&r, mo, "kernel_file", &m->kernel_id);
	jstr(&r, mo, "kernel_build_id", m->kernel_build_id, sizeof(m->kernel_build_id));
	jstr(&r, mo, "initrd", m->initrd, sizeof(m->initrd));
	jfile(&r, mo, "initrd_file", &m->initrd_id);
	jstr(&r, mo, "cmdline", m->cmdline, sizeof(m->cmdline));
	jstr(&r, mo, "cpu_model", m->cpu_model, sizeof(m->cpu_model));
	m->vcpus = (unsigned int)jint(&r, mo, "vcpus");
	m->memory_mib = (unsigned int)jint(&r, mo, "memory_mib");
	jstr(&r, mo, "devices", m->devices, sizeof(m->devices));
	m->tsc_khz = (unsigned long)jint(&r, mo, "tsc_khz");
	jstr(&r, mo, "image", m->image, sizeof(m->image));
	jfile(&r, mo, "image_file", &m->image_id);
	m->layer_size = (uint64_t)jint(&r, mo, "layer_size");
	json_object_put(r.root);

	if (r.missing)
		return rund_error_setx(err, EINVAL,
				       "invalid %s: key '%s' is missing or has the wrong type; delete the template and create it again",
				       path, r.missing);
	if (strcmp(t->name, name))
		return rund_error_setx(err, EINVAL, "invalid %s: it names template '%s'", path,
				       t->name);
	snprintf(t->state_path, sizeof(t->state_path), "%s/state", t->dir);
	return 0;
}

static int write_json(const char *path, json_object *o, struct rund_error *err)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	_cleanup_close_ int fd = -1;
	size_t len = strlen(s);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return rund_error_set(err, errno, "failed to create %s", path);
	if (write(fd, s, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd))
		return rund_error_set(err, errno ? errno : EIO, "failed to write %s", path);
	return 0;
}

/* Comparison */

#define MISMATCH(what, fmt, ...)                                                        \
	rund_error_setx(err, ESTALE,                                                    \
			"template '%s' does not match this sandbox: " what " " fmt "; %s", \
			t->name, __VA_ARGS__, fix)

/* Compare t with now, what this host and sandbox would give a new template. */
static int check_match(const struct rund_template *t, const struct rund_template_match *now,
		       struct rund_error *err)
{
	const struct rund_template_match *m = &t->match;
	char fix[2 * PATH_MAX + 256];

	/* The fix repeats this sandbox's settings, so that the new template matches it. */
	if (t->kind == RUND_TEMPLATE_PREBOOT)
		snprintf(fix, sizeof(fix),
			 "create it again with 'rund-helper template create --replace %s --kind preboot --kernel %s --memory %u --vcpus %u --image %s' or start with --no-template",
			 t->name, now->kernel, now->memory_mib, now->vcpus, now->image);
	else
		snprintf(fix, sizeof(fix),
			 "create it again with 'rund-helper template create --replace %s --memory %u --vcpus %u --image %s' or start with --no-template",
			 t->name, now->memory_mib, now->vcpus, now->image);

	if (strcmp(now->accel, m->accel))
		return MISMATCH("accelerator", "is %s here, the template was made under %s", now->accel,
				m->accel);
	if (strcmp(now->qemu, m->qemu) || !file_id_equal(&now->qemu_id, &m->qemu_id))
		return MISMATCH("QEMU binary", "%s differs from %s (QEMU %s) the template was made with",
				now->qemu, m->qemu, m->qemu_version);
	if (strcmp(now->kernel_build_id, m->kernel_build_id))
		return MISMATCH("guest kernel", "%s has build id %s, the template's %s has %s", now->kernel,
				now->kernel_build_id, m->kernel, m->kernel_build_id);
	/*
	 * A pre-patched image keeps the build id of the vmlinux it was made
	 * from, and is valid for one launch configuration: a sandbox asking for
	 * it must not get a template of the other file. A pre-boot template
	 * also contains the file's bytes, so the file must not have changed.
	 */
	if (strcmp(now->kernel, m->kernel) && !access(m->kernel, R_OK))
		return rund_error_setx(err, ESTALE,
				       "template '%s' does not match this sandbox: guest kernel %s is not the file %s the template was made with; start with --kernel %s (or RUND_KERNEL) to use the template, or start with --no-template",
				       t->name, now->kernel, m->kernel, m->kernel);
	if (strcmp(now->kernel, m->kernel) ||
	    (t->kind == RUND_TEMPLATE_PREBOOT && !file_id_equal(&now->kernel_id, &m->kernel_id)))
		return MISMATCH("guest kernel", "%s is not the file %s the template was made with",
				now->kernel, m->kernel);
	if (strcmp(now->initrd, m->initrd) || !file_id_equal(&now->initrd_id, &m->initrd_id))
		return MISMATCH("agent initramfs", "%s differs from %s", now->initrd, m->initrd);
	if (strcmp(now->cmdline, m->cmdline))
		return MISMATCH("guest command line", "'%s' differs from '%s'", now->cmdline, m->cmdline);
	if (now->vcpus != m->vcpus)
		return MISMATCH("vCPUs", "%u requested, template has %u", now->vcpus, m->vcpus);
	if (now->memory_mib != m->memory_mib)
		return MISMATCH("memory", "%u MiB requested, template has %u MiB", now->memory_mib,
				m->memory_mib);
	if (strcmp(now->devices, m->devices))
		return MISMATCH("device layout", "'%s' differs from '%s'", now->devices, m->devices);
	if (now->tsc_khz != m->tsc_khz)
		return MISMATCH("host TSC frequency", "%lu kHz differs from %lu kHz", now->tsc_khz,
				m->tsc_khz);
	if (strcmp(now->image, m->image) || !file_id_equal(&now->image_id, &m->image_id))
		return MISMATCH("read-only image", "%s is not the file %s the template has mounted",
				now->image, m->image);
	if (now->layer_size != m->layer_size)
		return MISMATCH("writable layer", "is %" PRIu64 " bytes, template expects %" PRIu64,
				now->layer_size, m->layer_size);
	if (access(t->memory_path, R_OK))
		return rund_error_set(err, errno,
				      "template '%s': memory file %s is gone (tmpfs is emptied at reboot); create the template again",
				      t->name, t->memory_path);
	return 0;
}

int rund_template_check(const struct rund_template *t, const struct rund_template_want *want,
			struct rund_error *err)
{
	struct rund_template_match *now = malloc(sizeof(*now));
	int ret;

	if (!now)
		return rund_error_setx(err, ENOMEM, "out of memory");
	ret = rund_template_match_fill(now, t->kind, want, err);
	/*
	 * A pre-boot clone runs the kernel's text as the template loaded it, so
	 * reject a pre-patched kernel for another launch as a cold boot would.
	 */
	if (!ret && t->kind == RUND_TEMPLATE_PREBOOT)
		ret = rund_prepatch_check(t->match.kernel, now->accel, "default", want->vcpus,
					  now->cmdline, err);
	if (!ret)
		ret = check_match(t, now, err);
	free(now);
	return ret;
}

static int visible(const struct dirent *d);

struct find_ctx {
	const struct rund_template_match *now[2];	/* by kind */
	unsigned int vcpus;
	struct rund_template *best;
	bool found;
	/* Why the newest template that does not match was passed over. */
	char skipped[RUND_ERROR_MSG_MAX];
	int64_t skipped_ns;
};

/* Snapshot templates first, then the newest. */
static bool find_better(const struct rund_template *t, const struct rund_template *best)
{
	if (t->kind != best->kind)
		return t->kind == RUND_TEMPLATE_SNAPSHOT;
	return t->created_ns > best->created_ns;
}

static int find_one(const struct rund_template *t, void *arg)
{
	struct find_ctx *c = arg;
	const struct rund_template_match *now = c->now[t->kind];
	struct rund_error e = { 0 };

	if (check_match(t, now, &e) ||
	    (t->kind == RUND_TEMPLATE_PREBOOT &&
	     rund_prepatch_check(t->match.kernel, now->accel, "default", c->vcpus, now->cmdline, &e))) {
		if (!c->skipped[0] || t->created_ns > c->skipped_ns) {
			snprintf(c->skipped, sizeof(c->skipped), "%s", e.msg);
			c->skipped_ns = t->created_ns;
		}
		return 0;
	}
	if (!c->found || find_better(t, c->best)) {
		*c->best = *t;
		c->found = true;
	}
	return 0;
}

int rund_template_find(const struct rund_template_want *want, struct rund_template *tmpl,
		       struct rund_error *err)
{
	struct find_ctx c = { .best = tmpl, .vcpus = want->vcpus };
	struct dirent **names = NULL;
	struct rund_template_match *now;
	enum rund_accel accel;
	int n, ret;

	/* Most nodes have no template: skip collecting the match then. */
	n = scandir(RUND_TEMPLATE_DIR, &names, visible, NULL);
	if (n <= 0) {
		free(names);
		return rund_error_setx(err, ENOENT, "no template matches this sandbox");
	}
	while (n > 0)
		free(names[--n]);
	free(names);

	now = malloc(2 * sizeof(*now));
	if (!now)
		return rund_error_setx(err, ENOMEM, "out of memory");
	ret = rund_template_match_fill(&now[RUND_TEMPLATE_SNAPSHOT], RUND_TEMPLATE_SNAPSHOT, want,
				       err);
	/* The kinds differ only in the guest command line. */
	now[RUND_TEMPLATE_PREBOOT] = now[RUND_TEMPLATE_SNAPSHOT];
	accel = strcmp(now->accel, "kvm") ? RUND_ACCEL_TCG : RUND_ACCEL_KVM;
	rund_vm_cmdline(accel, false, now[RUND_TEMPLATE_PREBOOT].cmdline,
			sizeof(now[RUND_TEMPLATE_PREBOOT].cmdline));
	c.now[RUND_TEMPLATE_SNAPSHOT] = &now[RUND_TEMPLATE_SNAPSHOT];
	c.now[RUND_TEMPLATE_PREBOOT] = &now[RUND_TEMPLATE_PREBOOT];
	if (ret) {
		/* For example a bzImage kernel: no template can match, a cold boot still may. */
		free(now);
		rund_error_prefix(err, "no template can match this sandbox: ");
		return -ENOENT;
	}
	ret = rund_template_foreach(find_one, NULL, &c, err);
	free(now);
	if (ret)
		return ret;
	if (!c.found && c.skipped[0])
		return rund_error_setx(err, ENOENT, "no template matches this sandbox; the newest: %s",
				       c.skipped);
	if (!c.found)
		return rund_error_setx(err, ENOENT, "no template matches this sandbox");
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int rund_template_foreach(int (*fn)(const struct rund_template *tmpl, void *arg),
			  void (*bad)(const char *name, const struct rund_error *e, void *arg),
			  void *arg, struct rund_error *err)
{
	struct dirent **names = NULL;
	struct rund_template *t;
	int i, n, ret = 0;

	n = scandir(RUND_TEMPLATE_DIR, &names, visible, name_cmp);
	if (n < 0)
		return errno == ENOENT ? 0 :
		       rund_error_set(err, errno, "failed to read %s", RUND_TEMPLATE_DIR);
	t = malloc(sizeof(*t));
	if (!t)
		ret = rund_error_setx(err, ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct rund_error e = { 0 };

		if (!ret) {
			if (rund_template_load(names[i]->d_name, t, &e)) {
				if (bad)
					bad(names[i]->d_name, &e, arg);
			} else {
				ret = fn(t, arg);
			}
		}
		free(names[i]);
	}
	free(names);
	free(t);
	return ret;
}

static int remove_tree(const char *dir)
{
	struct dirent *d;
	DIR *dh = opendir(dir);
	int ret = 0;

	if (!dh)
		return errno == ENOENT ? 0 : -errno;
	while ((d = readdir(dh))) {
		char path[PATH_MAX];

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (unlink(path) && errno != ENOENT)
			ret = -errno;
	}
	closedir(dh);
	if (rmdir(dir) && errno != ENOENT)
		ret = -errno;
	return ret;
}

int rund_template_delete(const char *name, struct rund_error *err)
{
	struct rund_template t;
	char gone[PATH_MAX];
	int ret;

	ret = rund_template_name_check(name, err);
	if (ret)
		return ret;
	ret = rund_template_load(name, &t, err);
	if (ret && ret != -EINVAL && ret != -ESTALE)
		return ret;

	/* Unpublish first: a start that loads the template from now on fails. */
	snprintf(gone, sizeof(gone), "%s/.%s.deleted.%d", RUND_TEMPLATE_DIR, name, getpid());
	if (rename(t.dir, gone))
		return rund_error_set(err, errno, "failed to remove template directory %s", t.dir);
	if (!ret && t.memory_path[0] && unlink(t.memory_path) && errno != ENOENT)
		return rund_error_set(err, errno, "failed to remove memory file %s", t.memory_path);
	ret = remove_tree(gone);
	if (ret)
		return rund_error_set(err, -ret, "failed to remove %s", gone);
	return 0;
}

/* QMP steps */

static int qmp_simple(struct rund_qmp *q, const char *cmd, json_object *args, int timeout_ms,
		      json_object **ret, struct rund_error *err)
{
	int r = rund_qmp_execute(q, cmd, args, NULL, 0, timeout_ms, ret, err);

	if (args)
		json_object_put(args);
	return r;
}

/* Fail unless QEMU offers the x-ignore-shared migration capability. */
static int check_ignore_shared(struct rund_qmp *q, const char *qemu, struct rund_error *err)
{
	json_object *caps = NULL;
	bool found = false;
	size_t i;
	int ret;

	ret = qmp_simple(q, "query-migrate-capabilities", NULL, CREATE_QMP_TIMEOUT_MS, &caps, err);
	if (ret)
		return ret;
	for (i = 0; json_object_is_type(caps, json_type_array) && i < json_object_array_length(caps);
	     i++) {
		json_object *c = json_object_array_get_idx(caps, i), *name;

		if (json_object_object_get_ex(c, "capability", &name) &&
		    !strcmp(json_object_get_string(name), "x-ignore-shared"))
			found = true;
	}
	json_object_put(caps);
	if (!found)
		return rund_error_setx(err, EOPNOTSUPP,
				       "%s does not offer the x-ignore-shared migration capability (query-migrate-capabilities), which templates need; use QEMU 4.0 or newer, or start with --no-template",
				       qemu);
	return 0;
}

static int set_ignore_shared(struct rund_qmp *q, struct rund_error *err)
{
	json_object *args = json_object_new_object();
	json_object *list = json_object_new_array();
	json_object *cap = json_object_new_object();

	json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(1));
	json_object_array_add(list, cap);
	json_object_object_add(args, "capabilities", list);
	return qmp_simple(q, "migrate-set-capabilities", args, CREATE_QMP_TIMEOUT_MS, NULL, err);
}

/*
 * Fail unless the guest RAM is the shared, named file memory_path: with any
 * other backend x-ignore-shared would leave no RAM to restore from.
 */
static int check_memory_backend(struct rund_qmp *q, const char *memory_path,
				struct rund_error *err)
{
	json_object *args, *ret = NULL, *devs = NULL, *v;
	bool share = false;
	int r;

	r = qmp_simple(q, "query-memdev", NULL, CREATE_QMP_TIMEOUT_MS, &devs, err);
	if (r)
		return r;
	if (json_object_array_length(devs) != 1 ||
	    !json_object_object_get_ex(json_object_array_get_idx(devs, 0), "share", &v) ||
	    !(share = json_object_get_boolean(v))) {
		json_object_put(devs);
		return rund_error_setx(err, EOPNOTSUPP,
				       "the guest RAM is not one shared memory backend (share=on); a template needs memory-backend-file with share=on");
	}
	json_object_put(devs);

	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string("/objects/ram"));
	json_object_object_add(args, "property", json_object_new_string("mem-path"));
	r = qmp_simple(q, "qom-get", args, CREATE_QMP_TIMEOUT_MS, &ret, err);
	if (r)
		return rund_error_setx(err, EOPNOTSUPP,
				       "the guest RAM backend is not a named file (%s); a template needs memory-backend-file",
				       err->msg);
	if (!json_object_is_type(ret, json_type_string) ||
	    strcmp(json_object_get_string(ret), memory_path)) {
		r = rund_error_setx(err, EOPNOTSUPP,
				    "the guest RAM backend file is '%s', expected %s",
				    json_object_get_string(ret), memory_path);
		json_object_put(ret);
		return r;
	}
	json_object_put(ret);
	return 0;
}

static int query_cpu_model(struct rund_qmp *q, char *out, size_t size, struct rund_error *err)
{
	json_object *cpus = NULL, *type = NULL, *args, *v;
	int ret;

	ret = qmp_simple(q, "query-cpus-fast", NULL, CREATE_QMP_TIMEOUT_MS, &cpus, err);
	if (ret)
		return ret;
	if (json_object_array_length(cpus) < 1 ||
	    !json_object_object_get_ex(json_object_array_get_idx(cpus, 0), "qom-path", &v)) {
		json_object_put(cpus);
		return rund_error_setx(err, EPROTO, "query-cpus-fast returned no vCPU");
	}
	/* QEMU 7.2 has no qom-type in query-cpus-fast: read the object's type. */
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(json_object_get_string(v)));
	json_object_object_add(args, "property", json_object_new_string("type"));
	json_object_put(cpus);
	ret = qmp_simple(q, "qom-get", args, CREATE_QMP_TIMEOUT_MS, &type, err);
	if (ret)
		return ret;
	snprintf(out, size, "%s", json_object_get_string(type));
	json_object_put(type);
	return 0;
}

static int query_version(struct rund_qmp *q, char *out, size_t size, struct rund_error *err)
{
	json_object *ver = NULL, *qemu, *v;
	int ret, major = 0, minor = 0, micro = 0;

	ret = qmp_simple(q, "query-version", NULL, CREATE_QMP_TIMEOUT_MS, &ver, err);
	if (ret)
		return ret;
	if (json_object_object_get_ex(ver, "qemu", &qemu)) {
		if (json_object_object_get_ex(qemu, "major", &v))
			major = json_object_get_int(v);
		if (json_object_object_get_ex(qemu, "minor", &v))
			minor = json_object_get_int(v);
		if (json_object_object_get_ex(qemu, "micro", &v))
			micro = json_object_get_int(v);
	}
	snprintf(out, size, "%d.%d.%d", major, minor, micro);
	if (json_object_object_get_ex(ver, "package", &v) && json_object_get_string(v)[0])
		snprintf(out + strlen(out), size - strlen(out), " %s", json_object_get_string(v));
	json_object_put(ver);
	return 0;
}

/* Poll query-migrate until the migration completes, in either direction. */
static int wait_migration(struct rund_qmp *q, int timeout_ms, struct rund_error *err)
{
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;

	for (;;) {
		json_object *st = NULL, *v;
		const char *status = "";
		char desc[256] = "";
		int ret;

		ret = qmp_simple(q, "query-migrate", NULL, timeout_ms, &st, err);
		if (ret)
			return ret;
		if (json_object_object_get_ex(st, "status", &v))
			status = json_object_get_string(v);
		if (!strcmp(status, "completed")) {
			json_object_put(st);
			return 0;
		}
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
			if (json_object_object_get_ex(st, "error-desc", &v))
				snprintf(desc, sizeof(desc), ": %s", json_object_get_string(v));
			json_object_put(st);
			return rund_error_setx(err, EIO, "migration %s%s", status, desc);
		}
		json_object_put(st);
		if (now_ns(CLOCK_MONOTONIC) > deadline)
			return rund_error_setx(err, ETIMEDOUT,
					       "migration did not complete within %d ms", timeout_ms);
		usleep(MIGRATE_POLL_US);
	}
}

/* Pass fd to QEMU under name with getfd, then run cmd with uri fd:name. */
static int migrate_fd(struct rund_qmp *q, const char *cmd, int fd, int timeout_ms,
		      struct rund_error *err)
{
	json_object *args = json_object_new_object();
	int ret;

	json_object_object_add(args, "fdname", json_object_new_string("rund-state"));
	ret = rund_qmp_execute(q, "getfd", args, &fd, 1, timeout_ms, NULL, err);
	json_object_put(args);
	if (ret)
		return ret;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string("fd:rund-state"));
	return qmp_simple(q, cmd, args, timeout_ms, NULL, err);
}

/* Create */

struct create_run {
	const struct rund_template_create_opts *o;
	struct rund_vm vm;
	struct rund_qmp qmp;
	bool qmp_open;
	int agent_fd, console_fd;
};

/* Copy guest console bytes out so that QEMU does not block on a full socket while the guest boots. */
static void drain_console(struct create_run *c)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(c->console_fd, buf, sizeof(buf))) > 0)
		if (c->o->console_fd >= 0 && write(c->o->console_fd, buf, (size_t)n) < 0)
			break;
}

/* Wait for the agent's READY, which it sends once it is at its ready point. */
static int wait_ready(struct create_run *c, int timeout_ms, struct rund_error *err)
{
	_cleanup_free_ struct rund_agent_reader *rd = malloc(sizeof(*rd));
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;

	if (!rd)
		return rund_error_setx(err, ENOMEM, "out of memory");
	rund_agent_reader_init(rd);
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = c->agent_fd, .events = POLLIN },
			{ .fd = c->console_fd, .events = POLLIN },
			{ .fd = c->vm.pidfd, .events = POLLIN },
		};
		int64_t left = (deadline - now_ns(CLOCK_MONOTONIC)) / 1000000;
		struct rund_agent_frame f;
		struct rund_agent_message m;
		int ret;

		if (left <= 0)
			return rund_error_setx(err, ETIMEDOUT,
					       "the guest did not reach the agent's ready point within %d s",
					       timeout_ms / 1000);
		if (poll(p, 3, (int)left) < 0 && errno != EINTR)
			return rund_error_set(err, errno, "failed to poll the agent");
		if (p[1].revents)
			drain_console(c);
		if (p[2].revents)
			return rund_error_setx(err, ECHILD, "QEMU exited while the template guest booted");
		if (!p[0].revents)
			continue;
		ret = rund_agent_read(rd, c->agent_fd, &f, err);
		if (ret == 0)
			continue;
		if (ret < 0)
			return ret;
		ret = rund_agent_parse(&f, &m, err);
		if (ret)
			return ret;
		if (m.type == RUND_AGENT_MSG_ERROR)
			return rund_error_setx(err, EIO, "the agent failed at stage %s: %s",
					       rund_agent_stage_name(m.error.stage), m.error.message);
		if (m.type == RUND_AGENT_MSG_READY)
			return 0;
		return rund_error_setx(err, EPROTO, "expected READY from the agent, got %s",
				       rund_agent_msg_name(m.type));
	}
}

/* Let the guest run for seconds while its console is drained. */
static void settle(struct create_run *c, unsigned int seconds)
{
	int64_t end = now_ns(CLOCK_MONOTONIC) + (int64_t)seconds * 1000000000;

	for (;;) {
		struct pollfd p = { .fd = c->console_fd, .events = POLLIN };
		int64_t left = (end - now_ns(CLOCK_MONOTONIC)) / 1000000;

		if (left <= 0)
			return;
		if (poll(&p, 1, (int)left) > 0)
			drain_console(c);
	}
}

static uint64_t tmpfs_blocks_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

static int ensure_dir(const char *path, mode_t mode, struct rund_error *err)
{
	char tmp[PATH_MAX], *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return rund_error_set(err, errno, "failed to create %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return rund_error_set(err, errno, "failed to create %s", tmp);
	return 0;
}

static int require_tmpfs(const char *dir, struct rund_error *err)
{
	struct statfs sf;

	if (statfs(dir, &sf))
		return rund_error_set(err, errno, "failed to statfs %s", dir);
	if (sf.f_type != TMPFS_MAGIC)
		return rund_error_setx(err, EOPNOTSUPP,
				       "%s is not on tmpfs (magic %#lx); template memory files must be on tmpfs so that clones share their pages",
				       dir, (unsigned long)sf.f_type);
	return 0;
}

static int boot_and_save(struct create_run *c, struct rund_template *t, int state_fd,
			 struct rund_error *err)
{
	const struct rund_template_create_opts *o = c->o;
	int64_t t0 = now_ns(CLOCK_MONOTONIC), t1;
	int ret;

	ret = check_ignore_shared(&c->qmp, c->vm.qemu, err);
	if (ret)
		return ret;
	ret = check_memory_backend(&c->qmp, t->memory_path, err);
	if (ret)
		return ret;
	ret = query_version(&c->qmp, t->match.qemu_version, sizeof(t->match.qemu_version), err);
	if (ret)
		return ret;
	ret = query_cpu_model(&c->qmp, t->match.cpu_model, sizeof(t->match.cpu_model), err);
	if (ret)
		return ret;

	t1 = now_ns(CLOCK_MONOTONIC);
	if (t->kind == RUND_TEMPLATE_SNAPSHOT) {
		ret = wait_ready(c, (int)o->timeout_s * 1000, err);
		if (ret)
			return ret;
		t->boot_ms = ms_since(t0);
		if (o->settle_s)
			settle(c, o->settle_s);

		t1 = now_ns(CLOCK_MONOTONIC);
		ret = qmp_simple(&c->qmp, "stop", NULL, CREATE_QMP_TIMEOUT_MS, NULL, err);
		if (ret)
			return ret;
	}
	/*
	 * A pre-boot guest was started with -S: the machine reset has copied the
	 * kernel into the shared memory file, and no vCPU has run.
	 */
	t->created_ns = now_ns(CLOCK_REALTIME);
	ret = set_ignore_shared(&c->qmp, err);
	if (ret)
		return ret;
	ret = migrate_fd(&c->qmp, "migrate", state_fd, CREATE_QMP_TIMEOUT_MS, err);
	if (ret)
		return ret;
	ret = wait_migration(&c->qmp, (int)o->timeout_s * 1000, err);
	if (ret)
		return ret;
	t->save_ms = ms_since(t1);
	return 0;
}

int rund_template_create(const struct rund_template_create_opts *o, struct rund_template *t,
			 struct rund_error *err)
{
	struct rund_template_want want = {
		.image = o->image, .kernel = o->kernel, .initrd = o->initrd,
		.memory_mib = o->memory_mib, .vcpus = o->vcpus,
	};
	struct create_run c = { .o = o, .agent_fd = -1, .console_fd = -1 };
	struct rund_vm_config cfg = { 0 };
	int agent[2] = { -1, -1 }, qmp[2] = { -1, -1 }, con[2] = { -1, -1 };
	_cleanup_close_ int image_fd = -1, state_fd = -1;
	char tmpdir[PATH_MAX], path[PATH_MAX];
	struct stat st;
	uint64_t rnd;
	int ret;

	memset(t, 0, sizeof(*t));
	c.vm.pid = -1;
	c.vm.pidfd = -1;
	ret = rund_template_name_check(o->name, err);
	if (ret)
		return ret;
	if (stat(o->layer_image, &st))
		return rund_error_set(err, errno, "failed to stat layer image %s", o->layer_image);
	want.layer_size = (uint64_t)st.st_size;
	ret = rund_template_match_fill(&t->match, o->kind, &want, err);
	if (ret)
		return ret;
	snprintf(t->name, sizeof(t->name), "%s", o->name);
	t->kind = o->kind;
	snprintf(t->layer_image, sizeof(t->layer_image), "%s", o->layer_image);
	snprintf(t->dir, sizeof(t->dir), "%s/%s", RUND_TEMPLATE_DIR, o->name);

	ret = ensure_dir(RUND_TEMPLATE_DIR, 0755, err);
	if (ret)
		return ret;
	/* Guest RAM: readable by root only, as QEMU creates the file 0644. */
	ret = ensure_dir(RUND_TEMPLATE_MEMORY_DIR, 0700, err);
	if (ret)
		return ret;
	if (chmod(RUND_TEMPLATE_MEMORY_DIR, 0700))
		return rund_error_set(err, errno, "failed to restrict %s", RUND_TEMPLATE_MEMORY_DIR);
	ret = require_tmpfs(RUND_TEMPLATE_MEMORY_DIR, err);
	if (ret)
		return ret;
	if (!access(t->dir, F_OK)) {
		if (!o->replace)
			return rund_error_setx(err, EEXIST,
					       "template '%s' exists; delete it first or pass --replace",
					       o->name);
	}

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)now_ns(CLOCK_REALTIME) ^ (uint64_t)getpid();
	snprintf(t->memory_path, sizeof(t->memory_path), "%s/%s.%016" PRIx64 ".mem",
		 RUND_TEMPLATE_MEMORY_DIR, o->name, rnd);
	snprintf(tmpdir, sizeof(tmpdir), "%s/.%s.%016" PRIx64 ".tmp", RUND_TEMPLATE_DIR, o->name,
		 rnd);
	if (mkdir(tmpdir, 0755))
		return rund_error_set(err, errno, "failed to create %s", tmpdir);
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	state_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (state_fd < 0) {
		ret = rund_error_set(err, errno, "failed to create %s", path);
		goto out_remove;
	}
	image_fd = open(o->image, O_RDONLY | O_CLOEXEC);
	if (image_fd < 0) {
		ret = rund_error_set(err, errno, "failed to open image %s", o->image);
		goto out_remove;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, con)) {
		ret = rund_error_set(err, errno, "failed to create sockets");
		goto out_close;
	}

	cfg.kernel = o->kernel;
	cfg.initrd = o->initrd;
	cfg.image_fd = image_fd;
	cfg.layer_fd = -1;
	cfg.agent_fd = agent[1];
	cfg.qmp_fd = qmp[1];
	cfg.console_fd = con[1];
	cfg.stderr_fd = -1;
	cfg.memory_mib = o->memory_mib;
	cfg.vcpus = o->vcpus;
	cfg.cgroup_fd = -1;
	cfg.memory_path = t->memory_path;
	cfg.memory_share = true;
	/* A pre-boot template never runs: its clones boot with the normal command line. */
	cfg.template_guest = o->kind == RUND_TEMPLATE_SNAPSHOT;
	cfg.start_paused = o->kind == RUND_TEMPLATE_PREBOOT;
	cfg.layer_placeholder = want.layer_size;
	ret = rund_vm_start(&cfg, &c.vm, err);
	if (ret)
		goto out_close;
	c.agent_fd = agent[0];
	c.console_fd = con[0];
	fcntl(c.agent_fd, F_SETFL, O_NONBLOCK);
	ret = rund_qmp_open(&c.qmp, qmp[0], CREATE_QMP_TIMEOUT_MS, err);
	qmp[0] = -1;		/* owned by c.qmp now, even on failure */
	if (ret)
		goto out_stop;
	c.qmp_open = true;

	ret = boot_and_save(&c, t, state_fd, err);
	if (ret)
		goto out_stop;
	if (fsync(state_fd)) {
		ret = rund_error_set(err, errno, "failed to write %s", path);
		goto out_stop;
	}
	t->state_bytes = (uint64_t)lseek(state_fd, 0, SEEK_END);
	qmp_simple(&c.qmp, "quit", NULL, CREATE_QMP_TIMEOUT_MS, NULL, err);
	rund_error_clear(err);
	rund_vm_reap(&c.vm, 2000);
	t->memory_bytes = tmpfs_blocks_bytes(t->memory_path);

	{
		json_object *j = template_json(t);

		snprintf(path, sizeof(path), "%s/template.json", tmpdir);
		ret = write_json(path, j, err);
		json_object_put(j);
		if (ret)
			goto out_close;
	}
	if (o->replace && !access(t->dir, F_OK)) {
		ret = rund_template_delete(o->name, err);
		if (ret)
			goto out_close;
	}
	if (rename(tmpdir, t->dir)) {
		ret = rund_error_set(err, errno,
				     errno == EEXIST || errno == ENOTEMPTY ?
				     "template '%s' was created by someone else meanwhile; delete it first" :
				     "failed to publish template '%s'",
				     o->name);
		goto out_close;
	}
	snprintf(t->state_path, sizeof(t->state_path), "%s/state", t->dir);
	ret = 0;
	goto out_close;

out_stop:
	if (c.qmp_open)
		rund_qmp_execute(&c.qmp, "quit", NULL, NULL, 0, 500, NULL, NULL);
	if (c.vm.pid > 0)
		rund_vm_reap(&c.vm, 1000);
out_close:
	if (c.qmp_open)
		rund_qmp_close(&c.qmp);
	if (c.agent_fd >= 0)
		close(c.agent_fd);
	else if (agent[0] >= 0)
		close(agent[0]);
	if (c.console_fd >= 0)
		close(c.console_fd);
	else if (con[0] >= 0)
		close(con[0]);
	if (qmp[0] >= 0)
		close(qmp[0]);
	if (agent[1] >= 0)
		close(agent[1]);
	if (qmp[1] >= 0)
		close(qmp[1]);
	if (con[1] >= 0)
		close(con[1]);
	if (!ret)
		return 0;
out_remove:
	unlink(t->memory_path);
	remove_tree(tmpdir);
	return ret;
}

/* Restore */

int rund_template_restore(const struct rund_template *t, struct rund_qmp *q, int timeout_ms,
			  double *restore_ms, struct rund_error *err)
{
	_cleanup_close_ int state_fd = -1;
	int64_t t0 = now_ns(CLOCK_MONOTONIC);
	char model[64];
	int ret;

	ret = check_ignore_shared(q, t->match.qemu, err);
	if (ret)
		return ret;
	ret = query_cpu_model(q, model, sizeof(model), err);
	if (ret)
		return ret;
	if (strcmp(model, t->match.cpu_model))
		return rund_error_setx(err, ESTALE,
				       "template '%s' does not match this sandbox: vCPU model %s differs from %s; create the template again",
				       t->name, model, t->match.cpu_model);
	ret = set_ignore_shared(q, err);
	if (ret)
		return ret;
	state_fd = open(t->state_path, O_RDONLY | O_CLOEXEC);
	if (state_fd < 0)
		return rund_error_set(err, errno,
				      "template '%s': failed to open its device state %s (deleted meanwhile?)",
				      t->name, t->state_path);
	ret = migrate_fd(q, "migrate-incoming", state_fd, timeout_ms, err);
	if (ret)
		return ret;
	ret = wait_migration(q, timeout_ms, err);
	if (ret) {
		rund_error_prefix(err, "failed to restore template '%s': ", t->name);
		return ret;
	}
	/* The template was stopped, or never started, so the clone starts paused. */
	ret = qmp_simple(q, "cont", NULL, timeout_ms, NULL, err);
	if (ret)
		return ret;
	if (restore_ms)
		*restore_ms = ms_since(t0);
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int64_t left = (deadline - now_ns(CLOCK_MONOTONIC)) / 1000000;

			if (left <= 0)
				return -ETIMEDOUT;
			poll(&p, 1, (int)left);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read the agent's reply to one request: ACK, or ERROR turned into err. */
static int read_ack(int fd, struct rund_agent_reader *rd, const char *what, int64_t deadline,
		    struct rund_error *err)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (deadline - now_ns(CLOCK_MONOTONIC)) / 1000000;
		struct rund_agent_frame f;
		struct rund_agent_message m;
		int ret;

		if (left <= 0)
			return rund_error_setx(err, ETIMEDOUT,
					       "the restored agent did not answer %s in time", what);
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return rund_error_set(err, errno, "failed to poll the agent");
		if (!p.revents)
			continue;
		ret = rund_agent_read(rd, fd, &f, err);
		if (ret == 0 || ret == -EAGAIN)
			continue;
		if (ret < 0)
			return ret;
		if (f.type == RUND_AGENT_MSG_ACK)
			return 0;
		ret = rund_agent_parse(&f, &m, err);
		if (ret)
			return ret;
		if (m.type == RUND_AGENT_MSG_ERROR)
			return rund_error_setx(err, EIO, "the agent failed %s (stage %s, errno %u): %s",
					       what, rund_agent_stage_name(m.error.stage),
					       m.error.errnum, m.error.message);
		return rund_error_setx(err, EPROTO, "expected ACK to %s, got %s", what,
				       rund_agent_msg_name(m.type));
	}
}

int rund_template_send_identity(int agent_fd, const char *sandbox_id, const char *hostname,
				int timeout_ms, struct rund_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(RUND_AGENT_FRAME_MAX);
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;
	uint8_t entropy[ENTROPY_BYTES], boot_id[16];
	struct rund_agent_msgbuf m;
	uint32_t first;
	int ret;

	if (!buf)
		return rund_error_setx(err, ENOMEM, "out of memory");
	if (getrandom(entropy, sizeof(entropy), 0) != sizeof(entropy) ||
	    getrandom(boot_id, sizeof(boot_id), 0) != sizeof(boot_id))
		return rund_error_set(err, errno, "failed to read fresh entropy for the clone");
	/* A version 4 UUID, as the kernel makes them. */
	boot_id[6] = (boot_id[6] & 0x0f) | 0x40;
	boot_id[8] = (boot_id[8] & 0x3f) | 0x80;

	rund_agent_msg_init(&m, buf, RUND_AGENT_FRAME_MAX, RUND_AGENT_MSG_IDENTITY);
	rund_agent_put_str(&m, RUND_AGENT_ATTR_SANDBOX_ID, sandbox_id);
	rund_agent_put_str(&m, RUND_AGENT_ATTR_HOSTNAME, hostname);
	rund_agent_put(&m, RUND_AGENT_ATTR_BOOT_ID, boot_id, sizeof(boot_id));
	rund_agent_put(&m, RUND_AGENT_ATTR_ENTROPY, entropy, sizeof(entropy));
	/* Last, so that the time is read as late as possible. */
	rund_agent_put_u64(&m, RUND_AGENT_ATTR_TIME_NS, (uint64_t)now_ns(CLOCK_REALTIME));
	rund_agent_msg_finish(&m);
	first = m.len;

	rund_agent_msg_init(&m, buf + first, RUND_AGENT_FRAME_MAX - first,
			    RUND_AGENT_MSG_MOUNT_LAYER);
	rund_agent_put_str(&m, RUND_AGENT_ATTR_LAYER_DEVICE, "/dev/vdb");
	rund_agent_put_str(&m, RUND_AGENT_ATTR_LAYER_FSTYPE, "ext4");
	rund_agent_msg_finish(&m);
	explicit_bzero(entropy, sizeof(entropy));

	ret = write_full(agent_fd, buf, first + m.len, deadline);
	explicit_bzero(buf, first);
	if (ret)
		return rund_error_set(err, -ret, "failed to send IDENTITY and MOUNT_LAYER to the agent");
	return 0;
}

int rund_template_wait_ack(int agent_fd, const char *what, int timeout_ms,
			   struct rund_error *err)
{
	_cleanup_free_ struct rund_agent_reader *rd = malloc(sizeof(*rd));

	if (!rd)
		return rund_error_setx(err, ENOMEM, "out of memory");
	/* The reader never reads past one frame, so a fresh one per reply is safe. */
	rund_agent_reader_init(rd);
	return read_ack(agent_fd, rd, what,
			now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000, err);
}

int rund_template_personalize(int agent_fd, const char *sandbox_id, const char *hostname,
			      int timeout_ms, struct rund_error *err)
{
	int ret;

	ret = rund_template_send_identity(agent_fd, sandbox_id, hostname, timeout_ms, err);
	if (!ret)
		ret = rund_template_wait_ack(agent_fd, "IDENTITY", timeout_ms, err);
	if (!ret)
		ret = rund_template_wait_ack(agent_fd, "MOUNT_LAYER", timeout_ms, err);
	return ret;
}
